//! The third verdict end to end: a stored slowed run given a fake disturbed host (injected hiccups) is
//! `inconclusive` with exit 4, which `--on-inconclusive` turns into 1 or 0; the same slowdown on a quiet host
//! stays a regression. Stored results only: `compare` judges files, so no timing is involved.

use serde_json::{Value, json};

use super::*;

/// The stored result in `file`, with `environment` as given.
fn on_host(file: &Path, environment: Value) -> Value {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v["environment"] = environment;
    v
}

/// The slowed run's result, its error rate not compared (a closed model may cut a slow request at the stop,
/// and errors are never the host's doing), with `environment` as given.
fn slowed_on(dir: &Path, name: &str, environment: Value) -> PathBuf {
    let mut v = on_host(&slowed().out.join("result.json"), environment);
    v["regression"]["off"].as_array_mut().expect("stored rules").push("errors".into());
    write(dir, name, &v.to_string())
}

fn host(p50_ms: f64, p99_ms: f64, disturbed: bool, reasons: &[&str]) -> Value {
    json!({
        "hiccup": { "interval_ms": 1.0, "samples": 3000, "p50_ms": p50_ms, "p99_ms": p99_ms,
                    "p999_ms": p99_ms * 1.5, "max_ms": p99_ms * 2.0 },
        "cpu_pressure_pct": if disturbed { 61.0 } else { 0.3 },
        "cores": 2,
        "disturbed": disturbed,
        "reasons": reasons,
    })
}

#[test]
fn a_disturbed_host_makes_a_slowdown_inconclusive_and_a_quiet_one_keeps_it_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    // The live baseline's own host reading depends on the test machine's load; this test is about the current
    // run's, so the baseline is stamped quiet.
    let base = write(dir.path(), "base.json", &on_host(&fixture().base, host(0.1, 0.8, false, &[])).to_string());
    let b = base.to_str().unwrap();
    let quiet = slowed_on(dir.path(), "quiet.json", host(0.1, 0.9, false, &[]));
    let o = run(&["compare", b, quiet.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "a real slowdown on a quiet host: {}", text(&o.stderr));
    assert!(gate_lines(&o).iter().any(|g| g.starts_with("gate: tpot p(50) regressed: ")), "{:?}", gate_lines(&o));
    for flag in ["pass", "fail"] {
        let o = run(&["compare", b, quiet.to_str().unwrap(), "--quiet", "--on-inconclusive", flag]);
        assert_eq!(o.status.code(), Some(1), "--on-inconclusive {flag} never excuses a regression");
    }

    let busy = slowed_on(dir.path(), "busy.json", host(9.0, 38.0, true, &["hiccup p99 38.0 ms", "cpu pressure 61 %"]));
    let (xml, md) = (dir.path().join("j.xml"), dir.path().join("s.md"));
    let c = busy.to_str().unwrap();
    let o = run(&["compare", b, c, "--quiet", "--junit", xml.to_str().unwrap(), "--summary-md", md.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "only inconclusive comparisons: {err}");
    let lines = gate_lines(&o);
    let tpot = lines.iter().find(|g| g.starts_with("gate: tpot p(50) inconclusive: ")).expect(&err);
    assert!(tpot.ends_with("; host disturbed in current run: hiccup p99 38.0 ms, cpu pressure 61 %"), "{tpot}");
    assert!(lines.iter().all(|g| !g.contains("regressed")), "{lines:?}");
    assert!(err.contains("gate: inconclusive against the baseline: exit code 4"), "{err}");
    let report = junit(&xml);
    match &case(&report, "tpot p(50)").status {
        TestCaseStatus::Skipped { message: Some(m), .. } => assert!(m.as_str().contains("host disturbed"), "{m:?}"),
        other => panic!("an inconclusive row is a skipped test case: {other:?}"),
    }
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.starts_with("### Load test `gates`: ⚠️ inconclusive: "), "{md}");
    assert!(md.contains("⚠️ inconclusive |") && md.contains("host disturbed in current run"), "{md}");

    for (flag, code) in [("fail", 1), ("pass", 0)] {
        let o = run(&["compare", b, c, "--quiet", "--on-inconclusive", flag]);
        assert_eq!(o.status.code(), Some(code), "--on-inconclusive {flag}: {}", text(&o.stderr));
    }
    let o = run(&["compare", b, c, "--on-inconclusive", "maybe"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--on-inconclusive"), "{}", text(&o.stderr));

    // Not comparing the error rate was the test's choice: a host never excuses failed requests.
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&busy).unwrap()).unwrap();
    v["steps"][0]["stats"]["failures"] = v["steps"][0]["stats"]["requests"].clone();
    v["regression"]["off"] = json!([]);
    let failing = write(dir.path(), "failing.json", &v.to_string());
    let o = run(&["compare", b, failing.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(gate_lines(&o).iter().any(|g| g.starts_with("gate: errors rate regressed: ")), "{:?}", gate_lines(&o));
}
