//! How gates read: the threshold verdicts and the baseline comparison as terminal tables, and the wording shared
//! by every renderer (a verdict in one word, a regression in one sentence; numbers are worded by `format`).

use std::fmt::Write;

use super::format::{fmt_allowed, fmt_delta, fmt_observed, fmt_side, fmt_value};
use super::rows::Grid;
use super::table::{right_align, table};
use crate::result::RunReport;
use crate::result::{Change, Comparison, Delta};

pub fn verdict_word(c: Change) -> &'static str {
    match c {
        Change::Ok => "ok",
        Change::Regression => "REGRESSION",
        Change::Improved => "improved",
        Change::Noise => "within noise",
        Change::Inconclusive => "inconclusive",
        Change::Missing => "missing",
        Change::New => "new",
    }
}

/// One sentence naming the metric and the numbers, for logs and JUnit messages.
pub fn describe_regression(d: &Delta) -> String {
    let u = super::format::delta_unit(d);
    format!(
        "{} {} regressed: {} → {}, {}; tolerated {}, noise ±{}",
        d.metric,
        d.stat,
        fmt_side(d, d.baseline),
        fmt_side(d, d.current),
        fmt_delta(d),
        fmt_value(d.allowed, u),
        fmt_value(d.noise.unwrap_or(0.0), u)
    )
}

/// One sentence for an inconclusive row: the change and why the host may explain it.
pub fn describe_inconclusive(d: &Delta) -> String {
    format!(
        "{} {} inconclusive: {} → {}, {}; {}",
        d.metric,
        d.stat,
        fmt_side(d, d.baseline),
        fmt_side(d, d.current),
        fmt_delta(d),
        d.reason.as_deref().unwrap_or("the host may explain it")
    )
}

/// The reasons of the inconclusive rows, one line each.
pub(super) fn inconclusive_lines(c: &Comparison) -> Vec<String> {
    c.inconclusive().map(describe_inconclusive).collect()
}

pub fn render_gates(r: &RunReport, out: &mut String) {
    render_thresholds(r, out);
    if let Some(c) = &r.comparison {
        out.push_str(&render_comparison(c));
    }
}

fn render_thresholds(r: &RunReport, out: &mut String) {
    if r.thresholds.is_empty() {
        return;
    }
    let mut t = table(vec!["Threshold", "Observed", "Verdict"]);
    for v in &r.thresholds {
        let verdict = match (v.pass, v.aborted_run) {
            (true, _) => "pass",
            (false, false) => "FAIL",
            (false, true) => "FAIL (aborted the run)",
        };
        t.add_row(vec![v.threshold.clone(), fmt_observed(v), verdict.into()]);
    }
    let _ = writeln!(out, "{t}");
    let failed = r.thresholds.iter().filter(|v| !v.pass).count();
    let n = r.thresholds.len();
    let _ = writeln!(
        out,
        "{}",
        if failed == 0 {
            format!("SLO gate: all {n} thresholds passed")
        } else {
            format!("SLO gate: {failed} of {n} thresholds FAILED (exit code 1)")
        }
    );
}

/// The comparison's rows as every renderer shows them: metric, stat, baseline, current, delta, tolerance and
/// noise, verdict; judged on several current runs, each run's value and their CV after `Current` (which is then
/// their median). The verdict is always the last column.
pub(super) fn comparison_rows(c: &Comparison) -> Grid {
    let runs = c.rows.iter().any(|d| d.current_runs.is_some());
    let rows = c
        .rows
        .iter()
        .map(|d| {
            let mut row = vec![d.metric.clone(), d.stat.clone(), fmt_side(d, d.baseline), fmt_side(d, d.current)];
            if runs {
                row.push(super::repeats::spread_cell(d));
            }
            row.extend([fmt_delta(d), fmt_allowed(d), verdict_word(d.verdict).into()]);
            row
        })
        .collect();
    let mut head = vec!["Metric", "Stat", "Baseline", "Current"];
    if runs {
        head.push("Current runs (CV)");
    }
    head.extend(["Delta", "Tolerated · noise", "Verdict"]);
    Grid { head, rows }
}

/// The baseline gate's one-line conclusion.
pub(super) fn comparison_conclusion(c: &Comparison) -> String {
    let bad = c.regressions().count();
    let noise = c.rows.iter().filter(|d| d.verdict == Change::Noise).count();
    let mut noise_note = if noise > 0 { format!("; {noise} beyond tolerance but within noise") } else { String::new() };
    let unsure = c.inconclusive().count();
    if unsure > 0 {
        noise_note.push_str(&format!("; {unsure} INCONCLUSIVE (worse, but the host may explain it)"));
    }
    if bad == 0 {
        format!("baseline gate: no regression in {} comparisons{noise_note}", c.rows.len())
    } else {
        format!("baseline gate: {bad} of {} comparisons REGRESSED (exit code 1){noise_note}", c.rows.len())
    }
}

/// The comparison table, then warnings and the gate's conclusion.
pub fn render_comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "compared with baseline {} (recorded {})", c.baseline.file, c.baseline.started_at);
    let grid = comparison_rows(c);
    let last = grid.head.len() - 1;
    let mut t = table(grid.head);
    for row in grid.rows {
        t.add_row(row);
    }
    right_align(&mut t, 2);
    if let Some(verdict) = t.column_mut(last) {
        verdict.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    let _ = writeln!(out, "{t}");
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for line in inconclusive_lines(c) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}", comparison_conclusion(c));
    out
}
