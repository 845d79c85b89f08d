//! `merge`: four shard processes against one `run-load-test mock` server, merged, against one process sending the
//! same schedule; a killed shard, a shard of another scenario; and `--abort-file` stopping every shard.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::shards::shard_bin;

/// 200 arrivals a second for 3 s against a mock that answers after a fixed 40 ms (one token, no jitter).
const OPEN: &str = "[load]\nrate = 200.0\nmax_in_flight = 400\nduration = \"3s\"\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }], max_tokens = 1 }\n\
    [thresholds]\n\"latency{step:chat}\" = [\"p(50) < 20s\"]\n";

/// The standalone mock, killed when the test ends however it ends.
struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mock() -> (Mock, String) {
    let port = free_port();
    let child = bin()
        .args(["mock", "--port", &port.to_string(), "--output-tokens", "1", "--first-token-delay", "40ms"])
        .args(["--token-delay", "0ms", "--seed", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the mock");
    let m = Mock(child);
    assert!(wait_for_port(port, Duration::from_secs(20)), "the mock did not listen on {port}");
    (m, format!("http://127.0.0.1:{port}"))
}

fn start(scenario: &Path, out: &Path, target: &str, extra: &[&str]) -> Child {
    shard_bin(&[])
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--seed", "7"])
        .args(["--target", target])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a shard")
}

fn merge(args: &[&str], shards: &[PathBuf]) -> Output {
    bin().arg("merge").args(shards).args(args).output().expect("spawn merge")
}

/// A Pushgateway stand-in on loopback: answers one request with 200 and hands it back.
fn pushgateway() -> (std::thread::JoinHandle<HttpRequest>, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let req = read_request(&mut reader).unwrap().expect("a request");
        use std::io::Write;
        (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        req
    });
    (handle, url)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn four_merged_shards_send_and_measure_what_one_process_does() {
    // The shards run beside the suite's other runs, never beside its timing-sensitive ones.
    let _shared = untimed();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = write(d, "open.toml", OPEN);
    let (_mock, target) = mock();
    let shard = |i: u32| d.join(format!("shard-{i}"));
    let mut children: Vec<Child> =
        (1..=4).map(|i| start(&s, &shard(i), &target, &["--shard", &format!("{i}/4"), "--start-at", "+2s"])).collect();
    // Shard 3 again, into its own directory, killed 1 s into its load: what a shard lost to its node leaves.
    let mut killed = start(&s, &d.join("killed-3"), &target, &["--shard", "3/4", "--start-at", "+2s"]);
    std::thread::sleep(Duration::from_secs(3));
    signal(&killed, libc::SIGKILL);
    let _ = killed.wait();
    for c in children.iter_mut() {
        let status = wait_bounded(c, Duration::from_secs(120));
        assert_eq!(status.code(), Some(0), "a shard failed");
    }
    let one = d.join("one");
    let mut single = start(&s, &one, &target, &[]);
    assert_eq!(wait_bounded(&mut single, Duration::from_secs(120)).code(), Some(0));
    let shards: Vec<PathBuf> = (1..=4).map(shard).collect();
    for s in &shards {
        assert!(s.join("seconds.ndjson").exists() && !s.join("journal.ndjson").exists(), "a shard keeps its seconds");
    }

    let merged = d.join("merged");
    let o = merge(&["--expect", "4", "--out", merged.to_str().unwrap(), "--quiet"], &shards);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (m, r1) = (read_report(&merged), read_report(&one));
    assert_eq!(m["status"], "completed");
    assert_eq!(u(&m["open"]["arrivals"]), u(&r1["open"]["arrivals"]), "the union of the stripes is the schedule");
    assert_eq!(u(&m["open"]["arrivals"]), 600);
    assert_eq!(u(&m["totals"]["requests"]), u(&r1["totals"]["requests"]));
    let per_shard: u64 = shards.iter().map(|s| u(&read_report(s)["totals"]["requests"])).sum();
    assert_eq!(u(&m["totals"]["requests"]), per_shard, "the merged total is the shards' sum");
    let series: u64 = m["series"].as_array().unwrap().iter().map(|p| u(&p["requests"])).sum();
    assert_eq!(series, per_shard, "the merged seconds add up to the totals");
    // The mock answers no request before 40 ms: the floor holds in both, within HDR's 0.1 %. Above it, the
    // same schedule meets the same fixed delay, so the medians differ only by what a busy 2-core machine adds
    // to each request (four processes instead of one): 1 % of HDR precision or 30 ms of scheduling noise.
    let (lm, l1) = (&m["totals"]["latency"], &r1["totals"]["latency"]);
    for l in [lm, l1] {
        assert!(f(&l["min_ms"]) >= 39.9, "{l}");
    }
    let (p50m, p50) = (f(&lm["p50_ms"]), f(&l1["p50_ms"]));
    assert!((p50m - p50).abs() <= (0.01 * p50).max(30.0), "p50 merged {p50m} vs one process {p50}");
    let rows = m["shards"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| f(&r["start_skew_ms"]) < 1000.0), "{rows:?}");
    // Each shard's own lateness against --start-at is carried over as the shard measured it.
    for r in rows {
        let dir = Path::new(r["file"].as_str().unwrap());
        let own = read_report(if dir.is_dir() { dir } else { dir.parent().unwrap() });
        assert_eq!(r["late_ms"], own["shard"]["start_skew_ms"], "{r}");
        assert!(r["late_ms"].is_number(), "{r}");
    }
    let v = &m["thresholds"][0];
    assert_eq!((&v["threshold"], &v["pass"]), (&"latency{step:chat}: p(50) < 20s".into(), &true.into()));
    assert_eq!(m["hdr"]["significant_digits"], 3);

    // The merged whole pushed to a Pushgateway (a loopback stand-in that keeps the one PUT): the run's names and
    // grouping key, the merged counts.
    let (pg, pg_url) = pushgateway();
    let o = merge(&["--out", d.join("pushed").to_str().unwrap(), "-q", "--pushgateway", &pg_url], &shards);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let put = pg.join().expect("the stand-in Pushgateway");
    assert_eq!((put.method.as_str(), put.path.as_str()), ("PUT", "/metrics/job/run_load_test/scenario/open"));
    let body = text(&put.body);
    let ok = u(&m["totals"]["requests"]) - u(&m["totals"]["failures"]);
    let line =
        format!("run_load_test_requests_total{{scenario=\"open\",user=\"U\",step=\"chat\",outcome=\"ok\"}} {ok}");
    assert!(body.lines().any(|l| l == line), "no `{line}` in:\n{body}");
    let count =
        format!("run_load_test_request_duration_seconds_count{{scenario=\"open\",user=\"U\",step=\"chat\"}} {ok}");
    assert!(body.lines().any(|l| l == count), "no `{count}` in:\n{body}");

    // A killed shard: no result.json, only its journal. Refused by name, or merged around with --allow-partial.
    let mut with_killed = shards.clone();
    with_killed[2] = d.join("killed-3");
    let o = merge(&["--expect", "4", "--out", d.join("x").to_str().unwrap(), "-q"], &with_killed);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // `shard 3 has no result.json, only the journal...` once it reached its wait; a machine so busy that it was
    // killed before writing its journal gets the plain missing-file line. Either names the directory.
    assert!(err.contains("killed-3: ") && err.contains("shard 3/4 missing"), "{err}");
    let partial = d.join("partial");
    let o = merge(&["--expect", "4", "--allow-partial", "--out", partial.to_str().unwrap(), "-q"], &with_killed);
    assert_eq!(o.status.code(), Some(4), "a partial merge never passes: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("partial: "), "{}", text(&o.stderr));
    let p = read_report(&partial);
    assert_eq!(p["partial"]["missing"], serde_json::json!([3]));
    let three: u64 = [1, 2, 4].iter().map(|i| u(&read_report(&shard(*i))["totals"]["requests"])).sum();
    assert_eq!(u(&p["totals"]["requests"]), three);

    // A shard of another scenario.
    let other = d.join("other-2");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(shard(2).join("seconds.ndjson"), other.join("seconds.ndjson")).unwrap();
    let mut r2 = read_report(&shard(2));
    r2["scenario"]["hash"] = "sha256:0000".into();
    std::fs::write(other.join("result.json"), r2.to_string()).unwrap();
    let mut mixed = shards.clone();
    mixed[1] = other;
    let o = merge(&["--out", d.join("y").to_str().unwrap(), "-q"], &mixed);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("other-2: scenario hash sha256:0000 differs from"), "{err}");
}

const ABORT_MOCK: &str = "[load]\nusers = 2\nduration = \"40s\"\n\
    [[user]]\nname = \"U\"\nthink_time = \"20ms\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

#[test]
fn a_shard_whose_threshold_trips_stops_every_shard_through_the_abort_file() {
    let _shared = untimed();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let failing = ABORT_MOCK.to_string()
        + "[mock]\noutput_tokens = 1\nfirst_token_delay = \"1ms\"\nerror_rate = 0.5\nerror_status = 503\n\
           [thresholds]\nerrors = [{ threshold = \"rate < 0.01\", abort_on_fail = true, delay_abort_eval = \"1s\" }]\n";
    let healthy = ABORT_MOCK.to_string() + "[mock]\noutput_tokens = 1\nfirst_token_delay = \"1ms\"\n";
    let (a, b) = (write(d, "a.toml", &failing), write(d, "b.toml", &healthy));
    let abort = d.join("abort");
    let run = |s: &Path, i: u32| {
        let out = d.join(format!("s{i}"));
        shard_bin(&[("RLT_ABORT_FILE", abort.to_str().unwrap())])
            .args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"])
            .args(["--shard", &format!("{i}/2"), "--start-at", "+2s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut children = [run(&a, 1), run(&b, 2)];
    for c in children.iter_mut() {
        // Both would run 40 s; the bound only keeps a broken build from hanging the suite.
        assert_eq!(wait_bounded(c, Duration::from_secs(60)).code(), Some(1), "a stopped shard fails its gate");
    }
    let (r1, r2) = (read_report(&d.join("s1")), read_report(&d.join("s2")));
    for r in [&r1, &r2] {
        assert_eq!((&r["status"], &r["stop_reason"]), (&"aborted".into(), &"threshold_abort".into()), "{r}");
    }
    let line = std::fs::read_to_string(&abort).unwrap();
    assert!(line.starts_with("shard 1/2 on ") && line.contains("threshold `errors: rate < 0.01` failed"), "{line}");
    assert_eq!(r2["shard"]["aborted_by"].as_str(), Some(line.trim()), "the other shard names who stopped it");
    let (d1, d2) = (f(&r1["duration_s"]), f(&r2["duration_s"]));
    // Shard 2 looks once a second: it stops a tick or two after shard 1 (generous bounds for a busy machine).
    assert!(d1 < 20.0 && d2 < 20.0, "both stopped long before 40 s: {d1} {d2}");
    assert!((d2 - d1).abs() < 5.0, "shard 2 stopped within a few ticks of shard 1: {d1} {d2}");
}
