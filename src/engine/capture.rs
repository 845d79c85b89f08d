//! Exchange capture, the one mechanism behind `try` (every exchange of one iteration per user class) and
//! `run --http-debug` (the first few exchanges of every step): what was sent, what came back, what was captured
//! and how the checks went. Off unless asked for: the user loop then pays one branch per request. On, each step
//! claims its slots with one atomic, so a run of any length records at most `per_step` exchanges per step across
//! all workers, and each recorded exchange is one push under a lock that is taken at most that often.
//! Holds raw text: whoever shows a capture masks secrets (`report::exchange` does).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::client::Tap;
use crate::llm::sse::StreamSummary;
use crate::metrics::ErrorKind;

/// Request body bytes kept per exchange.
pub const REQUEST_BODY_BYTES: usize = 2048;

/// The exchanges of a run worth showing, collected from every worker.
pub struct ExchangeLog {
    /// Exchanges kept per step; `None`: all of them (`try`, which runs one iteration).
    per_step: Option<u32>,
    claimed: Box<[AtomicU32]>,
    seq: AtomicU64,
    records: Mutex<Vec<Captured>>,
}

impl ExchangeLog {
    /// A log for a plan of `steps` steps, keeping at most `per_step` exchanges of each (`None`: every one).
    pub fn new(steps: usize, per_step: Option<u32>) -> ExchangeLog {
        ExchangeLog {
            per_step,
            claimed: (0..steps).map(|_| AtomicU32::new(0)).collect(),
            seq: AtomicU64::new(0),
            records: Mutex::new(Vec::new()),
        }
    }

    /// Whether this exchange of `step` is to be recorded: true for the first `per_step` claims. Once a step's
    /// slots are gone, a claim is one relaxed load of a value no one writes any more.
    pub(super) fn claim(&self, step: usize) -> bool {
        let Some(n) = self.claimed.get(step) else { return false };
        match self.per_step {
            None => true,
            Some(max) => {
                n.load(Ordering::Relaxed) < max
                    && n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| (c < max).then_some(c + 1)).is_ok()
            }
        }
    }

    pub(super) fn push(&self, mut c: Captured) {
        c.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(c);
    }

    /// Everything recorded so far, in the order the exchanges ended; the log is left empty.
    pub fn take(&self) -> Vec<Captured> {
        let mut v = std::mem::take(&mut *self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        v.sort_by_key(|c| c.seq);
        v
    }
}

/// One exchange as sent and received.
#[derive(Debug, Default)]
pub struct Captured {
    /// Order of completion in the run.
    pub seq: u64,
    pub user: String,
    pub step: String,
    pub step_id: usize,
    /// 1 for the first try, 2 for the first retry...
    pub attempt: u32,
    pub method: String,
    /// Origin form (path and query); the target's scheme and authority are the caller's to add.
    pub uri: String,
    pub request_headers: Vec<(String, String)>,
    /// The first `REQUEST_BODY_BYTES` of the body, and its whole length.
    pub request_body: Vec<u8>,
    pub request_len: usize,
    pub response: Tap,
    pub status: Option<u16>,
    pub ttfb: Option<Duration>,
    pub latency: Option<Duration>,
    pub response_len: u64,
    /// A streamed answer, as the SSE parser read it.
    pub stream: Option<StreamSummary>,
    /// Variables set by this exchange, as text.
    pub captures: Vec<(String, String)>,
    pub checks: Vec<CheckLine>,
    /// How the exchange ended: `None` passed, else the failure recorded for it.
    pub failure: Option<(ErrorKind, String)>,
}

/// One expectation and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// What was expected, e.g. `status 200`, `body contains "ok"`, `JSON path $.id`.
    pub what: String,
    pub passed: bool,
    /// What was found instead, for a failed check.
    pub why: Option<String>,
}

impl CheckLine {
    pub(super) fn pass(what: String) -> CheckLine {
        CheckLine { what, passed: true, why: None }
    }

    pub(super) fn fail(what: String, why: String) -> CheckLine {
        CheckLine { what, passed: false, why: Some(why) }
    }
}

/// The request half of a capture, taken from what is about to be sent.
pub(super) fn request(c: &mut Captured, req: &crate::client::Request) {
    let body = req.body();
    c.method = req.method().to_string();
    c.uri = req.uri().to_string();
    c.request_headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    c.request_len = body.len();
    c.request_body = body[..body.len().min(REQUEST_BODY_BYTES)].to_vec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_per_step_claims_succeed_across_threads() {
        let log = std::sync::Arc::new(ExchangeLog::new(2, Some(3)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || (0..50).filter(|_| log.claim(1)).count())
            })
            .collect();
        let won: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(won, 3);
        assert!(log.claim(0), "another step has its own slots");
        assert!(!log.claim(7), "an unknown step records nothing");
        let all = ExchangeLog::new(1, None);
        assert!((0..1000).all(|_| all.claim(0)));
    }

    #[test]
    fn records_come_back_in_completion_order() {
        let log = ExchangeLog::new(1, None);
        for name in ["a", "b", "c"] {
            log.push(Captured { step: name.into(), ..Default::default() });
        }
        let names: Vec<String> = log.take().into_iter().map(|c| c.step).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(log.take().is_empty());
    }
}
