//! CI gates end to end: thresholds (JUnit, Markdown, `abort_on_fail`), baselines saved and compared (`run
//! --save-baseline`, `run --baseline`, `compare`), `[regression]` rules, `--mock` settings, and the exit code 2
//! of every broken input. Runs are short and against the embedded mock; asserts verdicts and content, not time.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus};
use serde_json::Value;

use crate::common::*;

/// A short streamed chat run, in the shape of scenarios/smoke.toml: 40 ms to the first token, then 7 more tokens
/// 20 ms apart, so a request takes about 180 ms and TPOT is about 20 ms. The pace is 4x smoke's so that a busy
/// machine's scheduling delays (a few ms, at times tens) stay small next to the mock's own times: an unchanged run
/// must not read as a regression because the machine got busier since the baseline (see `NOISE_RULES`).
const CHAT: &str = r#"name = "gates"
[load]
users = 4
duration = "3s"
[mock]
output_tokens = 8
first_token_delay = "40ms"
token_delay = "20ms"
[[user]]
name = "ChatUser"
  [[user.step]]
  name = "chat"
  post = "/v1/chat/completions"
  stream = true
  json = { model = "m", messages = [{ role = "user", content = "Is the gateway healthy?" }], stream = true }
  expect = { status = 200 }
"#;

/// The injected slowdown: twice the time between tokens (20 ms → 40 ms), about +78 % end to end.
const SLOWER: &str = "token_delay=40ms";

/// The rules of the baseline's scenario: TPOT keeps the built-in +10 % (the mock's token pace sets it, a busy
/// machine barely moves it); the metrics a busy machine does move (a tail such as TTFT p95 was seen +15 % in an
/// unchanged run under 8 CPU hogs) tolerate +40 % and 20 ms, still far below what `SLOWER` adds.
const NOISE_RULES: &str = r#"[regression]
latency = { stats = ["p(50)", "p(95)", "p(99)"], relative = "40%", absolute = "20ms" }
ttfb = { relative = "40%", absolute = "20ms" }
ttft = { relative = "40%", absolute = "20ms" }
ttfo = { relative = "40%", absolute = "20ms" }
rps = { relative = "40%" }
output_tokens_per_s = { relative = "40%" }
"#;

/// A slowdown no noise can hide or fake (20 ms → 100 ms between tokens, about 4x end to end), for the test in which
/// rules must flip a verdict whatever the machine's load.
const MUCH_SLOWER: &str = "token_delay=100ms";

/// Lets even `MUCH_SLOWER` through on a busy machine: TPOT not compared, latency allowed +5000 %, every other
/// time metric +5000 % and 10 s, throughput -99 % and 10^6/s, errors +100 % (in a closed model fewer requests per
/// second follow from slower ones; a loaded machine may cut a slow request at the stop).
const RELAXED: &str = r#"[regression]
tpot = false
latency = { relative = "5000%" }
ttfb = { relative = "5000%", absolute = "10s" }
ttft = { relative = "5000%", absolute = "10s" }
ttfo = { relative = "5000%", absolute = "10s" }
icl = { relative = "5000%", absolute = "10s" }
ntpot = { relative = "5000%", absolute = "10s" }
flow_latency = { relative = "5000%", absolute = "10s" }
rps = { relative = "99%", absolute = 1000000 }
output_tokens_per_s = { relative = "99%", absolute = 1000000 }
errors = { relative = "5000%", absolute = 1 }
"#;

/// A baseline recorded once for the whole module, and the two runs judged against it.
struct Fixture {
    scenario: PathBuf,
    base: PathBuf,
    dir: PathBuf,
}

struct Judged {
    out: PathBuf,
    junit: PathBuf,
    run: Output,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        prune_old_fixtures();
        let dir = tempfile::Builder::new().prefix("gates-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
        let scenario = write(&dir, "gates.toml", &format!("{CHAT}{NOISE_RULES}"));
        let base = dir.join("baselines").join("gates.json");
        let o = gate_run(&scenario, &dir.join("base-run"), &["--save-baseline", base.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(base.is_file(), "--save-baseline PATH writes PATH, creating its directory");
        Fixture { scenario, base, dir }
    })
}

/// The fixture outlives the tests (a static is never dropped): earlier runs' directories are removed here.
fn prune_old_fixtures() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else { return };
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if e.file_name().to_string_lossy().starts_with("gates-") && old.is_some_and(|a| a.as_secs() > 600) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn judged(name: &str, extra: &[&str]) -> Judged {
    let f = fixture();
    let out = f.dir.join(name);
    let junit = f.dir.join(format!("{name}.xml"));
    let mut args = vec!["--baseline", f.base.to_str().unwrap(), "--junit", junit.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = gate_run(&f.scenario, &out, &args);
    Judged { out, junit, run }
}

/// The normal mock, judged against the baseline it recorded.
fn unchanged() -> &'static Judged {
    static J: OnceLock<Judged> = OnceLock::new();
    J.get_or_init(|| judged("unchanged", &[]))
}

/// The slowed mock, judged against the same baseline.
fn slowed() -> &'static Judged {
    static J: OnceLock<Judged> = OnceLock::new();
    J.get_or_init(|| judged("slowed", &["--mock", SLOWER]))
}

fn gate_run(scenario: &Path, out: &Path, extra: &[&str]) -> Output {
    let _quiet = timed();
    let mut args = vec!["run", scenario.to_str().unwrap(), "--quiet", "--seed", "1", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn rows(r: &Value) -> &Vec<Value> {
    r["comparison"]["rows"].as_array().unwrap_or_else(|| panic!("no comparison rows: {}", r["comparison"]))
}

fn row<'a>(r: &'a Value, metric: &str, stat: &str) -> &'a Value {
    rows(r)
        .iter()
        .find(|d| d["metric"] == metric && d["stat"] == stat)
        .unwrap_or_else(|| panic!("no row {metric} {stat} in {:#?}", rows(r)))
}

fn regressed(r: &Value) -> Vec<String> {
    rows(r)
        .iter()
        .filter(|d| d["verdict"] == "regression")
        .map(|d| format!("{} {}", d["metric"].as_str().unwrap(), d["stat"].as_str().unwrap()))
        .collect()
}

fn gate_lines(o: &Output) -> Vec<String> {
    text(&o.stderr).lines().filter(|l| l.starts_with("gate:")).map(str::to_string).collect()
}

fn junit(path: &Path) -> Report {
    let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Report::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("JUnit does not parse: {e}\n{xml}"))
}

fn case<'a>(r: &'a Report, name: &str) -> &'a TestCase {
    let all = || r.test_suites.iter().flat_map(|s| &s.test_cases);
    all().find(|c| c.name.as_str() == name).unwrap_or_else(|| {
        panic!("no test case `{name}`; cases: {:?}", all().map(|c| c.name.as_str()).collect::<Vec<_>>())
    })
}

/// The failure message of a test case that must have failed.
fn failure_message(c: &TestCase) -> String {
    match &c.status {
        TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message: Some(m), .. } => m.as_str().to_string(),
        other => panic!("`{}` should be a failure: {other:?}", c.name.as_str()),
    }
}

fn is_success(c: &TestCase) -> bool {
    matches!(c.status, TestCaseStatus::Success { .. })
}

/// A latency as the reports print it (tens of ms: one decimal).
fn ms(v: f64) -> String {
    assert!((10.0..1000.0).contains(&v), "{v} ms is outside the range this helper formats");
    format!("{v:.1} ms")
}

/// Exit 2, no panic, one line naming `needle` (a file or a flag); no result.json, so no load was reported.
fn refused(o: &Output, needle: &str, out: &Path) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stdout: {}\nstderr: {err}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "names `{needle}`: {err}");
    assert!(!out.join("result.json").exists(), "failed before any result was written: {err}");
    err
}

/// `name:LINE:COL:` somewhere in `err`.
fn location(err: &str, name: &str) -> (u64, u64) {
    let at = err.find(&format!("{name}:")).unwrap_or_else(|| panic!("`{name}:` not in {err}")) + name.len() + 1;
    let mut parts = err[at..].splitn(3, ':');
    let mut num = || parts.next().and_then(|p| p.parse::<u64>().ok());
    match (num(), num()) {
        (Some(l), Some(c)) => (l, c),
        _ => panic!("no {name}:LINE:COL: in {err}"),
    }
}

#[test]
fn a_failing_threshold_is_exit_1_with_a_junit_failure_and_a_markdown_row() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(dir.path(), "gates.toml", CHAT);
    let (out, xml, md) = (dir.path().join("o"), dir.path().join("ci/junit.xml"), dir.path().join("summary.md"));
    let o = gate_run(
        &scenario,
        &out,
        &[
            "--duration",
            "2s",
            "--junit",
            xml.to_str().unwrap(),
            "--summary-md",
            md.to_str().unwrap(),
            "--threshold",
            "latency: p(95) < 1ms",
            "--threshold",
            "errors: rate < 0.01",
            "--threshold",
            "latency{step:chat}: p(50) < 10s",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let r = read_report(&out);
    let v = &r["thresholds"];
    assert_eq!((&v[0]["threshold"], &v[0]["pass"]), (&"latency: p(95) < 1ms".into(), &false.into()), "{v}");
    assert_eq!((&v[1]["pass"], &v[2]["pass"]), (&true.into(), &true.into()), "{v}");
    let observed = v[0]["observed"].as_f64().unwrap();
    assert_eq!(observed, r["totals"]["latency"]["p95_ms"].as_f64().unwrap(), "the verdict sees the reported p95");
    let gates = gate_lines(&o);
    assert_eq!(gates.len(), 1, "{gates:?}");
    assert!(gates[0].starts_with("gate: threshold `latency: p(95) < 1ms` failed: observed "), "{gates:?}");

    let report = junit(&xml);
    assert_eq!((report.tests, report.failures), (4, 1), "run + 3 thresholds, one failed");
    let failed = failure_message(case(&report, "latency: p(95) < 1ms"));
    assert!(failed.contains(&format!("observed {}", ms(observed))), "{failed}");
    for name in ["errors: rate < 0.01", "latency{step:chat}: p(50) < 10s", "run completed"] {
        assert!(is_success(case(&report, name)), "{name} passed: {:?}", case(&report, name).status);
    }

    let summary = std::fs::read_to_string(&md).expect("--summary-md written");
    assert!(summary.contains("`gates`: ❌ failed: 1 threshold(s), 0 regression(s)"), "{summary}");
    assert!(summary.contains(&format!("| `latency: p(95) < 1ms` | {} | ❌ FAIL |", ms(observed))), "{summary}");
    assert!(summary.contains("| `errors: rate < 0.01` | 0 | ✅ pass |"), "{summary}");
}

/// A copy of a stored result without its host reading, so that `compare` judges the numbers alone, as between two
/// quiet runs: what the gate's plumbing (rows, `gate:` lines, JUnit, exit codes) does with a regression must not
/// depend on how busy the machine running the tests was. What a busy host does to a verdict is
/// tests/gates/inconclusive.rs's business, on stored environments.
fn hostless(dir: &Path, name: &str, result: &Path) -> PathBuf {
    let file = if result.is_dir() { result.join("result.json") } else { result.to_path_buf() };
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("environment");
    write(dir, name, &v.to_string())
}

/// The live run's outcome where the host can only excuse, never fake: exit `want`, or exit 4 with every
/// inconclusive row citing the host (the test machine was too busy to judge, which the gate must say).
fn live_code(o: &Output, r: &Value, want: i32) -> i32 {
    let code = o.status.code().unwrap_or(-1);
    if code == 4 {
        let host = |d: &&Value| d["reason"].as_str().is_some_and(|x| x.starts_with("host "));
        let inconclusive: Vec<&Value> = rows(r).iter().filter(|d| d["verdict"] == "inconclusive").collect();
        assert!(!inconclusive.is_empty() && inconclusive.iter().all(host), "{:#?}", rows(r));
        assert!(regressed(r).is_empty(), "a regression is exit 1: {:#?}", rows(r));
    } else {
        assert_eq!(code, want, "{}", text(&o.stderr));
    }
    code
}

#[test]
fn a_slowdown_regresses_against_the_baseline_and_an_unchanged_run_does_not() {
    let f = fixture();
    let s = slowed();
    let r = read_report(&s.out);
    assert_eq!(r["comparison"]["baseline"]["file"], f.base.to_str().unwrap());
    // The mock really slowed down: 20 ms → 40 ms between tokens.
    let tpot = row(&r, "tpot", "p(50)");
    let (b, c) = (tpot["baseline"].as_f64().unwrap(), tpot["current"].as_f64().unwrap());
    assert!((18.0..24.0).contains(&b) && (36.0..44.0).contains(&c), "tpot {b} → {c}");
    assert!(tpot["delta_pct"].as_f64().unwrap() > 15.0 && tpot["higher_is_worse"] == true, "{tpot}");
    let (o, r, junit_path) = if live_code(&s.run, &r, 1) == 1 {
        (s.run.clone(), r, s.junit.clone())
    } else {
        // The host excused it live: the same two results judged on their numbers alone.
        let (base, cur) =
            (hostless(&f.dir, "base-hostless.json", &f.base), hostless(&f.dir, "slow-hostless.json", &s.out));
        let (junit_path, md) = (f.dir.join("slow-hostless.xml"), f.dir.join("slow-hostless.md"));
        let o = run(&[
            "compare",
            base.to_str().unwrap(),
            cur.to_str().unwrap(),
            "--junit",
            junit_path.to_str().unwrap(),
            "--summary-md",
            md.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        let mut r = r;
        // The rows compare judged, as the run would have stored them.
        let gates = gate_lines(&o);
        for d in r["comparison"]["rows"].as_array_mut().unwrap() {
            let name = format!("gate: {} {} regressed: ", d["metric"].as_str().unwrap(), d["stat"].as_str().unwrap());
            d["verdict"] = if gates.iter().any(|g| g.starts_with(&name)) { "regression" } else { "ok" }.into();
        }
        (o, r, junit_path)
    };
    let bad = regressed(&r);
    for want in ["tpot p(50)", "latency p(50)"] {
        assert!(bad.iter().any(|b| b == want), "{want} regressed: {:#?}", rows(&r));
    }
    // One `gate:` line per regressed row, naming it; nothing else fails.
    let gates = gate_lines(&o);
    assert_eq!(gates.len(), bad.len(), "{gates:?} vs {bad:?}");
    for b in &bad {
        assert!(gates.iter().any(|g| g.starts_with(&format!("gate: {b} regressed: "))), "{b}: {gates:?}");
    }
    let xml = junit(&junit_path);
    let msg = failure_message(case(&xml, "tpot p(50)"));
    assert!(msg.starts_with("tpot p(50) regressed: ") && msg.contains("ms →"), "{msg}");
    assert_eq!(xml.failures, bad.len(), "one JUnit failure per regression");

    let u = unchanged();
    let r = read_report(&u.out);
    if live_code(&u.run, &r, 0) == 0 {
        assert!(gate_lines(&u.run).is_empty(), "{}", text(&u.run.stderr));
        assert_eq!(junit(&u.junit).failures, 0);
    }
    assert!(regressed(&r).is_empty(), "{:#?}", rows(&r));
    assert!(rows(&r).iter().all(|d| d["verdict"] != "missing"), "{:#?}", rows(&r));
    assert_eq!(r["comparison"]["warnings"], serde_json::json!([]), "same scenario, same mock");
}

#[test]
fn a_saved_baseline_reads_back_exactly() {
    let f = fixture();
    let base: Value = serde_json::from_str(&std::fs::read_to_string(&f.base).unwrap()).unwrap();
    assert_eq!((&base["schema_version"], &base["status"]), (&5.into(), &"completed".into()));
    assert!(base["windows"].as_array().is_some_and(|w| w.len() >= 2), "a baseline keeps its windows");
    assert!(base["histograms"]["latency"].as_str().is_some_and(|h| h.len() > 10));
    assert!(base.get("comparison").is_none(), "a baseline is the run itself");

    // The same file on both sides: every statistic decodes to the same number.
    let dir = tempfile::tempdir().unwrap();
    let (md, xml) = (dir.path().join("cmp.md"), dir.path().join("cmp.xml"));
    let b = f.base.to_str().unwrap();
    let o = run(&["compare", b, b, "--summary-md", md.to_str().unwrap(), "--junit", xml.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("baseline gate: no regression in"), "{}", text(&o.stdout));
    let report = junit(&xml);
    let cases: Vec<&TestCase> =
        report.test_suites.iter().filter(|s| s.name.as_str() == "gates.baseline").flat_map(|s| &s.test_cases).collect();
    assert!(cases.len() >= 6, "latency ×3, ttft ×2, tpot, errors, rps: {}", cases.len());
    for c in &cases {
        let out = c.system_out.as_ref().map(|s| s.as_str()).unwrap_or_default();
        assert!(is_success(c) && out.starts_with("ok: delta +0.0"), "{}: {out}", c.name.as_str());
    }
    let summary = std::fs::read_to_string(&md).unwrap();
    let table: Vec<Vec<&str>> = summary
        .lines()
        .skip_while(|l| !l.starts_with("#### Against baseline"))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(table.len(), cases.len(), "{summary}");
    for cols in &table {
        // ["", metric, stat, baseline, current, delta, tolerated, verdict, ""]
        assert_eq!(cols[3], cols[4], "baseline = current: {cols:?}");
        assert!(cols[5].starts_with("+0.0") && cols[7] == "ok", "{cols:?}");
    }
    let lat = &base["totals"]["latency"];
    for (stat, key) in [("p(50)", "p50_ms"), ("p(95)", "p95_ms"), ("p(99)", "p99_ms")] {
        let want =
            format!("| `latency` | {stat} | {} | {} |", ms(lat[key].as_f64().unwrap()), ms(lat[key].as_f64().unwrap()));
        assert!(summary.contains(&want), "{want}\n{summary}");
    }

    // Read back by `run --baseline`: the percentiles recomputed from the stored histograms are the stored ones.
    let r = read_report(&unchanged().out);
    for (stat, key) in [("p(50)", "p50_ms"), ("p(95)", "p95_ms"), ("p(99)", "p99_ms")] {
        let stored = lat[key].as_f64().unwrap();
        assert_eq!(row(&r, "latency", stat)["baseline"].as_f64(), Some(stored), "latency {stat}");
    }
    let llm = &base["steps"][0]["stats"]["llm"];
    for (metric, stat, key) in [("ttft", "p(50)", "p50_ms"), ("ttft", "p(95)", "p95_ms"), ("tpot", "p(50)", "p50_ms")] {
        let stored = llm[metric][key].as_f64();
        assert!(stored.is_some(), "{metric}.{key} stored: {llm}");
        assert_eq!(row(&r, metric, stat)["baseline"].as_f64(), stored, "{metric} {stat}");
    }
}

#[test]
fn corrupt_or_incompatible_baselines_are_exit_2_before_any_load() {
    let f = fixture();
    let raw = std::fs::read_to_string(&f.base).unwrap();
    let good: Value = serde_json::from_str(&raw).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        Some(serde_json::to_string_pretty(&v).unwrap())
    };
    let mut half = raw.len() / 2;
    while !raw.is_char_boundary(half) {
        half -= 1;
    }
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing.json", None, "cannot read it"),
        ("not-json.json", Some("baseline: yes\n".into()), "not valid JSON"),
        ("truncated.json", Some(raw[..half].to_string()), "not valid JSON"),
        ("future.json", edited(&|v| v["schema_version"] = 999.into()), "result schema 999"),
        ("bad-histogram.json", edited(&|v| v["histograms"]["latency"] = "AAAA".into()), "latency histogram is corrupt"),
        (
            "not-base64.json",
            edited(&|v| v["histograms"]["latency"] = "%% not base64 %%".into()),
            "latency histogram is corrupt",
        ),
        (
            "bad-step-histogram.json",
            edited(&|v| v["steps"][0]["histograms"]["tpot"] = "AAAA".into()),
            "step `chat` tpot histogram is corrupt",
        ),
        ("not-a-result.json", Some(r#"{"name": "gates", "requests": 3}"#.into()), "not a run-load-test result"),
        ("other-object.json", Some(r#"{"schema_version": 1, "hello": "world"}"#.into()), "not a result"),
        ("array.json", Some("[1, 2, 3]".into()), "not a run-load-test result"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, body, why) in cases {
        let path = dir.path().join(name);
        if let Some(b) = body {
            std::fs::write(&path, b).unwrap();
        }
        let out = dir.path().join(format!("out-{name}"));
        let o = gate_run(&f.scenario, &out, &["--baseline", path.to_str().unwrap(), "--duration", "30s"]);
        let err = refused(&o, &format!("baseline {}", path.display()), &out);
        assert!(err.contains(why) && err.contains("--save-baseline"), "{name}: {err}");
        match name {
            "not-json.json" => assert_eq!(location(&err, name), (1, 1), "{err}"),
            "truncated.json" => assert!(location(&err, name).0 > 1, "{err}"),
            _ => {}
        }
    }
}

#[test]
fn compare_exit_codes() {
    let f = fixture();
    let b = f.base.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Silence needs a host reading that cannot be disturbed: a baseline recorded under steal notes it.
    let quiet_b = hostless(dir.path(), "self.json", &f.base);
    let o = run(&["compare", quiet_b.to_str().unwrap(), quiet_b.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "--quiet: {}", text(&o.stdout));

    let s = slowed();
    let live = read_report(&s.out);
    // A report directory or its result.json: the same verdict as `run --baseline` gave.
    for current in [s.out.clone(), s.out.join("result.json")] {
        let o = run(&["compare", b, current.to_str().unwrap(), "--quiet"]);
        assert_eq!(o.status.code(), s.run.status.code(), "{}", text(&o.stderr));
        let gates = gate_lines(&o);
        let judged = rows(&live).iter().filter(|d| d["verdict"] == "regression" || d["verdict"] == "inconclusive");
        assert_eq!(gates.iter().filter(|g| !g.starts_with("gate: inconclusive against")).count(), judged.count());
    }
    // On the numbers alone (no host reading: see `hostless`), the slowdown is exit 1 whatever the machine's load.
    let (hb, hs) = (hostless(dir.path(), "b.json", &f.base), hostless(dir.path(), "s.json", &s.out));
    let o = run(&["compare", hb.to_str().unwrap(), hs.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(gate_lines(&o).iter().any(|g| g.starts_with("gate: tpot p(50) regressed: ")), "{:?}", gate_lines(&o));
    let u = unchanged();
    let o = run(&["compare", b, u.out.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), u.run.status.code(), "{}", text(&o.stderr));
    assert!(matches!(o.status.code(), Some(0 | 4)), "{}", text(&o.stderr));

    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&f.base).unwrap()).unwrap();
    v["histograms"]["latency"] = "AAAA".into();
    let corrupt = write(dir.path(), "corrupt.json", &v.to_string());
    let c = corrupt.to_str().unwrap();
    let slow = s.out.to_str().unwrap();
    let missing = dir.path().join("missing.json");
    for (args, names) in [
        ([c, slow], format!("baseline {c}")),
        ([b, c], format!("result {c}")),
        ([b, missing.to_str().unwrap()], format!("result {}", missing.display())),
    ] {
        let o = run(&["compare", args[0], args[1], "--quiet"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(&names) && err.trim().lines().count() == 1, "{err}");
    }
}

const ABORTING: &str = "[load]\nusers = 4\nduration = \"30s\"\n\
    [mock]\noutput_tokens = 2\nfirst_token_delay = \"10ms\"\ntoken_delay = \"5ms\"\nerror_rate = 0.5\nerror_status = 503\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n\
    [thresholds]\nerrors = [{ threshold = \"rate < 0.01\", abort_on_fail = true, delay_abort_eval = \"2s\" }]\n\
    \"latency{step:chat}\" = [\"p(95) < 10s\"]\n";

#[test]
fn abort_on_fail_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "abort.toml", ABORTING);
    let (out, xml, base) = (dir.path().join("o"), dir.path().join("j.xml"), dir.path().join("b.json"));
    let o = gate_run(&p, &out, &["--junit", xml.to_str().unwrap(), "--save-baseline", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let r = read_report(&out);
    assert_eq!((&r["status"], &r["stop_reason"]), (&"aborted".into(), &"threshold_abort".into()));
    let d = r["duration_s"].as_f64().unwrap();
    assert!((2.0..10.0).contains(&d), "stopped after delay_abort_eval (2s), long before 30s: {d}");
    let v = r["thresholds"].as_array().unwrap();
    let by = |t: &str| v.iter().find(|x| x["threshold"] == t).unwrap_or_else(|| panic!("{t}: {v:?}"));
    let errors = by("errors: rate < 0.01");
    assert_eq!((&errors["pass"], &errors["aborted_run"]), (&false.into(), &true.into()), "{errors}");
    let observed = errors["observed"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&observed), "about half fail: {observed}");
    let lat = by("latency{step:chat}: p(95) < 10s");
    assert!(lat["pass"] == true && lat["aborted_run"] != true, "{lat}");
    let lines = gate_lines(&o);
    let shown = lines[0]
        .strip_prefix("gate: threshold `errors: rate < 0.01` failed: observed ")
        .and_then(|rest| rest.strip_suffix(" (aborted the run)"))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(lines.len() == 1 && (shown - observed).abs() < 1e-4, "{lines:?} vs {observed}");
    assert!(!base.exists(), "an aborted run is not saved as a baseline");
    assert!(text(&o.stderr).contains("baseline not saved"), "{}", text(&o.stderr));
    let report = junit(&xml);
    assert!(failure_message(case(&report, "run completed")).contains("abort_on_fail"));
    assert!(failure_message(case(&report, "errors: rate < 0.01")).contains("failed: observed"));
    assert!(is_success(case(&report, "latency{step:chat}: p(95) < 10s")));

    let body = ABORTING.replace("abort_on_fail = true, ", "");
    let p = write(dir.path(), "bad.toml", &body);
    let line = body.lines().position(|l| l.contains("delay_abort_eval")).unwrap() + 1;
    let o = gate_run(&p, &dir.path().join("x"), &[]);
    let err = refused(&o, "bad.toml:", &dir.path().join("x"));
    assert_eq!(location(&err, "bad.toml").0, line as u64, "{err}");
    assert!(err.contains("delay_abort_eval") && err.contains("abort_on_fail"), "{err}");
}

#[test]
fn regression_table_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let line = CHAT.lines().count() as u64 + 2;
    for (entry, why) in [
        ("nope = { relative = \"10%\" }", "unknown metric `nope`"),
        ("requests = { relative = \"10%\" }", "`requests` depends on the run's length"),
        ("latency = { relative = \"ten\" }", "invalid percentage `ten`"),
        ("latency = { relative = -5 }", "invalid percentage"),
        ("\"latency{step:nope}\" = { relative = \"10%\" }", "step `nope`"),
        ("latency = { stats = [\"rate\"] }", "cannot compare `rate`"),
        ("confidence = 2", "between 0.5 and 1"),
    ] {
        let p = write(dir.path(), "bad.toml", &format!("{CHAT}[regression]\n{entry}\n"));
        let out = dir.path().join("o");
        let err = refused(&gate_run(&p, &out, &[]), "bad.toml:", &out);
        assert_eq!(location(&err, "bad.toml").0, line, "{entry}: {err}");
        assert!(err.contains(why), "{entry}: {err}");
    }
}

/// The same data judged by two rule sets. Timing cannot decide it: the slowdown is 4x (the baseline's rules flag
/// it at +40 %) and the relaxed rules allow +5000 %, so a loaded machine neither hides nor fakes the difference.
#[test]
fn regression_rules_change_the_verdict() {
    let f = fixture();
    let relaxed = write(&f.dir, "relaxed.toml", &format!("{CHAT}{RELAXED}"));
    let much = judged("much-slower", &["--mock", MUCH_SLOWER]);
    let dir = tempfile::tempdir().unwrap();
    // Judged on the numbers alone (see `hostless`): a 4x slowdown is exit 1 under the baseline's rules on any machine.
    let (hb, hs) = (hostless(dir.path(), "b.json", &f.base), hostless(dir.path(), "s.json", &much.out));
    assert_eq!(run(&["compare", hb.to_str().unwrap(), hs.to_str().unwrap(), "--quiet"]).status.code(), Some(1));
    let (b, slow) = (f.base.to_str().unwrap(), much.out.to_str().unwrap());
    // The stored run passes under the relaxed rules.
    let o = run(&["compare", b, slow, "--scenario", relaxed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", text(&o.stdout), text(&o.stderr));

    // The same slowdown run live under the relaxed scenario passes too.
    let out = f.dir.join("relaxed-run");
    let o = gate_run(&relaxed, &out, &["--mock", MUCH_SLOWER, "--baseline", b]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = read_report(&out);
    assert!(regressed(&r).is_empty(), "{:#?}", rows(&r));
    assert!(rows(&r).iter().all(|d| d["metric"] != "tpot"), "tpot = false drops it: {:#?}", rows(&r));
    let lat = row(&r, "latency", "p(50)");
    let base_p50 = lat["baseline"].as_f64().unwrap();
    assert_eq!(lat["allowed"].as_f64(), Some(base_p50 * 50.0), "relative = 5000%");
    assert!(lat["delta_pct"].as_f64().unwrap() > 10.0, "the slowdown is there, just tolerated: {lat}");
    assert_eq!(r["regression"]["off"], serde_json::json!(["tpot"]));
    let w = r["comparison"]["warnings"].to_string();
    assert!(w.contains("scenario file changed"), "a different scenario file is a warning, not an error: {w}");
}

#[test]
fn mock_flag_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gates.toml", CHAT);
    let out = dir.path().join("o");
    for (args, why) in [
        (&["--mock", "bogus=1"][..], "unknown field `bogus`"),
        (&["--mock", "token_delay"], "not KEY=VALUE"),
        (&["--mock", "token_delay=soon"], "soon"),
        (&["--mock", "error_rate=2"], "error_rate"),
        (&["--mock", "token_delay=6ms", "--target", "http://127.0.0.1:9"], "--target"),
    ] {
        let err = refused(&gate_run(&p, &out, args), "--mock", &out);
        assert!(err.starts_with("error: --mock: ") && err.contains(why), "{args:?}: {err}");
    }
}

mod inconclusive;
mod repeats;
