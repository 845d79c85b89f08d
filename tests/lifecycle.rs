//! Dying targets: the report is always written and every failure is classified (signals: `signals.rs`).

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

const LONG: &str = "[load]\nusers = 4\nduration = \"60s\"\n[mock]\noutput_tokens = 2\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

#[test]
fn refused_connections_are_classified_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let target = format!("http://127.0.0.1:{}", free_port());
    let out = dir.path().join("o");
    let args = ["--target", &target, "--duration", "1s", "--users", "2", "--out", out.to_str().unwrap(), "--quiet"];
    let o = run(&[&["run", p.to_str().unwrap()][..], &args[..]].concat());
    assert_eq!(o.status.code(), Some(3), "nothing succeeded: {}", text(&o.stderr));
    let r = read_report(&out);
    let t = &r["totals"];
    assert!(u(&t["requests"]) > 0);
    assert_eq!(u(&t["failures"]), u(&t["requests"]));
    assert_eq!(u(&t["errors"]["connect"]), u(&t["failures"]), "{}", t["errors"]);
    assert_eq!(r["target"]["embedded_mock"], false);
}

#[test]
fn a_target_dying_mid_run_still_yields_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let port = free_port();
    let mut mock = bin()
        .args([
            "mock",
            "--port",
            &port.to_string(),
            "--first-token-delay",
            "2ms",
            "--token-delay",
            "1ms",
            "--output-tokens",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(10)), "mock did not start");
    let out = dir.path().join("o");
    let target = format!("http://127.0.0.1:{port}");
    let mut load = bin()
        .args([
            "run",
            p.to_str().unwrap(),
            "--target",
            &target,
            "--duration",
            "4s",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    mock.kill().unwrap();
    let _ = mock.wait();
    let status = wait_bounded(&mut load, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let r = read_report(&out);
    let t = &r["totals"];
    assert!(u(&t["requests"]) > u(&t["failures"]), "successes before the target died");
    assert!(u(&t["failures"]) > 0, "failures after it died");
    let classified: u64 = t["errors"].as_object().unwrap().values().map(u).sum();
    assert_eq!(classified, u(&t["failures"]), "every failure has a kind: {}", t["errors"]);
    assert!(t["errors"].get("connect").is_some(), "{}", t["errors"]);
}

/// The agent scenarios need nothing of the embedded mock: against a standalone gateway (here the mock served on
/// its own with the scenario's settings) they run unchanged with `--target` and the key (a real target gets no
/// stand-in key).
#[test]
fn agent_scenarios_run_unchanged_against_a_separate_gateway() {
    for name in ["switchover", "react"] {
        let port = free_port();
        let mut gw = bin()
            .args(["mock", "--port", &port.to_string(), "--scenario", name, "--seed", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_for_port(port, Duration::from_secs(10)), "gateway did not start");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let target = format!("http://127.0.0.1:{port}");
        let args = ["run", name, "--target", &target, "--duration", "2s", "--quiet", "--out", out.to_str().unwrap()];
        let o = {
            let _shared = untimed();
            bin().args(args).env("GATEWAY_API_KEY", "sk-lifecycle-test").output().unwrap()
        };
        let _ = gw.kill();
        let _ = gw.wait();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        let r = read_report(&out);
        assert_eq!(r["target"]["embedded_mock"], false);
        assert!(r.get("mock_stats").is_none());
        assert!(u(&r["totals"]["requests"]) > 0);
        assert_eq!(u(&r["totals"]["failures"]), 0, "{name}: {}", r["errors"]);
        assert!(u(&r["totals"]["llm"]["output_tokens"]) > 0, "{name}");
    }
}
