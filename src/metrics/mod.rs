//! Per-worker recorders (HdrHistogram in microseconds plus counters), interval snapshots and merging, and the
//! plain summary types built from them. Synchronous: no I/O, no printing, no clock reads.

mod buckets;
pub mod catalog;
mod llm;
mod summary;
mod timeline;
mod windows;

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use buckets::{Buckets, DURATION_BOUNDS_US, HICCUP_BOUNDS_US};
pub use llm::{
    GatewaySample, GatewayStats, LlmSample, LlmStats, MAX_MODELS, MAX_TARGETS, ModelStats, OTHER_MODEL,
    served_model_label,
};
pub use summary::{
    Cumulative, DecodeError, DeploymentSummary, ErrorSummary, FlowSummary, LatencySummary, LlmSummary, ModelSummary,
    RequestSummary, SeriesPoint, decode_histogram, encode_histogram, encode_nonempty, latency_summary, llm_summary,
    request_summary, series_point,
};
pub use timeline::{Timeline, worst_hiccup_ms};
pub use windows::{MAX_WINDOWS, Window, WindowBuilder, WindowFlow, WindowStep, concat_windows};

pub type Hist = Histogram<u64>;

/// A histogram of microseconds, 3 significant digits, growing as needed so no value is ever rejected.
pub fn new_hist() -> Hist {
    // Invariant: 3 significant figures is within hdrhistogram's accepted 0..=5.
    let mut h = Histogram::new(3).expect("sigfig 3 is valid");
    h.auto(true);
    h
}

/// Records into an auto-resizing histogram; `saturating_record` would clamp to the current range instead of
/// growing it, so it is only the fallback for values beyond what any histogram can hold.
pub fn record(h: &mut Hist, v: u64) {
    record_n(h, v, 1);
}

/// `n` values of `v` at once, as [`record`] records one.
pub fn record_n(h: &mut Hist, v: u64, n: u64) {
    if h.record_n(v, n).is_err() {
        h.saturating_record_n(v, n);
    }
}

/// Histograms of a serialized recorder (the run journal) as in reports: V2 deflate, base64; empty as `""`.
pub(crate) mod hist_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::{Hist, decode_histogram, encode_nonempty, new_hist};

    pub fn serialize<S: Serializer>(h: &Hist, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_nonempty(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hist, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(new_hist());
        }
        let mut h = decode_histogram(&text).map_err(D::Error::custom)?;
        // Decoded histograms are sized to their values; merging others into them must not fail.
        h.auto(true);
        Ok(h)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// How a request failed. The `Display` form is the stable key used in reports and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The connection could not be made, or was closed or reset before a complete response head arrived.
    Connect,
    /// The server sent bytes that are not valid HTTP/1.1 (status line, header, chunk size, oversized head).
    Protocol,
    /// The per-request timeout elapsed.
    Timeout,
    /// A status outside the expected set (not 429).
    Status(u16),
    /// HTTP 429.
    RateLimited,
    /// An `expect` check or a capture failed.
    Check,
    /// A malformed or truncated event stream.
    Stream,
    /// The response body broke off after the head, was larger than `max_body`, or could not be read.
    Body,
    /// Still in flight when the run was stopped hard (after the graceful stop): a hung target is counted.
    Interrupted,
}

/// Distinct unexpected statuses kept per step (see `StepStats::capped`).
pub const MAX_STATUS_KINDS: usize = 64;

impl ErrorKind {
    /// Statuses beyond the first [`MAX_STATUS_KINDS`] of a step: shown as `status:other`.
    pub const STATUS_OTHER: ErrorKind = ErrorKind::Status(0);
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Status(0) => f.write_str("status:other"),
            ErrorKind::Status(c) => write!(f, "status:{c}"),
            ErrorKind::RateLimited => f.write_str("rate_limited"),
            ErrorKind::Check => f.write_str("check"),
            ErrorKind::Stream => f.write_str("stream"),
            ErrorKind::Body => f.write_str("body"),
            ErrorKind::Interrupted => f.write_str("interrupted"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorCount {
    pub kind: ErrorKind,
    pub count: u64,
    /// The first message seen for this kind (already redacted by the caller).
    pub sample: String,
}

/// Counters and histograms of one step. Failed requests stay out of the latency histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepStats {
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Open model: from the intended start of the request; closed model: from its actual send.
    #[serde(with = "hist_serde")]
    pub latency: Hist,
    /// Open model only: from the actual send, so the coordinated-omission correction can be seen.
    #[serde(with = "hist_serde")]
    pub uncorrected: Hist,
    #[serde(with = "hist_serde")]
    pub ttfb: Hist,
    pub errors: Vec<ErrorCount>,
    /// Attempts answered with a retryable status (429 by default) and sent again after the advised wait.
    pub retries: u64,
    /// Retry-After advice that was negative, not a number or not a date, and so was ignored.
    pub retry_after_invalid: u64,
    /// Present once the step produced an LLM response.
    pub llm: Option<Box<LlmStats>>,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            requests: 0,
            failures: 0,
            bytes: 0,
            latency: new_hist(),
            uncorrected: new_hist(),
            ttfb: new_hist(),
            errors: Vec::new(),
            retries: 0,
            retry_after_invalid: 0,
            llm: None,
        }
    }
}

impl StepStats {
    pub fn record_ok(&mut self, latency: Duration, ttfb: Duration, bytes: u64) {
        self.requests += 1;
        self.bytes += bytes;
        record(&mut self.latency, micros(latency));
        record(&mut self.ttfb, micros(ttfb));
    }

    /// Open model: the request should have been sent `lag` before it was, so its latency as a user would see
    /// it includes that wait (wrk2's correction); the measured send → end is kept apart.
    pub fn record_ok_from_schedule(&mut self, latency: Duration, ttfb: Duration, bytes: u64, lag: Duration) {
        self.record_ok(latency + lag, ttfb + lag, bytes);
        record(&mut self.uncorrected, micros(latency));
    }

    /// `sample` runs only the first time a kind is seen, so steady failures cost no allocation.
    pub fn record_err(&mut self, kind: ErrorKind, bytes: u64, sample: impl FnOnce() -> String) {
        self.requests += 1;
        self.failures += 1;
        self.bytes += bytes;
        self.count_error(kind, 1, sample);
    }

    /// `n` requests of this step cut off by a hard stop: failures of kind `interrupted`, so a hung target is
    /// never "0 requests, 0 failures".
    pub fn record_interrupted(&mut self, n: u64, sample: impl FnOnce() -> String) {
        self.requests += n;
        self.failures += n;
        self.count_error(ErrorKind::Interrupted, n, sample);
    }

    fn count_error(&mut self, kind: ErrorKind, n: u64, sample: impl FnOnce() -> String) {
        let kind = self.capped(kind);
        match self.errors.iter_mut().find(|e| e.kind == kind) {
            Some(e) => e.count += n,
            None => self.errors.push(ErrorCount { kind, count: n, sample: sample() }),
        }
    }

    /// Statuses come from the server and become labels (reports, Prometheus `code`): past
    /// [`MAX_STATUS_KINDS`] distinct ones in a step, a new one is counted as [`ErrorKind::STATUS_OTHER`].
    fn capped(&self, kind: ErrorKind) -> ErrorKind {
        if !matches!(kind, ErrorKind::Status(_)) || self.errors.iter().any(|e| e.kind == kind) {
            return kind;
        }
        let statuses = self.errors.iter().filter(|e| matches!(e.kind, ErrorKind::Status(_))).count();
        if statuses >= MAX_STATUS_KINDS { ErrorKind::STATUS_OTHER } else { kind }
    }

    pub fn add(&mut self, o: &StepStats) {
        self.requests += o.requests;
        self.failures += o.failures;
        self.bytes += o.bytes;
        add_hist(&mut self.latency, &o.latency);
        add_hist(&mut self.uncorrected, &o.uncorrected);
        add_hist(&mut self.ttfb, &o.ttfb);
        for e in &o.errors {
            self.count_error(e.kind, e.count, || e.sample.clone());
        }
        self.retries += o.retries;
        self.retry_after_invalid += o.retry_after_invalid;
        if let Some(ol) = &o.llm {
            self.llm.get_or_insert_with(Box::default).add(ol);
        }
    }

    pub fn record_llm(&mut self, sample: &LlmSample<'_>) {
        self.llm.get_or_insert_with(Box::default).record(sample);
    }

    fn reset(&mut self) {
        self.requests = 0;
        self.failures = 0;
        self.bytes = 0;
        self.latency.reset();
        self.uncorrected.reset();
        self.ttfb.reset();
        self.errors.clear();
        self.retries = 0;
        self.retry_after_invalid = 0;
        // Dropped rather than reset: an interval snapshot carries it away, and most intervals of most steps
        // have no LLM traffic at all.
        self.llm = None;
    }
}

/// Adds `from` into `into`: the one histogram merge, for live and decoded histograms alike.
pub fn add_hist(into: &mut Hist, from: &Hist) {
    // Both histograms auto-resize, so addition cannot run out of range; a failure would mean a bug.
    if !from.is_empty() {
        let _ = into.add(from);
    }
}

/// `hists` merged into a fresh histogram.
pub fn merged<'a>(hists: impl IntoIterator<Item = &'a Hist>) -> Hist {
    let mut h = new_hist();
    hists.into_iter().for_each(|x| add_hist(&mut h, x));
    h
}

/// A stored histogram that does not decode; `what` names it (`step `chat` ttft`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} histogram: {reason}")]
pub struct CorruptHistogram {
    pub what: String,
    pub reason: DecodeError,
}

/// Stored (encoded) histograms decoded and merged; empty strings are histograms that measured nothing. Each comes
/// with what names it in the error, formatted only if it is corrupt.
pub fn merged_encoded<'a, W: fmt::Display>(
    encoded: impl IntoIterator<Item = (W, &'a str)>,
) -> Result<Hist, CorruptHistogram> {
    let mut h = new_hist();
    for (what, e) in encoded {
        if e.is_empty() {
            continue;
        }
        let x = decode_histogram(e).map_err(|reason| CorruptHistogram { what: what.to_string(), reason })?;
        add_hist(&mut h, &x);
    }
    Ok(h)
}

/// One user class's iterations (flows): a flow completes when every step ran and none failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowStats {
    pub completed: u64,
    pub failed: u64,
    #[serde(with = "hist_serde")]
    pub latency: Hist,
    /// Steps (requests) per completed flow: varies with ReAct loops.
    #[serde(with = "hist_serde")]
    pub steps: Hist,
    /// Cost of completed flows.
    pub cost: f64,
}

impl Default for FlowStats {
    fn default() -> Self {
        FlowStats { completed: 0, failed: 0, latency: new_hist(), steps: new_hist(), cost: 0.0 }
    }
}

impl FlowStats {
    pub fn record(&mut self, ok: bool, latency: Duration, steps: u64, cost: f64) {
        if ok {
            self.completed += 1;
            record(&mut self.latency, micros(latency));
            record(&mut self.steps, steps);
            self.cost += cost;
        } else {
            self.failed += 1;
        }
    }

    fn add(&mut self, o: &FlowStats) {
        self.completed += o.completed;
        self.failed += o.failed;
        add_hist(&mut self.latency, &o.latency);
        add_hist(&mut self.steps, &o.steps);
        self.cost += o.cost;
    }

    fn reset(&mut self) {
        self.completed = 0;
        self.failed = 0;
        self.latency.reset();
        self.steps.reset();
        self.cost = 0.0;
    }
}

/// What one worker thread measured: one `StepStats` per step of the plan, one `FlowStats` per user class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorder {
    pub steps: Vec<StepStats>,
    pub flows: Vec<FlowStats>,
    /// Requests cut off by a hard stop (also counted as failures of kind `interrupted` in their step).
    pub interrupted: u64,
    /// Open model: arrivals scheduled, and those dropped because `max_in_flight` iterations were running.
    pub arrivals: u64,
    pub dropped: u64,
    /// Open model: actual − intended start of each started iteration (the generator's own lateness).
    #[serde(with = "hist_serde")]
    pub lag: Hist,
    /// Wake-up lateness of the worker's hiccup probe (`background::hiccup_probe`), µs. Absent in journals
    /// written before it existed.
    #[serde(default = "new_hist", with = "hist_serde")]
    pub hiccup: Hist,
    /// Open model: connections the workers' pools opened, and the sum of each pool's most lent at once (set
    /// once, when a worker ends).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conns_opened: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conns_peak: u64,
    /// Open model: how finely arrivals were placed, µs (the coarsest worker's; set when a worker ends).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pacing_us: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Recorder {
    pub fn new(steps: usize, flows: usize) -> Self {
        Recorder {
            steps: (0..steps).map(|_| StepStats::default()).collect(),
            flows: (0..flows).map(|_| FlowStats::default()).collect(),
            interrupted: 0,
            arrivals: 0,
            dropped: 0,
            lag: new_hist(),
            hiccup: new_hist(),
            conns_opened: 0,
            conns_peak: 0,
            pacing_us: 0,
        }
    }

    pub fn add(&mut self, o: &Recorder) {
        for (a, b) in self.steps.iter_mut().zip(&o.steps) {
            a.add(b);
        }
        for (a, b) in self.flows.iter_mut().zip(&o.flows) {
            a.add(b);
        }
        self.interrupted += o.interrupted;
        self.arrivals += o.arrivals;
        self.dropped += o.dropped;
        add_hist(&mut self.lag, &o.lag);
        add_hist(&mut self.hiccup, &o.hiccup);
        self.conns_opened += o.conns_opened;
        self.conns_peak += o.conns_peak;
        self.pacing_us = self.pacing_us.max(o.pacing_us);
    }

    /// One wake-up of the hiccup probe, `late` after it asked to.
    pub fn record_hiccup(&mut self, late: Duration) {
        // Zero is a valid lateness here (on time), unlike the request latencies `micros` keeps above zero.
        record(&mut self.hiccup, u64::try_from(late.as_micros()).unwrap_or(u64::MAX));
    }

    /// Hands over what was recorded since the last call and starts a fresh interval, keeping allocations.
    pub fn take_interval(&mut self) -> Recorder {
        let snap = self.clone();
        self.steps.iter_mut().for_each(StepStats::reset);
        self.flows.iter_mut().for_each(FlowStats::reset);
        self.interrupted = 0;
        self.arrivals = 0;
        self.dropped = 0;
        self.lag.reset();
        self.hiccup.reset();
        (self.conns_opened, self.conns_peak, self.pacing_us) = (0, 0, 0);
        snap
    }

    /// All steps merged into one.
    pub fn total(&self) -> StepStats {
        let mut t = StepStats::default();
        self.steps.iter().for_each(|s| t.add(s));
        t
    }
}

#[cfg(test)]
mod tests;
