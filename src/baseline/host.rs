//! Whether the generating host explains a worsening: the third verdict, `inconclusive`. A comparison of two
//! runs measures the service *and* the machine the load came from; when the machine was busy, a slower number
//! is not evidence that the service got slower.
//!
//! The rule (docs/ci.md, "Inconclusive"), applied only to a change that would otherwise be a regression:
//! - only metrics a busy host can move: timings (latency, ttft, tpot, ...), and throughput and dropped
//!   arrivals (a starved generator sends less and dispatches late). Error, fallback and retry rates and counts
//!   never: a busy load generator does not make a service answer 500.
//! - either run `disturbed` (its environment crossed the bounds the hiccup meter sets): inconclusive. A side of
//!   several runs (`run --repeat`) counts as disturbed when at least half its runs were.
//! - otherwise, for timings, the host's extra lateness at the compared quantile: the hiccup probes' lateness at
//!   that quantile in the current run minus the baseline's (the whole lateness when the baseline did not
//!   measure it), times [`WAKEUPS`]; with several runs, each side's median lateness over its runs. If taking
//!   that much off the worsening brings it back within the tolerance or the noise, the host could have
//!   produced the change: inconclusive.

use crate::metrics::catalog::{Kind, Metric};
use crate::metrics::{Hist, merged_encoded};
use crate::result::{Environment, RunReport};
use crate::slo::Agg;

/// Scheduler wake-ups a measured request time crosses, each of which a stalled host can make late: the
/// client's wake-up when the response is readable, and the server's (the embedded mock's timers, or a local
/// service's) before it answers. A stall at each is the worst the probes' lateness can account for.
pub const WAKEUPS: f64 = 2.0;

/// One run's environment, its hiccup histogram decoded once.
struct Side<'a> {
    env: &'a Environment,
    hist: Option<Hist>,
}

impl<'a> Side<'a> {
    fn of(r: &'a RunReport) -> Option<Side<'a>> {
        let env = r.environment.as_ref()?;
        // A corrupt or absent histogram falls back to the stored percentiles: the verdict must not fail on it.
        let hist = merged_encoded([("hiccup", env.hiccup.histogram.as_str())]).ok().filter(|h| !h.is_empty());
        Some(Side { env, hist })
    }

    /// The probes' lateness at a statistic of the compared metric, ms.
    fn lateness(&self, agg: Agg) -> Option<f64> {
        let h = &self.env.hiccup;
        let q = match agg {
            Agg::Percentile(p) => p / 100.0,
            Agg::Med => 0.5,
            Agg::Avg => return Some(self.hist.as_ref().map_or(h.p50_ms, |x| x.mean() / 1000.0)),
            Agg::Max => return Some(h.max_ms),
            _ => return None,
        };
        Some(match &self.hist {
            Some(x) => x.value_at_quantile(q) as f64 / 1000.0,
            // The stored percentile at or above the quantile: rather overstate what the host explains.
            None if q <= 0.5 => h.p50_ms,
            None if q <= 0.99 => h.p99_ms,
            None if q <= 0.999 => h.p999_ms,
            None => h.max_ms,
        })
    }
}

/// The environments of one side's runs (one run, or the runs of `run --repeat`), each decoded once; `None`
/// for a run that recorded no environment.
struct Set<'a> {
    runs: Vec<Option<Side<'a>>>,
}

impl<'a> Set<'a> {
    fn of(runs: &[&'a RunReport]) -> Set<'a> {
        Set { runs: runs.iter().map(|r| Side::of(r)).collect() }
    }

    /// Why this side counts as disturbed, or `None`. With several runs, when at least half of them were: the
    /// side is judged on the median of its runs, which a minority of disturbed runs does not move.
    fn disturbed(&self, who: &str) -> Option<String> {
        let hit: Vec<(usize, &Environment)> = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.env.disturbed).map(|s| (i + 1, s.env)))
            .collect();
        let n = self.runs.len();
        if hit.is_empty() || 2 * hit.len() < n {
            return None;
        }
        if n == 1 {
            return Some(format!("host disturbed in {who} run: {}", describe(hit[0].1)));
        }
        let each: Vec<String> = hit.iter().map(|(i, env)| format!("run {i}: {}", describe(env))).collect();
        Some(format!("host disturbed in {} of {n} {who} runs ({})", hit.len(), each.join("; ")))
    }

    /// The probes' lateness at a statistic: the median of the runs' (one run's own when there is one).
    fn lateness(&self, agg: Agg) -> Option<f64> {
        let each: Vec<f64> = self.runs.iter().flatten().filter_map(|s| s.lateness(agg)).collect();
        crate::result::median(&each)
    }
}

/// The environments of the two sides of a comparison.
pub struct Host<'a> {
    base: Set<'a>,
    cur: Set<'a>,
}

impl<'a> Host<'a> {
    /// The two sides' runs: one report each, or the runs of repeated ones.
    pub fn new(base: &[&'a RunReport], cur: &[&'a RunReport]) -> Host<'a> {
        Host { base: Set::of(base), cur: Set::of(cur) }
    }

    /// Why a worsening of `worse` (in the metric's unit, beyond `bar`, the larger of tolerance and noise) may
    /// be the host's doing; `None` when the host does not explain it and it stays a regression.
    pub fn explains(&self, metric: Metric, agg: Agg, worse: f64, bar: f64) -> Option<String> {
        if !host_sensitive(metric) {
            return None;
        }
        let disturbed: Vec<String> = [("current", &self.cur), ("baseline", &self.base)]
            .into_iter()
            .filter_map(|(w, s)| s.disturbed(w))
            .collect();
        if !disturbed.is_empty() {
            return Some(disturbed.join("; "));
        }
        if metric.kind() != Kind::Duration {
            return None;
        }
        let cur = self.cur.lateness(agg)?;
        let base = self.base.lateness(agg);
        let explained = WAKEUPS * (cur - base.unwrap_or(0.0)).max(0.0);
        if explained <= 0.0 || worse - explained > bar {
            return None;
        }
        let was = base.map_or("not measured in the baseline".to_string(), |b| format!("{} ms in the baseline", num(b)));
        let runs = match self.cur.runs.len() {
            1 => "current run".to_string(),
            n => format!("current runs (median of {n})"),
        };
        Some(format!(
            "host hiccups explain it: probe lateness at {agg} {} ms in {runs}, {was}; {WAKEUPS}× the excess \
             is {} ms of the {} worsening",
            num(cur),
            num(explained),
            num(worse)
        ))
    }
}

/// Metrics a busy generating host can move (see the module's rule).
pub fn host_sensitive(metric: Metric) -> bool {
    metric.kind() == Kind::Duration || matches!(metric, Metric::Rps | Metric::OutputTokensPerS | Metric::Dropped)
}

/// The environment's numbers in one line: its own reasons when the meter gave them, else the measurements.
fn describe(env: &Environment) -> String {
    if !env.reasons.is_empty() {
        return env.reasons.join(", ");
    }
    let mut parts = vec![format!("hiccup p99 {} ms, max {} ms", num(env.hiccup.p99_ms), num(env.hiccup.max_ms))];
    if let Some(p) = env.cpu_pressure_pct {
        parts.push(format!("cpu pressure {} %", num(p)));
    }
    if let Some(s) = env.steal_pct {
        parts.push(format!("steal {} %", num(s)));
    }
    if let Some(l) = env.load_per_core {
        parts.push(format!("load {} per core", num(l)));
    }
    parts.join(", ")
}

/// A number as a reason shows it: one decimal below 100, none above.
fn num(x: f64) -> String {
    if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}
