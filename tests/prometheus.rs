//! Prometheus outputs against the real servers (Debian's `prometheus` and `prometheus-pushgateway`, which
//! `.ci/run` installs): a Prometheus server scrapes the run's `--metrics-addr` every second while it runs, and
//! a Pushgateway receives the final values. Everything binds loopback on free ports, every wait is bounded, and
//! every process is killed when the test ends, panicking or not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Paced by think time: a light load keeps the parallel timing-sensitive tests undisturbed.
const SCENARIO: &str = "name = \"promtest\"\n[load]\nusers = 4\n\
    [mock]\noutput_tokens = 4\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"\nerror_rate = 0.1\nerror_status = 503\n\
    [pricing]\nm = { input = 1.0, output = 2.0 }\n\
    [[user]]\nname = \"Agent\"\nthink_time = { min = \"50ms\", max = \"50ms\" }\n\
    [[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\nstream = true\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }], stream = true }\n\
    [[user.step]]\nname = \"health\"\nget = \"/health\"\n";

/// A server process killed and reaped on drop, so that a failed assertion never leaves one behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test runs a real Prometheus and Pushgateway. Install them with \
                 `apt-get install -y prometheus prometheus-pushgateway` (.ci/run does this before `cargo test`)"
            )
        })
}

/// At the lowest priority, and Go on one thread: the other integration tests measure latencies and rates in
/// parallel with this one, and must not see its servers start up or collect garbage.
fn niced(program: &Path) -> Command {
    let mut c = Command::new("nice");
    c.args(["-n", "19"]).arg(program).env("GOMAXPROCS", "1").current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn start(bin: &Path, args: &[String], log: &Path) -> Guard {
    let log = std::fs::File::create(log).unwrap();
    let child = niced(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    Guard(child)
}

/// A plain HTTP/1.0 GET on loopback: status and body (both servers close the connection after answering).
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

fn wait_ready(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if matches!(get(port, "/-/ready"), Ok((200, _))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} was not ready within 30 s; its log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// Prometheus hands discovered targets to its scrapers only every few seconds after it starts: wait until it
/// has tried the (not yet listening) endpoint once, so the run's seconds are all scraped.
fn wait_for_scrapes(port: u16, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let t = get_json(port, "/api/v1/targets");
        let scraped = t["data"]["activeTargets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["lastScrape"].as_str().is_some_and(|s| !s.starts_with("0001"))));
        if scraped {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "Prometheus did not scrape its target within 30 s; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn query(port: u16, promql: &str) -> Value {
    let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let v = get_json(port, &format!("/api/v1/query?query={q}"));
    assert_eq!(v["status"], "success", "{promql}: {v}");
    v["data"]["result"].clone()
}

fn num(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a number in a string: {v}"))
}

fn labels_match(m: &Value, want: &[(&str, &str)]) -> bool {
    want.iter().all(|(k, v)| m["labels"][*k] == *v)
}

/// Needs Debian's `prometheus` and `prometheus-pushgateway`, which a fresh machine lacks: `.ci/run` installs them
/// and runs this with `--ignored`, so the README's plain `cargo test` passes with only the Rust toolchain.
#[test]
#[ignore = "needs prometheus and prometheus-pushgateway; .ci/run installs them and runs it"]
fn prometheus_scrapes_the_live_endpoint_and_the_pushgateway_holds_the_final_values() {
    let (prometheus, pushgateway) = (server_binary("prometheus"), server_binary("prometheus-pushgateway"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pg_port, prom_port, metrics_port) = (free_port(), free_port(), free_port());
    let pg_log = d.join("pushgateway.log");
    let _pg = start(&pushgateway, &[format!("--web.listen-address=127.0.0.1:{pg_port}")], &pg_log);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: live\n    \
         static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    );
    let config_path = write(d, "prometheus.yml", &config);
    let prom_log = d.join("prometheus.log");
    let _prom = start(
        &prometheus,
        &[
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", d.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &prom_log,
    );
    wait_ready(pg_port, "the Pushgateway", &pg_log);
    wait_ready(prom_port, "Prometheus", &prom_log);
    wait_for_scrapes(prom_port, &prom_log);

    let scenario = write(d, "promtest.toml", SCENARIO);
    let out = d.join("out");
    let run_log = d.join("run.log");
    let log = std::fs::File::create(&run_log).unwrap();
    let child = niced(Path::new(env!("CARGO_BIN_EXE_run-load-test")))
        .args(["run", scenario.to_str().unwrap(), "--duration", "4s", "--seed", "3", "--quiet", "--workers", "1"])
        .args(["--out", out.to_str().unwrap(), "--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--pushgateway", &format!("http://127.0.0.1:{pg_port}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut run = Guard(child);
    // While it runs: read the live endpoint as a scraper would, and ask Prometheus what it has scraped.
    let (mut live_text, mut seen_by_prometheus) = (None, None);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(40), "the 4 s run did not end within 40 s");
        if let Ok((200, body)) = get(metrics_port, "/metrics") {
            live_text.get_or_insert(body);
        }
        if let Some(r) = query(prom_port, "sum(run_load_test_requests_total)").as_array().and_then(|a| a.first()) {
            let v = num(&r["value"][1]);
            seen_by_prometheus = Some(seen_by_prometheus.map_or(v, |s: f64| s.max(v)));
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let run_stderr = std::fs::read_to_string(&run_log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{run_stderr}");
    assert!(!run_stderr.contains("error"), "{run_stderr}");
    let r = read_report(&out);
    let steps = r["steps"].as_array().unwrap();
    let (chat, health) = (&steps[0]["stats"], &steps[1]["stats"]);
    let ok = |s: &Value| (u(&s["requests"]) - u(&s["failures"])) as f64;
    let total = u(&r["totals"]["requests"]) as f64;

    // The live endpoint parses, and already counts requests mid-run.
    let live_text = live_text.expect("the live /metrics endpoint answered during the run");
    let live = prometheus_parse::Scrape::parse(live_text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let live_ok = live
        .samples
        .iter()
        .find(|s| s.metric == "run_load_test_requests_total" && s.labels.get("step") == Some("chat"))
        .expect("requests_total in the live exposition");
    assert_eq!(live_ok.labels.get("scenario"), Some("promtest"));
    let seen = seen_by_prometheus.expect("Prometheus returned run_load_test_requests_total during the run");
    assert!(seen > 0.0 && seen <= total, "Prometheus answered {seen} mid-run, of {total} in the end");

    // Prometheus kept every scrape: increasing values, the earliest taken well before the end.
    let series = query(prom_port, "run_load_test_requests_total{step=\"chat\",outcome=\"ok\"}[1m]");
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    let m = &series[0]["metric"];
    assert_eq!((&m["job"], &m["scenario"], &m["user"]), (&"live".into(), &"promtest".into(), &"Agent".into()));
    let values: Vec<f64> = series[0]["values"].as_array().unwrap().iter().map(|p| num(&p[1])).collect();
    assert!(values.len() >= 2, "at least two scrapes in 4 s at 1/s: {values:?}");
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "a counter never decreases: {values:?}");
    assert!(values[0] < ok(chat) && *values.last().unwrap() <= ok(chat), "{values:?} vs {}", ok(chat));

    // The Pushgateway holds the final values: exactly the report's.
    let groups = get_json(pg_port, "/api/v1/metrics");
    let group = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["job"] == "run_load_test" && g["labels"]["scenario"] == "promtest")
        .unwrap_or_else(|| panic!("no job=run_load_test,scenario=promtest group: {groups}"));
    assert_eq!(group["last_push_successful"], true);
    let metrics = |name: &str| -> Vec<Value> {
        group[name]["metrics"].as_array().unwrap_or_else(|| panic!("{name} was not pushed: {group}")).clone()
    };
    let requests = metrics("run_load_test_requests_total");
    let sum: f64 = requests.iter().map(|m| num(&m["value"])).sum();
    assert_eq!(sum, total, "pushed requests add up to the report's");
    let value_of = |ms: &[Value], want: &[(&str, &str)]| {
        let m = ms.iter().find(|m| labels_match(m, want)).unwrap_or_else(|| panic!("no {want:?} in {ms:?}"));
        num(&m["value"])
    };
    assert_eq!(value_of(&requests, &[("step", "chat"), ("outcome", "ok")]), ok(chat));
    assert_eq!(value_of(&requests, &[("step", "health"), ("outcome", "ok")]), ok(health));
    let failed = u(&chat["failures"]) as f64;
    assert!(failed > 0.0, "the mock fails 10% of chats");
    assert_eq!(value_of(&requests, &[("step", "chat"), ("outcome", "status"), ("code", "503")]), failed);
    for (step, stats) in [("chat", chat), ("health", health)] {
        let h = metrics("run_load_test_request_duration_seconds");
        let h = h.iter().find(|m| labels_match(m, &[("step", step)])).unwrap();
        assert_eq!(num(&h["count"]), ok(stats), "{step}: _count is the successful requests");
        let mut buckets: Vec<(f64, f64)> =
            h["buckets"].as_object().unwrap().iter().map(|(le, c)| (le.parse().unwrap(), num(c))).collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{step}: cumulative buckets: {buckets:?}");
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, ok(stats)));
    }
    let llm = &chat["llm"];
    let ttft = metrics("run_load_test_ttft_seconds");
    assert_eq!(ttft.len(), 1, "only the streamed step has TTFT");
    assert_eq!(num(&ttft[0]["count"]), u(&llm["streamed"]) as f64);
    let tokens = metrics("run_load_test_output_tokens_total");
    assert_eq!(value_of(&tokens, &[("step", "chat")]), u(&llm["output_tokens"]) as f64);
    let cost = value_of(&metrics("run_load_test_cost_usd_total"), &[("step", "chat")]);
    let reported = llm["cost_usd"].as_f64().unwrap();
    assert!(reported > 0.0 && (cost - reported).abs() <= reported * 1e-9, "cost {cost} vs {reported}");
    let users = value_of(&metrics("run_load_test_users"), &[]);
    assert!((0.0..=4.0).contains(&users), "users {users}");
    drop(run);
}

#[test]
fn a_failed_push_is_one_error_line_and_the_verdict_stands() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", SCENARIO);
    let out = dir.path().join("o");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let o = run(&[
        "run",
        p.to_str().unwrap(),
        "--iterations",
        "40",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--pushgateway",
        &closed,
        "--threshold",
        "latency{step:chat}: p(95) < 1ms",
    ]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "the failed threshold still decides the exit code: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with(&format!("error: --pushgateway: cannot push to {closed}: ")), "{stderr}");
    assert!(u(&read_report(&out)["totals"]["requests"]) >= 40, "the report is written all the same");
}

#[test]
fn metrics_addr_errors_come_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", SCENARIO);
    let o = run(&["run", p.to_str().unwrap(), "--iterations", "1", "--metrics-addr", "gateway.example:9464"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--metrics-addr <ADDR>': `gateway.example:9464` is not PORT or IP:PORT"),
        "{}",
        text(&o.stderr)
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = dir.path().join("o");
    let o = run(&[
        "run",
        p.to_str().unwrap(),
        "--iterations",
        "1",
        "--metrics-addr",
        &port,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(&format!("error: --metrics-addr: cannot listen on 127.0.0.1:{port}")),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.join("result.json").exists(), "no run without its endpoint");
}
