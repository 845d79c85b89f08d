//! Two results, compared metric by metric: the value on each side with its standard error, the difference, the
//! worsening the rule tolerates, and a verdict that separates a real change from noise.

use super::error::CompareError;
use super::host::Host;
use super::rules::{Shape, Target, targets};
use super::stats::{block_se, mean_se, proportion_se, quantile_se, z_for};
use super::windows::{self, selects};
use crate::metrics::catalog::{Metric, Source, StoredStepHistograms};
use crate::metrics::{CorruptHistogram, Hist, SeriesPoint, merged_encoded, new_hist};
use crate::result::{
    BaselineRef, Change, Comparison, Delta, LoadInfo, RuleSet, RunReport, RunSpread, RunStatus, median, stdev,
};
use crate::slo::{Agg, Selector};

/// A statistic with its standard error, in the metric's display unit.
#[derive(Debug, Clone, Copy)]
struct Est {
    value: f64,
    se: f64,
}

/// The efficiency loss of a median against a mean, as a ratio of standard errors: √(π/2) ≈ 1.2533 for normal
/// data (the asymptotic relative efficiency of the median is 2/π). A side of several runs is valued by the
/// median of its runs (one wild run cannot move it), so its standard error is the mean's, widened by this.
/// For 3 to 5 runs the exact ratio is smaller (≈1.16 at n = 3), so this overstates the noise slightly: a gate
/// had better call a borderline change noise than cry regression.
const MEDIAN_SE_FACTOR: f64 = 1.2533;

/// The runs a stored result stands for: those of `run --repeat`, else the report itself.
pub fn runs_of(r: &RunReport) -> Vec<&RunReport> {
    match &r.repeats {
        Some(rep) if !rep.runs.is_empty() => rep.runs.iter().collect(),
        _ => vec![r],
    }
}

/// Compares `cur` with `base` under `set`; an error means a histogram in one of them is corrupt. A report of
/// `run --repeat` is judged on its runs (see [`runs_of`]): each row's value is the median of the runs' values.
pub fn compare(base: &RunReport, base_file: &str, cur: &RunReport, set: &RuleSet) -> Result<Comparison, CompareError> {
    let (base_runs, cur_runs) = (runs_of(base), runs_of(cur));
    compare_runs(base, &base_runs, base_file, cur, &cur_runs, set)
}

/// Compares a set of current runs with a set of baseline runs; `base` and `cur` are the reports that stand
/// for them (the steps and flows compared, the warnings' set-up).
fn compare_runs(
    base: &RunReport,
    base_runs: &[&RunReport],
    base_file: &str,
    cur: &RunReport,
    cur_runs: &[&RunReport],
    set: &RuleSet,
) -> Result<Comparison, CompareError> {
    let steps: Vec<(&str, &str)> = union(
        base.steps.iter().map(|s| (s.user.as_str(), s.name.as_str())),
        cur.steps.iter().map(|s| (s.user.as_str(), s.name.as_str())),
    );
    let multi: Vec<&str> = union(
        base.flows.iter().chain(&cur.flows).filter(|f| f.steps_max > 1).map(|f| f.user.as_str()),
        std::iter::empty(),
    );
    let shape = Shape { steps, multi_step_classes: multi };
    let z = z_for(set.confidence);
    let host = Host::new(base_runs, cur_runs);
    let mut rows = Vec::new();
    for t in targets(set, &shape) {
        for agg in &t.aggs {
            let b = estimate_runs(base_runs, &t, *agg)
                .map_err(|e| CompareError::Baseline { file: base_file.to_string(), detail: e.to_string() })?;
            let c = estimate_runs(cur_runs, &t, *agg).map_err(|e| CompareError::Current { detail: e.to_string() })?;
            if b.is_none() && c.is_none() {
                continue;
            }
            let mut row = judge(&t, *agg, b.as_ref().map(|s| s.0), c.as_ref().map(|s| s.0), z, &host);
            if cur_runs.len() > 1 {
                row.current_runs = c.map(|(_, values)| RunSpread::of(values));
            }
            rows.push(row);
        }
    }
    Ok(Comparison {
        baseline: BaselineRef {
            file: base_file.to_string(),
            started_at: base.started_at.clone(),
            tool_version: base.tool.version.clone(),
            scenario_hash: base.scenario.hash.clone(),
            target: base.target.url.clone(),
            latency_histogram: base.histograms.latency.clone(),
        },
        confidence: set.confidence,
        rows,
        warnings: set_warnings(base, base_runs, cur, cur_runs),
    })
}

/// A side's value for one row and each of its runs' values: one run's own estimate, or over several runs the
/// median, with a standard error that takes the larger of the runs' own noise (as the standard error of their
/// mean) and the spread between runs, widened by [`MEDIAN_SE_FACTOR`]. The spread between runs is what one
/// long run cannot see: a different warm-up, a neighbour's job between runs, a cache that filled differently.
fn estimate_runs(runs: &[&RunReport], t: &Target, agg: Agg) -> Result<Option<(Est, Vec<f64>)>, CorruptHistogram> {
    let mut each = Vec::new();
    for r in runs {
        each.extend(estimate(r, t, agg)?);
    }
    let values: Vec<f64> = each.iter().map(|e| e.value).collect();
    let est = match each.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            let n = each.len() as f64;
            let within = (each.iter().map(|e| e.se * e.se).sum::<f64>() / n).sqrt() / n.sqrt();
            let between = stdev(&values).unwrap_or(0.0) / n.sqrt();
            let Some(value) = median(&values) else { return Ok(None) };
            Est { value, se: MEDIAN_SE_FACTOR * within.max(between) }
        }
    };
    Ok(Some((est, values)))
}

fn union<'a, T: PartialEq + Copy + 'a>(a: impl Iterator<Item = T>, b: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in a.chain(b) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn judge(t: &Target, agg: Agg, b: Option<Est>, c: Option<Est>, z: f64, host: &Host<'_>) -> Delta {
    let worse_up = t.metric.higher_is_worse();
    let allowed = |base: f64| (t.relative * base.abs()).max(t.absolute);
    let mut reason = None;
    let (delta, noise, verdict, allowed) = match (b, c) {
        (Some(b), Some(c)) => {
            let d = c.value - b.value;
            let worse = if worse_up { d } else { -d };
            let noise = z * (b.se * b.se + c.se * c.se).sqrt();
            let limit = allowed(b.value);
            let v = if worse > limit {
                if worse > noise {
                    reason = host.explains(t.metric, agg, worse, limit.max(noise));
                    if reason.is_some() { Change::Inconclusive } else { Change::Regression }
                } else {
                    Change::Noise
                }
            } else if -worse > limit && -worse > noise {
                Change::Improved
            } else {
                Change::Ok
            };
            (Some(d), Some(noise), v, limit)
        }
        (Some(b), None) => (None, None, Change::Missing, allowed(b.value)),
        (None, _) => (None, None, Change::New, t.absolute),
    };
    let base = b.map(|e| e.value);
    Delta {
        metric: t.key.clone(),
        stat: agg.to_string(),
        unit: t.metric.unit().to_string(),
        baseline: base,
        current: c.map(|e| e.value),
        delta,
        delta_pct: delta.zip(base).filter(|(_, b)| *b != 0.0).map(|(d, b)| d / b * 100.0),
        allowed,
        noise,
        higher_is_worse: worse_up,
        verdict,
        reason,
        current_runs: None,
    }
}

/// Names a stored histogram in messages: step `chat` ttft.
struct Named<'a>(&'static str, &'a str, Metric);

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}` {}", self.0, self.1, self.2)
    }
}

/// The metric's histogram over the selected steps or user classes of a stored result: the one path that selects
/// and decodes stored histograms. Empty for a metric that is not a histogram.
pub fn stored_histogram(r: &RunReport, metric: Metric, sel: &Selector) -> Result<Hist, CorruptHistogram> {
    match metric.source() {
        Source::FlowHistogram => {
            let flows = r.flows.iter().filter(|f| sel.user.as_deref().is_none_or(|u| u == f.user));
            merged_encoded(
                flows.filter_map(|f| Some((Named("flow", &f.user, metric), metric.stored_flow_histogram(f)?))),
            )
        }
        Source::StepHistogram => {
            let steps = r.steps.iter().filter(|s| selects(sel, &s.user, &s.name));
            merged_encoded(steps.filter_map(|s| Some((Named("step", &s.name, metric), s.histograms.encoded(metric)?))))
        }
        Source::Failures(_)
        | Source::Dropped
        | Source::Requests
        | Source::Rps
        | Source::OutputTokensPerS
        | Source::Fallbacks
        | Source::GatewayRetries
        | Source::Cost => Ok(new_hist()),
    }
}

fn estimate(r: &RunReport, t: &Target, agg: Agg) -> Result<Option<Est>, CorruptHistogram> {
    let secs = r.duration_s.max(1e-9);
    let sel = &t.selector;
    let steps = || r.steps.iter().filter(|s| selects(sel, &s.user, &s.name));
    Ok(match t.metric.source() {
        Source::Failures(only) => {
            let kind = only.or(sel.kind.as_deref());
            let (n, x) = steps().fold((0, 0), |(n, x), s| {
                let hits = kind.map_or(s.stats.failures, |k| s.stats.errors.get(k).copied().unwrap_or(0));
                (n + s.stats.requests, x + hits)
            });
            // Failures come in bursts (an outage, a restart): the rates per window see them, a binomial does not.
            // A result without windows has only the whole run's per-second rates.
            let blocks = match windows::per_window(r, |w| Ok(windows::failure_rate(r, w, sel, kind)))? {
                Some(rates) => block_se(&rates),
                None if *sel == Selector::default() && only.is_none() => block_se(&steady_seconds(r, failure_rate)),
                None => None,
            };
            ratio(x, n).map(|e| Est { se: e.se.max(blocks.unwrap_or(0.0)), ..e })
        }
        Source::Dropped => r.open.as_ref().and_then(|o| ratio(o.dropped, o.arrivals)),
        Source::Fallbacks | Source::GatewayRetries => {
            let fallbacks = t.metric.source() == Source::Fallbacks;
            let (n, x) = steps().filter_map(|s| s.stats.llm.as_ref()).fold((0, 0), |(n, x), l| {
                (n + l.responses, x + if fallbacks { l.fallbacks } else { l.gateway_retries })
            });
            match fallbacks {
                true => ratio(x, n),
                // Retries per response may exceed 1: a count's (Poisson) error, not a proportion's.
                false => (n > 0).then(|| Est { value: x as f64 / n as f64, se: (x.max(1) as f64).sqrt() / n as f64 }),
            }
        }
        Source::Rps => {
            let n: u64 = steps().map(|s| s.stats.requests).sum();
            let steady = match windows::per_window(r, |w| Ok(Some(windows::rps(r, w, sel))))? {
                Some(rates) => rates,
                None if *sel == Selector::default() => steady_seconds(r, |p| Some(p.rps)),
                None => Vec::new(),
            };
            match block_se(&steady).filter(|_| n > 0) {
                // The rate of the steady windows (or seconds): a ramp-up or the drain at the end would otherwise
                // make a run's length part of its throughput.
                Some(se) => Some(Est { value: steady.iter().sum::<f64>() / steady.len() as f64, se }),
                None => (n > 0).then(|| Est { value: n as f64 / secs, se: (n as f64).sqrt() / secs }),
            }
        }
        Source::OutputTokensPerS => {
            let (tokens, responses) = steps()
                .filter_map(|s| s.stats.llm.as_ref())
                .fold((0u64, 0u64), |(t, n), l| (t + l.output_tokens, n + l.responses));
            (responses > 0).then(|| {
                let value = tokens as f64 / secs;
                Est { value, se: value / (responses as f64).sqrt() }
            })
        }
        // Not comparable (they depend on the run's length): a stored rule naming one compares nothing.
        Source::Requests | Source::Cost => None,
        Source::StepHistogram | Source::FlowHistogram => {
            let h = stored_histogram(r, t.metric, sel)?;
            if h.is_empty() {
                return Ok(None);
            }
            let scale = t.metric.display_scale();
            let q = match agg {
                Agg::Percentile(p) => Some(p / 100.0),
                Agg::Med => Some(0.5),
                _ => None,
            };
            // Requests are not independent samples: the values per window see slow drifts and bursts of slow
            // seconds (of the target or of the machine) that per-request counting treats as independent. A
            // result without windows has per-second values of a few whole-run statistics only.
            let blocks = match windows::per_window(r, |w| windows::statistic(r, w, t.metric, sel, agg))? {
                Some(values) => block_se(&values),
                None if *sel == Selector::default() => series_se(r, t.metric, agg),
                None => None,
            };
            let seconds = blocks.unwrap_or(0.0);
            let (value, se) = match (agg, q) {
                (_, Some(q)) => (h.value_at_quantile(q) as f64 / scale, (quantile_se(&h, q) / scale).max(seconds)),
                (Agg::Avg, _) => (h.mean() / scale, (mean_se(&h) / scale).max(seconds)),
                (Agg::Min, _) => (h.min() as f64 / scale, 0.0),
                _ => (h.max() as f64 / scale, 0.0),
            };
            Some(Est { value, se })
        }
    })
}

fn ratio(hits: u64, total: u64) -> Option<Est> {
    (total > 0).then(|| Est { value: hits as f64 / total as f64, se: proportion_se(hits, total) })
}

/// Per-second values of the steady part of the run: whole seconds after the first (the ramp-up), before the
/// last (the drain, or a short remainder).
fn steady_seconds(r: &RunReport, f: impl Fn(&SeriesPoint) -> Option<f64>) -> Vec<f64> {
    let n = r.series.len();
    let inner = if n >= 5 { &r.series[1..n - 1] } else { &r.series[..] };
    inner.iter().filter(|p| (p.duration_s - 1.0).abs() < 1e-3).filter_map(f).collect()
}

/// Block standard error of a whole-run statistic from its per-second series, where `result.json` stores one:
/// total latency (every stored percentile and the mean) and ttft (p50, p95). Only for results without windows
/// (written before schema 4), so that an old baseline judges as it did.
fn series_se(r: &RunReport, metric: Metric, agg: Agg) -> Option<f64> {
    let key = match agg {
        Agg::Percentile(p) => (p * 100.0).round() as u32,
        Agg::Med => 5000,
        Agg::Avg => 1,
        _ => return None,
    };
    let pick: fn(&SeriesPoint) -> Option<f64> = match (metric, key) {
        (Metric::Latency, 1) => |p| p.mean_ms,
        (Metric::Latency, 5000) => |p| p.p50_ms,
        (Metric::Latency, 6600) => |p| p.p66_ms,
        (Metric::Latency, 7500) => |p| p.p75_ms,
        (Metric::Latency, 8000) => |p| p.p80_ms,
        (Metric::Latency, 9000) => |p| p.p90_ms,
        (Metric::Latency, 9500) => |p| p.p95_ms,
        (Metric::Latency, 9800) => |p| p.p98_ms,
        (Metric::Latency, 9900) => |p| p.p99_ms,
        (Metric::Latency, 9990) => |p| p.p999_ms,
        (Metric::Latency, 9999) => |p| p.p9999_ms,
        (Metric::Ttft, 5000) => |p| p.ttft_p50_ms,
        (Metric::Ttft, 9500) => |p| p.ttft_p95_ms,
        _ => return None,
    };
    block_se(&steady_seconds(r, pick))
}

/// A second's failure rate; none for a second without a request.
fn failure_rate(p: &SeriesPoint) -> Option<f64> {
    (p.requests > 0).then(|| p.failures as f64 / p.requests as f64)
}

/// The set-up warnings of the first run of each side (the runs of one side share their set-up), and a partial
/// run wherever it is among the runs.
fn set_warnings(base: &RunReport, base_runs: &[&RunReport], cur: &RunReport, cur_runs: &[&RunReport]) -> Vec<String> {
    let (b0, c0) = (base_runs.first().copied().unwrap_or(base), cur_runs.first().copied().unwrap_or(cur));
    let mut w = warnings(b0, c0);
    for (who, first, runs) in [("baseline", b0, base_runs), ("current", c0, cur_runs)] {
        let partial = runs.iter().position(|r| r.status != RunStatus::Completed);
        if let (Some(i), RunStatus::Completed) = (partial, first.status) {
            w.push(format!("the {who} run {} of {} did not complete: its numbers are partial", i + 1, runs.len()));
        }
    }
    w
}

fn warnings(base: &RunReport, cur: &RunReport) -> Vec<String> {
    let mut w = Vec::new();
    if base.scenario.name != cur.scenario.name {
        w.push(format!("the baseline is of scenario `{}`, this run of `{}`", base.scenario.name, cur.scenario.name));
    } else if base.scenario.hash != cur.scenario.hash {
        w.push(format!("the scenario file changed since the baseline was recorded ({})", base.started_at));
    }
    // A result written before vars were recorded has none: unknown, not different.
    let recorded = !base.scenario.vars.is_empty() && !cur.scenario.vars.is_empty();
    if recorded && base.scenario.vars != cur.scenario.vars {
        let show =
            |r: &RunReport| r.scenario.vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        w.push(format!("the scenario's [vars] were {} in the baseline, {} in this run", show(base), show(cur)));
    }
    let both_mock = base.target.embedded_mock && cur.target.embedded_mock;
    let same_target = both_mock || base.target.url == cur.target.url;
    if both_mock && base.target.mock_overrides != cur.target.mock_overrides {
        let show = |r: &RunReport| match r.target.mock_overrides.as_slice() {
            [] => "its scenario's settings".to_string(),
            o => format!("--mock {}", o.join(" --mock ")),
        };
        w.push(format!("the embedded mock ran with {} in the baseline, with {} in this run", show(base), show(cur)));
    }
    if !same_target {
        let show =
            |r: &RunReport| if r.target.embedded_mock { "the embedded mock".to_string() } else { r.target.url.clone() };
        w.push(format!("the baseline ran against {}, this run against {}", show(base), show(cur)));
    }
    let (bl, cl) = (&base.load, &cur.load);
    if (bl.model.as_str(), bl.users, bl.rate) != (cl.model.as_str(), cl.users, cl.rate) {
        let shape = |l: &LoadInfo| match (l.users, l.rate) {
            (_, Some(r)) => format!("{} model at {r}/s", l.model),
            (Some(u), _) => format!("{} model with {u} users", l.model),
            _ => l.model.clone(),
        };
        w.push(format!("the baseline ran the {}, this run the {}", shape(bl), shape(cl)));
    }
    if let (Some(bm), Some(cm)) = (&base.machine, &cur.machine) {
        if bm.cpus != cm.cpus || bm.arch != cm.arch {
            w.push(format!(
                "the baseline was recorded on {} CPU(s) ({}), this run on {} CPU(s) ({})",
                bm.cpus, bm.arch, cm.cpus, cm.arch
            ));
        }
    }
    let (bd, cd) = (base.duration_s, cur.duration_s);
    if bd.min(cd) < 0.75 * bd.max(cd) {
        w.push(format!(
            "the baseline ran {bd:.1}s, this run {cd:.1}s: ramp-up and tails weigh differently in runs of different length"
        ));
    }
    for (who, r) in [("baseline", base), ("current", cur)] {
        if r.status != RunStatus::Completed {
            w.push(format!("the {who} run did not complete (it was interrupted or aborted): its numbers are partial"));
        }
    }
    w
}
