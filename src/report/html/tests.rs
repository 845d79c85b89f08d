use scraper::{Html, Selector};

use super::plots::{downsample, percentile_label};
use super::*;
use crate::metrics::{ErrorSummary, SeriesPoint, StepStats};
use crate::report::ReportFormat;
use crate::report::fixture::llm_step;
use crate::result::{LevelReport, LevelsReport};

fn report(name: &str, base_ms: f64) -> RunReport {
    let secs = 30.0;
    let s = llm_step(base_ms, 600, "fallback-<b>", "503 <Service Unavailable>");
    let series = (0..30)
        .map(|t| SeriesPoint {
            t_s: t as f64,
            duration_s: 1.0,
            requests: 20,
            failures: u64::from(t == 10),
            rps: 20.0,
            p50_ms: (t != 5).then_some(base_ms * 1.5),
            p95_ms: (t != 5).then_some(base_ms * 1.9),
            p99_ms: (t != 5).then_some(base_ms * 2.0),
            users: 10,
            in_flight: 3,
            ..SeriesPoint::default()
        })
        .collect();
    let mut r = crate::report::fixture::one_step(name, "ChatUser", "chat", &s, secs);
    r.scenario.description = "a \"quoted\" & <i>described</i> scenario".into();
    r.load.spawn_rate = Some(5.0);
    r.errors = vec![ErrorSummary {
        user: "ChatUser".into(),
        step: "chat".into(),
        kind: "status:503".into(),
        count: 3,
        message: "503 <Service Unavailable>".into(),
    }];
    r.series = series;
    r
}

fn with_levels(mut r: RunReport) -> RunReport {
    let rows = [(5.0, 0.0, None), (10.0, 0.002, None), (20.0, 0.08, Some("errors rate 0.08 > 0.01".to_string()))]
        .into_iter()
        .map(|(level, fail, broken)| {
            let mut stats = r.totals.clone();
            stats.failure_rate = fail;
            LevelReport { level, duration_s: 10.0, stats, success_rate: 1.0 - fail, broken }
        })
        .collect();
    r.levels = Some(LevelsReport {
        kind: "users".into(),
        hold_s: 10.0,
        mode: "breaking_point".into(),
        levels: rows,
        last_ok: Some(10.0),
        first_broken: Some(20.0),
        min_sustainable: None,
    });
    r
}

fn compared(r: RunReport) -> RunReport {
    let base = report("s", 8.0);
    let mut cur = r;
    let c = crate::baseline::compare(&base, "baselines/s.json", &cur, &crate::result::RuleSet::default()).unwrap();
    cur.comparison = Some(c);
    cur
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn parse(html: &str) -> Html {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    doc
}

/// The captions of the figures that hold a plot with axis labels and at least one drawn line.
fn plots(doc: &Html) -> Vec<String> {
    let mut found = Vec::new();
    for fig in doc.select(&sel("figure")) {
        let caption: String = fig.select(&sel("figcaption")).flat_map(|c| c.text()).collect();
        let Some(svg) = fig.select(&sel("svg")).next() else { continue };
        let texts: Vec<String> = svg.select(&sel("text")).map(|t| t.text().collect::<String>()).collect();
        let lines = svg.select(&sel("polyline, path")).count();
        if texts.iter().filter(|t| !t.trim().is_empty()).count() >= 4 && lines > 0 {
            found.push(caption);
        }
    }
    found
}

#[test]
fn every_plot_is_inline_svg_with_axes_and_data() {
    let r = with_levels(compared(report("s", 10.0)));
    let html = ReportFormat::Html.render(&r);
    let doc = parse(&html);
    let got = plots(&doc);
    for want in [
        "Latency percentiles per second",
        "Throughput and errors",
        "Active users and requests in flight",
        "Latency by percentile",
        "Time to first token",
        "Inter-chunk latency",
        "p95 latency and error rate by load level",
    ] {
        assert!(got.iter().any(|c| c.starts_with(want)), "no plot `{want}` in {got:?}");
    }
    // The log percentile axis is labelled in percent; the latency axis of the time plots in ms.
    let text: String = doc.select(&sel("svg text")).flat_map(|t| t.text()).collect::<Vec<_>>().join("|");
    for tick in ["0%", "90%", "99%", "99.9%", "99.99%", "latency (ms)", "elapsed (s)", "error rate (%)"] {
        assert!(text.contains(tick), "no axis text `{tick}`");
    }
    // The baseline is overlaid on the latency distribution.
    let legends: String = doc.select(&sel(".legend")).flat_map(|t| t.text()).collect();
    assert!(legends.contains("baseline"), "{legends}");
    assert!(html.contains("compared with baseline"));
}

#[test]
fn the_page_is_self_contained() {
    let html = ReportFormat::Html.render(&with_levels(compared(report("s", 10.0))));
    let doc = parse(&html);
    assert_eq!(doc.select(&sel("script, link, iframe, img, object, embed")).count(), 0);
    for el in doc.select(&sel("*")) {
        for (name, value) in el.value().attrs() {
            match name {
                "src" | "xlink:href" | "action" | "srcset" => panic!("external resource {name}={value}"),
                "href" => assert!(value.starts_with('#'), "link out of the page: {value}"),
                "style" => assert!(!value.contains("url("), "{value}"),
                _ => assert!(!value.contains("://") || name == "aria-label", "URL in {name}={value}"),
            }
        }
    }
    let css: String = doc.select(&sel("style")).flat_map(|s| s.text()).collect();
    assert!(!css.contains("@import") && !css.contains("url("));
}

#[test]
fn text_from_the_report_is_escaped() {
    let mut r = report("<script>alert(1)</script>", 10.0);
    r.steps[0].name = "<img src=x onerror=alert(2)>".into();
    r.thresholds.push(crate::result::Verdict {
        threshold: "latency{step:<b>} : p(95) < 1ms".into(),
        observed: Some(12.0),
        unit: "ms".into(),
        pass: false,
        aborted_run: false,
    });
    let html = ReportFormat::Html.render(&r);
    let doc = parse(&html);
    assert_eq!(doc.select(&sel("script, img, td b, h1 script")).count(), 0, "markup from the report was not escaped");
    let title: String = doc.select(&sel("title")).flat_map(|t| t.text()).collect();
    assert!(title.contains("<script>alert(1)</script>"), "{title}");
    let h1: String = doc.select(&sel("h1 code")).flat_map(|t| t.text()).collect();
    assert_eq!(h1, "<script>alert(1)</script>");
    // Served-model names are cleaned to a plain character set before they are stored.
    assert!(html.contains("&lt;Service Unavailable&gt;") && html.contains("fallback-_b_"));
    let badge: String = doc.select(&sel(".badge")).flat_map(|t| t.text()).collect();
    assert!(badge.starts_with("failed"), "{badge}");
}

#[test]
fn sections_carry_the_summary_models_errors_and_gates() {
    let r = compared(report("s", 10.0));
    let doc = parse(&ReportFormat::Html.render(&r));
    let ids: Vec<&str> = doc.select(&sel("h2")).filter_map(|h| h.value().attr("id")).collect();
    assert_eq!(ids, ["summary", "gates", "over-time", "distributions", "llm", "errors"]);
    let summary: Vec<String> =
        doc.select(&sel("#summary + .scroll tr.total td")).map(|t| t.text().collect::<String>()).collect();
    assert_eq!(summary[1], "Aggregated");
    assert_eq!(summary[2], "603");
    let cells: String = doc.select(&sel("td")).flat_map(|t| t.text()).collect::<Vec<_>>().join("|");
    assert!(cells.contains("tier-1") && cells.contains("80.0%"), "served models: {cells}");
    assert!(cells.contains("status:503"));
}

#[test]
fn a_run_without_requests_still_renders() {
    let mut r = report("empty", 10.0);
    let empty = crate::result::Histograms::of(&StepStats::default());
    r.histograms = empty.clone();
    r.steps[0].histograms = empty;
    r.series.clear();
    r.steps[0].stats.llm = None;
    r.totals.llm = None;
    let html = ReportFormat::Html.render(&r);
    let doc = parse(&html);
    assert!(plots(&doc).is_empty());
    assert!(html.contains("no successful request") && html.contains("no per-second points"));
}

#[test]
fn a_corrupt_histogram_is_a_note_not_a_panic() {
    let mut r = report("s", 10.0);
    r.steps[0].histograms.ttft = "not base64!".into();
    let html = ReportFormat::Html.render(&r);
    assert!(html.contains("step `chat` ttft histogram: not base64"), "corrupt ttft not reported");
    assert!(plots(&parse(&html)).iter().any(|c| c.starts_with("Inter-chunk")));
}

#[test]
fn downsampling_keeps_spikes_and_gaps() {
    let mut pts: Vec<(f64, Option<f64>)> = (0..3600).map(|t| (t as f64, Some(10.0))).collect();
    pts[1234].1 = Some(500.0);
    pts[2000].1 = Some(0.5);
    for p in &mut pts[3000..3100] {
        p.1 = None;
    }
    let segs = downsample(&pts, 400);
    assert_eq!(segs.len(), 2, "the gap breaks the line");
    let all: Vec<(f64, f64)> = segs.iter().flatten().copied().collect();
    assert!(all.len() <= 800, "{} points", all.len());
    assert!(all.iter().any(|p| p.1 == 500.0) && all.iter().any(|p| p.1 == 0.5), "spikes lost");
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "points out of time order");
    // Few points are drawn as they are.
    assert_eq!(downsample(&pts[..100], 400)[0].len(), 100);
}

#[test]
fn percentile_axis_ticks() {
    let labels: Vec<String> = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 2.5].iter().map(|&x| percentile_label(x)).collect();
    assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", ""]);
}

#[test]
fn esc_escapes_markup_and_quotes() {
    assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}
