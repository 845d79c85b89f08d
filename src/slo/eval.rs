//! Thresholds against measurements: the selected steps' histograms and counters, merged as needed.

use std::time::Duration;

use super::{Agg, Kind, Threshold};
use crate::metrics::{FlowStats, Hist, StepStats, new_hist};
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
                unit: unit(t).to_string(),
                pass: observed.is_some_and(|o| t.op.holds(o, t.value)),
                aborted_run: false,
            }
        })
        .collect()
}

fn unit(t: &Threshold) -> &'static str {
    match (t.kind, t.agg, t.metric.as_str()) {
        (Kind::Duration, Agg::Count, _) | (_, Agg::Count, _) => "",
        (Kind::Duration, _, _) => "ms",
        (_, Agg::Rate, "requests") | (_, _, "rps") | (_, _, "output_tokens_per_s") => "/s",
        (_, _, "cost") => "USD",
        _ => "",
    }
}

fn selected<'a>(t: &Threshold, m: &'a Measurements<'a>) -> impl Iterator<Item = &'a StepStats> + 'a {
    let (step, user) = (t.selector.step.clone(), t.selector.user.clone());
    m.steps
        .iter()
        .filter(move |(u, s, _)| step.as_deref().is_none_or(|x| x == *s) && user.as_deref().is_none_or(|x| x == *u))
        .map(|(_, _, st)| *st)
}

fn merged<'a>(hists: impl Iterator<Item = &'a Hist>) -> Hist {
    let mut h = new_hist();
    for x in hists {
        if !x.is_empty() {
            let _ = h.add(x);
        }
    }
    h
}

fn observe(t: &Threshold, m: &Measurements<'_>) -> Option<f64> {
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    match t.metric.as_str() {
        "flow_latency" | "steps_per_flow" => {
            let user = t.selector.user.as_deref();
            let flows = m.flows.iter().filter(|(u, _)| user.is_none_or(|x| x == *u));
            let h = if t.metric == "flow_latency" {
                merged(flows.map(|(_, f)| &f.latency))
            } else {
                merged(flows.map(|(_, f)| &f.steps))
            };
            from_hist(&h, t)
        }
        "errors" | "rate_limited" => {
            let kind = if t.metric == "rate_limited" { Some("rate_limited") } else { t.selector.kind.as_deref() };
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
        "dropped" => ratio(t.agg, m.dropped, m.arrivals),
        "requests" => {
            let n: u64 = selected(t, m).map(|s| s.requests).sum();
            Some(if t.agg == Agg::Count { n as f64 } else { n as f64 / secs })
        }
        "rps" => Some(selected(t, m).map(|s| s.requests).sum::<u64>() as f64 / secs),
        "output_tokens_per_s" => {
            Some(selected(t, m).filter_map(|s| s.llm.as_ref()).map(|l| l.output_tokens).sum::<u64>() as f64 / secs)
        }
        "cost" => Some(selected(t, m).filter_map(|s| s.llm.as_ref()).map(|l| l.cost).sum()),
        metric => {
            let model = t.selector.model.as_deref();
            let h = merged(selected(t, m).filter_map(|s| match (metric, model) {
                ("latency", None) => Some(&s.latency),
                ("latency", Some(x)) => s.llm.as_ref()?.models.iter().find(|mm| mm.model == x).map(|mm| &mm.latency),
                ("ttfb", _) => Some(&s.ttfb),
                ("ttft", _) => s.llm.as_ref().map(|l| &l.ttft),
                ("ttfo", _) => s.llm.as_ref().map(|l| &l.ttfo),
                ("icl", _) => s.llm.as_ref().map(|l| &l.icl),
                ("tpot", _) => s.llm.as_ref().map(|l| &l.tpot),
                ("ntpot", _) => s.llm.as_ref().map(|l| &l.ntpot),
                _ => None,
            }));
            from_hist(&h, t)
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
    let scale = if t.kind == Kind::Duration { 1000.0 } else { 1.0 };
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
