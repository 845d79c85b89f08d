//! What a worker's users share: the run-wide state every worker reads (`Shared`), one worker's recorder and
//! gauges (`Local`), and the two-stage stop.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::capture::ExchangeLog;
use super::plan::Plan;
use crate::metrics::Recorder;

/// Stop in two stages: `graceful` ends iterations at the next step boundary, `hard` aborts the users (each
/// worker watches it once, so requests never race it).
#[derive(Clone, Default)]
pub struct Stop {
    pub graceful: Flag,
    pub hard: CancellationToken,
}

/// A cancellation token whose state reads as one atomic load: `CancellationToken::is_cancelled` takes a mutex,
/// and every user asks several times per iteration (1.7 % of a closed loop's user time on a tiny GET).
#[derive(Clone, Default)]
pub struct Flag {
    token: CancellationToken,
    set: Arc<AtomicBool>,
}

impl Flag {
    pub fn cancel(&self) {
        self.set.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
}

/// What every worker thread shares, read-only except the iteration budget (one atomic per iteration).
pub struct Shared {
    pub plan: Arc<Plan>,
    pub stop: Stop,
    pub iterations_left: Option<AtomicU64>,
    pub seed: u64,
    pub start: Instant,
    /// Open model: latencies are measured from the schedule.
    pub open: bool,
    /// When a timed run ends (no arrival is scheduled from then on).
    pub deadline: Option<Instant>,
    /// Where exchanges are recorded in full (`try`, `--http-debug`); `None` on an ordinary run.
    pub capture: Option<Arc<ExchangeLog>>,
}

impl Shared {
    pub(super) fn claim_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }

    /// A server's message as it may be kept: the run's secrets masked in every form, control characters
    /// escaped. Called once per error kind and step (the first sample), never per request.
    pub(super) fn redact(&self, msg: String) -> String {
        crate::redact::server_text(&msg)
    }
}

/// One worker thread's state: its recorder and gauges. Single-threaded, so no locks.
pub struct Local {
    pub rec: RefCell<Recorder>,
    pub users: Cell<u64>,
    pub in_flight: Cell<u64>,
    /// Steps running now, by step id (retry waits included): what a hard stop cuts off.
    pub running: Box<[Cell<u64>]>,
    /// Panics of this worker's user tasks: their share of the load is missing, the run must say so.
    pub panics: RefCell<Vec<String>>,
}

impl Local {
    pub fn new(steps: usize, flows: usize) -> Local {
        Local {
            rec: RefCell::new(Recorder::new(steps, flows)),
            users: Cell::new(0),
            in_flight: Cell::new(0),
            running: (0..steps).map(|_| Cell::new(0)).collect(),
            panics: RefCell::new(Vec::new()),
        }
    }

    /// Notes a finished task: a panic is kept (as its message), anything else is nothing to report.
    pub fn reap(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done {
            if e.is_panic() {
                self.panics.borrow_mut().push(panic_message(e.into_panic().as_ref()));
            }
        }
    }

    /// On a hard stop: every step still running becomes a failure of kind `interrupted`; returns how many.
    pub fn interrupt(&self) -> u64 {
        let mut rec = self.rec.borrow_mut();
        let mut total = 0;
        for (stats, n) in rec.steps.iter_mut().zip(self.running.iter()) {
            let n = n.replace(0);
            if n > 0 {
                stats.record_interrupted(n, || {
                    "still running when the run was stopped hard (after the graceful stop)".into()
                });
                total += n;
            }
        }
        rec.interrupted += total;
        total
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("a worker panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;

    #[test]
    fn a_hard_stop_turns_running_steps_into_interrupted_failures() {
        let local = Local::new(2, 1);
        local.running[1].set(3);
        assert_eq!(local.interrupt(), 3);
        let rec = local.rec.borrow();
        assert_eq!((rec.steps[0].requests, rec.steps[1].requests, rec.steps[1].failures), (0, 3, 3));
        assert_eq!((rec.steps[1].errors[0].kind, rec.steps[1].errors[0].count), (ErrorKind::Interrupted, 3));
        assert_eq!(rec.interrupted, 3);
        drop(rec);
        assert_eq!(local.interrupt(), 0, "counted once");
    }

    #[test]
    fn panic_payloads_become_messages() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "a worker panicked: boom 7");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(3u8)).unwrap_err();
        assert_eq!(panic_message(caught.as_ref()), "a worker panicked: a panic without a message");
    }
}
