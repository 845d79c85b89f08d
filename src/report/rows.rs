//! The tables both the terminal summary and `report.html` show, as plain rows, and the phrases of their header
//! (target, load shape, status): one place decides the columns and the words; each renderer only lays them out.

use super::format::{fmt_cost, fmt_count_share, fmt_priced, fmt_rate, fmt_tenths, fmt_value, fmt_whole, opt_ms};
use crate::metrics::LlmSummary;
use crate::metrics::{LatencySummary, RequestSummary};
use crate::result::{Environment, GeneratorInfo, RunReport, RunStatus};

pub struct Grid {
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// One row per user class: its iterations as flows.
pub fn flows(r: &RunReport) -> Grid {
    let rows = r
        .flows
        .iter()
        .map(|fl| {
            let l = fl.latency.as_ref();
            let g = |get: fn(&LatencySummary) -> f64| opt_ms(l, get);
            vec![
                fl.user.clone(),
                fl.completed.to_string(),
                fl.failed.to_string(),
                fmt_rate(fl.flows_per_s),
                g(|l| l.mean_ms),
                g(|l| l.p50_ms),
                g(|l| l.p95_ms),
                g(|l| l.p99_ms),
                g(|l| l.max_ms),
                fmt_tenths(fl.steps_mean),
                fl.steps_max.to_string(),
                fmt_cost(fl.cost_per_flow_usd),
            ]
        })
        .collect();
    let head = vec![
        "User",
        "Flows ok",
        "Flows failed",
        "flows/s",
        "Avg",
        "Med",
        "p95",
        "p99",
        "Max",
        "Steps avg",
        "Steps max",
        "$/flow",
    ];
    Grid { head, rows }
}

/// Streaming and token metrics of each step that produced LLM responses (no rows when none did).
pub fn llm_steps(r: &RunReport) -> Grid {
    let rows = r
        .steps
        .iter()
        .filter_map(|s| s.stats.llm.as_ref().map(|l| (s, l)))
        .map(|(s, l)| {
            vec![
                format!("{} › {}", s.user, s.name),
                l.responses.to_string(),
                opt_ms(l.ttft.as_ref(), |x| x.p50_ms),
                opt_ms(l.ttft.as_ref(), |x| x.p95_ms),
                opt_ms(l.ttfo.as_ref(), |x| x.p50_ms),
                opt_ms(l.icl.as_ref(), |x| x.p95_ms),
                opt_ms(l.tpot.as_ref(), |x| x.p50_ms),
                opt_ms(l.stream_tail.as_ref(), |x| x.p95_ms),
                opt_ms(l.ntpot.as_ref(), |x| x.p50_ms),
                l.output_tokens.to_string(),
                fmt_tenths(l.output_tokens_per_s),
                fmt_count_share(l.fallbacks, l.fallback_rate),
                fmt_priced(l.cost_usd, l.unpriced_responses),
            ]
        })
        .collect();
    let head = vec![
        "LLM step",
        "Resp",
        "TTFT p50",
        "TTFT p95",
        "TTFO p50",
        "ICL p95",
        "TPOT p50",
        "Tail p95",
        "NTPOT p50",
        "Out tok",
        "tok/s",
        "Fallback",
        "Cost $",
    ];
    Grid { head, rows }
}

/// One row of the requests table: a step or the aggregate, counts then latency then rates.
pub fn stats_row(kind: &str, name: &str, s: &RequestSummary) -> Vec<String> {
    let l = s.latency.as_ref();
    let f = |g: fn(&LatencySummary) -> f64| opt_ms(l, g);
    vec![
        kind.to_string(),
        name.to_string(),
        s.requests.to_string(),
        fmt_count_share(s.failures, s.failure_rate),
        f(|l| l.mean_ms),
        f(|l| l.min_ms),
        f(|l| l.p50_ms),
        f(|l| l.p90_ms),
        f(|l| l.p95_ms),
        f(|l| l.p99_ms),
        f(|l| l.max_ms),
        fmt_rate(s.rps),
        fmt_rate(s.failures_per_s),
    ]
}

/// How finely the open model placed its arrivals and the connections it used, after the schedule lag:
/// `; pacing timerfd, 50 µs; 100 connections opened, at most 37 in use` (empty for results before schema 5).
pub fn pacing_note(o: &crate::result::OpenSummary) -> String {
    let mut s = String::new();
    if let Some(p) = &o.pacing {
        s.push_str(&format!("; pacing {}, {} µs", p.mechanism, p.resolution_us));
    }
    if let Some(c) = &o.connections {
        s.push_str(&format!("; {} connections opened, at most {} in use", c.opened, c.peak));
    }
    s
}

/// Which load model ran, in one phrase: `closed model: 20 users, spawn 40/s`.
pub fn load_shape(r: &RunReport) -> String {
    let l = &r.load;
    match (&r.open, l.users, l.spawn_rate) {
        (Some(o), _, _) => format!(
            "open model: {}/s {} arrivals (at most {} in flight), achieved {:.1}/s, {} dropped",
            o.target_rate,
            l.arrival.as_deref().unwrap_or("constant"),
            l.max_in_flight.unwrap_or(0),
            o.achieved_rate,
            o.dropped
        ),
        (None, Some(u), _) if !l.stages.is_empty() => {
            let plan: Vec<String> = l.stages.iter().map(|(t, d)| format!("{t},{d}s")).collect();
            format!("closed model: ramping to {u} users ({})", plan.join(";"))
        }
        (None, Some(u), Some(rate)) => format!("closed model: {u} users, spawn {rate}/s"),
        (None, Some(u), None) => format!("closed model: {u} users"),
        (None, None, _) => "closed model".to_string(),
    }
}

/// How the run ended, for the header.
pub fn status_text(r: &RunReport) -> &'static str {
    match r.status {
        RunStatus::Completed => "completed",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::Aborted => "ABORTED by a threshold (partial results)",
        RunStatus::Failed => "FAILED: it measured nothing valid",
    }
}

/// What was loaded, for the header.
pub fn target_text(r: &RunReport) -> String {
    if r.target.embedded_mock { format!("embedded mock gateway ({})", r.target.url) } else { r.target.url.clone() }
}

/// How hard the load generator worked, in one phrase: workers, CPU, efficiency.
pub fn generator_text(g: &GeneratorInfo) -> String {
    format!(
        "generator: {} worker threads, {:.2} CPU-s ({}% of available), {} requests per CPU-second",
        g.workers,
        g.cpu_s,
        fmt_whole(g.cpu_utilization * 100.0),
        fmt_whole(g.requests_per_cpu_s)
    )
}

/// The host's health in one phrase: `host: hiccups p99 0.4 ms, max 3.1 ms, cpu pressure 2 %, load 0.41/core`;
/// a figure the OS did not offer is left out.
pub fn host_text(e: &Environment) -> String {
    let h = &e.hiccup;
    let mut parts = vec![format!("hiccups p99 {} ms, max {} ms", fmt_tenths(h.p99_ms), fmt_tenths(h.max_ms))];
    if let Some(m) = &e.mock_hiccup {
        parts.push(format!("mock hiccups p99 {} ms, max {} ms", fmt_tenths(m.p99_ms), fmt_tenths(m.max_ms)));
    }
    if let Some(p) = e.cpu_pressure_pct {
        parts.push(format!("cpu pressure {} %", fmt_whole(p)));
    }
    if let Some(s) = e.steal_pct.filter(|s| *s >= 0.05) {
        parts.push(format!("steal {} %", fmt_tenths(s)));
    }
    if let Some(l) = e.load_per_core {
        parts.push(format!("load {l:.2}/core"));
    }
    format!("host: {}", parts.join(", "))
}

/// The line a disturbed run carries: why its timings may describe the machine rather than the target.
pub fn host_disturbed_text(e: &Environment) -> Option<String> {
    e.disturbed.then(|| {
        format!(
            "host disturbed: {}; timings may describe this machine, not the target (a comparison with them can be \
             inconclusive)",
            e.reasons.join(", ")
        )
    })
}

/// Why the numbers may describe the generator rather than the target.
pub fn bottleneck_text(bottleneck: &str) -> String {
    format!("{bottleneck}: the numbers may describe the generator, not the target")
}

/// The requests cut at the hard stop, when there were any.
pub fn interrupted_text(g: &GeneratorInfo) -> Option<String> {
    (g.interrupted_requests > 0).then(|| {
        format!(
            "{} requests still running at the hard stop are counted as `interrupted` failures",
            g.interrupted_requests
        )
    })
}

/// What the LLM metric abbreviations mean, under their table.
pub const LLM_LEGEND: &str = "TTFT: first token (content, reasoning or tool call) · TTFO: first visible answer · \
    ICL: gap between chunks · TPOT: (last token−first token)/(tokens−1) · Tail: last token → end of stream · \
    NTPOT: latency/tokens";

/// The per-level table of a breaking-point search or sweep; the second value marks the levels that broke.
pub fn levels(r: &RunReport) -> Option<(Grid, Vec<bool>)> {
    let l = r.levels.as_ref()?;
    let unit = level_unit(&l.kind);
    let rows = l
        .levels
        .iter()
        .map(|row| {
            let s = &row.stats;
            let lat = s.latency.as_ref();
            let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            vec![
                format!("{} {unit}", row.level),
                fmt_rate(s.rps),
                s.requests.to_string(),
                fmt_value(row.success_rate, "%"),
                opt_ms(lat, |x| x.p50_ms),
                opt_ms(lat, |x| x.p95_ms),
                opt_ms(lat, |x| x.p99_ms),
                if errors.is_empty() { "-".into() } else { errors.join(", ") },
                row.broken.clone().unwrap_or_else(|| "held".into()),
            ]
        })
        .collect();
    let head = vec!["Level", "req/s", "# reqs", "Success", "Med", "p95", "p99", "Errors", "Verdict"];
    Some((Grid { head, rows }, l.levels.iter().map(|x| x.broken.is_some()).collect()))
}

fn level_unit(kind: &str) -> &'static str {
    if kind == "users" { "users" } else { "/s" }
}

/// The conclusion under the levels table: where the search held and broke, and where thresholds were judged.
pub fn levels_conclusion(r: &RunReport) -> Vec<String> {
    let Some(l) = r.levels.as_ref().filter(|l| l.mode == "breaking_point") else { return Vec::new() };
    let unit = level_unit(&l.kind);
    let fmt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v} {unit}"));
    let mut lines = vec![format!(
        "breaking point: held up to {}, broke at {} (each level held {:.0}s)",
        fmt(l.last_ok),
        fmt(l.first_broken),
        l.hold_s
    )];
    if !r.thresholds.is_empty() {
        let at = l.last_ok.or(l.levels.first().map(|x| x.level));
        lines.push(format!("thresholds: a level breaks on any of them; the verdicts are those at {}", fmt(at)));
    }
    lines
}

/// Failures by kind and step, with the first message seen, cut at `max_chars`.
pub fn errors(r: &RunReport, max_chars: usize) -> Grid {
    let rows = r
        .errors
        .iter()
        .map(|e| {
            let mut msg = e.message.clone();
            if msg.chars().count() > max_chars {
                msg = msg.chars().take(max_chars).collect::<String>() + "…";
            }
            vec![e.count.to_string(), e.kind.clone(), format!("{} › {}", e.user, e.step), msg]
        })
        .collect();
    Grid { head: vec!["# occurrences", "Kind", "Step", "First message"], rows }
}

/// Whether the gateway said anything about a step's responses (else its table row would be all dashes).
fn gateway_spoke(l: &LlmSummary) -> bool {
    l.gateway_retries > 0
        || l.cache_hits > 0
        || l.cost_reported_responses > 0
        || l.gateway_overhead.is_some()
        || !l.targets.is_empty()
        || l.unpriced_responses > 0
        || !l.deployments.is_empty()
}

/// The three busiest deployments, `name: n`, and how many more there were.
fn deployments(l: &LlmSummary) -> String {
    let mut parts: Vec<String> =
        l.deployments.iter().take(3).map(|d| format!("{}: {}", d.deployment, d.responses)).collect();
    if l.deployments.len() > 3 {
        parts.push(format!("+{} more", l.deployments.len() - 3));
    }
    if parts.is_empty() { "-".to_string() } else { parts.join(", ") }
}

/// What the gateway reported per LLM step: fallbacks and the targets that served, its retries, cache hits,
/// overhead, and its cost beside the `[pricing]` one. `None` when no step has any of it.
pub fn gateway(r: &RunReport) -> Option<Grid> {
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .filter_map(|s| s.stats.llm.as_ref().filter(|l| gateway_spoke(l)).map(|l| (s, l)))
        .map(|(s, l)| {
            let targets: Vec<String> =
                l.targets.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| format!("#{i}: {n}")).collect();
            vec![
                format!("{} › {}", s.user, s.name),
                fmt_count_share(l.fallbacks, l.fallback_rate),
                if targets.is_empty() { "-".to_string() } else { targets.join(", ") },
                deployments(l),
                l.gateway_retries.to_string(),
                l.cache_hits.to_string(),
                opt_ms(l.gateway_overhead.as_ref(), |x| x.p50_ms),
                opt_ms(l.gateway_overhead.as_ref(), |x| x.p95_ms),
                fmt_cost(l.reported_cost_usd),
                fmt_cost(l.priced_cost_usd),
                l.unpriced_responses.to_string(),
            ]
        })
        .collect();
    let head = vec![
        "Gateway step",
        "Fallback",
        "Served by target",
        "Deployments",
        "GW retries",
        "Cache hits",
        "Overhead p50",
        "Overhead p95",
        "Reported $",
        "Priced $",
        "Unpriced",
    ];
    (!rows.is_empty()).then_some(Grid { head, rows })
}
