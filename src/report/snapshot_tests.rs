//! Snapshots of every text renderer for one rich report (LLM step, failures, flows, thresholds, a baseline
//! comparison): a change of wording, precision or layout shows up as a diff in `snapshots/`. The report is built
//! from fixed numbers only, and the tool version is pinned, so a release does not change a snapshot.

use crate::baseline::compare;
use crate::metrics::{ErrorSummary, FlowSummary};
use crate::report::ReportFormat;
use crate::report::fixture::llm_step;
use crate::result::RuleSet;
use crate::result::RunReport;
use crate::result::Verdict;

fn base(base_ms: f64) -> RunReport {
    let mut r = crate::report::fixture::one_step(
        "chat-gate",
        "ChatUser",
        "chat",
        &llm_step(base_ms, 400, "fallback-model", "503 Service Unavailable"),
        20.0,
    );
    // Pinned so that a release (a new version) changes no snapshot.
    r.tool.version = "0.0.0-snapshot".into();
    r
}

/// The report every snapshot renders: the fixture's one step made rich, judged by thresholds and a baseline.
fn report() -> RunReport {
    let mut r = base(12.0);
    r.scenario.description = "chat through the gateway".into();
    r.load.spawn_rate = Some(5.0);
    r.generator.bottleneck = Some("generator CPU saturated (97%)".into());
    r.generator.interrupted_requests = 2;
    r.errors = vec![ErrorSummary {
        user: "ChatUser".into(),
        step: "chat".into(),
        kind: "status:503".into(),
        count: 3,
        message: "503 Service Unavailable".into(),
    }];
    r.flows = vec![FlowSummary {
        user: "ChatUser".into(),
        completed: 400,
        failed: 3,
        flows_per_s: 20.15,
        latency: r.totals.latency.clone(),
        steps_mean: 1.0,
        steps_max: 1,
        cost_per_flow_usd: 0.0001,
        latency_histogram: String::new(),
        steps_histogram: String::new(),
    }];
    r.thresholds = vec![
        Verdict {
            threshold: "http_req_duration: p(95) < 50".into(),
            observed: r.totals.latency.as_ref().map(|l| l.p95_ms),
            unit: "ms".into(),
            pass: true,
            aborted_run: false,
        },
        Verdict {
            threshold: "http_req_failed: rate < 0.001".into(),
            observed: Some(r.totals.failure_rate),
            unit: String::new(),
            pass: false,
            aborted_run: false,
        },
    ];
    let c = compare(&base(10.0), "baselines/chat-gate.json", &r, &RuleSet::default()).expect("comparable reports");
    r.comparison = Some(c);
    r.environment = Some(crate::report::fixture::disturbed_environment());
    r
}

fn render(format: ReportFormat) -> String {
    format.render(&report())
}

/// `report.html` without its plots and style: the SVG is plotters' output, checked by the HTML tests; the text
/// around it is what a reader reads.
fn html_text() -> String {
    let html = render(ReportFormat::Html);
    elide(&elide(&html, "<style", "</style>"), "<svg", "</svg>")
}

/// `text` with every `open…close` element's content replaced by `…`.
fn elide(text: &str, open: &str, close: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        out.push_str(open);
        out.push_str(">…");
        out.push_str(close);
        rest = rest[start..].find(close).map_or("", |e| &rest[start + e + close.len()..]);
    }
    out.push_str(rest);
    out
}

#[test]
fn terminal_summary() {
    insta::assert_snapshot!(render(ReportFormat::Table));
}

#[test]
fn markdown() {
    insta::assert_snapshot!(render(ReportFormat::Markdown));
}

#[test]
fn junit() {
    insta::assert_snapshot!(render(ReportFormat::Junit));
}

#[test]
fn csv_files() {
    let files = ReportFormat::Csv.files(&report());
    for (name, text) in files {
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn html_text_part() {
    insta::assert_snapshot!(html_text());
}

/// A report of `run --repeat 3` judged against a baseline of three runs: the runs table with its median and CV
/// rows, the CV warning (one run twice as slow), and the comparison's per-run column.
fn repeated() -> RunReport {
    let runs = |ms: [f64; 3]| {
        let mut runs: Vec<RunReport> = ms.iter().map(|&m| base(m)).collect();
        for (i, r) in runs.iter_mut().enumerate() {
            r.started_at = format!("2026-01-01T00:0{i}:00Z");
            let mut env = crate::report::fixture::disturbed_environment();
            env.disturbed = i == 2;
            r.environment = Some(env);
        }
        runs
    };
    let together = |runs: Vec<RunReport>| {
        let mut top = runs[0].clone();
        top.repeats = Some(crate::result::Repeats::of(runs));
        top
    };
    let b = together(runs([10.0, 10.2, 9.9]));
    let mut r = together(runs([10.1, 20.0, 10.3]));
    r.comparison = Some(compare(&b, "baselines/chat-gate.json", &r, &RuleSet::default()).expect("comparable"));
    r
}

#[test]
fn repeated_runs_in_the_terminal_and_markdown() {
    let r = repeated();
    insta::assert_snapshot!("repeated_terminal", ReportFormat::Table.render(&r));
    insta::assert_snapshot!("repeated_markdown", ReportFormat::Markdown.render(&r));
    let html = ReportFormat::Html.render(&r);
    assert!(html.contains("<h2 id=\"runs\">Runs</h2>") && html.contains("Current runs (CV)</th>"), "{html}");
}
