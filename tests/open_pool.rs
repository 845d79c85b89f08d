//! The open model's connection pool (`[load] connections`): the iterations in flight share the connections it
//! allows, counted at the server, and the key is checked like the other load keys.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;

/// A keep-alive HTTP/1.1 server on loopback answering every request after `delay`; counts the connections it
/// accepted. Its threads end with the test process.
fn counting_server(delay: Duration) -> (u16, Arc<AtomicU64>) {
    server(delay, false)
}

/// As `counting_server`; with `close`, every response says `connection: close` and the connection ends.
fn server(delay: Duration, close: bool) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                while let Ok(Some(_)) = read_request(&mut r) {
                    std::thread::sleep(delay);
                    let answer: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if w.write_all(answer).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// One worker's open-model run of `load` against the server on `port`: its result.json.
fn open_run(port: u16, load: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", &scenario(load));
    let target = format!("http://127.0.0.1:{port}");
    run_report(&p, &dir.path().join("o"), &["--target", &target, "--workers", "1"])
}

fn scenario(load: &str) -> String {
    format!("[load]\n{load}\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"get\"\nget = \"/\"\n")
}

#[test]
fn iterations_in_flight_share_the_pools_connections() {
    let _quiet = timed();
    // 100/s of 20 ms requests: about two in flight at any time, up to 40 allowed, over 3 connections.
    let (port, accepted) = counting_server(Duration::from_millis(20));
    let r = open_run(port, "rate = 100.0\nmax_in_flight = 40\nconnections = 3\nduration = \"2s\"");
    let requests = u(&r["totals"]["requests"]);
    assert!(requests >= 150, "the load ran: {requests}");
    assert_eq!(u(&r["totals"]["failures"]), 0);
    let opened = accepted.load(Ordering::SeqCst);
    assert!((1..=3).contains(&opened), "the server saw at most the pool's 3 connections: {opened}");
    assert_eq!(u(&r["load"]["connections"]), 3);
    let c = &r["open"]["connections"];
    assert_eq!(u(&c["opened"]), opened, "the report counts what the server accepted");
    assert!((1..=3).contains(&u(&c["peak"])), "{c}");
    let pacing = &r["open"]["pacing"];
    assert!(pacing["resolution_us"].as_u64().is_some_and(|us| us > 0), "{pacing}");
    #[cfg(target_os = "linux")]
    assert_eq!(pacing["mechanism"], "timerfd");
}

/// A server that closes every connection after its answer: each exchange reopens one (never more than the
/// pool's size at a time), and the report counts every connection the server accepted.
#[test]
fn connections_a_server_closes_are_reopened_and_counted() {
    let _quiet = timed();
    let (port, accepted) = server(Duration::from_millis(5), true);
    let r = open_run(port, "rate = 40.0\nmax_in_flight = 10\nconnections = 2\nduration = \"1s\"");
    let requests = u(&r["totals"]["requests"]);
    assert!(requests >= 20, "the load ran: {requests}");
    assert_eq!(u(&r["totals"]["failures"]), 0, "{}", r["totals"]["errors"]);
    let opened = accepted.load(Ordering::SeqCst);
    // An iteration cut by the run's end may have connected without its request being counted.
    assert!((requests..=requests + 2).contains(&opened), "a connection per request: {opened} for {requests}");
    assert_eq!(u(&r["open"]["connections"]["opened"]), opened, "the report counts what the server accepted");
    assert!(u(&r["open"]["connections"]["peak"]) <= 2, "{}", r["open"]["connections"]);
}

#[test]
fn a_pool_of_one_makes_exchanges_wait_and_the_wait_counts_in_their_latency() {
    let _quiet = timed();
    // 50/s of 30 ms requests over one connection: 1.5 connections' worth of work, so exchanges queue for it
    // and their latency (from the arrival) exceeds the server's 30 ms.
    let (port, accepted) = counting_server(Duration::from_millis(30));
    let r = open_run(port, "rate = 50.0\nmax_in_flight = 10\nconnections = 1\nduration = \"2s\"");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, however many iterations were in flight");
    assert_eq!(u(&r["open"]["connections"]["peak"]), 1);
    let uncorrected_p99 = r["totals"]["latency_uncorrected"]["p99_ms"].as_f64().unwrap();
    assert!(uncorrected_p99 > 45.0, "waiting for the connection counts in the latency: p99 {uncorrected_p99} ms");
}

#[test]
fn the_connections_key_is_checked_like_the_other_load_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (load, says) in [
        ("rate = 10.0\nconnections = 0", "`connections` must be"),
        ("rate = 10.0\nconnections = 1000000", "`connections` must be"),
        ("users = 2\nconnections = 4", "`connections` goes with `rate`"),
        ("rate = 10.0\nconnections = \"many\"", "connections"),
    ] {
        let p = write(dir.path(), "s.toml", &scenario(&format!("{load}\nduration = \"1s\"")));
        let o = run(&["run", p.to_str().unwrap(), "--quiet", "--out", dir.path().join("o").to_str().unwrap()]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{load}: {err}");
        assert!(err.contains(says), "{load}: {err}");
    }
    let p = write(dir.path(), "s.toml", &scenario("rate = 10.0\nduration = \"1s\""));
    let o = run(&["run", p.to_str().unwrap(), "--quiet", "--connections", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--connections"), "{}", text(&o.stderr));
}

/// `{{ iteration }}` in the open model is the global arrival number: with two workers (and so with shards, which
/// stripe the same schedule) every iteration has its own, and together they are 0..N with none missing.
#[test]
fn open_model_iterations_are_numbered_by_the_global_schedule() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                while let Ok(Some(req)) = read_request(&mut r) {
                    let n: Option<u64> = req.path.rsplit('=').next().and_then(|v| v.parse().ok());
                    log.lock().unwrap().extend(n);
                    if w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let body = "[load]\nrate = 100.0\niterations = 120\nmax_in_flight = 50\n[[user]]\nname = \"U\"\n\
                [[user.step]]\nname = \"get\"\nget = \"/\"\nquery = { n = \"{{ iteration }}\" }\n";
    let p = write(dir.path(), "s.toml", body);
    let target = format!("http://127.0.0.1:{port}");
    let r = run_report(&p, &dir.path().join("o"), &["--target", &target, "--workers", "2"]);
    assert_eq!(u(&r["totals"]["requests"]), 120, "{}", r["totals"]);
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..120).collect::<Vec<u64>>(), "one number per arrival, across both workers");
}
