//! What a run is judged by and how it came out, as stored in `result.json`: SLO verdicts, the regression rules
//! kept for `compare`, and the comparison with a baseline. Plain data; `slo` and `baseline` compute it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// `metric{selector}: expression`, as written.
    pub threshold: String,
    /// What was measured (ms for latencies); absent when nothing was measured, which fails the threshold.
    pub observed: Option<f64>,
    pub unit: String,
    pub pass: bool,
    /// This threshold had `abort_on_fail` and stopped the run early.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aborted_run: bool,
}

/// Confidence of the noise test unless the scenario says otherwise.
pub const DEFAULT_CONFIDENCE: f64 = 0.99;

/// How one metric (with an optional selector) is compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `metric{selector}`, as in thresholds.
    pub key: String,
    /// Statistics compared, in threshold grammar: `p(95)`, `med`, `avg`, `rate`, `value`.
    pub stats: Vec<String>,
    /// Worsening tolerated relative to the baseline (0.1 = 10 %).
    pub relative: f64,
    /// Worsening tolerated in the metric's unit (ms for latencies, a fraction for error rates, /s for rates).
    pub absolute: f64,
}

/// The rules of one comparison, as the scenario set them (stored in `result.json` so `compare` can reuse them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Confidence level of the noise test (0.99: a difference is real when chance explains it less than 1 %
    /// of the time).
    pub confidence: f64,
    /// Whether the built-in rules apply to metrics the scenario does not mention.
    pub defaults: bool,
    /// The scenario's own rules.
    pub rules: Vec<Rule>,
    /// Metrics switched off (`ttft = false`).
    pub off: Vec<String>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet { confidence: DEFAULT_CONFIDENCE, defaults: true, rules: Vec::new(), off: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub baseline: BaselineRef,
    /// Confidence level of the noise test.
    pub confidence: f64,
    pub rows: Vec<Delta>,
    /// Set-up differences between the two runs that make the numbers less comparable.
    pub warnings: Vec<String>,
}

/// Which stored result the run was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineRef {
    pub file: String,
    pub started_at: String,
    pub tool_version: String,
    pub scenario_hash: String,
    pub target: String,
    /// The baseline's latency histogram of all successful requests (as `histograms.latency` of its result), so
    /// that the HTML report can overlay the two distributions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latency_histogram: String,
}

/// One statistic of one metric on both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    /// `metric{selector}`.
    pub metric: String,
    /// `p(95)`, `avg`, `rate`, `value`...
    pub stat: String,
    /// `ms`, `/s`, or empty (a fraction for rates of errors, a count otherwise).
    pub unit: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// current − baseline.
    pub delta: Option<f64>,
    /// (current − baseline) / baseline × 100.
    pub delta_pct: Option<f64>,
    /// Worsening tolerated: the larger of the relative share of the baseline and the absolute floor.
    pub allowed: f64,
    /// Half-width of the confidence interval of the difference: changes smaller than this are noise.
    pub noise: Option<f64>,
    pub higher_is_worse: bool,
    pub verdict: Change,
    /// Why the verdict is `inconclusive`, with the numbers (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Judged on several current runs (`run --repeat`, `compare BASE C1 C2 ...`): each run's value and their
    /// coefficient of variation; `current` is then their median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_runs: Option<super::repeats::RunSpread>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Within the tolerance.
    Ok,
    /// Worse beyond the tolerance and beyond noise: fails the gate.
    Regression,
    /// Better beyond the tolerance and beyond noise.
    Improved,
    /// Beyond the tolerance, but within what chance explains at the confidence level: not a failure.
    Noise,
    /// Worse beyond the tolerance and the noise, but the host explains it (a disturbed run, or hiccups as large
    /// as the change): neither a pass nor a regression; `reason` says why.
    Inconclusive,
    /// Measured in the baseline, not in this run.
    Missing,
    /// Measured in this run, not in the baseline.
    New,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &Delta> {
        self.rows.iter().filter(|d| d.verdict == Change::Regression)
    }

    pub fn failed(&self) -> bool {
        self.regressions().next().is_some()
    }

    pub fn inconclusive(&self) -> impl Iterator<Item = &Delta> {
        self.rows.iter().filter(|d| d.verdict == Change::Inconclusive)
    }
}
