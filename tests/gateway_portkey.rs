//! Every shipped scenario that is not mock-only, through a real open-source gateway: the Portkey gateway
//! (`tools/gateway`, pinned) in front of `run-load-test mock`, with only `--target`, `--var`, the key and the
//! gateway's routing headers (`--header`) given. Skips, saying why, unless `RLT_PORTKEY_URL` names a running
//! gateway (`.ci/run` starts one: `tools/gateway/start.sh PORT`).
//!
//! Per scenario it prints and asserts the exit code and the failure count (0); the gateway's TTFT overhead at
//! the scenario's load (a paired direct run), TTFT and TPOT within 10 % of the mock's configured delays, TPOT
//! through the gateway not above the token spacing; and, through a Portkey config, fallbacks and retries
//! reported by run-load-test equal to the failures the mock injected.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use run_load_test::mock::MockConfig;
use serde_json::{Value, json};

use super::common::{bin, free_port, read_report, text, timed, u, wait_for_port};

/// Every mock and every run is seeded, so a failure reproduces.
const SEED: &str = "7";
/// What a user names their model; the mock serves any name under that name.
const MODEL: &str = "gpt-4o-mini";
/// The key a user exports; the mock accepts any.
const KEY: &str = "ci-gateway-key";
/// How long each load runs (the scenarios' own 30 s would make the job long for nothing).
const DURATION: &str = "6s";
/// The relative tolerance of TTFT and TPOT against the configured delays ...
const TOLERANCE: f64 = 0.10;
/// ... plus this much for what is outside the mock's delays and the gateway: the loopback round trip and the
/// parsing of a debug build on a busy machine.
const SLACK_MS: f64 = 2.0;
/// Gateway retries per failed upstream attempt (Portkey `retry.attempts`): with the injected rate below, a
/// request that exhausts them is practically impossible (0.1^6), so every injected failure is one retry.
const RETRY_ATTEMPTS: u32 = 5;
const RETRY_RATE: &str = "0.1";

#[test]
fn shipped_scenarios_run_unchanged_through_the_portkey_gateway() {
    let Some(gateway) = std::env::var("RLT_PORTKEY_URL").ok().filter(|u| !u.is_empty()) else {
        println!(
            "gateway_portkey skipped: RLT_PORTKEY_URL is not set (start the gateway with \
             `tools/gateway/start.sh PORT` and set RLT_PORTKEY_URL=http://127.0.0.1:PORT; .ci/run does both)"
        );
        return;
    };
    let gateway = gateway.trim_end_matches('/').to_string();
    // Measured time is asserted: nothing else of the suite shares the machine meanwhile.
    let _timing = timed();
    // RLT_PORTKEY_SCENARIOS=a,b narrows the set when rerunning by hand; CI runs them all.
    let only = std::env::var("RLT_PORTKEY_SCENARIOS").unwrap_or_default();
    let picked = |name: &str| only.is_empty() || only.split(',').any(|n| n.trim() == name);
    let mut ran = 0;
    for s in shipped().into_iter().filter(|s| picked(&s.name)) {
        if s.mock_only() {
            println!("{:<16} skipped: mock_only = true", s.name);
            continue;
        }
        plain_run(&gateway, &s);
        if let Some(tiers) = s.fallback_tiers() {
            fallback_run(&gateway, &s, &tiers);
        }
        ran += 1;
    }
    if picked("stress") {
        retry_run(&gateway, "stress");
    }
    assert!(ran > 0, "no shipped scenario ran through the gateway");
}

/// The scenario through the gateway with the provider headers only, and the same load straight at an identical
/// mock: 0 failures through the gateway; the streaming metrics as configured. The gateway's overhead is what
/// it adds to TTFT at this load (the paired runs' difference, printed): the client side is checked against the
/// mock's configured delays directly, and through the gateway TPOT must stay the token spacing, never grow by
/// the gateway's tail (Portkey front-loads its delay, so its TPOT is a little below the spacing, not above).
fn plain_run(gateway: &str, s: &Shipped) {
    let mock = Mock::start(&s.path, &[]);
    let provider = ["-H", "x-portkey-provider: openai", "-H", &format!("x-portkey-custom-host: {}", mock.v1())];
    let vars = s.model_vars(MODEL);
    let (o, r) = run_through(gateway, s, &vars, &provider);
    let t = &r["totals"];
    let stats = mock.stats();
    println!(
        "{:<16} exit {:?}, {} requests, {} failures, ttft p50 {}, tpot p50 {} (mock: {} chat requests)",
        s.name,
        o.status.code(),
        u(&t["requests"]),
        u(&t["failures"]),
        ms(&t["llm"]["ttft"]["p50_ms"]),
        ms(&t["llm"]["tpot"]["p50_ms"]),
        stats["chat_requests"]
    );
    exit_ok(&s.name, &o);
    assert!(u(&t["requests"]) > 0, "{}: no request", s.name);
    if s.breaks_on_purpose() {
        // A breaking-point search ends at the level that broke: each failure is one the mock refused.
        assert_eq!(u(&t["failures"]), u(&stats["over_capacity"]), "{}: {}", s.name, r["errors"]);
    } else {
        assert_eq!(u(&t["failures"]), 0, "{}: {}", s.name, r["errors"]);
    }
    drop(mock);
    let llm = &t["llm"];
    let timed_model = !s.config.model_latency.iter().any(|m| m.model == MODEL);
    if llm["ttft"]["count"].as_u64().unwrap_or(0) == 0 || !timed_model {
        return;
    }
    let direct_mock = Mock::start(&s.path, &[]);
    let (o, direct) = run_through(&direct_mock.base(), s, &vars, &[]);
    exit_ok(&format!("{} direct", s.name), &o);
    let p50 = |r: &Value, m: &str| r["totals"]["llm"][m]["p50_ms"].as_f64().unwrap();
    let overhead = p50(&r, "ttft") - p50(&direct, "ttft");
    println!("{:<16} gateway overhead at this load: TTFT +{overhead:.1} ms (p50, paired direct run)", s.name);
    let first_token = s.config.first_token_delay.as_secs_f64() * 1e3;
    within(&s.name, "TTFT p50 direct", p50(&direct, "ttft"), first_token);
    if s.config.output_tokens > 1 {
        let spacing = s.config.token_delay.as_secs_f64() * 1e3;
        within(&s.name, "TPOT p50 direct", p50(&direct, "tpot"), spacing);
        let through = p50(&r, "tpot");
        println!("{:<16} TPOT p50 through the gateway: {through:.2} ms, spacing {spacing:.2} ms", s.name);
        assert!(through <= spacing * (1.0 + TOLERANCE), "{}: TPOT {through:.2} ms grew past the spacing", s.name);
        assert!(through >= spacing * 0.5, "{}: TPOT {through:.2} ms is not the token spacing", s.name);
    }
}

/// Through a Portkey fallback config over the alias's tiers, named directly: the mock fails the first tier at
/// the scenario's `tier_failure_rate`, Portkey falls back, and each request that found the first tier down is
/// one fallback, as run-load-test must report it.
fn fallback_run(gateway: &str, s: &Shipped, (alias, tiers): &(String, Vec<String>)) {
    let mock = Mock::start(&s.path, &[]);
    let targets: Vec<Value> = tiers
        .iter()
        .map(|tier| {
            json!({"provider": "openai", "api_key": KEY, "custom_host": mock.v1(), "override_params": {"model": tier}})
        })
        .collect();
    let config = json!({"strategy": {"mode": "fallback", "on_status_codes": [503]}, "targets": targets});
    let header = format!("x-portkey-config: {config}");
    let (o, r) = run_through(gateway, s, &s.model_vars(alias), &["-H", &header]);
    let t = &r["totals"];
    let stats = mock.stats();
    let injected = u(&stats["tier_unavailable_by_model"][&tiers[0]]);
    let fallbacks = reported_fallbacks(&r);
    println!(
        "{:<16} fallback config over {tiers:?}: exit {:?}, {} requests, {} failures, {fallbacks} fallbacks \
         reported, {injected} injected ({} tier failures in all)",
        s.name,
        o.status.code(),
        u(&t["requests"]),
        u(&t["failures"]),
        stats["tier_unavailable"]
    );
    exit_ok(&s.name, &o);
    assert_eq!(u(&t["failures"]), 0, "{}: a fallback that worked is no failure: {}", s.name, r["errors"]);
    assert!(injected > 0, "{}: the mock injected no tier failure; nothing was checked", s.name);
    assert_eq!(fallbacks, injected, "{}: fallbacks reported vs the first tier's failures", s.name);
}

/// Through a Portkey retry config, the mock answering 429 with `retry-after-ms` at a rate: Portkey honours the
/// wait and retries; the retries run-load-test reports (from `x-portkey-retry-attempt-count`) must equal the
/// failures the mock injected, and none may reach the client.
fn retry_run(gateway: &str, name: &str) {
    let s = shipped().into_iter().find(|s| s.name == name).expect("the retry scenario is shipped");
    let extra = ["--error-rate", RETRY_RATE, "--error-status", "429", "--set", "retry_after=50ms"];
    let mock = Mock::start(&s.path, &extra);
    let retry = json!({"attempts": RETRY_ATTEMPTS, "on_status_codes": [429], "use_retry_after_header": true});
    let config = json!({"provider": "openai", "api_key": KEY, "custom_host": mock.v1(), "retry": retry});
    let header = format!("x-portkey-config: {config}");
    let (o, r) = run_through(gateway, &s, &s.model_vars(MODEL), &["-H", &header]);
    let t = &r["totals"];
    let injected = u(&mock.stats()["injected_errors"]);
    let retries = reported_retries(&r);
    println!(
        "{:<16} retry config (429 at {RETRY_RATE}, retry-after 50 ms): exit {:?}, {} requests, {} failures, \
         {retries:?} retries reported, {injected} injected",
        s.name,
        o.status.code(),
        u(&t["requests"]),
        u(&t["failures"])
    );
    exit_ok(&s.name, &o);
    assert_eq!(u(&t["failures"]), 0, "{}: a retry that worked is no failure: {}", s.name, r["errors"]);
    assert!(injected > 0, "{}: the mock injected no failure; nothing was checked", s.name);
    assert_eq!(retries, Some(injected), "{}: gateway retries reported vs injected", s.name);
}

/// Fallbacks run-load-test attributed to the gateway in result.json. The lead adjusts this one place if the
/// gateway-attribution field lands elsewhere.
fn reported_fallbacks(r: &Value) -> u64 {
    u(&r["totals"]["llm"]["fallbacks"])
}

/// Retries the gateway said it made (`x-portkey-retry-attempt-count`, summed), as result.json reports them;
/// `None` when this build does not report them. The lead adjusts this one place to the final field name.
fn reported_retries(r: &Value) -> Option<u64> {
    r["totals"]["llm"]["gateway_retries"].as_u64()
}

/// `run NAME --target GATEWAY --var K=V.. HEADERS..` with the key in the environment; the report is read back.
fn run_through(gateway: &str, s: &Shipped, vars: &[String], headers: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let mut args = vec!["run", s.name.as_str(), "--target", gateway, "--seed", SEED, "--quiet"];
    args.extend(["--duration", DURATION, "--out", out.to_str().unwrap()]);
    for v in vars {
        args.extend(["--var", v.as_str()]);
    }
    args.extend_from_slice(headers);
    let o = bin().args(&args).env("GATEWAY_API_KEY", KEY).output().expect("spawn run-load-test");
    assert!(out.join("result.json").exists(), "{}: no report; exit {:?}: {}", s.name, o.status.code(), text(&o.stderr));
    let r = read_report(&out);
    (o, r)
}

/// Exit 0, or 1 for nothing but latency SLOs the gateway is too slow for on this machine (a Node gateway
/// in front of the stress scenario's 50 users without think time): the scenario's own gate working, not the
/// tool failing. Any other exit code, or a failed gate on errors or checks, fails the test.
fn exit_ok(scenario: &str, o: &Output) {
    let stderr = text(&o.stderr);
    // Exit 1 means a failed gate; each prints one `gate:` line (other notes may surround them).
    let breaches: Vec<&str> = stderr.lines().filter(|l| l.starts_with("gate:")).collect();
    let latency_only = breaches.iter().all(|l| {
        let metric = l.strip_prefix("gate: threshold `").unwrap_or("errors");
        l.contains("` failed: observed")
            && !["errors", "checks", "fallback", "dropped"].iter().any(|m| metric.starts_with(m))
    });
    match o.status.code() {
        Some(0) => {}
        Some(1) if !breaches.is_empty() && latency_only => {
            println!("{scenario:<16} exit 1: latency SLO breached through the gateway: {}", breaches.join("; "));
        }
        code => panic!("{scenario}: exit {code:?}: {stderr}"),
    }
}

fn within(scenario: &str, what: &str, measured: f64, expected: f64) {
    let off = (measured - expected) / expected;
    println!("{scenario:<16} {what}: {measured:.2} ms, expected {expected:.2} ms ({:+.1} %)", off * 100.0);
    assert!(
        (measured - expected).abs() <= expected * TOLERANCE + SLACK_MS,
        "{scenario}: {what} {measured:.2} ms is not within 10 % (+{SLACK_MS} ms) of {expected:.2} ms"
    );
}

fn ms(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".into(), |m| format!("{m:.1} ms"))
}

/// A shipped scenario: its file, its raw table (for keys this test reads before any code knows them) and the
/// mock it configures (`run-load-test mock --scenario FILE` serves exactly this).
struct Shipped {
    name: String,
    path: PathBuf,
    table: toml::Table,
    config: MockConfig,
}

impl Shipped {
    fn mock_only(&self) -> bool {
        self.table.get("mock_only").and_then(toml::Value::as_bool).unwrap_or(false)
    }

    /// Whether the scenario searches for its breaking point (its last level fails by design).
    fn breaks_on_purpose(&self) -> bool {
        self.table.get("load").and_then(|l| l.get("breaking_point")).is_some()
    }

    /// `--var` for each model variable of `[vars]` (`model`, `*_model`), so nothing names a mock model.
    fn model_vars(&self, model: &str) -> Vec<String> {
        let vars = self.table.get("vars").and_then(toml::Value::as_table);
        vars.into_iter()
            .flat_map(|v| v.keys())
            .filter(|k| *k == "model" || k.ends_with("_model"))
            .map(|k| format!("{k}={model}"))
            .collect()
    }

    /// An alias with tiers to fall back over, when the scenario makes its first tier fail.
    fn fallback_tiers(&self) -> Option<(String, Vec<String>)> {
        if self.config.tier_failure_rate <= 0.0 {
            return None;
        }
        let aliases = self.table.get("aliases").and_then(toml::Value::as_table)?;
        let (name, _) = aliases.iter().find(|(_, t)| t.as_array().is_some_and(|t| t.len() > 1))?;
        let alias = self.config.aliases.iter().find(|a| &a.name == name)?;
        Some((alias.name.clone(), alias.tiers.clone()))
    }
}

fn shipped() -> Vec<Shipped> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let loaded = run_load_test::scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let seed = SEED.parse().unwrap();
            let config = run_load_test::config::mock_config(&loaded, seed).unwrap();
            let table: toml::Table = toml::from_str(&loaded.source).unwrap();
            Shipped { name: loaded.name, path, table, config }
        })
        .collect()
}

/// `run-load-test mock` on a free loopback port with a scenario's `[mock]` and aliases; killed on drop.
struct Mock {
    child: Child,
    port: u16,
}

impl Mock {
    fn start(scenario: &Path, extra: &[&str]) -> Mock {
        let port = free_port();
        let child = bin()
            .args(["mock", "--port", &port.to_string(), "--seed", SEED, "--scenario", scenario.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run-load-test mock");
        let mock = Mock { child, port };
        assert!(wait_for_port(port, Duration::from_secs(10)), "mock did not start on {port}");
        mock
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The custom host Portkey calls (`/chat/completions` is appended to it).
    fn v1(&self) -> String {
        format!("{}/v1", self.base())
    }

    fn stats(&self) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the mock");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /mock/stats HTTP/1.1\r\nhost: mock\r\nconnection: close\r\n\r\n").unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read /mock/stats");
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("/mock/stats is not JSON ({e}): {raw}"))
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
