//! The HTML tables of `report.html`: the same numbers and wording as the terminal summary and the gate tables.

use std::fmt::Write;

use super::esc;
use crate::report::format::{
    fmt_ms, fmt_observed, fmt_priced, fmt_share, fmt_tenths, fmt_value, opt_ms, unpriced_note,
};
use crate::report::gate::{comparison_conclusion, comparison_rows, inconclusive_lines};
use crate::report::rows;
use crate::report::rows::stats_row;
use crate::result::RunReport;
use crate::result::{Change, Comparison};

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

fn plain(rows: Vec<Vec<String>>) -> Vec<Row> {
    rows.into_iter().map(Row::plain).collect()
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
            "latency in ms from the scheduled start (coordinated-omission corrected); uncorrected p50 {} · p99 {} ms; schedule lag p99 {} ms{}",
            fmt_ms(u.p50_ms),
            fmt_ms(u.p99_ms),
            o.schedule_lag.as_ref().map_or("-".to_string(), |l| fmt_ms(l.p99_ms)),
            super::super::rows::pacing_note(o)
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
    let grid = comparison_rows(c);
    let rows: Vec<Row> = grid
        .rows
        .into_iter()
        .zip(&c.rows)
        .map(|(cells, d)| Row {
            cells,
            class: match d.verdict {
                Change::Regression => "bad",
                Change::Inconclusive => "warn",
                Change::Improved => "good",
                _ => "",
            },
        })
        .collect();
    table(out, &grid.head, &rows, 2, &[grid.head.len() - 1]);
    for w in &c.warnings {
        let _ = writeln!(out, "<p class=\"note warn-text\">warning: {}</p>", esc(w));
    }
    for line in inconclusive_lines(c) {
        let _ = writeln!(out, "<p class=\"note warn-text\">{}</p>", esc(&line));
    }
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&comparison_conclusion(c)));
}

/// Streaming and token metrics per LLM step.
pub fn llm_steps(r: &RunReport, out: &mut String) {
    let grid = rows::llm_steps(r);
    table(out, &grid.head, &plain(grid.rows), 1, &[]);
    let _ = writeln!(out, "<p class=\"note\">times in ms · {}</p>", esc(rows::LLM_LEGEND));
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
                fmt_share(m.share),
                m.fallbacks.to_string(),
                m.gateway_retries.to_string(),
                m.output_tokens.to_string(),
                opt_ms(m.latency.as_ref(), |x| x.mean_ms),
                opt_ms(m.latency.as_ref(), |x| x.p95_ms),
                fmt_priced(m.cost_usd, m.unpriced_responses),
            ])
        })
        .collect();
    if !rows.is_empty() {
        let head = ["Served model", "Resp", "Share", "Fallbacks", "GW retries", "Out tok", "Avg", "p95", "Cost $"];
        table(out, &head, &rows, 1, &[]);
    }
    let _ = writeln!(
        out,
        "<p class=\"note\">{} responses ({} streamed), {} input and {} output tokens ({} tok/s), {} fallbacks ({}), total cost {}{}</p>",
        l.responses,
        l.streamed,
        l.input_tokens,
        l.output_tokens,
        fmt_tenths(l.output_tokens_per_s),
        l.fallbacks,
        fmt_share(l.fallback_rate),
        esc(&fmt_value(l.cost_usd, "USD")),
        esc(&unpriced_note(l.unpriced_responses))
    );
    if let Some(g) = rows::gateway(r) {
        table(out, &g.head, &plain(g.rows), 1, &[]);
    }
}

/// One row per user class: its iterations as flows.
pub fn flows(r: &RunReport, out: &mut String) {
    let grid = rows::flows(r);
    table(out, &grid.head, &plain(grid.rows), 1, &[]);
    let _ = writeln!(
        out,
        "<p class=\"note\">flow latency in ms: first step start → last step end of completed iterations</p>"
    );
}

/// `run --repeat`: each run, the median and CV rows, and the warning when the runs disagree.
pub fn runs(r: &RunReport, out: &mut String) {
    let (Some(rep), Some(grid)) = (&r.repeats, crate::report::repeats::runs_grid(r)) else { return };
    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&crate::report::repeats::runs_title(rep)));
    let n = rep.runs.len();
    let rows: Vec<Row> = grid
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, cells)| {
            let disturbed = i < n && rep.runs[i].environment.as_ref().is_some_and(|e| e.disturbed);
            Row { cells, class: if disturbed { "warn" } else { "" } }
        })
        .collect();
    table(out, &grid.head, &rows, 2, &[]);
    if let Some(w) = crate::report::repeats::unsteady_line(r) {
        let _ = writeln!(out, "<p class=\"note warn-text\">{}</p>", esc(&w));
    }
}

/// The per-level table of a breaking-point search or sweep, then its conclusion.
pub fn levels(r: &RunReport, out: &mut String) {
    let Some((grid, broken)) = rows::levels(r) else { return };
    let rows: Vec<Row> = grid
        .rows
        .into_iter()
        .zip(broken)
        .map(|(cells, bad)| Row { cells, class: if bad { "bad" } else { "" } })
        .collect();
    table(out, &grid.head, &rows, 1, &[7, 8]);
    for line in rows::levels_conclusion(r) {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&line));
    }
}

/// Failures by kind and step, with the first message seen.
pub fn errors(r: &RunReport, out: &mut String) {
    let grid = rows::errors(r, 300);
    table(out, &grid.head, &plain(grid.rows), 0, &[1, 2, 3]);
    let kinds: Vec<String> = r.totals.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    if !kinds.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">by kind: {}</p>", esc(&kinds.join(" · ")));
    }
}
