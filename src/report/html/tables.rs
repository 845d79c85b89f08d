//! The HTML tables of `report.html`: the same numbers and wording as the terminal summary and the gate tables.

use std::fmt::Write;

use super::esc;
use crate::baseline::{Change, Comparison};
use crate::metrics::{LatencySummary, RequestSummary};
use crate::report::RunReport;
use crate::report::gate::{delta_unit, fmt_allowed, fmt_delta, fmt_observed, fmt_value, verdict_word};
use crate::report::table::{fmt_cost, fmt_ms, fmt_rate, opt_ms, stats_row};

/// One table row: its cells (plain text, escaped when written) and a class for the whole row.
pub struct Row {
    pub cells: Vec<String>,
    pub class: &'static str,
}

impl Row {
    pub fn plain(cells: Vec<String>) -> Self {
        Row { cells, class: "" }
    }
}

/// A table; columns from `num_from` on are numbers (right-aligned). Columns named in `wrap` may wrap.
pub fn table(out: &mut String, head: &[&str], rows: &[Row], num_from: usize, wrap: &[usize]) {
    let _ = write!(out, "<div class=\"scroll\"><table><thead><tr>");
    for (i, h) in head.iter().enumerate() {
        let class = if i >= num_from && !wrap.contains(&i) { " class=\"n\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", esc(h));
    }
    let _ = write!(out, "</tr></thead><tbody>");
    for row in rows {
        if row.class.is_empty() {
            out.push_str("<tr>");
        } else {
            let _ = write!(out, "<tr class=\"{}\">", row.class);
        }
        for (i, c) in row.cells.iter().enumerate() {
            let class = match (wrap.contains(&i), i >= num_from) {
                (true, _) => " class=\"wrap\"",
                (false, true) => " class=\"n\"",
                _ => "",
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>\n");
}

fn many_users(r: &RunReport) -> bool {
    r.steps.iter().any(|s| s.user != r.steps[0].user)
}

fn step_name(r: &RunReport, user: &str, name: &str) -> String {
    if many_users(r) { format!("{user} › {name}") } else { name.to_string() }
}

/// The Locust-style summary: one row per step, then the aggregate.
pub fn summary(r: &RunReport, out: &mut String) {
    let head =
        ["Type", "Name", "# reqs", "# fails", "Avg", "Min", "Med", "p90", "p95", "p99", "Max", "req/s", "fail/s"];
    let mut rows: Vec<Row> =
        r.steps.iter().map(|s| Row::plain(stats_row(&s.method, &step_name(r, &s.user, &s.name), &s.stats))).collect();
    rows.push(Row { cells: stats_row("", "Aggregated", &r.totals), class: "total" });
    table(out, &head, &rows, 2, &[]);
    let note = match (&r.open, r.totals.latency_uncorrected.as_ref()) {
        (Some(o), Some(u)) => format!(
            "latency in ms from the scheduled start (coordinated-omission corrected); uncorrected p50 {} · p99 {} ms; schedule lag p99 {} ms",
            fmt_ms(u.p50_ms),
            fmt_ms(u.p99_ms),
            o.schedule_lag.as_ref().map_or("-".to_string(), |l| fmt_ms(l.p99_ms))
        ),
        _ => "latency in ms (send → last byte, successful requests); failures counted separately".to_string(),
    };
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&note));
}

/// The SLO verdicts and the gate's conclusion.
pub fn thresholds(r: &RunReport, out: &mut String) {
    let rows: Vec<Row> = r
        .thresholds
        .iter()
        .map(|v| {
            let verdict = match (v.pass, v.aborted_run) {
                (true, _) => "pass",
                (false, false) => "FAIL",
                (false, true) => "FAIL (aborted the run)",
            };
            Row {
                cells: vec![v.threshold.clone(), fmt_observed(v), verdict.into()],
                class: if v.pass { "" } else { "bad" },
            }
        })
        .collect();
    table(out, &["Threshold", "Observed", "Verdict"], &rows, 1, &[2]);
    let failed = r.thresholds.iter().filter(|v| !v.pass).count();
    let n = r.thresholds.len();
    let line = if failed == 0 {
        format!("SLO gate: all {n} thresholds passed")
    } else {
        format!("SLO gate: {failed} of {n} thresholds FAILED (exit code 1)")
    };
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&line));
}

/// The regression table against the baseline, its warnings and the gate's conclusion.
pub fn comparison(c: &Comparison, out: &mut String) {
    let _ = writeln!(
        out,
        "<p class=\"note\">compared with baseline <code>{}</code> (recorded {}, run-load-test {})</p>",
        esc(&c.baseline.file),
        esc(&c.baseline.started_at),
        esc(&c.baseline.tool_version)
    );
    let rows: Vec<Row> = c
        .rows
        .iter()
        .map(|d| {
            let u = delta_unit(d);
            let side = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt_value(v, u));
            Row {
                cells: vec![
                    d.metric.clone(),
                    d.stat.clone(),
                    side(d.baseline),
                    side(d.current),
                    fmt_delta(d),
                    fmt_allowed(d),
                    verdict_word(d.verdict).into(),
                ],
                class: match d.verdict {
                    Change::Regression => "bad",
                    Change::Improved => "good",
                    _ => "",
                },
            }
        })
        .collect();
    table(out, &["Metric", "Stat", "Baseline", "Current", "Delta", "Tolerated · noise", "Verdict"], &rows, 2, &[6]);
    for w in &c.warnings {
        let _ = writeln!(out, "<p class=\"note warn-text\">warning: {}</p>", esc(w));
    }
    let bad = c.regressions().count();
    let noise = c.rows.iter().filter(|d| d.verdict == Change::Noise).count();
    let noise_note = if noise > 0 { format!("; {noise} beyond tolerance but within noise") } else { String::new() };
    let line = if bad == 0 {
        format!("baseline gate: no regression in {} comparisons{noise_note}", c.rows.len())
    } else {
        format!("baseline gate: {bad} of {} comparisons REGRESSED (exit code 1){noise_note}", c.rows.len())
    };
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&line));
}

/// Streaming and token metrics per LLM step.
pub fn llm_steps(r: &RunReport, out: &mut String) {
    let rows: Vec<Row> = r
        .steps
        .iter()
        .filter_map(|s| s.stats.llm.as_ref().map(|l| (s, l)))
        .map(|(s, l)| {
            Row::plain(vec![
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
            ])
        })
        .collect();
    let head = [
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
    table(out, &head, &rows, 1, &[]);
    let _ = writeln!(
        out,
        "<p class=\"note\">times in ms · TTFT: first token (content, reasoning or tool call) · TTFO: first visible answer · ICL: gap between chunks · TPOT: (latency−TTFT)/(tokens−1) · NTPOT: latency/tokens</p>"
    );
}

/// Served models of the whole run (`totals.llm`), then the token and cost totals.
pub fn models(r: &RunReport, out: &mut String) {
    let Some(l) = &r.totals.llm else { return };
    let rows: Vec<Row> = l
        .models
        .iter()
        .map(|m| {
            Row::plain(vec![
                m.model.clone(),
                m.responses.to_string(),
                format!("{:.1}%", m.share * 100.0),
                m.fallbacks.to_string(),
                m.output_tokens.to_string(),
                opt_ms(m.latency.as_ref(), |x| x.mean_ms),
                opt_ms(m.latency.as_ref(), |x| x.p95_ms),
                fmt_cost(m.cost_usd),
            ])
        })
        .collect();
    if !rows.is_empty() {
        table(out, &["Served model", "Resp", "Share", "Fallbacks", "Out tok", "Avg", "p95", "Cost $"], &rows, 1, &[]);
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">{} responses ({} streamed), {} input and {} output tokens ({:.1} tok/s), {} fallbacks ({:.1}%), total cost {}</p>",
        l.responses,
        l.streamed,
        l.input_tokens,
        l.output_tokens,
        l.output_tokens_per_s,
        l.fallbacks,
        l.fallback_rate * 100.0,
        esc(&fmt_value(l.cost_usd, "USD"))
    );
}

/// One row per user class: its iterations as flows.
pub fn flows(r: &RunReport, out: &mut String) {
    let rows: Vec<Row> = r
        .flows
        .iter()
        .map(|fl| {
            let l = fl.latency.as_ref();
            let g = |get: fn(&LatencySummary) -> f64| l.map_or("-".to_string(), |l| fmt_ms(get(l)));
            Row::plain(vec![
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
            ])
        })
        .collect();
    let head = [
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
    table(out, &head, &rows, 1, &[]);
    let _ = writeln!(
        out,
        "<p class=\"note\">flow latency in ms: first step start → last step end of completed iterations</p>"
    );
}

/// The per-level table of a breaking-point search or sweep, then its conclusion.
pub fn levels(r: &RunReport, out: &mut String) {
    let Some(l) = &r.levels else { return };
    let unit = if l.kind == "users" { "users" } else { "/s" };
    let rows: Vec<Row> = l
        .levels
        .iter()
        .map(|row| {
            let s: &RequestSummary = &row.stats;
            let lat = s.latency.as_ref();
            let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            Row {
                cells: vec![
                    format!("{} {unit}", row.level),
                    fmt_rate(s.rps),
                    s.requests.to_string(),
                    format!("{:.2}%", row.success_rate * 100.0),
                    opt_ms(lat, |x| x.p50_ms),
                    opt_ms(lat, |x| x.p95_ms),
                    opt_ms(lat, |x| x.p99_ms),
                    if errors.is_empty() { "-".into() } else { errors.join(", ") },
                    row.broken.clone().unwrap_or_else(|| "held".into()),
                ],
                class: if row.broken.is_some() { "bad" } else { "" },
            }
        })
        .collect();
    table(out, &["Level", "req/s", "# reqs", "Success", "Med", "p95", "p99", "Errors", "Verdict"], &rows, 1, &[7, 8]);
    if l.mode == "breaking_point" {
        let fmt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v} {unit}"));
        let line = format!(
            "breaking point: held up to {}, broke at {} (each level held {:.0}s)",
            fmt(l.last_ok),
            fmt(l.first_broken),
            l.hold_s
        );
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&line));
    }
}

/// Failures by kind and step, with the first message seen.
pub fn errors(r: &RunReport, out: &mut String) {
    let rows: Vec<Row> = r
        .errors
        .iter()
        .map(|e| {
            let mut msg = e.message.clone();
            if msg.chars().count() > 300 {
                msg = msg.chars().take(300).collect::<String>() + "…";
            }
            Row::plain(vec![e.count.to_string(), e.kind.clone(), format!("{} › {}", e.user, e.step), msg])
        })
        .collect();
    table(out, &["# occurrences", "Kind", "Step", "First message"], &rows, 0, &[1, 2, 3]);
    let kinds: Vec<String> = r.totals.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    if !kinds.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">by kind: {}</p>", esc(&kinds.join(" · ")));
    }
}
