//! Terminal tables: the Locust-style summary of a run and the scenario list.

use std::fmt::Write;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use super::format::{fmt_ms, fmt_priced, fmt_secs, fmt_share, fmt_tenths, fmt_value, opt_ms, unpriced_note};
use super::rows::{self, load_shape, stats_row, status_text, target_text};
use crate::result::RunReport;

pub(super) fn table(header: Vec<&str>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    t
}

fn grid_table(g: rows::Grid) -> Table {
    let mut t = table(g.head);
    for row in g.rows {
        // One line per cell: a server's message may hold newlines or escape sequences.
        t.add_row(row.into_iter().map(super::one_line));
    }
    t
}

pub(super) fn right_align(t: &mut Table, from: usize) {
    for c in t.column_iter_mut().skip(from) {
        c.set_cell_alignment(CellAlignment::Right);
    }
}

pub fn render_summary(r: &RunReport) -> String {
    let mut out = String::new();
    let target = target_text(r);
    let shape = load_shape(r);
    let status = status_text(r);
    let _ = writeln!(out, "scenario {} · target {target}", r.scenario.name);
    let _ = writeln!(out, "{shape} · ran {} · {status}", fmt_secs(r.duration_s));
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "{}: {}", f.kind, f.message);
    }
    if let Some(s) = &r.shard {
        let _ = writeln!(out, "{}", shard_line(s));
        if let Some(by) = &s.aborted_by {
            let _ = writeln!(out, "stopped by {by}");
        }
    }
    if !r.shards.is_empty() {
        let _ = writeln!(out, "{}", merged_line(r));
    }

    let mut t = table(vec![
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Med", "p90", "p95", "p99", "Max", "req/s", "fail/s",
    ]);
    let many_users = r.steps.iter().any(|s| s.user != r.steps[0].user);
    for s in &r.steps {
        let name = if many_users { format!("{} › {}", s.user, s.name) } else { s.name.clone() };
        t.add_row(stats_row(&s.method, &name, &s.stats));
    }
    t.add_row(stats_row("", "Aggregated", &r.totals));
    right_align(&mut t, 2);
    let _ = writeln!(out, "{t}");
    match (&r.open, r.totals.latency_uncorrected.as_ref()) {
        (Some(o), Some(u)) => {
            let _ = writeln!(
                out,
                "latency in ms from the scheduled start (coordinated-omission corrected); uncorrected p50 {} · p99 {} ms; schedule lag p99 {} ms{}",
                fmt_ms(u.p50_ms),
                fmt_ms(u.p99_ms),
                o.schedule_lag.as_ref().map_or("-".to_string(), |l| fmt_ms(l.p99_ms)),
                super::rows::pacing_note(o)
            );
        }
        _ => {
            let _ = writeln!(out, "latency in ms (send → last byte, successful requests); failures counted separately");
        }
    }

    if r.flows.len() > 1 || r.steps.len() > r.flows.len() {
        let mut f = grid_table(rows::flows(r));
        right_align(&mut f, 1);
        let _ = writeln!(out, "{f}");
    }

    render_llm(r, &mut out);
    render_levels(r, &mut out);
    render_runs(r, &mut out);
    super::gate::render_gates(r, &mut out);

    if !r.errors.is_empty() {
        let e = grid_table(rows::errors(r, 100));
        let _ = writeln!(out, "{e}");
    }
    if let Some(l) = &r.totals.llm {
        let _ = writeln!(
            out,
            "LLM: {} responses ({} streamed), {} output tokens ({} tok/s), {} fallbacks, total cost {}{}",
            l.responses,
            l.streamed,
            l.output_tokens,
            fmt_tenths(l.output_tokens_per_s),
            l.fallbacks,
            fmt_value(l.cost_usd, "USD"),
            unpriced_note(l.unpriced_responses)
        );
    }
    if r.totals.retries > 0 {
        let _ = writeln!(
            out,
            "{} attempts were retried after a retryable status (honouring retry-after)",
            r.totals.retries
        );
    }
    for w in super::step_warnings(r) {
        let _ = writeln!(out, "{w}");
    }
    let g = &r.generator;
    let _ = writeln!(
        out,
        "{}{}",
        rows::generator_text(g),
        g.bottleneck.as_ref().map_or(String::new(), |b| format!(" — {}", rows::bottleneck_text(b)))
    );
    if let Some(cut) = rows::interrupted_text(g) {
        let _ = writeln!(out, "{cut}");
    }
    if let Some(e) = &r.environment {
        let _ = writeln!(out, "{}", rows::host_text(e));
        if let Some(d) = rows::host_disturbed_text(e) {
            let _ = writeln!(out, "{d}");
        }
    }
    out
}

/// One line of `run-load-test list`.
pub struct ListRow {
    pub name: String,
    pub description: String,
    pub load: String,
    pub duration: String,
    pub tags: String,
    pub thresholds: usize,
    /// Only makes sense against the embedded mock (`mock_only = true`).
    pub mock_only: bool,
    /// The scenario's one-line error, if it does not load.
    pub error: Option<String>,
}

pub fn render_list(rows: &[ListRow]) -> String {
    let mut t = table(vec!["Scenario", "Description", "Load", "Duration", "Tags", "Thresholds", "Target"]);
    for r in rows {
        match &r.error {
            None => t.add_row(vec![
                r.name.clone(),
                r.description.clone(),
                r.load.clone(),
                r.duration.clone(),
                r.tags.clone(),
                r.thresholds.to_string(),
                if r.mock_only { "mock-only" } else { "any" }.to_string(),
            ]),
            Some(e) => t.add_row(vec![
                r.name.clone(),
                format!("ERROR: {e}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        };
    }
    format!("{t}\n")
}

/// Streaming and token metrics per LLM step, then the served-model distribution.
fn render_llm(r: &RunReport, out: &mut String) {
    let grid = rows::llm_steps(r);
    if grid.rows.is_empty() {
        return;
    }
    let llm_steps: Vec<_> = r.steps.iter().filter_map(|s| s.stats.llm.as_ref().map(|l| (s, l))).collect();
    let mut t = grid_table(grid);
    right_align(&mut t, 1);
    let _ = writeln!(out, "{t}");
    let mut m =
        table(vec!["LLM step", "Served model", "Resp", "Share", "Fallbacks", "GW retries", "Avg", "p95", "Cost $"]);
    let mut any = false;
    for (s, l) in &llm_steps {
        for model in &l.models {
            any = true;
            m.add_row(vec![
                format!("{} › {}", s.user, s.name),
                crate::redact::escape_line(&model.model).into_owned(),
                model.responses.to_string(),
                fmt_share(model.share),
                model.fallbacks.to_string(),
                model.gateway_retries.to_string(),
                opt_ms(model.latency.as_ref(), |x| x.mean_ms),
                opt_ms(model.latency.as_ref(), |x| x.p95_ms),
                fmt_priced(model.cost_usd, model.unpriced_responses),
            ]);
        }
    }
    if any {
        right_align(&mut m, 2);
        let _ = writeln!(out, "{m}");
    }
    if let Some(g) = rows::gateway(r) {
        let mut g = grid_table(g);
        right_align(&mut g, 1);
        let _ = writeln!(out, "{g}");
    }
    let _ = writeln!(out, "{}", rows::LLM_LEGEND);
}

/// The concurrency table teams write by hand: one row per level, then the verdict.
/// `run --repeat`: each run, the median and CV rows, and the warning when the runs disagree.
fn render_runs(r: &RunReport, out: &mut String) {
    let (Some(rep), Some(grid)) = (&r.repeats, super::repeats::runs_grid(r)) else { return };
    let _ = writeln!(out, "{}", super::repeats::runs_title(rep));
    let mut t = grid_table(grid);
    right_align(&mut t, 2);
    let _ = writeln!(out, "{t}");
    if let Some(w) = super::repeats::unsteady_line(r) {
        let _ = writeln!(out, "{w}");
    }
}

fn render_levels(r: &RunReport, out: &mut String) {
    let Some((grid, _)) = rows::levels(r) else { return };
    let mut t = grid_table(grid);
    right_align(&mut t, 1);
    let _ = writeln!(out, "{t}");
    for line in rows::levels_conclusion(r) {
        let _ = writeln!(out, "{line}");
    }
}

/// `shard 2/4 (segment 1/4:1/2) on HOST, start skew +3 ms`.
fn shard_line(s: &crate::result::ShardInfo) -> String {
    let part = match (s.index, s.count) {
        (Some(i), Some(n)) => format!("shard {i}/{n} (segment {})", s.segment),
        _ => format!("segment {}", s.segment),
    };
    let skew = s.start_skew_ms.map_or(String::new(), |ms| format!(", start skew {ms:+.0} ms"));
    format!("{part} on {}{skew}", s.host)
}

/// `merged 4 shards (largest start skew 12 ms)`, and what a partial merge lacks.
fn merged_line(r: &crate::result::RunReport) -> String {
    let skew = r.shards.iter().map(|s| s.start_skew_ms).fold(0.0f64, f64::max);
    let late = r.shards.iter().filter_map(|s| s.late_ms).reduce(f64::max);
    let late = late.map_or(String::new(), |ms| format!(", the latest {ms:.1} ms after --start-at"));
    let mut line = format!("merged {} shards (largest start skew {skew:.0} ms{late})", r.shards.len());
    if let Some(p) = &r.partial {
        let missing: Vec<String> = p.missing.iter().map(u64::to_string).collect();
        line += &format!(
            "; PARTIAL: shards missing: {}",
            if missing.is_empty() { "none".into() } else { missing.join(", ") }
        );
    }
    line
}

#[cfg(test)]
mod shard_tests {
    use super::*;
    use crate::result::ShardInfo;

    #[test]
    fn the_shard_line_names_shard_segment_host_and_skew() {
        let mut s = ShardInfo {
            index: Some(2),
            count: Some(4),
            segment: "1/4:1/2".into(),
            sequence: "0,1/4,1/2,3/4,1".into(),
            host: "gen-1".into(),
            source: "flag".into(),
            requested_start: Some("2026-12-03T10:00:00.000Z".into()),
            start_skew_ms: Some(3.2),
            aborted_by: None,
        };
        assert_eq!(shard_line(&s), "shard 2/4 (segment 1/4:1/2) on gen-1, start skew +3 ms");
        (s.index, s.count, s.start_skew_ms) = (None, None, None);
        assert_eq!(shard_line(&s), "segment 1/4:1/2 on gen-1");
    }
}
