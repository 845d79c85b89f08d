//! A Markdown summary sized for `$GITHUB_STEP_SUMMARY` or a pull-request comment: the verdict first, then the
//! headline numbers, the threshold verdicts and the baseline comparison.

use std::fmt::Write;

use super::format::{fmt_observed, fmt_secs, fmt_value};
use crate::result::Change;
use crate::result::{RunReport, RunStatus};

/// Table cells must not break the table: one line, pipes escaped, control characters as text.
fn cell(s: &str) -> String {
    crate::redact::escape_line(s).replace('|', "\\|")
}

/// The open model's frame: rates, the generator's lag and how finely it paced, so corrected latencies are read
/// for what they can resolve.
fn open_line(r: &RunReport, out: &mut String) {
    if let Some(o) = &r.open {
        let lag = o.schedule_lag.as_ref().map_or("-".to_string(), |l| fmt_value(l.p99_ms, "ms"));
        let _ = writeln!(
            out,
            "{}; latency from the scheduled start; schedule lag p99 {lag}{}\n",
            cell(&super::rows::load_shape(r)),
            cell(&super::rows::pacing_note(o))
        );
    }
}

pub fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let failed_thresholds = r.thresholds.iter().filter(|v| !v.pass).count();
    let regressions = r.comparison.as_ref().map_or(0, |c| c.regressions().count());
    let unsure = r.comparison.as_ref().map_or(0, |c| c.inconclusive().count());
    let verdict = match (r.status, failed_thresholds + regressions) {
        (RunStatus::Interrupted, _) => "⚠️ interrupted".to_string(),
        (RunStatus::Failed, _) => "❌ failed: nothing valid measured".to_string(),
        (_, 0) if unsure > 0 => format!("⚠️ inconclusive: {unsure} comparison(s) the host may explain"),
        (_, 0) => "✅ passed".to_string(),
        (_, _) => format!("❌ failed: {failed_thresholds} threshold(s), {regressions} regression(s)"),
    };
    let _ = writeln!(out, "### Load test `{}`: {verdict}\n", cell(&r.scenario.name));
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "**{}**: {}\n", cell(&f.kind), cell(&f.message));
    }
    let target = if r.target.embedded_mock { "embedded mock gateway".to_string() } else { cell(&r.target.url) };
    let _ = writeln!(
        out,
        "{} model · {target} · {} · {} requests · {:.1} req/s · {} failed\n",
        r.load.model,
        fmt_secs(r.duration_s),
        r.totals.requests,
        r.totals.rps,
        fmt_value(r.totals.failure_rate, "%")
    );
    open_line(r, &mut out);
    let _ = writeln!(out, "| Step | Requests | Failures | p50 | p95 | p99 |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let many = r.steps.iter().any(|s| s.user != r.steps[0].user);
    let rows = r.steps.iter().map(|s| {
        let name = if many { format!("{} › {}", s.user, s.name) } else { s.name.clone() };
        (name, &s.stats)
    });
    for (name, s) in rows.chain(std::iter::once(("**all**".to_string(), &r.totals))) {
        let q = |f: fn(&crate::metrics::LatencySummary) -> f64| {
            s.latency.as_ref().map_or("-".to_string(), |l| fmt_value(f(l), "ms"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&name),
            s.requests,
            s.failures,
            q(|l| l.p50_ms),
            q(|l| l.p95_ms),
            q(|l| l.p99_ms)
        );
    }
    if let (Some(rep), Some(g)) = (&r.repeats, super::repeats::runs_grid(r)) {
        let _ = writeln!(out, "\n#### Runs\n\n{}\n", cell(&super::repeats::runs_title(rep)));
        let _ = writeln!(out, "| {} |\n|---|---|{}", g.head.join(" | "), "---:|".repeat(g.head.len() - 2));
        for row in &g.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        if let Some(w) = super::repeats::unsteady_line(r) {
            let _ = writeln!(out, "\n> ⚠️ {}", cell(&w));
        }
    }
    if let Some(g) = super::rows::gateway(r) {
        let _ =
            writeln!(out, "\n#### Gateway\n\n| {} |\n|---|{}", g.head.join(" | "), "---:|".repeat(g.head.len() - 1));
        for row in &g.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    for s in &r.steps {
        for w in &s.stats.warnings {
            let _ = writeln!(out, "\n> ⚠️ `{}`: {}", cell(&s.name), cell(w));
        }
    }
    if let Some(e) = &r.environment {
        let _ = writeln!(out, "\n{}", cell(&super::rows::host_text(e)));
        if let Some(d) = super::rows::host_disturbed_text(e) {
            let _ = writeln!(out, "\n> ⚠️ {}", cell(&d));
        }
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\n#### Thresholds\n\n| Threshold | Observed | Verdict |\n|---|---:|---|");
        for v in &r.thresholds {
            let verdict = if v.pass { "✅ pass" } else { "❌ FAIL" };
            let _ = writeln!(out, "| `{}` | {} | {verdict} |", cell(&v.threshold), fmt_observed(v));
        }
    }
    if let Some(c) = &r.comparison {
        let grid = super::gate::comparison_rows(c);
        let _ = writeln!(
            out,
            "\n#### Against baseline `{}` ({})\n\n| {} |\n|---|---|{}---|",
            cell(&c.baseline.file),
            cell(&c.baseline.started_at),
            grid.head.join(" | "),
            "---:|".repeat(grid.head.len() - 3)
        );
        for (cells, d) in grid.rows.iter().zip(&c.rows) {
            let mark = match d.verdict {
                Change::Regression => "❌ ",
                Change::Inconclusive => "⚠️ ",
                Change::Improved => "🟢 ",
                _ => "",
            };
            let [metric, rest @ .., verdict] = cells.as_slice() else { continue };
            let rest: Vec<String> = rest.iter().map(|x| cell(x)).collect();
            let _ = writeln!(out, "| `{}` | {} | {mark}{verdict} |", cell(metric), rest.join(" | "));
        }
        for w in &c.warnings {
            let _ = writeln!(out, "\n> ⚠️ {}", cell(w));
        }
        for line in super::gate::inconclusive_lines(c) {
            let _ = writeln!(out, "\n> ⚠️ {}", cell(&line));
        }
    }
    out
}
