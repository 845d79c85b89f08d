//! What a server can make the client do: the binary against small servers started here on 127.0.0.1 that
//! name a new model in every answer, advise absurd or invalid retry waits, or send bodies over `max_body`.
//! Each run is bounded by an iteration count; each test checks the report, the wall time and the peak RSS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Starts a server whose `answer(n)` is the n-th response (from 0) on each connection; returns its URL.
fn serve(answer: fn(u64, u64) -> Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let total = total.clone();
            std::thread::spawn(move || connection(sock, answer, &total));
        }
    });
    url
}

fn connection(sock: TcpStream, answer: fn(u64, u64) -> Vec<u8>, total: &std::sync::atomic::AtomicU64) {
    let mut w = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    for n in 0.. {
        if !matches!(read_request(&mut r), Ok(Some(_))) {
            return;
        }
        let all = total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if w.write_all(&answer(n, all)).is_err() {
            return;
        }
    }
}

fn response(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs the binary to its end; returns (exit code, result.json, wall time, peak RSS in KiB read from /proc).
fn run_measured(scenario: &Path, out: &Path, target: &str) -> (Option<i32>, Value, Duration, u64) {
    let start = Instant::now();
    let mut child = bin()
        .args(["run", scenario.to_str().unwrap(), "--target", target, "--out", out.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn run-load-test");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        // VmHWM is the peak so far; the last reading before exit is the run's peak, give or take 20 ms.
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            let hwm = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the run did not end within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(!err.contains("panicked"), "{err}");
    (status.code(), read_report(out), start.elapsed(), peak_kib)
}

const CHAT_STEP: &str = "[[user]]\nname = \"u\"\n  [[user.step]]\n  name = \"chat\"\n  post = \"/v1/chat/completions\"\n  \
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

#[test]
fn a_new_served_model_per_response_keeps_64_labels_then_other() {
    let url = serve(|_, all| {
        // Long, odd names: the label is cut and cleaned before it is stored.
        let model = format!("model-{all}-{}\\u001b[31m<x>", "z".repeat(300));
        let body = format!(
            r#"{{"id":"c","model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":3,"completion_tokens":1}}}}"#
        );
        response("200 OK", "", &body)
    });
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "models.toml", &format!("[load]\nusers = 4\niterations = 2000\n{CHAT_STEP}"));
    let (code, r, wall, peak_kib) = run_measured(&p, &dir.path().join("o"), &url);
    assert_eq!(code, Some(0));
    let stats = &r["steps"][0]["stats"];
    assert_eq!(u(&stats["requests"]), 2000);
    let models = stats["llm"]["models"].as_array().unwrap();
    assert_eq!(models.len(), 65, "64 names and `other`");
    assert_eq!(u(&stats["llm"]["models_other"]), 2000 - 64);
    assert!(models.iter().any(|m| m["model"] == "other" && u(&m["responses"]) == 2000 - 64));
    for m in models {
        let name = m["model"].as_str().unwrap();
        assert!(
            name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@+".contains(c)),
            "{name}"
        );
    }
    assert!(stats["warnings"][0].as_str().unwrap().contains("more than 64 distinct served models"), "{stats}");
    assert!(wall < Duration::from_secs(60), "took {wall:?}");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn absurd_retry_advice_waits_max_wait_and_invalid_advice_is_counted() {
    // On each connection: 429 with an absurd wait, 200, 429 with a negative wait, 200, ...
    let url = serve(|n, _| match n % 4 {
        0 => response("429 Too Many Requests", "retry-after: 18446744073709551616\r\n", "{}"),
        2 => response("429 Too Many Requests", "retry-after-ms: -5\r\n", "{}"),
        _ => response("200 OK", "", "{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[load]\nusers = 2\niterations_per_user = 10\n[[user]]\nname = \"u\"\n  [[user.step]]\n  name = \"get\"\n  \
        get = \"/\"\n  retry = { max = 1, max_wait = \"50ms\", backoff = \"10ms\" }\n";
    let p = write(dir.path(), "retry.toml", scenario);
    let (code, r, wall, _) = run_measured(&p, &dir.path().join("o"), &url);
    assert_eq!(code, Some(0), "{}", r["errors"]);
    let stats = &r["steps"][0]["stats"];
    assert_eq!((u(&stats["requests"]), u(&stats["failures"]), u(&stats["retries"])), (20, 0, 20));
    assert_eq!(u(&stats["retry_after_invalid"]), 10);
    assert!(stats["warnings"][0].as_str().unwrap().contains("Retry-After"), "{stats}");
    // Each user: 10 iterations, 5 of them with an invalid advice; 10 waits of at most 50 ms per user: far below what a 2^64 s wait (or a panic) would give.
    assert!(wall < Duration::from_secs(30), "took {wall:?}");
}

#[test]
fn a_body_over_the_steps_max_body_is_a_body_failure() {
    let url = serve(|_, _| response("200 OK", "", &format!("{{\"pad\":\"{}\",\"ok\":true}}", "x".repeat(4000))));
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[load]\nusers = 1\niterations = 3\n[defaults]\nmax_body = \"1MiB\"\n[[user]]\nname = \"u\"\n  \
        [[user.step]]\n  name = \"small\"\n  get = \"/\"\n  max_body = \"2KiB\"\n  expect = { json_path = [\"$.ok\"] }\n  \
        on_failure = \"continue\"\n  [[user.step]]\n  name = \"roomy\"\n  get = \"/\"\n  expect = { json_path = [\"$.ok\"] }\n";
    let p = write(dir.path(), "body.toml", scenario);
    let (_, r, _, _) = run_measured(&p, &dir.path().join("o"), &url);
    let small = &r["steps"][0]["stats"];
    assert_eq!((u(&small["requests"]), u(&small["errors"]["body"])), (3, 3), "{small}");
    let msg = r["errors"].as_array().unwrap().iter().find(|e| e["step"] == "small").unwrap()["message"].clone();
    assert!(msg.as_str().unwrap().contains("max_body (2 KiB)"), "{msg}");
    let roomy = &r["steps"][1]["stats"];
    assert_eq!((u(&roomy["requests"]), u(&roomy["failures"])), (3, 0), "{roomy}");
}

/// Writes a head announcing 1 GiB, then zeros until the client goes away; returns its URL.
fn gigabyte_server(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = sock.try_clone().unwrap();
                let mut r = BufReader::new(sock);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    line.clear();
                }
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    1u64 << 30
                );
                let zeros = [b'0'; 64 * 1024];
                if w.write_all(head.as_bytes()).is_ok() {
                    while w.write_all(&zeros).is_ok() {}
                }
            });
        }
    });
    url
}

#[test]
fn a_gigabyte_body_is_never_held_or_read_whole() {
    for (status, kind) in [("200 OK", "body"), ("500 Internal Server Error", "status:500")] {
        let url = gigabyte_server(status);
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "gb.toml", &format!("[load]\nusers = 4\niterations = 40\n{CHAT_STEP}"));
        let (_, r, wall, peak_kib) = run_measured(&p, &dir.path().join("o"), &url);
        let stats = &r["steps"][0]["stats"];
        assert_eq!((u(&stats["requests"]), u(&stats["errors"][kind])), (40, 40), "{stats}");
        // Each answer is read just past max_body (1 MiB), or its excerpt: nowhere near 40 GiB.
        assert!(u(&stats["bytes_received"]) < 40 * (2 << 20), "{stats}");
        assert!(wall < Duration::from_secs(60), "took {wall:?}");
        assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    }
}

#[test]
fn a_redirect_is_not_followed_and_fails_unless_expected() {
    let url = serve(|_, _| response("301 Moved Permanently", "location: /\r\n", ""));
    let dir = tempfile::tempdir().unwrap();
    let scenario = "[load]\nusers = 1\niterations = 5\n[[user]]\nname = \"u\"\n  [[user.step]]\n  name = \"plain\"\n  \
        get = \"/\"\n  on_failure = \"continue\"\n  [[user.step]]\n  name = \"expected\"\n  get = \"/\"\n  \
        expect = { status = 301 }\n";
    let p = write(dir.path(), "redirect.toml", scenario);
    let (_, r, wall, _) = run_measured(&p, &dir.path().join("o"), &url);
    let plain = &r["steps"][0]["stats"];
    assert_eq!((u(&plain["requests"]), u(&plain["errors"]["status:301"])), (5, 5), "{plain}");
    let msg = r["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("unexpected status 301 (redirects are not followed)"), "{msg}");
    let expected = &r["steps"][1]["stats"];
    assert_eq!((u(&expected["requests"]), u(&expected["failures"])), (5, 0), "{expected}");
    assert!(wall < Duration::from_secs(30), "took {wall:?}");
}
