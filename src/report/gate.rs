//! How gates read: the threshold verdicts and the baseline comparison as terminal tables, and the wording shared
//! by every renderer (a value in its unit, a regression in one sentence).

use std::fmt::Write;

use super::rows::Grid;
use super::table::{right_align, table};
use crate::result::{Change, Comparison, Delta, RunReport, Verdict};

/// A number in its unit, with the precision its size deserves; fractions (error rates) as percentages.
pub fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "ms" if v.abs() < 10.0 => format!("{v:.2} ms"),
        "ms" if v.abs() < 1000.0 => format!("{v:.1} ms"),
        "ms" => format!("{v:.0} ms"),
        "/s" => format!("{v:.1}/s"),
        "%" => format!("{:.2}%", v * 100.0),
        "USD" => format!("${v:.4}"),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}

/// Error rates and other fractions are shown as percentages.
pub(super) fn delta_unit(d: &Delta) -> &str {
    if d.stat == "rate" { "%" } else { &d.unit }
}

pub fn fmt_observed(v: &Verdict) -> String {
    match v.observed {
        Some(o) if v.unit.is_empty() && v.threshold.contains("rate") && o <= 1.0 => {
            let plain = format!("{o:.4}");
            plain.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Some(o) => fmt_value(o, &v.unit),
        None => "no data".into(),
    }
}

pub fn verdict_word(c: Change) -> &'static str {
    match c {
        Change::Ok => "ok",
        Change::Regression => "REGRESSION",
        Change::Improved => "improved",
        Change::Noise => "within noise",
        Change::Missing => "missing",
        Change::New => "new",
    }
}

/// `+12.3 ms (+11.6%)`.
pub fn fmt_delta(d: &Delta) -> String {
    let u = delta_unit(d);
    match d.delta {
        Some(x) => {
            // A change too small to show is no change: never "-0.00 ms".
            let shown = fmt_value(x.abs(), u);
            let zero = shown.trim_start_matches(['0', '.']).chars().next().is_none_or(|c| !c.is_ascii_digit());
            let sign = if zero || x >= 0.0 { "+" } else { "-" };
            let pct = d.delta_pct.map_or(String::new(), |p| format!(" ({p:+.1}%)"));
            format!("{sign}{shown}{pct}")
        }
        None => "-".into(),
    }
}

/// The tolerance and the noise band: `±10.6 ms · noise ±0.4 ms`.
pub fn fmt_allowed(d: &Delta) -> String {
    let u = delta_unit(d);
    let noise = d.noise.map_or(String::new(), |n| format!(" · noise ±{}", fmt_value(n, u)));
    format!("{}{noise}", fmt_value(d.allowed, u))
}

/// One sentence naming the metric and the numbers, for logs and JUnit messages.
pub fn describe_regression(d: &Delta) -> String {
    let u = delta_unit(d);
    let side = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt_value(v, u));
    format!(
        "{} {} regressed: {} → {}, {}; tolerated {}, noise ±{}",
        d.metric,
        d.stat,
        side(d.baseline),
        side(d.current),
        fmt_delta(d),
        fmt_value(d.allowed, u),
        fmt_value(d.noise.unwrap_or(0.0), u)
    )
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
/// noise, verdict.
pub(super) fn comparison_rows(c: &Comparison) -> Grid {
    let rows = c
        .rows
        .iter()
        .map(|d| {
            let u = delta_unit(d);
            let side = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt_value(v, u));
            vec![
                d.metric.clone(),
                d.stat.clone(),
                side(d.baseline),
                side(d.current),
                fmt_delta(d),
                fmt_allowed(d),
                verdict_word(d.verdict).into(),
            ]
        })
        .collect();
    Grid { head: vec!["Metric", "Stat", "Baseline", "Current", "Delta", "Tolerated · noise", "Verdict"], rows }
}

/// The baseline gate's one-line conclusion.
pub(super) fn comparison_conclusion(c: &Comparison) -> String {
    let bad = c.regressions().count();
    let noise = c.rows.iter().filter(|d| d.verdict == Change::Noise).count();
    let noise_note = if noise > 0 { format!("; {noise} beyond tolerance but within noise") } else { String::new() };
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
    let mut t = table(grid.head);
    for row in grid.rows {
        t.add_row(row);
    }
    right_align(&mut t, 2);
    if let Some(verdict) = t.column_mut(6) {
        verdict.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    let _ = writeln!(out, "{t}");
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "{}", comparison_conclusion(c));
    out
}
