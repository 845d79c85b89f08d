//! Runs against the embedded mock: reports, failure classification, captures, determinism.

use serde_json::Value;

use crate::common::*;

pub(crate) fn validate_against_schema(report: &Value) {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/result.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&raw).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "result.json violates the schema: {errors:#?}");
}

#[test]
fn committed_schema_is_current() {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/result.schema.json")).unwrap();
    assert_eq!(
        raw,
        run_load_test::result::json_schema(),
        "regenerate: cargo run -- schema > schema/result.schema.json"
    );
}

#[test]
fn stress_run_prints_a_summary_and_writes_a_valid_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(&["run", "stress", "--duration", "3s", "--users", "8", "--seed", "7", "--out", out.to_str().unwrap()]);
    let stdout = text(&o.stdout);
    let r = read_report(&out);
    // stress.toml's latency SLO (p(95) < 500ms) is about a real gateway: a loaded machine may miss it against the
    // mock, and exit 1 is then the right answer. The error-rate SLO must hold whatever the load.
    let failed: Vec<&str> = r["thresholds"]
        .as_array()
        .unwrap_or_else(|| panic!("thresholds judged: {}", r["thresholds"]))
        .iter()
        .filter(|t| t["pass"] != true)
        .map(|t| t["threshold"].as_str().unwrap_or_default())
        .collect();
    assert!(failed.iter().all(|t| t.starts_with("latency{step:chat}: ")), "only a latency SLO may fail: {failed:?}");
    let code = if failed.is_empty() { 0 } else { 1 };
    assert_eq!(o.status.code(), Some(code), "{failed:?}\n{stdout}\n{}", text(&o.stderr));
    assert!(stdout.contains("Aggregated") && stdout.contains("embedded mock gateway"), "{stdout}");
    assert!(stdout.contains("p99") && stdout.contains("req/s"), "{stdout}");
    validate_against_schema(&r);
    assert_eq!(r["target"]["embedded_mock"], true);
    assert_eq!(r["load"]["model"], "closed");
    assert_eq!(r["load"]["seed"], 7);
    // The hiccup probes ran on both workers and on the mock, however busy the machine; how late they woke is the
    // machine's business, so only their presence and shape are asserted.
    let env = &r["environment"];
    assert!(u(&env["hiccup"]["samples"]) > 0, "{env}");
    assert!(u(&env["mock_hiccup"]["samples"]) > 0, "{env}");
    assert_eq!(env["hiccup"]["interval_ms"], 1.0);
    assert!(env["hiccup"]["p99_ms"].as_f64().unwrap() <= env["hiccup"]["max_ms"].as_f64().unwrap(), "{env}");
    assert_eq!(env["hiccup_per_second"].as_array().unwrap().len(), r["series"].as_array().unwrap().len());
    assert_eq!(env["disturbed"].as_bool().unwrap(), !env["reasons"].as_array().is_none_or(Vec::is_empty), "{env}");
    assert!(stdout.contains("host: hiccups p99 "), "{stdout}");
    let total = u(&r["totals"]["requests"]);
    assert!(total >= 16, "each of the 8 users loops for 3 s, got {total} requests");
    let series: u64 = r["series"].as_array().unwrap().iter().map(|p| u(&p["requests"])).sum();
    assert_eq!(series, total, "the per-second series adds up to the total");
    let steps: u64 = r["steps"].as_array().unwrap().iter().map(|s| u(&s["stats"]["requests"])).sum();
    assert_eq!(steps, total);
    let points = r["series"].as_array().unwrap().len();
    assert!((2..=4).contains(&points), "about one point per second, got {points}");
    // The mock answers 8 tokens after 20 ms + 7 x 10 ms: no request is faster than 90 ms. How much slower is the
    // machine's business, but not unbounded: 8 users, one request at a time each, cannot spend more than 8 x
    // (the run + the last request, which may end in the drain) in requests (Little's law), so a latency that
    // counted more than the request breaks this bound.
    let lat = &r["totals"]["latency"];
    let (min, mean, max) =
        (lat["min_ms"].as_f64().unwrap(), lat["mean_ms"].as_f64().unwrap(), lat["max_ms"].as_f64().unwrap());
    assert!(min >= 90.0 * 0.999, "min {min} ms");
    let busy_ms = 8.0 * (r["duration_s"].as_f64().unwrap() * 1000.0 + max);
    assert!(mean * total as f64 <= busy_ms * 1.01, "{total} requests x {mean} ms > 8 users x the run ({busy_ms} ms)");
    assert!(r["histograms"]["latency"].as_str().unwrap().len() > 10);
}

const FAILING: &str = "[load]\nusers = 4\niterations = 200\n\
    [mock]\noutput_tokens = 2\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\nerror_rate = 0.3\nerror_status = 503\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

#[test]
fn injected_failures_are_classified_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "failing.toml", FAILING);
    let a = run_report(&p, &dir.path().join("a"), &["--seed", "11"]);
    let b = run_report(&p, &dir.path().join("b"), &["--seed", "11"]);
    let t = &a["totals"];
    assert_eq!(u(&t["requests"]), 200, "iterations = 200 with one step");
    let failures = u(&t["failures"]);
    assert!(failures > 20 && failures < 120, "about 30% of 200 fail, got {failures}");
    assert_eq!(u(&t["errors"]["status:503"]), failures, "every failure is a 503: {}", t["errors"]);
    assert_eq!(u(&b["totals"]["failures"]), failures, "same seed, same failures");
    assert_eq!(a["errors"][0]["kind"], "status:503");
    assert_eq!(u(&t["latency"]["count"]), 200 - failures, "failed requests stay out of the latency histogram");
    assert_eq!(a["stop_reason"], "iterations_done");
    let flows = &a["flows"][0];
    assert_eq!(u(&flows["completed"]) + u(&flows["failed"]), 200);
}

const CAPTURE: &str = "[load]\nusers = 2\niterations = 20\n[vars]\ngreeting = \"hello\"\n\
    [mock]\noutput_tokens = 2\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\n\
    [[user]]\nname = \"Agent\"\n\
    [[user.step]]\nname = \"ask\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"{{ greeting }} from {{ user_id }}\" }] }\n\
    capture = { cid = \"$.id\" }\n\
    [[user.step]]\nname = \"follow_up\"\npost = \"/v1/echo\"\n\
    json = { previous_id = \"{{ cid }}\", iteration = \"{{ iteration }}\" }\n\
    expect = { status = 200, body_contains = '\"previous_id\":\"chatcmpl-', json_path = [\"$.iteration\"] }\n\
    on_failure = \"continue\"\n\
    [[user.step]]\nname = \"impossible\"\npost = \"/v1/echo\"\njson = { id = \"{{ cid }}\" }\n\
    expect = { body_contains = \"{{ cid }}-not-there\" }\n";

#[test]
fn a_capture_reaches_a_later_steps_body_and_checks_can_fail() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "capture.toml", CAPTURE);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "3"]);
    let steps = r["steps"].as_array().unwrap();
    let by = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap()["stats"].clone();
    assert_eq!(u(&by("ask")["requests"]), 20);
    assert_eq!(u(&by("ask")["failures"]), 0);
    assert_eq!(u(&by("follow_up")["requests"]), 20);
    assert_eq!(u(&by("follow_up")["failures"]), 0, "the captured completion id was echoed back: {}", by("follow_up"));
    let imp = by("impossible");
    assert_eq!((u(&imp["requests"]), u(&imp["failures"])), (20, 20));
    assert_eq!(u(&imp["errors"]["check"]), 20);
    assert_eq!(u(&r["flows"][0]["failed"]), 20);
}

#[test]
fn tags_select_steps() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[load]\nusers = 1\niterations = 5\n{FAST_MOCK}[[user]]\nname = \"U\"\n\
         [[user.step]]\nname = \"a\"\nget = \"/health\"\ntags = [\"fast\"]\n\
         [[user.step]]\nname = \"b\"\nget = \"/v1/models\"\ntags = [\"slow\"]\n"
    );
    let p = write(dir.path(), "tags.toml", &body);
    let r = run_report(&p, &dir.path().join("o"), &["--exclude-tags", "slow"]);
    let names: Vec<&str> = r["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["a"]);
    let o = run(&[
        "run",
        p.to_str().unwrap(),
        "--tags",
        "nothing-has-this",
        "--quiet",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn list_shows_scenarios_and_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "good.toml",
        "description = \"fine\"\n[load]\nusers = 3\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/\"\n",
    );
    write(dir.path(), "bad.toml", "[load]\nusers = -1\n");
    let o = run(&["list", "--scenarios-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("good") && out.contains("fine") && out.contains("3 users"), "{out}");
    assert!(out.contains("ERROR") && out.contains("bad.toml:2:"), "{out}");
    let shipped = run(&["list"]);
    assert!(text(&shipped.stdout).contains("stress"));
}

const GATED: &str = "[load]\nusers = 2\niterations = 30\n\
    [mock]\noutput_tokens = 2\nfirst_token_delay = \"20ms\"\ntoken_delay = \"1ms\"\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n\
    [thresholds]\n\"latency{step:chat}\" = [\"p(95) < 2s\", \"min > 15ms\"]\n\"errors\" = [\"rate < 0.01\"]\n";

#[test]
fn thresholds_gate_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gated.toml", GATED);
    let r = run_report(&p, &dir.path().join("ok"), &["--seed", "1"]);
    let verdicts = r["thresholds"].as_array().unwrap();
    assert_eq!(verdicts.len(), 3);
    assert!(verdicts.iter().all(|v| v["pass"] == true), "{verdicts:?}");
    // The same run with a gate it cannot meet: exit 1, the verdict stored and printed.
    let out = dir.path().join("fail");
    let o = run(&[
        "run",
        p.to_str().unwrap(),
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--threshold",
        "latency{step:chat}: p(50) < 5ms",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("FAIL"));
    let r = read_report(&out);
    let last = r["thresholds"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["pass"], false);
    assert!(last["observed"].as_f64().unwrap() > 15.0, "{last}");
    let o = run(&["run", p.to_str().unwrap(), "--quiet", "--threshold", "latency p(50) < 5ms"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--threshold"));
}

/// Streamed chat with a threshold and a regression rule on `stream_tail`; the built-in rules are off so that a
/// loaded machine cannot fail the second run on latency.
const TAIL: &str = "[load]\nusers = 2\niterations = 20\n\
    [mock]\noutput_tokens = 4\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\nstream = true\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }], stream = true }\n\
    [thresholds]\n\"stream_tail\" = [\"p(95) < 5s\"]\n\
    [regression]\ndefaults = false\n\"stream_tail{step:chat}\" = { relative = \"50%\", absolute = \"1s\" }\n";

#[test]
fn a_streamed_run_measures_the_stream_tail_and_gates_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tail.toml", TAIL);
    let base = dir.path().join("base.json");
    let first = run_report(&p, &dir.path().join("first"), &["--seed", "3", "--save-baseline", base.to_str().unwrap()]);
    validate_against_schema(&first);
    let h = first["steps"][0]["histograms"]["stream_tail"].as_str().unwrap_or_default();
    assert!(h.len() > 10, "a streamed step stores its stream_tail histogram: {:#}", first["steps"][0]["histograms"]);
    let r = run_report(&p, &dir.path().join("second"), &["--seed", "3", "--baseline", base.to_str().unwrap()]);
    let v = &r["thresholds"][0];
    assert_eq!(v["threshold"], "stream_tail: p(95) < 5s");
    assert_eq!((v["pass"].as_bool(), v["unit"].as_str()), (Some(true), Some("ms")), "{v}");
    assert!(v["observed"].as_f64().is_some_and(|o| o >= 0.0), "{v}");
    let rows = r["comparison"]["rows"].as_array().unwrap();
    let stats: Vec<(&str, &str)> =
        rows.iter().map(|d| (d["metric"].as_str().unwrap(), d["stat"].as_str().unwrap())).collect();
    assert_eq!(stats, [("stream_tail{step:chat}", "p(50)"), ("stream_tail{step:chat}", "p(95)")], "{rows:#?}");
    for d in rows {
        assert!(d["baseline"].is_number() && d["current"].is_number(), "{d}");
        assert_eq!((d["unit"].as_str(), d["verdict"].as_str()), (Some("ms"), Some("ok")), "{d}");
    }
}

#[test]
fn a_run_writes_windows_per_step_that_add_up_to_its_totals() {
    let dir = tempfile::tempdir().unwrap();
    let chat = "post = \"/v1/chat/completions\"\nstream = true\n\
        json = { model = \"m\", stream = true, messages = [{ role = \"user\", content = \"hi\" }] }\n";
    let body = format!(
        "{FAST_MOCK}[load]\nusers = 4\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"plan\"\n{chat}[[user.step]]\nname = \"answer\"\n{chat}"
    );
    let p = write(dir.path(), "two.toml", &body);
    let r = run_report(&p, &dir.path().join("out"), &["--duration", "3s"]);
    validate_against_schema(&r);
    let windows = r["windows"].as_array().unwrap_or_else(|| panic!("no windows: {}", r["series"]));
    assert!((2..=5).contains(&windows.len()), "about one window a second of a 3 s run: {}", windows.len());
    // Windows follow each other from the start to the end of the run, none missing, none overlapping.
    let mut t = 0.0;
    for w in windows {
        assert!((w["t_s"].as_f64().unwrap() - t).abs() < 1e-6, "window at {} after {t}", w["t_s"]);
        t += w["duration_s"].as_f64().unwrap();
    }
    assert!((t - r["duration_s"].as_f64().unwrap()).abs() < 0.01, "windows end at {t}, the run at {}", r["duration_s"]);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    let mut all = 0;
    for (i, s) in steps.iter().enumerate() {
        let per_window: u64 = windows.iter().map(|w| u(&w["steps"][i]["requests"])).sum();
        assert_eq!(per_window, u(&s["stats"]["requests"]), "step {}", s["name"]);
        all += per_window;
        let streamed = windows.iter().filter(|w| w["steps"][i]["histograms"]["ttft"].is_string()).count();
        assert!(streamed > 0, "the streamed step {} keeps ttft per window", s["name"]);
    }
    assert_eq!(all, u(&r["totals"]["requests"]), "the windows add up to the run's requests");
    assert!(all > 0);
    assert_eq!(windows[0]["flows"].as_array().map(Vec::len), Some(1), "one entry per user class");
}
