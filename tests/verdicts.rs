//! Exit code 3, "the run measured nothing valid": fail fast on a wrong key or a closed port, no success in a 5xx
//! storm, a hung target counted, a worker panic; and a failing user that still thinks.
//! Bounds are counts or generous multiples of the configured durations, never timing luck.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// One streamed-off chat step, `{extra}` added to `[load]`, `{step}` to the step.
fn chat(load: &str, headers: &str, step: &str) -> String {
    format!(
        "[load]\n{load}\n[defaults]\ntimeout = \"30s\"\n{headers}\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
         json = {{ model = \"mock-model\", max_tokens = 2, messages = [{{ role = \"user\", content = \"hi\" }}] }}\n{step}\n"
    )
}

/// Runs a scenario body with `--out DIR/o`; returns the process output, its wall time and result.json.
fn run_in(dir: &Path, body: &str, extra: &[&str]) -> (Output, Duration, Value) {
    let p = write(dir, "s.toml", body);
    let out = dir.join("o");
    let mut args = vec!["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--seed", "1"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let o = run(&args);
    let took = started.elapsed();
    let r = read_report(&out);
    crate::run_mock::validate_against_schema(&r);
    (o, took, r)
}

fn run_body(body: &str, extra: &[&str]) -> (Output, Duration, Value) {
    run_in(tempfile::tempdir().unwrap().path(), body, extra)
}

fn secs(r: &Value) -> f64 {
    r["duration_s"].as_f64().unwrap()
}

#[test]
fn a_wrong_key_fails_fast_with_exit_3_naming_status_401_the_step_and_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let body = chat("users = 4\nduration = \"120s\"", "headers = { authorization = \"Bearer wrong-key\" }", "");
    let (o, took, r) = run_in(dir.path(), &body, &["--mock", "auth_required=true", "--junit", junit.to_str().unwrap()]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("fail fast: ")).unwrap_or_else(|| panic!("no line: {stderr}"));
    assert!(line.contains("every request failed with status:401") && line.contains("(step chat, "), "{line}");
    assert!(line.contains("invalid or missing bearer token"), "the first response body is quoted: {line}");
    assert_eq!(
        (&r["status"], &r["stop_reason"], &r["failure"]["kind"]),
        (&"failed".into(), &"fail_fast".into(), &"fail_fast".into())
    );
    assert_eq!(r["failure"]["message"].as_str(), Some(line));
    // A 120 s run stopped after its first seconds (2 s to judge, then the graceful stop of quick 401s).
    assert!(secs(&r) < 60.0 && took < Duration::from_secs(90), "ran {} s", secs(&r));
    let t = &r["totals"];
    assert!(u(&t["requests"]) >= 5 && u(&t["failures"]) == u(&t["requests"]), "{t}");
    let junit = std::fs::read_to_string(junit).unwrap();
    assert!(junit.contains("the run measured nothing valid: fail fast"), "{junit}");
    let html = std::fs::read_to_string(dir.path().join("o/report.html")).unwrap();
    assert!(html.contains("failed: nothing valid measured") && html.contains("every request failed with status:401"));
}

#[test]
fn a_closed_port_fails_fast_with_kind_connect() {
    let target = format!("http://127.0.0.1:{}", free_port());
    let (o, _, r) = run_body(&chat("users = 2\nduration = \"120s\"", "", ""), &["--target", &target]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("fail fast: every request failed with connect in "), "{stderr}");
    assert_eq!(r["failure"]["kind"], "fail_fast");
    assert!(secs(&r) < 60.0, "ran {} s", secs(&r));
    let t = &r["totals"];
    assert_eq!(u(&t["errors"]["connect"]), u(&t["requests"]), "{t}");
}

#[test]
fn without_fail_fast_a_closed_port_runs_to_its_duration_and_still_exits_3() {
    let target = format!("http://127.0.0.1:{}", free_port());
    // A failing user still thinks (100 ms after each failed step): a few dozen requests, not a spin.
    let body = chat("users = 1\nduration = \"3s\"", "", "think_time = \"100ms\"");
    for how in [&["--no-fail-fast"][..], &[]] {
        let body = if how.is_empty() { body.replace("[load]\n", "[load]\nfail_fast = false\n") } else { body.clone() };
        let mut args = vec!["--target", target.as_str()];
        args.extend_from_slice(how);
        let (o, _, r) = run_body(&body, &args);
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{how:?}: {stderr}");
        assert!(!stderr.contains("fail fast"), "{how:?}: {stderr}");
        assert_eq!((&r["stop_reason"], &r["failure"]["kind"]), (&"duration_elapsed".into(), &"no_success".into()));
        assert!(secs(&r) >= 3.0, "{how:?}: it ran its whole duration: {} s", secs(&r));
        assert!(stderr.contains("no request succeeded: all "), "{stderr}");
        let n = u(&r["totals"]["requests"]);
        assert!((1..=31).contains(&n), "{how:?}: 3 s with 100 ms thinks makes at most 31 requests, got {n}");
    }
}

#[test]
fn a_failing_user_waits_its_think_time_instead_of_spinning() {
    let target = format!("http://127.0.0.1:{}", free_port());
    // The step's think time (skipped after a failed step before: 97k requests in 3 s) and the user's.
    let step = chat("users = 1\nduration = \"3s\"", "", "think_time = \"1s\"");
    let user =
        chat("users = 1\nduration = \"3s\"", "", "").replace("name = \"U\"\n", "name = \"U\"\nthink_time = \"1s\"\n");
    for (name, body) in [("step think_time", step), ("user think_time", user)] {
        let (o, _, r) = run_body(&body, &["--target", &target, "--no-fail-fast"]);
        assert_eq!(o.status.code(), Some(3), "{name}: {}", text(&o.stderr));
        let n = u(&r["totals"]["requests"]);
        assert!((1..=4).contains(&n), "{name}: 3 s with a 1 s think time makes at most 4 requests, got {n}");
    }
}

#[test]
fn a_5xx_storm_is_not_fail_fast_but_exits_3() {
    let body = chat("users = 2\nduration = \"3s\"", "", "")
        + "[mock]\nerror_rate = 1.0\nerror_status = 503\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\n";
    let dir = tempfile::tempdir().unwrap();
    let (o, _, r) = run_in(dir.path(), &body, &[]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("fail fast"), "5xx is transient: {stderr}");
    // Judged again later, the stored run is still exit 3.
    let stored = dir.path().join("o/result.json");
    let c = run(&["compare", stored.to_str().unwrap(), stored.to_str().unwrap(), "--quiet"]);
    assert_eq!(c.status.code(), Some(3), "{}", text(&c.stderr));
    assert_eq!((&r["status"], &r["stop_reason"]), (&"failed".into(), &"duration_elapsed".into()));
    assert_eq!(r["failure"]["kind"], "no_success");
    assert!(secs(&r) >= 3.0, "ran {} s", secs(&r));
    let t = &r["totals"];
    assert!(u(&t["requests"]) > 5 && u(&t["errors"]["status:503"]) == u(&t["requests"]), "{t}");
    let line = stderr.lines().find(|l| l.starts_with("no request succeeded")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("status:503 ×") && line.contains("step chat"), "{line}");
}

#[test]
fn a_hung_target_counts_its_requests_as_interrupted_failures() {
    // Accepts connections (the kernel's backlog) and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let body = chat("users = 2\nduration = \"1s\"", "", "");
    let (o, took, r) = run_body(&body, &["--target", &target, "--graceful-stop", "1s"]);
    drop(listener);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    let t = &r["totals"];
    // Each user's one request hung until the hard stop: counted, not "0 requests, 0 failures".
    assert_eq!((u(&t["requests"]), u(&t["failures"]), u(&t["errors"]["interrupted"])), (2, 2, 2), "{t}");
    assert_eq!(u(&r["generator"]["interrupted_requests"]), 2);
    assert_eq!(r["failure"]["kind"], "no_success");
    assert!(stderr.contains("interrupted ×2"), "{stderr}");
    let series: u64 = r["series"].as_array().unwrap().iter().map(|p| u(&p["failures"])).sum();
    assert_eq!(series, 2, "the series adds up to the totals");
    // Duration + graceful stop, not the 30 s request timeout.
    assert!(took < Duration::from_secs(25), "took {took:?}");
}

#[test]
fn a_panicking_worker_fails_the_run_in_both_models() {
    // The hook exists in debug builds only (what `cargo test` builds); a release binary has none to trigger.
    if !cfg!(debug_assertions) {
        return;
    }
    for (model, extra) in [("closed", &["--users", "2"][..]), ("open", &["--rate", "20", "--workers", "1"])] {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s.toml", &(chat("duration = \"2s\"", "", "") + FAST_MOCK));
        let out = dir.path().join("o");
        let o = bin()
            .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--seed", "1"])
            .args(extra)
            .env("RUN_LOAD_TEST_PANIC_AT", "2")
            .output()
            .unwrap();
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{model}: {stderr}");
        let r = read_report(&out);
        crate::run_mock::validate_against_schema(&r);
        assert_eq!((&r["status"], &r["failure"]["kind"]), (&"failed".into(), &"panic".into()), "{model}");
        let message = r["failure"]["message"].as_str().unwrap();
        assert!(message.starts_with("a worker panicked: test hook RUN_LOAD_TEST_PANIC_AT: iteration 2"), "{message}");
        assert!(stderr.contains(message), "{model}: the line is printed: {stderr}");
        // Iterations 0 and 1 succeeded before the panic: successes do not hide it.
        assert!(u(&r["totals"]["requests"]) >= 2, "{model}: {}", r["totals"]);
    }
}

#[test]
fn shipped_scenarios_each_carry_an_error_rate_threshold() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let s = run_load_test::scenario::load(&path).unwrap();
        let errors = s.scenario.thresholds.keys().any(|k| k == "errors" || k.starts_with("errors{"));
        assert!(errors, "{} has no `errors` threshold", path.display());
        seen += 1;
    }
    assert!(seen >= 7, "the shipped scenarios: {seen}");
}
