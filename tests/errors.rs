//! Broken input of every kind: exit code 2, one line naming file, line and key, never a panic.

use crate::common::*;

const STEP: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";

/// Runs a broken scenario and returns stderr after checking exit 2, no panic and a single error line.
fn broken(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", body);
    let o = run(&["run", p.to_str().unwrap(), "--quiet", "--out", dir.path().join("o").to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("bad.toml:"), "names the file: {err}");
    assert_eq!(err.matches("bad.toml").count(), 1, "said once: {err}");
    err
}

#[test]
fn syntax_error() {
    let e = broken("[load\nusers = 1\n");
    assert!(e.contains("bad.toml:1:"), "{e}");
}

#[test]
fn unknown_key() {
    let e = broken(&format!("[load]\nuserz = 5\n{STEP}"));
    assert!(e.contains("bad.toml:2:") && e.contains("userz"), "{e}");
}

#[test]
fn unknown_key_in_a_step() {
    let e = broken("[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/\"\nmethd = \"GET\"\n");
    assert!(e.contains("bad.toml:6:") && e.contains("methd"), "{e}");
}

#[test]
fn wrong_type() {
    let e = broken(&format!("[load]\nusers = \"many\"\n{STEP}"));
    assert!(e.contains("bad.toml:2:") && e.contains("users"), "{e}");
}

#[test]
fn negative_users() {
    let e = broken(&format!("[load]\nusers = -5\n{STEP}"));
    assert!(e.contains("bad.toml:2:") && e.contains("users") && e.contains("-5"), "{e}");
}

#[test]
fn bad_duration() {
    let e = broken(&format!("[load]\nduration = \"3 fortnights\"\n{STEP}"));
    assert!(e.contains("bad.toml:2:") && e.contains("duration"), "{e}");
}

#[test]
fn unknown_variable_reference() {
    let body = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"login\"\npost = \"/v1/echo\"\ncapture = { token = \"$.token\" }\n\
                [[user.step]]\nname = \"ask\"\nget = \"/x\"\nheaders = { authorization = \"Bearer {{ tokn }}\" }\n";
    let e = broken(body);
    assert!(e.contains("bad.toml:10:") && e.contains("tokn") && e.contains("ask"), "{e}");
}

#[test]
fn threshold_on_an_unknown_step() {
    let e = broken(&format!("{STEP}[thresholds]\n\"latency{{step:nope}}\" = [\"p(95) < 1s\"]\n"));
    assert!(e.contains("bad.toml:7:") && e.contains("nope"), "{e}");
}

#[test]
fn step_without_route() {
    let e = broken("[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\n");
    assert!(e.contains("bad.toml:4:") && e.contains("route"), "{e}");
}

#[test]
fn invalid_json_path() {
    let e = broken(&format!("{STEP}capture = {{ x = \"$.[\" }}\n"));
    assert!(e.contains("bad.toml:6:") && e.contains("JSON path"), "{e}");
}

/// Outside headers an unset variable is refused whatever the target (a header's key variable is refused
/// against a real target only: see tests/vars.rs).
#[test]
fn missing_environment_variable() {
    let e = broken(&format!("{STEP}query = {{ key = \"${{env:RLT_TEST_SURELY_UNSET}}\" }}\n"));
    assert!(e.contains("bad.toml:6:") && e.contains("RLT_TEST_SURELY_UNSET"), "{e}");
}

#[test]
fn no_user_classes() {
    let e = broken("name = \"x\"\n");
    assert!(e.contains("[[user]]"), "{e}");
}

#[test]
fn unknown_scenario_name() {
    let o = run(&["run", "no-such-scenario", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("no-such-scenario") && e.contains("list"), "{e}");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        &["run", "stress", "--users", "abc"][..],
        &["run", "stress", "--duration", "soon"],
        &["run", "stress", "--users", "0", "--quiet"],
        &["run", "stress", "--target", "not a url", "--quiet"],
        &["run", "stress", "--no-such-flag"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).contains("panicked"));
    }
}

#[test]
fn a_malformed_threshold_expression() {
    let e = broken(&format!("{STEP}[thresholds]\n\"latency\" = [\"p95 < 1s\"]\n"));
    assert!(e.contains("bad.toml:7:") && e.contains("aggregation"), "{e}");
}
