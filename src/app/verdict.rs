//! Whether a run measured anything valid (exit code 3 when not): a panicked worker, a fail-fast stop, or no
//! request that succeeded. Also the fail-fast rule itself, which the live observer applies once a second.

use std::time::Duration;

use crate::engine::{EngineResult, Progress, StepInfo, StopReason};
use crate::metrics::{ErrorKind, Recorder};
use crate::result::{Failure, RunReport, RunStatus};

/// Fail fast is judged from this point of a run on: two full one-second intervals, so a target that is still
/// binding its port when a CI job starts the load (refused for the first instants) is not stopped on a blip,
/// while a forgotten key stops after two seconds instead of sending the whole load as 401s.
const FAIL_FAST_AFTER: Duration = Duration::from_secs(2);
/// ... and with at least this many requests, so that a single user with a long think time is not judged on
/// one or two samples (it is then judged as soon as it has made them).
const FAIL_FAST_MIN_REQUESTS: u64 = 5;

/// Errors that repeating the request will not cure: the port is closed, the request or its credentials are
/// wrong, the path does not exist, the server does not speak HTTP. 5xx, 429 and timeouts are what a load test
/// is there to measure (transient), so they never stop a run early.
fn non_transient(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Connect | ErrorKind::Protocol | ErrorKind::Status(400 | 401 | 403 | 404))
}

/// The fail-fast rule over a run's first requests. Once any request succeeds it is off for the rest of the run
/// (and of a breaking-point search): a later outage is a result, not a misconfiguration.
#[derive(Debug)]
pub struct FailFast {
    /// Off (`fail_fast = false`) or a request already succeeded.
    disarmed: bool,
    /// The one line that stopped the run.
    pub stopped: Option<String>,
}

impl FailFast {
    pub fn new(enabled: bool) -> FailFast {
        FailFast { disarmed: !enabled, stopped: None }
    }

    /// True once, at the tick where every request so far failed with the same non-transient kind.
    pub fn check(&mut self, steps: &[StepInfo], p: &Progress, totals: &Recorder) -> bool {
        if self.disarmed || self.stopped.is_some() {
            return false;
        }
        let (requests, failures) = totals.steps.iter().fold((0, 0), |(r, f), s| (r + s.requests, f + s.failures));
        if failures < requests {
            self.disarmed = true;
            return false;
        }
        if p.elapsed < FAIL_FAST_AFTER || requests < FAIL_FAST_MIN_REQUESTS {
            return false;
        }
        let mut kinds = totals.steps.iter().flat_map(|s| s.errors.iter().map(|e| e.kind));
        let Some(kind) = kinds.next() else { return false };
        if !non_transient(kind) || kinds.any(|k| k != kind) {
            return false;
        }
        let (step, sample) = worst(steps, totals, kind).unwrap_or_default();
        self.stopped = Some(format!(
            "fail fast: every request failed with {kind} in {} s (step {step}, {requests} requests): \"{}\"",
            p.elapsed.as_secs(),
            excerpt(&sample)
        ));
        true
    }
}

/// The step with the most failures of `kind`, and the first message recorded for it.
fn worst(steps: &[StepInfo], rec: &Recorder, kind: ErrorKind) -> Option<(String, String)> {
    steps
        .iter()
        .zip(&rec.steps)
        .filter_map(|(info, s)| s.errors.iter().find(|e| e.kind == kind).map(|e| (info, e)))
        .max_by_key(|(_, e)| e.count)
        .map(|(info, e)| (info.name.clone(), e.sample.clone()))
}

/// A message cut to one short line for the terminal.
fn excerpt(s: &str) -> String {
    const MAX: usize = 160;
    let line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Marks the report of a run that measured nothing valid: its `failure` (see `judge`), `stop_reason: fail_fast`
/// when fail fast stopped it, and `status: failed` unless a signal stopped it (a signal keeps its own status and
/// exit code).
pub fn mark(rep: &mut RunReport, steps: &[StepInfo], r: &EngineResult, fail_fast: Option<String>) {
    if fail_fast.is_some() {
        rep.stop_reason = "fail_fast".into();
    }
    rep.failure = judge(steps, r, fail_fast);
    if rep.failure.is_some() && !matches!(r.stop, StopReason::Interrupted(_)) {
        rep.status = RunStatus::Failed;
    }
}

/// Why the run measured nothing valid, if it did not: a panic first (the tool failed), then a fail-fast stop
/// (`fail_fast`: the line, when it stopped the run), then no request that succeeded.
fn judge(steps: &[StepInfo], r: &EngineResult, fail_fast: Option<String>) -> Option<Failure> {
    let failure = |kind: &str, message: String| Some(Failure { kind: kind.into(), message });
    if let Some(first) = r.panics.first() {
        let more = match r.panics.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return failure("panic", format!("{first}{more}: its users' share of the load is missing"));
    }
    if let Some(line) = fail_fast {
        return failure("fail_fast", line);
    }
    let t = r.total.total();
    if t.requests > t.failures {
        return None;
    }
    if t.requests == 0 {
        return failure("no_success", "no request succeeded: no request was made".into());
    }
    let mut kinds: Vec<(ErrorKind, u64)> = Vec::new();
    for e in r.total.steps.iter().flat_map(|s| &s.errors) {
        match kinds.iter_mut().find(|(k, _)| *k == e.kind) {
            Some((_, n)) => *n += e.count,
            None => kinds.push((e.kind, e.count)),
        }
    }
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let counts = kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ");
    let (step, sample) = kinds.first().and_then(|(k, _)| worst(steps, &r.total, *k)).unwrap_or_default();
    failure(
        "no_success",
        format!(
            "no request succeeded: all {} requests failed ({counts}); step {step}: \"{}\"",
            t.requests,
            excerpt(&sample)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<StepInfo> {
        vec![StepInfo {
            user: "U".into(),
            name: "chat".into(),
            method: "POST".into(),
            path: "/v1/chat".into(),
            request: true,
        }]
    }

    fn progress(secs: u64) -> Progress {
        Progress {
            elapsed: Duration::from_secs(secs),
            planned: None,
            users: 1,
            in_flight: 0,
            requests: 0,
            failures: 0,
            rps: 0.0,
            p95_ms: None,
            interval_s: 1.0,
            started_at: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    fn failing(kind: ErrorKind, n: u64) -> Recorder {
        let mut r = Recorder::new(1, 1);
        for _ in 0..n {
            r.steps[0].record_err(kind, 0, || "unexpected status 401: {\"error\":\"invalid api key\"}".into());
        }
        r
    }

    #[test]
    fn fail_fast_stops_on_one_non_transient_kind_after_two_seconds() {
        let plan = plan();
        let mut ff = FailFast::new(true);
        let rec = failing(ErrorKind::Status(401), 100);
        assert!(!ff.check(&plan, &progress(1), &rec), "one second is not enough");
        assert!(ff.check(&plan, &progress(2), &rec));
        let line = ff.stopped.clone().unwrap();
        assert!(line.starts_with("fail fast: every request failed with status:401 in 2 s (step chat, 100 requests)"));
        assert!(line.contains("invalid api key"), "{line}");
        assert!(!ff.check(&plan, &progress(3), &rec), "it fires once");
    }

    #[test]
    fn fail_fast_needs_a_few_requests() {
        let mut ff = FailFast::new(true);
        assert!(!ff.check(&plan(), &progress(5), &failing(ErrorKind::Connect, FAIL_FAST_MIN_REQUESTS - 1)));
        assert!(ff.check(&plan(), &progress(6), &failing(ErrorKind::Connect, FAIL_FAST_MIN_REQUESTS)));
    }

    #[test]
    fn transient_mixed_or_disabled_never_fail_fast() {
        let plan = plan();
        for kind in [ErrorKind::Status(503), ErrorKind::RateLimited, ErrorKind::Timeout, ErrorKind::Interrupted] {
            assert!(!FailFast::new(true).check(&plan, &progress(3), &failing(kind, 50)), "{kind}");
        }
        let mut mixed = failing(ErrorKind::Status(401), 50);
        mixed.steps[0].record_err(ErrorKind::Status(404), 0, String::new);
        assert!(!FailFast::new(true).check(&plan, &progress(3), &mixed));
        assert!(!FailFast::new(false).check(&plan, &progress(3), &failing(ErrorKind::Connect, 50)));
    }

    #[test]
    fn one_success_disarms_fail_fast_for_good() {
        let plan = plan();
        let mut ff = FailFast::new(true);
        let mut rec = failing(ErrorKind::Connect, 1);
        rec.steps[0].record_ok(Duration::from_millis(5), Duration::from_millis(1), 10);
        assert!(!ff.check(&plan, &progress(1), &rec));
        assert!(!ff.check(&plan, &progress(5), &failing(ErrorKind::Connect, 100)));
    }

    fn result(total: Recorder) -> EngineResult {
        EngineResult {
            total,
            series: Vec::new(),
            hiccup_max: Vec::new(),
            windows: Vec::new(),
            started_at: std::time::SystemTime::now(),
            elapsed: Duration::from_secs(3),
            stop: StopReason::DurationElapsed,
            cpu: Duration::ZERO,
            workers: 1,
            panics: Vec::new(),
        }
    }

    #[test]
    fn judge_names_panics_then_fail_fast_then_no_success() {
        let plan = plan();
        let mut ok = Recorder::new(1, 1);
        ok.steps[0].record_ok(Duration::from_millis(5), Duration::from_millis(1), 10);
        ok.steps[0].record_err(ErrorKind::Status(503), 0, String::new);
        assert_eq!(judge(&plan, &result(ok.clone()), None), None, "one success is a valid measurement");

        let mut panicked = result(ok);
        panicked.panics = vec!["a worker panicked: boom".into(), "a worker panicked: again".into()];
        let f = judge(&plan, &panicked, Some("fail fast: x".into())).unwrap();
        assert_eq!(f.kind, "panic");
        assert!(f.message.starts_with("a worker panicked: boom (and 1 more)"), "{}", f.message);

        let f = judge(&plan, &result(failing(ErrorKind::Connect, 9)), Some("fail fast: x".into())).unwrap();
        assert_eq!((f.kind.as_str(), f.message.as_str()), ("fail_fast", "fail fast: x"));

        let mut storm = failing(ErrorKind::Status(503), 7);
        storm.steps[0].record_err(ErrorKind::Timeout, 0, String::new);
        let f = judge(&plan, &result(storm), None).unwrap();
        assert_eq!(f.kind, "no_success");
        assert!(f.message.contains("all 8 requests failed (status:503 ×7, timeout ×1); step chat"), "{}", f.message);

        let mut hung = Recorder::new(1, 1);
        hung.steps[0].record_interrupted(4, || "still running".into());
        let f = judge(&plan, &result(hung), None).unwrap();
        assert!(f.message.contains("all 4 requests failed (interrupted ×4)"), "{}", f.message);

        let f = judge(&plan, &result(Recorder::new(1, 1)), None).unwrap();
        assert_eq!(f.message, "no request succeeded: no request was made");
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\nb\u{1b}[31m"), "a b [31m");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 161);
    }
}
