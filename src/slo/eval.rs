//! Thresholds against measurements: the selected steps' histograms and counters, merged as needed.

use std::time::Duration;

use super::{Agg, Threshold};
use crate::metrics::catalog::Source;
use crate::metrics::{FlowStats, Hist, StepStats, merged};
use crate::result::Verdict;

/// What a run measured, in the shape thresholds select from.
pub struct Measurements<'a> {
    /// (user class, step name, its numbers).
    pub steps: Vec<(&'a str, &'a str, &'a StepStats)>,
    /// (user class, its flows).
    pub flows: Vec<(&'a str, &'a FlowStats)>,
    pub elapsed: Duration,
    pub arrivals: u64,
    pub dropped: u64,
}

pub fn evaluate(thresholds: &[Threshold], m: &Measurements<'_>) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let observed = observe(t, m);
            Verdict {
                threshold: t.text.clone(),
                observed,
                unit: t.metric.unit_of(t.agg).to_string(),
                pass: observed.is_some_and(|o| t.op.holds(o, t.value)),
                aborted_run: false,
            }
        })
        .collect()
}

fn selected<'a>(t: &Threshold, m: &'a Measurements<'a>) -> impl Iterator<Item = &'a StepStats> + 'a {
    let (step, user) = (t.selector.step.clone(), t.selector.user.clone());
    m.steps
        .iter()
        .filter(move |(u, s, _)| step.as_deref().is_none_or(|x| x == *s) && user.as_deref().is_none_or(|x| x == *u))
        .map(|(_, _, st)| *st)
}

fn observe(t: &Threshold, m: &Measurements<'_>) -> Option<f64> {
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    match t.metric.source() {
        Source::FlowHistogram => {
            let user = t.selector.user.as_deref();
            let flows = m.flows.iter().filter(|(u, _)| user.is_none_or(|x| x == *u));
            from_hist(&merged(flows.filter_map(|(_, f)| t.metric.flow_histogram(f))), t)
        }
        Source::Failures(only) => {
            let kind = only.or(t.selector.kind.as_deref());
            let (mut requests, mut hits) = (0u64, 0u64);
            for s in selected(t, m) {
                requests += s.requests;
                hits += match kind {
                    None => s.failures,
                    Some(k) => s.errors.iter().filter(|e| e.kind.to_string() == k).map(|e| e.count).sum(),
                };
            }
            ratio(t.agg, hits, requests)
        }
        Source::Dropped => ratio(t.agg, m.dropped, m.arrivals),
        Source::Requests => {
            let n: u64 = selected(t, m).map(|s| s.requests).sum();
            Some(if t.agg == Agg::Count { n as f64 } else { n as f64 / secs })
        }
        Source::Rps => Some(selected(t, m).map(|s| s.requests).sum::<u64>() as f64 / secs),
        Source::OutputTokensPerS => {
            Some(selected(t, m).filter_map(|s| s.llm.as_ref()).map(|l| l.output_tokens).sum::<u64>() as f64 / secs)
        }
        Source::Fallbacks | Source::GatewayRetries => {
            let fallbacks = t.metric.source() == Source::Fallbacks;
            let model = t.selector.model.as_deref();
            let (mut responses, mut hits) = (0u64, 0u64);
            for l in selected(t, m).filter_map(|s| s.llm.as_ref()) {
                // `{model:X}`: the responses that model served.
                let (n, f, r) = match model {
                    None => (l.responses, l.fallbacks, l.gateway.retries),
                    Some(x) => l
                        .models
                        .iter()
                        .find(|e| e.model == x)
                        .map_or((0, 0, 0), |e| (e.requests, e.fallbacks, e.gateway_retries)),
                };
                responses += n;
                hits += if fallbacks { f } else { r };
            }
            ratio(t.agg, hits, responses)
        }
        Source::Cost => Some(selected(t, m).filter_map(|s| s.llm.as_ref()).map(|l| l.cost).sum()),
        Source::StepHistogram => {
            let model = t.selector.model.as_deref();
            from_hist(&merged(selected(t, m).filter_map(|s| t.metric.step_histogram(s, model))), t)
        }
    }
}

fn ratio(agg: Agg, hits: u64, total: u64) -> Option<f64> {
    match agg {
        Agg::Count => Some(hits as f64),
        _ => (total > 0).then(|| hits as f64 / total as f64),
    }
}

/// Durations come out in milliseconds (histograms hold microseconds); counts as they are.
fn from_hist(h: &Hist, t: &Threshold) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    let scale = t.metric.display_scale();
    Some(match t.agg {
        Agg::Count => return Some(h.len() as f64),
        Agg::Percentile(p) => h.value_at_quantile(p / 100.0) as f64 / scale,
        Agg::Med => h.value_at_quantile(0.5) as f64 / scale,
        Agg::Avg | Agg::Value => h.mean() / scale,
        Agg::Min => h.min() as f64 / scale,
        Agg::Max => h.max() as f64 / scale,
        Agg::Rate => return None,
    })
}
