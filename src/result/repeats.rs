//! The runs of `run --repeat N`: each run's own report, and the headline statistics across them (each run's
//! value, their median and coefficient of variation). The top-level report holds all runs together; this is
//! what lets a gate judge on the median of runs instead of on one long run, and a reader see how alike the
//! runs were.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::report::RunReport;
use crate::metrics::{LatencySummary, RequestSummary};

/// A headline coefficient of variation above this (in %) says the runs disagree: Kong's AI-gateway benchmark
/// gates only on repeated runs whose CV is at most 15 %.
pub const CV_WARN_PCT: f64 = 15.0;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeats {
    /// Each run's own report (its series, histograms, steps and environment), in the order they ran; without
    /// thresholds or comparison, which are judged on the whole.
    pub runs: Vec<RunReport>,
    /// The headline statistics across the runs.
    pub summary: Vec<RepeatStat>,
}

/// One headline statistic across the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatStat {
    /// `latency`, `ttft`, `tpot`, `rps`, `errors`.
    pub metric: String,
    /// `p(95)`, `med`, `value`, `rate`.
    pub stat: String,
    /// `ms`, `/s`, or empty (a fraction for the error rate).
    pub unit: String,
    /// Each run's value, in run order; `null` where a run measured nothing of it.
    pub values: Vec<Option<f64>>,
    pub median: f64,
    /// Coefficient of variation: sample standard deviation / mean × 100; absent below two values or for a
    /// mean of zero.
    pub cv_pct: Option<f64>,
}

/// How the current side's runs of one compared row spread (a comparison on several runs only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSpread {
    /// Each run's value, in run order (runs that measured nothing of it left out).
    pub values: Vec<f64>,
    /// Coefficient of variation of `values`, %.
    pub cv_pct: Option<f64>,
}

impl RunSpread {
    pub fn of(values: Vec<f64>) -> RunSpread {
        RunSpread { cv_pct: cv_pct(&values), values }
    }
}

impl Repeats {
    /// The runs with their headline statistics.
    pub fn of(runs: Vec<RunReport>) -> Repeats {
        let summary = headline(&runs);
        Repeats { runs, summary }
    }

    /// The statistics whose spread is above [`CV_WARN_PCT`].
    pub fn unsteady(&self) -> impl Iterator<Item = &RepeatStat> {
        self.summary.iter().filter(|s| s.cv_pct.is_some_and(|c| c > CV_WARN_PCT))
    }
}

type Pick = fn(&RequestSummary) -> Option<f64>;

fn lat(l: Option<&LatencySummary>, f: fn(&LatencySummary) -> f64) -> Option<f64> {
    l.map(f)
}

/// The statistics `compare` gates on by default, read from each run's totals.
const HEADLINE: &[(&str, &str, &str, Pick)] = &[
    ("latency", "p(50)", "ms", |t| lat(t.latency.as_ref(), |l| l.p50_ms)),
    ("latency", "p(95)", "ms", |t| lat(t.latency.as_ref(), |l| l.p95_ms)),
    ("latency", "p(99)", "ms", |t| lat(t.latency.as_ref(), |l| l.p99_ms)),
    ("ttft", "p(50)", "ms", |t| lat(t.llm.as_ref().and_then(|l| l.ttft.as_ref()), |l| l.p50_ms)),
    ("ttft", "p(95)", "ms", |t| lat(t.llm.as_ref().and_then(|l| l.ttft.as_ref()), |l| l.p95_ms)),
    ("tpot", "p(50)", "ms", |t| lat(t.llm.as_ref().and_then(|l| l.tpot.as_ref()), |l| l.p50_ms)),
    ("rps", "value", "/s", |t| Some(t.rps)),
    ("errors", "rate", "", |t| (t.requests > 0).then_some(t.failure_rate)),
];

fn headline(runs: &[RunReport]) -> Vec<RepeatStat> {
    HEADLINE
        .iter()
        .filter_map(|(metric, stat, unit, pick)| {
            let values: Vec<Option<f64>> = runs.iter().map(|r| pick(&r.totals)).collect();
            let present: Vec<f64> = values.iter().flatten().copied().collect();
            Some(RepeatStat {
                metric: metric.to_string(),
                stat: stat.to_string(),
                unit: unit.to_string(),
                median: median(&present)?,
                cv_pct: cv_pct(&present),
                values,
            })
        })
        .collect()
}

/// The median (the mean of the middle two for an even count); `None` for no value.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Sample standard deviation (n − 1); `None` below two values.
pub fn stdev(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    Some((values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt())
}

/// Coefficient of variation in %: how far runs stray from their mean, whatever the metric's unit.
pub fn cv_pct(values: &[f64]) -> Option<f64> {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    stdev(values).filter(|_| mean.abs() > 0.0).map(|s| s / mean.abs() * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 200.0]), Some(3.0), "a wild run does not move the median");
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(stdev(&[5.0]), None);
        assert!((stdev(&[1.0, 2.0, 3.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((cv_pct(&[90.0, 100.0, 110.0]).unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(cv_pct(&[0.0, 0.0]), None, "no mean, no relative spread");
        assert_eq!(cv_pct(&[7.0]), None);
    }
}
