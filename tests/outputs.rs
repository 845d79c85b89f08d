//! Report files beyond result.json: Locust's CSV files, `--format`, the live NDJSON stream, HdrHistogram
//! interval logs, and `report` re-rendering a stored result.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::Value;

use crate::common::*;

/// Locust's headers, as locust/stats.py (2.47) writes them.
const LOCUST_STATS: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
    Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,\
    99.9%,99.99%,100%";
const LOCUST_HISTORY: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,\
    99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,\
    Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
const LOCUST_FAILURES: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";

/// Two user classes, three request steps and a delay; a fifth of the chat completions fail.
fn scenario(dir: &Path, load: &str) -> std::path::PathBuf {
    let body = format!(
        "[load]\n{load}\n{FAST_MOCK}error_rate = 0.2\n\
         [[user]]\nname = \"Chat\"\n\
         [[user.step]]\nname = \"ask\"\npost = \"/v1/chat/completions\"\n\
         json = {{ model = \"m\", messages = [{{ role = \"user\", content = \"hi\" }}] }}\n\
         on_failure = \"continue\"\n\
         [[user.step]]\nname = \"pause\"\ndelay = \"1ms\"\n\
         [[user.step]]\nname = \"health\"\nget = \"/health\"\n\
         [[user]]\nname = \"Models\"\n[[user.step]]\nname = \"list\"\nget = \"/v1/models\"\n"
    );
    write(dir, "outputs.toml", &body)
}

fn csv_rows(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = text.split("\r\n").next().unwrap_or_default().to_string();
    let mut rd = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let rows = rd.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

fn n(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a count: {s}"))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn default_outputs_are_result_json_the_html_report_and_locusts_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path(), "users = 4\nduration = \"2s\"");
    let out = dir.path().join("o");
    let r = run_report(&p, &out, &["--seed", "5"]);
    assert_eq!(files_in(&out), ["failures.csv", "report.html", "result.json", "stats.csv", "stats_history.csv"]);

    let (header, rows) = csv_rows(&out.join("stats.csv"));
    assert_eq!(header, LOCUST_STATS);
    let names: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(
        names,
        [("POST", "Chat.ask"), ("GET", "Chat.health"), ("GET", "Models.list"), ("", "Aggregated")],
        "one row per request step (the delay has none), sorted by name, then Aggregated"
    );
    let t = &r["totals"];
    let agg = rows.last().unwrap();
    assert_eq!((n(&agg[2]), n(&agg[3])), (u(&t["requests"]), u(&t["failures"])), "Aggregated = totals");
    let steps = &rows[..rows.len() - 1];
    assert_eq!(steps.iter().map(|r| n(&r[2])).sum::<u64>(), u(&t["requests"]));
    assert_eq!(steps.iter().map(|r| n(&r[3])).sum::<u64>(), u(&t["failures"]));
    assert!(u(&t["failures"]) > 0, "the mock failed some chat completions: {t}");
    assert!(agg[11..].iter().all(|v| v.parse::<u64>().is_ok()), "whole-ms percentiles: {agg:?}");

    let (header, rows) = csv_rows(&out.join("stats_history.csv"));
    assert_eq!(header, LOCUST_HISTORY);
    assert_eq!(rows.len(), r["series"].as_array().unwrap().len(), "one Aggregated row per second");
    assert!(rows.iter().all(|row| row[2].is_empty() && row[3] == "Aggregated"));
    let last = rows.last().unwrap();
    assert_eq!((n(&last[17]), n(&last[18])), (u(&t["requests"]), u(&t["failures"])), "the totals so far");

    let (header, rows) = csv_rows(&out.join("failures.csv"));
    assert_eq!(header, LOCUST_FAILURES);
    assert_eq!(rows.iter().map(|r| n(&r[3])).sum::<u64>(), u(&t["failures"]));
    assert!(rows.iter().all(|r| r[0] == "POST" && r[1] == "Chat.ask"), "{rows:?}");
}

#[test]
fn ndjson_streams_one_object_per_second_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path(), "users = 4\nduration = \"3s\"");
    let out = dir.path().join("o");
    let live = dir.path().join("live/run.ndjson");
    let mut child = bin()
        .args(["run", p.to_str().unwrap(), "--quiet", "--seed", "2", "--out", out.to_str().unwrap()])
        .args(["--ndjson", live.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // `tail -f`: a whole line is on disk while the run still goes on.
    let mut seen_live = false;
    while child.try_wait().unwrap().is_none() {
        let lines = std::fs::File::open(&live).map(|f| std::io::BufReader::new(f).lines().count()).unwrap_or(0);
        if lines > 0 {
            seen_live = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    assert!(seen_live, "no line was written before the run ended");

    let r = read_report(&out);
    let lines: Vec<Value> = std::fs::read_to_string(&live)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!((3..=5).contains(&lines.len()), "about one line per second of a 3 s run, got {}", lines.len());
    let sum = |k: &str| lines.iter().map(|l| u(&l[k])).sum::<u64>();
    assert_eq!(sum("requests"), u(&r["totals"]["requests"]));
    assert_eq!(sum("failures"), u(&r["totals"]["failures"]));
    let per_step: u64 = lines.iter().flat_map(|l| l["steps"].as_array().unwrap()).map(|s| u(&s["requests"])).sum();
    assert_eq!(per_step, u(&r["totals"]["requests"]), "per-step counts add up too");
    let last = lines.last().unwrap();
    assert_eq!(u(&last["cumulative"]["requests"]), u(&r["totals"]["requests"]));
    assert!(lines.windows(2).all(|w| w[0]["elapsed_s"].as_f64() < w[1]["elapsed_s"].as_f64()));
    assert_eq!(lines[0]["steps"].as_array().unwrap().len(), 3, "request steps only: {}", lines[0]);
}

#[test]
fn hlog_files_hold_every_successful_request_of_their_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path(), "users = 4\nduration = \"2s\"");
    let out = dir.path().join("o");
    let r = run_report(&p, &out, &["--seed", "9", "--format", "hlog"]);
    assert_eq!(files_in(&out), ["hlog", "result.json"], "--format replaces the defaults; result.json stays");
    assert_eq!(files_in(&out.join("hlog")), ["Chat.ask.hlog", "Chat.health.hlog", "Models.list.hlog"]);
    for s in r["steps"].as_array().unwrap() {
        let file =
            out.join("hlog").join(format!("{}.{}.hlog", s["user"].as_str().unwrap(), s["name"].as_str().unwrap()));
        let text = std::fs::read(&file).unwrap();
        let mut count = 0;
        let mut intervals = 0;
        for e in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(i) = e.unwrap_or_else(|e| panic!("{}: {e:?}", file.display())) {
                let bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, i.encoded_histogram()).unwrap();
                let h: hdrhistogram::Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                count += h.len();
                intervals += 1;
            }
        }
        let st = &s["stats"];
        assert_eq!(count, u(&st["requests"]) - u(&st["failures"]), "{}: successful requests", file.display());
        assert!(intervals >= 2, "one interval per second: {intervals}");
    }
}

#[test]
fn report_renders_a_stored_result_again() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path(), "users = 2\niterations = 30");
    let out = dir.path().join("o");
    run_report(&p, &out, &["--seed", "4", "--format", "csv,md,junit,html"]);
    assert_eq!(
        files_in(&out),
        ["failures.csv", "junit.xml", "report.html", "result.json", "stats.csv", "stats_history.csv", "summary.md"]
    );
    let again = dir.path().join("again");
    let o = run(&[
        "report",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "--format",
        "json,junit,html",
        "-o",
        again.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for f in ["stats.csv", "stats_history.csv", "failures.csv", "result.json", "junit.xml", "report.html"] {
        let a = std::fs::read_to_string(out.join(f)).unwrap();
        let b = std::fs::read_to_string(again.join(f)).unwrap();
        assert_eq!(a, b, "{f} renders the same from the stored result");
    }
    // Without --out, a text format goes to stdout; without --format, the summary table.
    let o = run(&["report", out.join("result.json").to_str().unwrap(), "--format", "md"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), std::fs::read_to_string(out.join("summary.md")).unwrap());
    let o = run(&["report", out.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("Aggregated"), "{}", text(&o.stdout));

    for (args, names) in [
        (vec!["--format", "pdf"], "--format"),
        (vec!["--format", "hlog"], "--format"),
        (vec!["--format", "json", "--bogus"], "--bogus"),
    ] {
        let o = run(&[&["report", out.to_str().unwrap()][..], &args].concat());
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).contains(names), "{args:?}: {}", text(&o.stderr));
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1, \"tool\": 3}").unwrap();
    let o = run(&["report", bad.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stderr).lines().count(), 1, "one line: {}", text(&o.stderr));
}

#[test]
fn bad_output_flags_exit_2_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario(dir.path(), "users = 1\nduration = \"30s\"");
    for (flag, value) in [("--format", "pdf"), ("--ndjson", dir.path().to_str().unwrap())] {
        let out = dir.path().join("o");
        let o = run(&["run", p.to_str().unwrap(), "--quiet", "--out", out.to_str().unwrap(), flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let err = text(&o.stderr);
        assert!(err.starts_with(&format!("error: {flag}:")) && err.lines().count() == 1, "{err}");
        assert!(!out.exists(), "refused before the run: nothing written");
    }
}
