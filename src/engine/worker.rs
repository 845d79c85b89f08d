//! A worker: one OS thread with a single-threaded tokio runtime running its share of the virtual users. It
//! records into its own recorder without locks and hands over one snapshot per second (never per request).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::LocalSet;

use super::load::closed::{UserSlot, run_user};
use super::load::open::{OpenShare, dispatch};
use super::shared::{Local, Shared};
use crate::client::TransportFactory;
use crate::metrics::Recorder;

pub struct Snapshot {
    pub worker: usize,
    /// Index of the one-second interval (from the run start) this covers.
    pub second: u64,
    pub rec: Recorder,
    pub users: u64,
    pub in_flight: u64,
    /// Final snapshot of this worker: it has stopped.
    pub done: bool,
    /// CPU time of this thread, in the final snapshot.
    pub cpu: Duration,
    /// Panic messages of this worker's users (final snapshot): their share of the load is missing.
    pub panics: Vec<String>,
}

/// What a worker runs: its closed-model users, or its share of the open-model arrivals.
pub enum Job {
    Closed(Vec<UserSlot>),
    Open(OpenShare),
}

pub fn spawn<F: TransportFactory + Send + 'static>(
    worker: usize,
    shared: Arc<Shared>,
    factory: F,
    job: Job,
    tx: UnboundedSender<Snapshot>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("rlt-worker-{worker}")).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let mut snap = final_snapshot(worker, &shared, Recorder::new(0, 0));
                snap.panics.push(format!("worker {worker} could not start its runtime: {e}"));
                let _ = tx.send(snap);
                return;
            }
        };
        let steps = shared.plan.steps.len();
        let flows = shared.plan.classes.len();
        let local = Rc::new(Local::new(steps, flows));
        let factory = Rc::new(factory);
        let set = LocalSet::new();
        set.block_on(&rt, async {
            // Outside `tasks`, which ends when the users do; the probe is dropped with the local set.
            let probe = local.clone();
            tokio::task::spawn_local(crate::background::hiccup_probe(crate::background::HICCUP_INTERVAL, move |late| {
                // Every other borrow is synchronous; `try_` keeps a future one held across an await from panicking.
                if let Ok(mut rec) = probe.rec.try_borrow_mut() {
                    rec.record_hiccup(late);
                }
            }));
            let mut tasks = tokio::task::JoinSet::new();
            match job {
                Job::Closed(users) => {
                    for slot in users {
                        tasks.spawn_local(run_user(shared.clone(), local.clone(), factory.clone(), slot));
                    }
                }
                Job::Open(share) => {
                    tasks.spawn_local(dispatch(shared.clone(), local.clone(), factory.clone(), share));
                }
            }
            let hard = shared.stop.hard.clone();
            let mut aborted = false;
            let mut tick = tokio::time::interval_at(shared.start + Duration::from_secs(1), Duration::from_secs(1));
            // Burst keeps interval labels equal to wall-clock seconds even if this thread stalls.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut second = 0u64;
            loop {
                tokio::select! {
                    biased;
                    // One watcher per worker instead of a per-request race keeps the hot path free of the
                    // shared token: on a hard stop the in-flight requests are counted and the users aborted.
                    _ = hard.cancelled(), if !aborted => {
                        aborted = true;
                        local.interrupt();
                        local.in_flight.set(0);
                        tasks.abort_all();
                    }
                    done = tasks.join_next() => match done {
                        None => break,
                        // A panicking user loses its share of the load: the run must say so, not read complete.
                        Some(done) => local.reap(done),
                    },
                    _ = tick.tick() => {
                        let rec = local.rec.borrow_mut().take_interval();
                        let snap = Snapshot { worker, second, rec, users: local.users.get(), in_flight: local.in_flight.get(), done: false, cpu: Duration::ZERO, panics: Vec::new() };
                        second += 1;
                        if tx.send(snap).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let rec = local.rec.borrow_mut().take_interval();
        let mut snap = final_snapshot(worker, &shared, rec);
        snap.panics = local.panics.take();
        let _ = tx.send(snap);
    })
}

fn final_snapshot(worker: usize, shared: &Shared, rec: Recorder) -> Snapshot {
    let second = shared.start.elapsed().as_secs();
    Snapshot { worker, second, rec, users: 0, in_flight: 0, done: true, cpu: thread_cpu_time(), panics: Vec::new() }
}

/// CPU time consumed by the calling thread: the generator's own cost, excluding an embedded mock's threads.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is supported on Linux and macOS.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}
