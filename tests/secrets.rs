//! Secrets never leave: a server that echoes a canary `${env:}` secret and the `--target` password in every
//! form (plain, upper-cased, JSON-escaped, truncated, as the served model, in a header, base64 in Basic auth)
//! leaves no trace of them in any output file, stdout or stderr; its escape sequences reach no output raw.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;

const CANARY: &str = "sk-CANARY-7f3a9c2e51d84b06";
const PASSWORD: &str = "canarypass";

/// A server on 127.0.0.1 that answers by path and echoes the secrets it knows or receives; stops when dropped.
struct EchoServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json_escaped(s: &str) -> String {
    s.chars().map(|c| format!("\\u{:04x}", c as u32)).collect()
}

/// Status and body for a path; `received` is the request's headers, lowercased names.
fn answer(path: &str, received: &[(String, String)]) -> (u16, String, &'static str) {
    use base64::Engine;
    let got = |name: &str| received.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str());
    match path {
        "/v1/chat/completions" => (
            200,
            format!(
                "{{\"id\":\"x\",\"model\":\"{CANARY}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\
                 \"content\":\"your key is {CANARY}\"}},\"finish_reason\":\"stop\"}}],\
                 \"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}}}"
            ),
            "application/json",
        ),
        "/plain" => {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{PASSWORD}"));
            let (key, auth) = (got("x-api-key"), got("authorization"));
            (500, format!("invalid key {key} (authorization: {auth}; expected Basic {basic})"), "text/plain")
        }
        "/upper" => (503, format!("KEY {} REJECTED", CANARY.to_uppercase()), "text/plain"),
        "/json" => {
            (400, format!("{{\"error\":{{\"message\":\"bad key {}\"}}}}", json_escaped(CANARY)), "application/json")
        }
        "/trunc" => (401, format!("invalid api key: {}...", &CANARY[..10]), "text/plain"),
        "/ansi" => (500, "boom \x1b[31mred\x1b]0;pwned\x07 \u{9b}2J done".to_string(), "text/plain"),
        _ => (404, "not found".to_string(), "text/plain"),
    }
}

fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let Some(HttpRequest { path, headers, .. }) = read_request(&mut BufReader::new(s.try_clone()?))? else {
        return Ok(());
    };
    let (status, text, ctype) = answer(&path, &headers);
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nx-echo: {CANARY}\r\n\
         x-served-model: {CANARY}\r\nconnection: close\r\n\r\n",
        text.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(text.as_bytes())
}

fn echo_server() -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let (st, rq) = (stop.clone(), requests.clone());
    let thread = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    rq.fetch_add(1, Ordering::Relaxed);
                    let _ = s.set_nonblocking(false);
                    std::thread::spawn(move || serve(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    EchoServer { port, stop, requests, thread: Some(thread) }
}

const SCENARIO: &str = r#"
name = "canary"

[load]
users = 2
iterations = 4

[defaults]
timeout = "5s"
headers = { x-api-key = "${env:RLT_TEST_CANARY}", x-tenant = "${env:RLT_TEST_WORD}" }

[[user]]
name = "U"
think_time = { min = "20ms", max = "40ms" }

  [[user.step]]
  name = "chat"
  post = "/v1/chat/completions"
  json = { model = "m", messages = [{ role = "user", content = "hi" }] }

  [[user.step]]
  name = "plain"
  get = "/plain"
  on_failure = "continue"
  expect = { body_contains = "ok" }

  [[user.step]]
  name = "upper"
  get = "/upper"
  on_failure = "continue"
  expect = { body_contains = "ok" }

  [[user.step]]
  name = "json"
  get = "/json"
  on_failure = "continue"
  expect = { body_contains = "ok" }

  [[user.step]]
  name = "trunc"
  get = "/trunc"
  on_failure = "continue"
  expect = { body_contains = "ok" }

  [[user.step]]
  name = "ansi"
  get = "/ansi"
  on_failure = "continue"
  expect = { body_contains = "ok" }

  [[user.step]]
  name = "check"
  post = "/v1/chat/completions"
  json = { model = "m", messages = [{ role = "user", content = "hi" }] }
  expect = { body_contains = "never there" }
"#;

// `body_contains` makes the tool keep the body, so its excerpt is in the error message.

/// The forms a leak would take: every 8-character window of a secret, plain (matched case-insensitively) and
/// JSON-escaped.
fn needles(secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    let windows = chars.windows(8).map(|w| w.iter().collect::<String>());
    windows.flat_map(|w| [w.to_ascii_lowercase(), json_escaped(&w).to_ascii_lowercase()]).collect()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { files(&p, out) } else { out.push(p) }
    }
}

#[test]
fn an_echoing_server_leaves_no_trace_of_the_secrets() {
    use base64::Engine;
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "canary.toml", SCENARIO);
    let out = dir.path().join("out");
    let o = |name: &str| out.join(name).to_str().unwrap().to_string();
    let target = format!("http://user:{PASSWORD}@127.0.0.1:{}", server.port);
    let args = [
        "run",
        p.to_str().unwrap(),
        "--target",
        &target,
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json,html,csv,md,junit,hlog",
        "--ndjson",
        &o("live.ndjson"),
        "--junit",
        &o("ci/junit.xml"),
        "--summary-md",
        &o("ci/summary.md"),
        "--save-baseline",
        &o("ci/baseline.json"),
    ];
    // A short secret that is also a word of the report's schema: masked in text, never in a JSON key.
    let run = bin()
        .args(args)
        .env("RLT_TEST_CANARY", CANARY)
        .env("RLT_TEST_WORD", "load")
        .output()
        .expect("spawn run-load-test");
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(server.requests.load(Ordering::Relaxed) >= 7, "the server was reached: {stderr}");

    // The run recorded what the server said, with the secrets masked: the masks are there, the secrets not.
    let report = read_report(&out);
    let errors = report["errors"].as_array().expect("errors");
    let kinds: Vec<&str> = errors.iter().filter_map(|e| e["step"].as_str()).collect();
    for step in ["plain", "upper", "json", "trunc", "ansi"] {
        assert!(kinds.contains(&step), "{step} failed and was recorded: {kinds:?}");
    }
    let messages: String = errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("\n");
    assert!(messages.matches("***").count() >= 4, "masked: {messages}");
    assert!(messages.contains("\\x1b[31mred"), "escape sequences kept as visible text: {messages}");

    let mut all = Vec::new();
    files(&out, &mut all);
    let names: Vec<String> = all.iter().map(|f| f.strip_prefix(&out).unwrap().display().to_string()).collect();
    for want in
        ["result.json", "report.html", "failures.csv", "summary.md", "junit.xml", "live.ndjson", "ci/baseline.json"]
    {
        assert!(names.iter().any(|n| n == want), "{want} written: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("hlog/")), "{names:?}");
    let mut outputs: Vec<(String, Vec<u8>)> =
        all.iter().map(|f| (f.display().to_string(), std::fs::read(f).unwrap())).collect();
    outputs.push(("stdout".into(), run.stdout.clone()));
    outputs.push(("stderr".into(), run.stderr.clone()));

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{PASSWORD}"));
    let mut forbidden = needles(CANARY);
    forbidden.extend(needles(PASSWORD));
    // The part of `Basic …` that encodes the password alone (from the 8th character on).
    forbidden.extend(needles(&basic[7..]));
    for (name, bytes) in &outputs {
        let low = String::from_utf8_lossy(bytes).to_ascii_lowercase();
        for n in &forbidden {
            assert!(!low.contains(n.as_str()), "`{n}` leaked into {name}");
        }
        assert!(!bytes.contains(&0x1b), "a raw ESC reached {name}");
        assert!(!low.contains('\u{9b}'), "a raw C1 CSI reached {name}");
    }
    assert!(stderr.contains(&format!("127.0.0.1:{}", server.port)), "the target is named: {stderr}");
    assert!(!stdout.is_empty(), "the summary table was printed");
    assert_eq!(report["tool"]["name"], "run-***-test", "the short secret is masked in values");
    assert!(report["load"].is_object(), "and never in keys");
    // The masked files are still the tool's own: the result and the baseline read back.
    let again = bin().args(["report", out.to_str().unwrap(), "--format", "md"]).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let cmp = bin().args(["compare", &o("ci/baseline.json"), out.to_str().unwrap()]).output().unwrap();
    assert!(matches!(cmp.status.code(), Some(0 | 1)), "{}", text(&cmp.stderr));
    let raw = std::fs::read_to_string(out.join("result.json")).unwrap();
    assert!(raw.contains("\"model\": \"***\""), "the served model is recorded, masked");
}
