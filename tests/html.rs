//! `report.html` from a real short run against the embedded mock: one self-contained page whose every plot is an
//! inline SVG with axis labels and data, TTFT and ICL included for the streamed step.

use scraper::{Html, Selector};

use crate::common::{run, text};

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

#[test]
fn a_smoke_run_writes_a_self_contained_report_with_every_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(&["run", "scenarios/smoke.toml", "--duration", "3s", "--out", out.to_str().unwrap(), "--quiet"]);
    // The smoke SLO may fail on a loaded machine; the report is written either way.
    assert!(matches!(o.status.code(), Some(0 | 1)), "stderr: {}", text(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written beside result.json");
    assert!(out.join("result.json").exists());

    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    assert_eq!(doc.select(&sel("script, link, img, iframe")).count(), 0);
    for el in doc.select(&sel("[href]")) {
        let href = el.value().attr("href").unwrap_or_default();
        assert!(href.starts_with('#'), "link out of the page: {href}");
    }
    assert_eq!(doc.select(&sel("[src]")).count(), 0);

    let mut plotted = Vec::new();
    for fig in doc.select(&sel("figure")) {
        let caption: String = fig.select(&sel("figcaption")).flat_map(|c| c.text()).collect();
        let svg = fig.select(&sel("svg")).next().unwrap_or_else(|| panic!("`{caption}` has no inline svg"));
        let labels = svg.select(&sel("text")).filter(|t| !t.text().collect::<String>().trim().is_empty()).count();
        let points: usize = svg
            .select(&sel("polyline"))
            .map(|p| p.value().attr("points").unwrap_or_default().split_whitespace().count())
            .sum();
        assert!(labels >= 4 && points >= 2, "`{caption}`: {labels} axis labels, {points} points");
        plotted.push(caption);
    }
    for want in [
        "Latency percentiles",
        "Throughput",
        "Active users",
        "Latency by percentile",
        "Time to first token (TTFT) by percentile",
        "Time to first token per second",
        "Inter-chunk",
    ] {
        assert!(plotted.iter().any(|c| c.starts_with(want)), "no `{want}` plot in {plotted:?}");
    }
    let title: String = doc.select(&sel("h1 code")).flat_map(|t| t.text()).collect();
    assert_eq!(title, "smoke");
}
