//! Server text in every renderer: control characters and escape sequences come out as visible text, never raw.

use crate::metrics::{ErrorKind, ErrorSummary, StepStats};
use crate::report::ReportFormat;
use crate::result::RunReport;

/// An SGR color, an OSC title with BEL, an 8-bit CSI, DEL, a bidi override and a newline.
const HOSTILE: &str = "boom \x1b[31mred\x1b]0;pwned\x07 \u{9b}2J \x7f \u{202e}evil\nline two";

fn report() -> RunReport {
    let mut s = StepStats::default();
    s.record_ok(std::time::Duration::from_millis(10), std::time::Duration::from_millis(1), 10);
    s.record_err(ErrorKind::Status(500), 10, || HOSTILE.into());
    let mut r = crate::report::fixture::one_step(&format!("s{HOSTILE}"), "U", "chat", &s, 1.0);
    r.target.embedded_mock = false;
    r.target.url = format!("http://h/{HOSTILE}");
    r.errors = vec![ErrorSummary {
        user: "U".into(),
        step: "chat".into(),
        kind: "status:500".into(),
        count: 1,
        message: HOSTILE.into(),
    }];
    r
}

fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| (c.is_control() && !matches!(c, '\n' | '\t' | '\r')) || matches!(c, '\u{202a}'..='\u{202e}'))
        .collect()
}

#[test]
fn every_text_format_shows_server_controls_as_text() {
    let r = report();
    for f in [ReportFormat::Table, ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Junit, ReportFormat::Csv] {
        for (name, text) in f.files(&r) {
            assert_eq!(raw_controls(&text), Vec::<char>::new(), "{name}");
            // JUnit carries no server text (quick-junit drops the controls of names itself); the Locust stats
            // files carry no messages.
            if !matches!(name, "stats.csv" | "stats_history.csv" | "junit.xml") {
                assert!(text.contains("\\x1b[31mred"), "{name} shows the escape as text:\n{text}");
            }
        }
    }
}

#[test]
fn csv_keeps_its_line_ends_and_quotes_multi_line_messages() {
    let failures = ReportFormat::Csv.files(&report()).into_iter().find(|(n, _)| *n == "failures.csv").unwrap().1;
    assert!(failures.contains("\r\n"), "CRLF rows kept");
    let mut rd = ::csv::Reader::from_reader(failures.as_bytes());
    let rows: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0][2].contains("\\x1b[31mred") && rows[0][2].contains("\\u{9b}2J"), "{:?}", rows[0]);
}

#[test]
fn a_markdown_cell_stays_one_line() {
    let md = ReportFormat::Markdown.render(&report());
    let title = md.lines().next().unwrap();
    assert!(title.starts_with("### Load test `s") && title.contains("\\nline two"), "{title}");
}

#[test]
fn the_terminal_gets_no_secret_and_no_escape_sequence() {
    crate::redact::install(vec!["escape-tests-secret-7781".into()]);
    let line = "key ESCAPE-TESTS-SECRET-7781 said \x1b[2J\u{9b}31m\ntable\trow";
    assert_eq!(super::printable(line), "key *** said \\x1b[2J\\u{9b}31m\ntable\trow");
    assert!(matches!(super::printable("users 10 · 5.0 req/s"), std::borrow::Cow::Borrowed(_)));
}
