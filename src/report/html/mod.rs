//! `report.html`: one self-contained page (inline CSS, inline SVG plots, no script, no external URL) showing a
//! `RunReport`: the verdict and headline numbers, the summary per step, the gates, plots over time, latency
//! distributions on a log percentile axis (with the baseline's overlaid), the breaking-point curve, LLM models
//! and cost, flows and errors. A pure function of the report; every text from it is escaped.

mod plots;
mod tables;
#[cfg(test)]
mod tests;

use std::fmt::Write;

use plotters::style::RGBColor;

use super::rows::{load_shape, status_text, target_text};
use crate::metrics::catalog::Metric;
use crate::metrics::{Hist, SeriesPoint, decode_histogram, new_hist};
use crate::report::format::{fmt_secs, fmt_value, fmt_whole};
use crate::result::{RunReport, RunStatus};
use crate::slo::Selector;
use plots::{BLUE, GREEN, GREY, Line, ORANGE, PURPLE, PlotError, RED};

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // Control characters from a server (escape sequences) are shown as text, never passed to the page raw.
    for c in crate::redact::escape_control(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1d232a;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1140px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:24px;margin:0 0 6px;font-weight:650}
h2{font-size:19px;margin:34px 0 12px;padding-bottom:5px;border-bottom:1px solid #d8dde3}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.meta{color:#57606a;margin:2px 0}
.badge{display:inline-block;padding:2px 11px;border-radius:12px;font-size:14px;font-weight:600;vertical-align:middle;margin-left:6px}
.pass{background:#dafbe1;color:#116329}.fail{background:#ffebe9;color:#a40e26}.warn{background:#fff8c5;color:#7d4e00}
nav{margin:12px 0 0;font-size:14px}nav a{margin-right:14px;color:#0969da;text-decoration:none}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(112px,1fr));gap:10px;margin:18px 0 6px}
.kpi{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:8px 12px}
.kpi b{display:block;font-size:19px;font-weight:650;font-variant-numeric:tabular-nums}.kpi span{color:#57606a;font-size:13px}
.scroll{overflow-x:auto;border:1px solid #d8dde3;border-radius:8px;background:#fff}
table{border-collapse:collapse;width:100%;font-size:13.5px;font-variant-numeric:tabular-nums}
th,td{padding:5px 9px;border-bottom:1px solid #eceef1;text-align:left;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}
td.n,th.n{text-align:right}
td.wrap{white-space:normal;min-width:12em}
tbody tr:last-child td{border-bottom:0}
tr.total td{font-weight:650;border-top:2px solid #c9ced4}
tr.bad td{background:#fff0ef}tr.good td{background:#effbf2}
figure{margin:0 0 16px;background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:10px 14px 12px;min-width:0}
figcaption{font-weight:600;margin-bottom:2px}
svg.plot{display:block;width:100%;height:auto}
svg.plot text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.legend{font-size:13px;color:#333;margin-top:4px}.legend span{margin-right:18px;white-space:nowrap}
.legend i{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin-right:6px}
.legend i.dash{border-top-style:dashed}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;margin-bottom:16px}
.grid2 figure{margin:0}
.note{color:#57606a;font-size:13px;margin:6px 0}
.warn-text{color:#7d4e00}
footer{margin-top:36px;color:#57606a;font-size:13px;border-top:1px solid #d8dde3;padding-top:10px}
"#;

pub fn render(r: &RunReport) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} · run-load-test report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&r.scenario.name)
    );
    header(r, &mut out);
    kpis(r, &mut out);
    nav(r, &mut out);

    section(&mut out, "summary", "Summary per step");
    tables::summary(r, &mut out);

    if !r.thresholds.is_empty() || r.comparison.is_some() {
        section(&mut out, "gates", "Gates");
        if !r.thresholds.is_empty() {
            tables::thresholds(r, &mut out);
        }
        if let Some(c) = &r.comparison {
            tables::comparison(c, &mut out);
        }
    }

    section(&mut out, "over-time", "Over time");
    over_time(r, &mut out);

    section(&mut out, "distributions", "Latency distributions");
    distributions(r, &mut out);

    if r.repeats.is_some() {
        section(&mut out, "runs", "Runs");
        tables::runs(r, &mut out);
    }

    if let Some(l) = &r.levels {
        let title = if l.mode == "breaking_point" { "Breaking point" } else { "Load levels" };
        section(&mut out, "levels", title);
        figure(
            &mut out,
            "p95 latency and error rate by load level",
            plots::levels_chart(l),
            &[("p95 latency (left axis)", BLUE, false), ("error rate (right axis)", RED, false)],
        );
        tables::levels(r, &mut out);
    }

    if r.steps.iter().any(|s| s.stats.llm.is_some()) {
        section(&mut out, "llm", "LLM: streaming, served models and cost");
        tables::llm_steps(r, &mut out);
        tables::models(r, &mut out);
    }

    if !r.flows.is_empty() {
        section(&mut out, "flows", "Flows (user-class iterations)");
        tables::flows(r, &mut out);
    }

    if !r.errors.is_empty() {
        section(&mut out, "errors", "Errors");
        tables::errors(r, &mut out);
    }

    footer(r, &mut out);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = writeln!(out, "<h2 id=\"{id}\">{}</h2>", esc(title));
}

/// The badge: its class and its words.
fn verdict(r: &RunReport) -> (&'static str, String) {
    let failed = r.thresholds.iter().filter(|v| !v.pass).count();
    let regressions = r.comparison.as_ref().map_or(0, |c| c.regressions().count());
    let unsure = r.comparison.as_ref().map_or(0, |c| c.inconclusive().count());
    match (r.status, failed + regressions) {
        (RunStatus::Interrupted, _) => ("warn", "interrupted".into()),
        (RunStatus::Aborted, _) => ("fail", "aborted by a threshold".into()),
        (RunStatus::Failed, _) => ("fail", "failed: nothing valid measured".into()),
        (_, 0) if unsure > 0 => ("warn", format!("inconclusive: {unsure} comparison(s) the host may explain")),
        (_, 0) if r.thresholds.is_empty() && r.comparison.is_none() => ("pass", "completed".into()),
        (_, 0) => ("pass", "passed".into()),
        (_, _) => ("fail", format!("failed: {failed} threshold(s), {regressions} regression(s)")),
    }
}

fn header(r: &RunReport, out: &mut String) {
    let (class, word) = verdict(r);
    let _ = writeln!(
        out,
        "<header>\n<h1>Load test <code>{}</code><span class=\"badge {class}\">{}</span></h1>",
        esc(&r.scenario.name),
        esc(&word)
    );
    if !r.scenario.description.is_empty() {
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", esc(&r.scenario.description));
    }
    let _ = writeln!(
        out,
        "<p class=\"meta\">target {} · {} · ran {} · {}</p>",
        esc(&target_text(r)),
        esc(&load_shape(r)),
        fmt_secs(r.duration_s),
        esc(status_text(r))
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">started {} · ended {} · stop reason {} · scenario file <code>{}</code> · {} {}</p>\n</header>",
        esc(&r.started_at),
        esc(&r.ended_at),
        esc(&r.stop_reason),
        esc(&r.scenario.file),
        esc(&r.tool.name),
        esc(&r.tool.version)
    );
    if let Some(f) = &r.failure {
        let _ = writeln!(out, "<p class=\"meta\"><strong>{}</strong>: {}</p>", esc(&f.kind), esc(&f.message));
    }
}

fn kpis(r: &RunReport, out: &mut String) {
    let t = &r.totals;
    let mut cards: Vec<(String, &str)> = vec![
        (t.requests.to_string(), "requests"),
        (fmt_value(t.rps, "/s"), "throughput"),
        (fmt_value(t.failure_rate, "%"), "failed"),
    ];
    if let Some(l) = &t.latency {
        cards.push((fmt_value(l.p50_ms, "ms"), "latency p50"));
        cards.push((fmt_value(l.p95_ms, "ms"), "latency p95"));
        cards.push((fmt_value(l.p99_ms, "ms"), "latency p99"));
    }
    if let Some(l) = &t.llm {
        if let Some(ttft) = &l.ttft {
            cards.push((fmt_value(ttft.p95_ms, "ms"), "TTFT p95"));
        }
        cards.push((fmt_whole(l.output_tokens_per_s), "output tok/s"));
        if l.cost_usd > 0.0 {
            cards.push((fmt_value(l.cost_usd, "USD"), "cost"));
        }
    }
    out.push_str("<div class=\"kpis\">");
    for (v, k) in cards {
        let _ = write!(out, "<div class=\"kpi\"><b>{}</b><span>{}</span></div>", esc(&v), esc(k));
    }
    out.push_str("</div>\n");
}

fn nav(r: &RunReport, out: &mut String) {
    let mut links = vec![("summary", "Summary")];
    if !r.thresholds.is_empty() || r.comparison.is_some() {
        links.push(("gates", "Gates"));
    }
    links.push(("over-time", "Over time"));
    links.push(("distributions", "Distributions"));
    if r.repeats.is_some() {
        links.push(("runs", "Runs"));
    }
    if r.levels.is_some() {
        links.push(("levels", "Levels"));
    }
    if r.steps.iter().any(|s| s.stats.llm.is_some()) {
        links.push(("llm", "LLM"));
    }
    if !r.flows.is_empty() {
        links.push(("flows", "Flows"));
    }
    if !r.errors.is_empty() {
        links.push(("errors", "Errors"));
    }
    out.push_str("<nav>");
    for (id, text) in links {
        let _ = write!(out, "<a href=\"#{id}\">{text}</a>");
    }
    out.push_str("</nav>\n");
}

fn legend_of(lines: &[Line]) -> Vec<(&str, RGBColor, bool)> {
    lines.iter().map(|l| (l.label.as_str(), l.color, l.dashed)).collect()
}

/// A plot in a figure with its caption and an HTML legend (colour, dashed, label).
fn figure(out: &mut String, caption: &str, svg: Result<String, PlotError>, legend: &[(&str, RGBColor, bool)]) {
    let _ = write!(out, "<figure>\n<figcaption>{}</figcaption>\n", esc(caption));
    match svg {
        Ok(svg) => {
            // plotters writes a fixed pixel size; the viewBox alone lets the plot scale with the page. Inline SVG
            // in HTML needs no namespace declaration.
            let body = svg.find("viewBox").map_or(svg.as_str(), |i| &svg[i..]);
            let body = body.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
            let _ = write!(out, "<svg class=\"plot\" role=\"img\" aria-label=\"{}\" {body}", esc(caption));
            out.push_str("<div class=\"legend\">");
            for (label, c, dashed) in legend {
                let _ = write!(
                    out,
                    "<span><i{} style=\"border-color:rgb({},{},{})\"></i>{}</span>",
                    if *dashed { " class=\"dash\"" } else { "" },
                    c.0,
                    c.1,
                    c.2,
                    esc(label)
                );
            }
            out.push_str("</div>\n");
        }
        Err(e) => {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(&e.to_string()));
        }
    }
    out.push_str("</figure>\n");
}

fn over_time(r: &RunReport, out: &mut String) {
    if r.series.is_empty() {
        out.push_str("<p class=\"note\">no per-second points were recorded</p>\n");
        return;
    }
    // What an interval measured is drawn at its middle; users and in-flight requests, read at its end, there.
    let mid = |p: &SeriesPoint| p.t_s + p.duration_s / 2.0;
    let end = |p: &SeriesPoint| p.t_s + p.duration_s;
    let span = r.series.iter().map(end).fold(r.duration_s, f64::max);
    let line = |label: &str, color, f: &dyn Fn(&SeriesPoint) -> Option<f64>| {
        Line::new(label, color, r.series.iter().map(|p| (mid(p), f(p))).collect())
    };
    let at_end = |label: &str, color, f: &dyn Fn(&SeriesPoint) -> f64| {
        Line::new(label, color, r.series.iter().map(|p| (end(p), Some(f(p)))).collect())
    };
    let lat = [line("p50", BLUE, &|p| p.p50_ms), line("p95", ORANGE, &|p| p.p95_ms), line("p99", RED, &|p| p.p99_ms)];
    figure(
        out,
        "Latency percentiles per second",
        plots::time_chart("latency (ms)", plots::WIDE, span, &lat),
        &legend_of(&lat),
    );
    let per_s = |n: u64, d: f64| if d > 0.0 { Some(n as f64 / d) } else { None };
    let tput =
        [line("requests/s", BLUE, &|p| Some(p.rps)), line("errors/s", RED, &|p| per_s(p.failures, p.duration_s))];
    out.push_str("<div class=\"grid2\">\n");
    figure(out, "Throughput and errors", plots::time_chart("per second", plots::HALF, span, &tput), &legend_of(&tput));
    let users = [
        at_end("active users", GREEN, &|p| p.users as f64),
        at_end("requests in flight", PURPLE, &|p| p.in_flight as f64),
    ];
    let svg = plots::time_chart("count", plots::HALF, span, &users);
    figure(out, "Active users and requests in flight", svg, &legend_of(&users));
    out.push_str("</div>\n");
    // Streaming runs: a provider slowing down shows in the first token before it shows in the total.
    if r.series.iter().any(|p| p.ttft_p50_ms.is_some()) {
        let ttft = [line("TTFT p50", BLUE, &|p| p.ttft_p50_ms), line("TTFT p95", ORANGE, &|p| p.ttft_p95_ms)];
        let svg = plots::time_chart("TTFT (ms)", plots::WIDE, span, &ttft);
        figure(out, "Time to first token per second", svg, &legend_of(&ttft));
    }
}

/// The merged histogram of one metric over the steps that have it; `Err` names a corrupt one.
fn merged(r: &RunReport, m: Metric) -> Result<Hist, PlotError> {
    Ok(crate::baseline::stored_histogram(r, m, &Selector::default())?)
}

fn distributions(r: &RunReport, out: &mut String) {
    let current = decode_histogram(&r.histograms.latency).unwrap_or_else(|_| new_hist());
    let baseline = r
        .comparison
        .as_ref()
        .filter(|c| !c.baseline.latency_histogram.is_empty())
        .and_then(|c| decode_histogram(&c.baseline.latency_histogram).ok())
        .filter(|h| !h.is_empty());
    if current.is_empty() {
        out.push_str("<p class=\"note\">no successful request: no latency distribution to plot</p>\n");
    } else {
        let mut hists = vec![&current];
        hists.extend(baseline.as_ref());
        let x_max = plots::percentile_span(&hists);
        let mut lines = vec![Line::new("this run", BLUE, plots::percentile_curve(&current, x_max))];
        if let Some(b) = &baseline {
            let mut l = Line::new("baseline", GREY, plots::percentile_curve(b, x_max));
            l.dashed = true;
            lines.push(l);
        }
        figure(
            out,
            "Latency by percentile (successful requests)",
            plots::percentile_chart("latency (ms)", plots::WIDE_TALL, x_max, &lines),
            &legend_of(&lines),
        );
    }
    let streams: Vec<(&str, &str, Result<Hist, PlotError>)> = vec![
        ("Time to first token (TTFT) by percentile", "TTFT", merged(r, Metric::Ttft)),
        ("Inter-chunk latency (ICL) by percentile", "ICL", merged(r, Metric::Icl)),
    ];
    let present: Vec<_> = streams.into_iter().filter(|(_, _, h)| h.as_ref().map_or(true, |h| !h.is_empty())).collect();
    if present.is_empty() {
        return;
    }
    out.push_str("<div class=\"grid2\">\n");
    for (caption, label, h) in present {
        let svg = h.and_then(|h| {
            let x_max = plots::percentile_span(&[&h]);
            let line = Line::new(label, ORANGE, plots::percentile_curve(&h, x_max));
            plots::percentile_chart(&format!("{label} (ms)"), plots::HALF, x_max, &[line])
        });
        figure(out, caption, svg, &[(label, ORANGE, false)]);
    }
    out.push_str("</div>\n");
    out.push_str("<p class=\"note\">streaming steps merged · x axis: percentile on a log scale of 1 − q, as HdrHistogram plots it</p>\n");
}

fn footer(r: &RunReport, out: &mut String) {
    let g = &r.generator;
    let mut parts = vec![super::rows::generator_text(g)];
    if let Some(b) = &g.bottleneck {
        parts.push(super::rows::bottleneck_text(b));
    }
    if let Some(cut) = super::rows::interrupted_text(g) {
        parts.push(cut);
    }
    if let Some(e) = &r.environment {
        parts.push(super::rows::host_text(e));
        parts.extend(super::rows::host_disturbed_text(e));
    }
    if r.totals.retries > 0 {
        parts.push(format!("{} attempts were retried after a retryable status", r.totals.retries));
    }
    parts.extend(super::step_warnings(r));
    if let Some(m) = &r.machine {
        parts.push(format!("machine: {} {}, {} CPUs", m.os, m.arch, m.cpus));
    }
    parts.push(format!("result schema v{} · scenario {}", r.schema_version, r.scenario.hash));
    let _ = writeln!(out, "<footer>{}</footer>", parts.iter().map(|p| esc(p)).collect::<Vec<_>>().join("<br>"));
}
