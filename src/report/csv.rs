//! Locust's CSV files (`--csv`): `stats.csv`, `stats_history.csv` and `failures.csv`, with Locust's column
//! headers and row conventions (locust/stats.py, `StatsCSV` and `StatsCSVFileWriter`; checked against the output
//! of Locust 2.47), so the spreadsheets, notebooks and dashboards built on Locust's output read ours unchanged:
//!
//! - a row per request type (`Type` = HTTP method, `Name`), sorted by name then method, then the `Aggregated`
//!   row with an empty `Type`;
//! - percentiles as whole milliseconds, `N/A` when there is nothing to take them from;
//! - floats as Python prints them (`2635.0`), rates in `stats_history.csv` with six decimals (Locust's
//!   `f"{rps:2f}"`), `Timestamp` as whole Unix seconds.
//!
//! Where we differ, it is because we measure differently: percentiles come from the step's HdrHistogram (3
//! significant digits) rather than Locust's two-digit buckets, latency columns are of successful requests only
//! (Locust mixes failed ones in), the history's percentiles are of each one-second interval (Locust's are
//! cumulative, or of a ~10 s window with `--csv-full-history`), and `First Seen`/`Last Seen` of `failures.csv`
//! stay empty. The history holds the `Aggregated` rows only, as Locust's default does: the report keeps no
//! per-step series.

use std::time::{Duration, UNIX_EPOCH};

use crate::metrics::{Hist, RequestSummary, SeriesPoint, decode_histogram};
use crate::result::RunReport;

/// Locust's `PERCENTILES_TO_REPORT`, with their column names (`get_readable_percentiles`).
const PERCENTILES: [(f64, &str); 11] = [
    (0.50, "50%"),
    (0.66, "66%"),
    (0.75, "75%"),
    (0.80, "80%"),
    (0.90, "90%"),
    (0.95, "95%"),
    (0.98, "98%"),
    (0.99, "99%"),
    (0.999, "99.9%"),
    (0.9999, "99.99%"),
    (1.0, "100%"),
];

const STATS_LEAD: [&str; 11] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];
const HISTORY_LEAD: [&str; 6] = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"];
const HISTORY_TAIL: [&str; 7] = [
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];
/// Recent Locust (2.47 checked) adds `First Seen` and `Last Seen` (UTC times), empty when it does not know them;
/// ours are always empty: errors are counted per kind, not timed.
pub const FAILURES_HEADER: [&str; 6] = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"];

/// The three files, as written to the report directory.
#[derive(Debug, Clone, PartialEq)]
pub struct LocustCsv {
    pub stats: String,
    pub stats_history: String,
    pub failures: String,
}

pub fn stats_header() -> Vec<&'static str> {
    STATS_LEAD.iter().copied().chain(PERCENTILES.iter().map(|p| p.1)).collect()
}

pub fn history_header() -> Vec<&'static str> {
    HISTORY_LEAD.iter().copied().chain(PERCENTILES.iter().map(|p| p.1)).chain(HISTORY_TAIL).collect()
}

/// A float as Python's `repr` writes it (`2635.0`, `87.52131665823981`): Rust's `Debug` agrees on both.
fn py(v: f64) -> String {
    format!("{v:?}")
}

/// Whole milliseconds, as Locust's integer response-time buckets are written.
fn whole_ms(ms: f64) -> String {
    format!("{}", ms.round() as u64)
}

fn percentiles_of(h: Option<&Hist>) -> Vec<String> {
    match h.filter(|h| !h.is_empty()) {
        Some(h) => PERCENTILES.iter().map(|(q, _)| whole_ms(h.value_at_quantile(*q) as f64 / 1000.0)).collect(),
        None => vec!["N/A".to_string(); PERCENTILES.len()],
    }
}

/// A step's `Name`: the step name, qualified by its user class when the scenario has several (Locust keys its
/// rows by name and method alone and would merge them).
fn display_name(r: &RunReport, user: &str, step: &str) -> String {
    if r.steps.iter().any(|s| s.user != user) { format!("{user}.{step}") } else { step.to_string() }
}

/// `Type, Name, ...` for one row of `stats.csv`; `hist` is the decoded latency histogram.
fn stats_row(kind: &str, name: &str, s: &RequestSummary, hist: Option<&Hist>) -> Vec<String> {
    let l = s.latency.as_ref();
    let avg_size = if s.requests > 0 { py(s.bytes_received as f64 / s.requests as f64) } else { "0".into() };
    let mut row = vec![
        kind.to_string(),
        name.to_string(),
        s.requests.to_string(),
        s.failures.to_string(),
        l.map_or("0".into(), |l| whole_ms(l.p50_ms)),
        py(l.map_or(0.0, |l| l.mean_ms)),
        l.map_or("0".into(), |l| py(l.min_ms)),
        l.map_or("0".into(), |l| py(l.max_ms)),
        avg_size,
        py(s.rps),
        py(s.failures_per_s),
    ];
    row.extend(percentiles_of(hist));
    row
}

fn history_row(timestamp: u64, p: &SeriesPoint, running: (u64, u64)) -> Vec<String> {
    let per_s = |n: u64| format!("{:.6}", if p.duration_s > 0.0 { n as f64 / p.duration_s } else { 0.0 });
    let mut row = vec![timestamp.to_string(), p.users.to_string(), String::new(), "Aggregated".into()];
    row.push(format!("{:.6}", p.rps));
    row.push(per_s(p.failures));
    let columns = [
        p.p50_ms, p.p66_ms, p.p75_ms, p.p80_ms, p.p90_ms, p.p95_ms, p.p98_ms, p.p99_ms, p.p999_ms, p.p9999_ms, p.max_ms,
    ];
    // Locust writes N/A for the whole set when nothing was measured; a result from before the full set was
    // kept has holes, shown the same way.
    row.extend(columns.iter().map(|v| match (p.p50_ms, v) {
        (Some(_), Some(v)) => whole_ms(*v),
        _ => "N/A".to_string(),
    }));
    let c = p.cumulative.clone().unwrap_or_default();
    let (requests, failures) = if p.cumulative.is_some() { (c.requests, c.failures) } else { running };
    row.extend([
        requests.to_string(),
        failures.to_string(),
        c.p50_ms.map_or("0".into(), whole_ms),
        py(c.mean_ms.unwrap_or(0.0)),
        c.min_ms.map_or("0".into(), py),
        c.max_ms.map_or("0".into(), py),
        // Locust's average of nothing is the integer 0.
        if requests > 0 { py(c.avg_bytes) } else { "0".into() },
    ]);
    row
}

fn to_csv<I: IntoIterator<Item = Vec<String>>>(header: &[&str], rows: I) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    // Writing to memory cannot fail; a row that did would only be missing, never a panic.
    let _ = w.write_record(header);
    for row in rows {
        // Fields may carry server text: control characters become visible text; newlines are quoted by CSV.
        let _ = w.write_record(row.into_iter().map(super::visible));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Renders the three files; histograms that do not decode count as empty (`read_result` has checked them).
pub fn render(r: &RunReport) -> LocustCsv {
    let mut steps: Vec<_> = r.steps.iter().map(|s| (display_name(r, &s.user, &s.name), s)).collect();
    steps.sort_by(|a, b| (&a.0, &a.1.method).cmp(&(&b.0, &b.1.method)));
    let mut rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(name, s)| stats_row(&s.method, name, &s.stats, decode_histogram(&s.histograms.latency).ok().as_ref()))
        .collect();
    rows.push(stats_row("", "Aggregated", &r.totals, decode_histogram(&r.histograms.latency).ok().as_ref()));
    let stats = to_csv(&stats_header(), rows);

    let start = humantime::parse_rfc3339_weak(&r.started_at).ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let start = start.unwrap_or(Duration::ZERO).as_secs_f64();
    let mut running = (0, 0);
    let history = r.series.iter().map(|p| {
        running = (running.0 + p.requests, running.1 + p.failures);
        // Locust stamps a row when it is written, at the end of the interval it describes.
        history_row((start + p.t_s + p.duration_s).floor() as u64, p, running)
    });
    let stats_history = to_csv(&history_header(), history.collect::<Vec<_>>());

    let failures = r.errors.iter().map(|e| {
        let method = r.steps.iter().find(|s| s.user == e.user && s.name == e.step).map_or("", |s| s.method.as_str());
        let error = if e.message.is_empty() { e.kind.clone() } else { format!("{}: {}", e.kind, e.message) };
        vec![
            method.to_string(),
            display_name(r, &e.user, &e.step),
            error,
            e.count.to_string(),
            String::new(),
            String::new(),
        ]
    });
    let failures = to_csv(&FAILURES_HEADER, failures.collect::<Vec<_>>());
    LocustCsv { stats, stats_history, failures }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{ErrorKind, ErrorSummary, StepStats, encode_histogram, request_summary};

    /// Locust's headers as `StatsCSVFileWriter` writes them (checked against Locust 2.47's output).
    const LOCUST_STATS: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
        Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,\
        99%,99.9%,99.99%,100%";
    const LOCUST_HISTORY: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,\
        98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,\
        Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
    const LOCUST_FAILURES: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";

    fn step(ok_ms: &[u64], failed: u64) -> StepStats {
        let mut s = StepStats::default();
        for ms in ok_ms {
            s.record_ok(Duration::from_millis(*ms), Duration::from_millis(1), 100);
        }
        for _ in 0..failed {
            s.record_err(ErrorKind::Status(503), 10, || "unexpected status 503".into());
        }
        s
    }

    /// Two user classes: `U.search` (GET, all good), `U.chat` (POST, some failed) and `V.chat` (POST, all failed).
    fn report() -> RunReport {
        let steps = [("U", "search", "GET", step(&[10, 20, 30, 40], 0)), ("U", "chat", "POST", step(&[100, 200], 1))];
        let steps = steps.into_iter().chain([("V", "chat", "POST", step(&[], 2))]);
        let elapsed = Duration::from_secs(2);
        let mut total = StepStats::default();
        let mut reports = Vec::new();
        for (user, name, method, s) in steps {
            total.add(&s);
            reports.push(serde_json::json!({
                "user": user, "name": name, "method": method, "path": "/x",
                "stats": request_summary(&s, elapsed),
                "histograms": { "latency": encode_histogram(&s.latency), "ttfb": encode_histogram(&s.ttfb) },
            }));
        }
        let errors: Vec<ErrorSummary> = [("U", "chat", 1), ("V", "chat", 2)]
            .into_iter()
            .map(|(u, s, count)| ErrorSummary {
                user: u.into(),
                step: s.into(),
                kind: "status:503".into(),
                count,
                message: "unexpected status 503".into(),
            })
            .collect();
        let first = crate::metrics::series_point(0.0, 1.0, &total, &total, 3, 1);
        let empty = crate::metrics::series_point(1.0, 0.5, &StepStats::default(), &total, 0, 0);
        let r = serde_json::json!({
            "schema_version": crate::result::SCHEMA_VERSION,
            "tool": { "name": "run-load-test", "version": "0" },
            "scenario": { "name": "s", "description": "", "file": "s.toml", "hash": "sha256:0", "tags": [] },
            "target": { "url": "http://127.0.0.1:1", "embedded_mock": true },
            "load": { "model": "closed", "users": 3, "spawn_rate": null, "rate": null, "arrival": null,
                "max_in_flight": null, "duration_s": 2.0, "iterations": null, "seed": 1, "timeout_s": 1.0,
                "graceful_stop_s": 1.0, "tags": [], "exclude_tags": [] },
            "started_at": "2026-11-30T10:00:00.600Z", "ended_at": "2026-11-30T10:00:02.100Z", "duration_s": 1.5,
            "status": "completed", "stop_reason": "duration_elapsed",
            "totals": request_summary(&total, elapsed),
            "steps": reports, "flows": [], "errors": errors, "series": [first, empty],
            "generator": { "workers": 1, "cpu_s": 0.1, "requests_per_cpu_s": 1.0, "cpu_utilization": 0.1,
                "interrupted_requests": 0 },
            "histograms": { "latency": encode_histogram(&total.latency), "ttfb": encode_histogram(&total.ttfb) },
        });
        serde_json::from_value(r).unwrap()
    }

    fn rows(text: &str) -> Vec<Vec<String>> {
        let mut rd = csv::ReaderBuilder::new().has_headers(false).from_reader(text.as_bytes());
        rd.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect()
    }

    #[test]
    fn headers_are_locusts_exactly() {
        let c = render(&report());
        assert_eq!(c.stats.split("\r\n").next(), Some(LOCUST_STATS));
        assert_eq!(c.stats_history.split("\r\n").next(), Some(LOCUST_HISTORY));
        assert_eq!(c.failures.split("\r\n").next(), Some(LOCUST_FAILURES));
        assert!(c.stats.ends_with("\r\n"), "Python's csv module ends rows with CRLF");
    }

    #[test]
    fn rows_are_sorted_by_name_and_aggregated_equals_the_totals() {
        let r = report();
        let rows = rows(&render(&r).stats);
        let names: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
        assert_eq!(names, [("POST", "U.chat"), ("GET", "U.search"), ("POST", "V.chat"), ("", "Aggregated")]);
        let agg = rows.last().unwrap();
        assert_eq!(agg[2], r.totals.requests.to_string());
        assert_eq!((agg[2].as_str(), agg[3].as_str()), ("9", "3"));
        let h = decode_histogram(&r.histograms.latency).unwrap();
        let expect: Vec<String> =
            PERCENTILES.iter().map(|(q, _)| format!("{}", (h.value_at_quantile(*q) as f64 / 1000.0).round())).collect();
        assert_eq!(agg[11..], expect[..]);
        assert_eq!(agg[21], "200", "100% is the maximum, in whole ms");
        assert_eq!(agg[4], agg[11], "the median is the 50% column");
        let l = r.totals.latency.as_ref().unwrap();
        assert_eq!((agg[5].clone(), agg[6].clone()), (format!("{:?}", l.mean_ms), format!("{:?}", l.min_ms)));
        assert_eq!(agg[8], format!("{:?}", (6.0 * 100.0 + 3.0 * 10.0) / 9.0), "bytes per request");
        assert_eq!((agg[9].as_str(), agg[10].as_str()), ("4.5", "1.5"), "Python floats");
        let search = &rows[2];
        let mean = r.steps[0].stats.latency.as_ref().unwrap().mean_ms;
        assert_eq!((search[4].clone(), search[5].clone()), ("20".into(), format!("{mean:?}")));
    }

    #[test]
    fn nothing_measured_is_na_and_zero() {
        let rows = rows(&render(&report()).stats);
        let failed_only = &rows[3];
        assert_eq!(failed_only[1], "V.chat");
        assert_eq!(failed_only[4..8], ["0", "0.0", "0", "0"]);
        assert!(failed_only[11..].iter().all(|v| v == "N/A"), "{failed_only:?}");
    }

    #[test]
    fn history_rows_follow_locusts_conventions() {
        let rows = rows(&render(&report()).stats_history);
        assert_eq!(rows.len(), 3);
        let (a, b) = (&rows[1], &rows[2]);
        // Started at …:00.600; the first interval ends at …:01.600, the second (half a second) at …:02.100.
        let start = humantime::parse_rfc3339("2026-11-30T10:00:00Z").unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(a[0], (start.as_secs() + 1).to_string());
        assert_eq!(b[0], (start.as_secs() + 2).to_string());
        assert_eq!(a[1..6], ["3", "", "Aggregated", "9.000000", "3.000000"]);
        assert_eq!(a[6], "30", "the interval's median");
        assert_eq!(b[4..6], ["0.000000", "0.000000"]);
        assert!(b[6..17].iter().all(|v| v == "N/A"), "an interval without successes: {b:?}");
        assert_eq!(b[17..19], ["9", "3"], "totals go on");
        assert_eq!(b[19], a[6], "the total median");
    }

    #[test]
    fn failures_carry_method_name_error_and_count() {
        let rows = rows(&render(&report()).failures);
        assert_eq!(rows[1], ["POST", "U.chat", "status:503: unexpected status 503", "1", "", ""]);
        assert_eq!(rows[2], ["POST", "V.chat", "status:503: unexpected status 503", "2", "", ""]);
    }

    #[test]
    fn one_user_class_keeps_plain_step_names() {
        let mut r = report();
        r.steps.retain(|s| s.user == "U");
        let rows = rows(&render(&r).stats);
        assert_eq!((rows[1][1].as_str(), rows[2][1].as_str()), ("chat", "search"));
    }
}
