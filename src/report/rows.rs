//! The tables both the terminal summary and `report.html` show, as plain rows: one place decides the columns,
//! the numbers and their wording; each renderer only lays them out.

use super::table::{fmt_cost, fmt_ms, fmt_rate, opt_ms};
use crate::metrics::LatencySummary;
use crate::result::RunReport;

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
            let g = |get: fn(&LatencySummary) -> f64| l.map_or("-".to_string(), |l| fmt_ms(get(l)));
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
                format!("{:.1}", fl.steps_mean),
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
                opt_ms(l.ntpot.as_ref(), |x| x.p50_ms),
                l.output_tokens.to_string(),
                format!("{:.1}", l.output_tokens_per_s),
                format!("{} ({:.1}%)", l.fallbacks, l.fallback_rate * 100.0),
                fmt_cost(l.cost_usd),
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
        "NTPOT p50",
        "Out tok",
        "tok/s",
        "Fallback",
        "Cost $",
    ];
    Grid { head, rows }
}

/// What the LLM metric abbreviations mean, under their table.
pub const LLM_LEGEND: &str = "TTFT: first token (content, reasoning or tool call) · TTFO: first visible answer · \
    ICL: gap between chunks · TPOT: (latency−TTFT)/(tokens−1) · NTPOT: latency/tokens";

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
                format!("{:.2}%", row.success_rate * 100.0),
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
