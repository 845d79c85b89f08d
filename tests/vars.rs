//! Variables from outside and keys: `--var` reaches a path, a header and a body; an unknown one is exit 2
//! naming it; a key variable left unset is a stand-in against the embedded mock and exit 2 against a real
//! target, before a single request; `auth` runs against a login API with its own paths, fields and token path.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// One request as the server read it: method, path, lowercased headers, body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 that records every request and answers by path: a login API under `/api/`, a chat
/// completion elsewhere. Counts connections, so "no request" also means "not even a connection".
struct Recorder {
    port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const CHAT: &str = "{\"id\":\"x\",\"model\":\"served\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\
                    \"content\":\"ok\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\
                    \"total_tokens\":4}}";

fn answer(path: &str) -> (u16, &'static str) {
    match path {
        "/api/signup" => (201, "{\"ok\":true}"),
        "/api/session" => (200, "{\"data\":{\"jwt\":\"tok-123\"}}"),
        _ => (200, CHAT),
    }
}

fn serve(s: TcpStream, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let Some(HttpRequest { method, path, headers, body }) = read_request(&mut BufReader::new(s.try_clone()?))? else {
        return Ok(());
    };
    let (status, reply) = answer(&path);
    seen.lock().unwrap().push(Seen { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() });
    let mut w = s;
    write!(
        w,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    )
}

fn recorder() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let connections = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (st, c, sn) = (stop.clone(), connections.clone(), seen.clone());
    let thread = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    c.fetch_add(1, Ordering::Relaxed);
                    let _ = s.set_nonblocking(false);
                    let _ = serve(s, &sn);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Recorder { port, stop, connections, seen, thread: Some(thread) }
}

const SCENARIO: &str = r#"name = "vars"
[defaults]
headers = { authorization = "Bearer ${env:RLT_TEST_VARS_KEY}", x-team = "${env:RLT_TEST_VARS_UNSET_TEAM:-blue}" }
[vars]
model = "mock_agent"
prefix = "/v1"
tenant = "default-tenant"
[[user]]
name = "U"
  [[user.step]]
  name = "chat"
  post = "{{ prefix }}/chat/completions"
  headers = { x-tenant = "{{ tenant }}" }
  json = { model = "{{ model }}", max_tokens = 4, messages = [{ role = "user", content = "hi" }] }
  expect = { status = 200 }
"#;

fn run_with(args: &[&str], key: Option<&str>) -> std::process::Output {
    let _shared = untimed();
    let mut c = bin();
    c.args(args).env_remove("RLT_TEST_VARS_UNSET_TEAM");
    match key {
        Some(k) => c.env("RLT_TEST_VARS_KEY", k),
        None => c.env_remove("RLT_TEST_VARS_KEY"),
    };
    c.output().expect("spawn run-load-test")
}

#[test]
fn var_reaches_path_header_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "vars.toml", SCENARIO);
    let server = recorder();
    let target = format!("http://127.0.0.1:{}", server.port);
    let out = dir.path().join("o");
    let o = run_with(
        &[
            "run",
            p.to_str().unwrap(),
            "--target",
            &target,
            "--iterations",
            "2",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            "--var",
            "model=gpt-4o-mini",
            "--var",
            "tenant=acme",
            "--var",
            "prefix=/gw/v2",
        ],
        Some("sk-vars-test-key"),
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for r in &seen {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/gw/v2/chat/completions"), "{r:?}");
        assert_eq!(r.header("x-tenant"), Some("acme"), "{r:?}");
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["model"], "gpt-4o-mini", "{r:?}");
        assert_eq!(r.header("authorization"), Some("Bearer sk-vars-test-key"), "{r:?}");
        // An explicit fallback is the author's choice and goes to a real target too.
        assert_eq!(r.header("x-team"), Some("blue"), "{r:?}");
    }
    // The result records the vars the run used, and never the key.
    let report = std::fs::read_to_string(out.join("result.json")).unwrap();
    assert!(!report.contains("sk-vars-test-key"));
    let vars = &read_report(&out)["scenario"]["vars"];
    assert_eq!((vars["model"].as_str(), vars["tenant"].as_str()), (Some("gpt-4o-mini"), Some("acme")), "{vars}");
}

#[test]
fn unknown_var_is_exit_2_naming_it_and_the_declared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "vars.toml", SCENARIO);
    let o = run_with(&["run", p.to_str().unwrap(), "--quiet", "--var", "modle=gpt-4o-mini"], Some("k"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("modle") && err.contains("model, prefix, tenant"), "{err}");
    let o = run_with(&["run", p.to_str().unwrap(), "--quiet", "--var", "model"], Some("k"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--var") && err.contains("KEY=VALUE") && !err.contains("panicked"), "{err}");
}

#[test]
fn unset_key_is_exit_2_against_a_real_target_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "vars.toml", SCENARIO);
    let server = recorder();
    let target = format!("http://127.0.0.1:{}", server.port);
    let out = dir.path().join("o");
    let o =
        run_with(&["run", p.to_str().unwrap(), "--target", &target, "--quiet", "--out", out.to_str().unwrap()], None);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Names the variable, the header, the file and the line that reads it.
    assert!(
        err.contains("RLT_TEST_VARS_KEY") && err.contains("authorization") && err.contains("vars.toml:3:"),
        "{err}"
    );
    assert_eq!(server.connections.load(Ordering::Relaxed), 0, "no connection before the key is there");
    assert!(server.seen.lock().unwrap().is_empty());
    assert!(!out.join("result.json").exists());
}

#[test]
fn unset_key_gets_a_stand_in_against_the_embedded_mock() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "vars.toml", &format!("{SCENARIO}{FAST_MOCK}"));
    let out = dir.path().join("o");
    let o =
        run_with(&["run", p.to_str().unwrap(), "--iterations", "5", "--quiet", "--out", out.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let r = read_report(&out);
    assert_eq!(u(&r["totals"]["requests"]), 5, "{}", r["totals"]);
    assert_eq!(u(&r["totals"]["failures"]), 0, "{}", r["totals"]);
}

/// The shipped `auth` against a login API that is not the mock's: other paths, other field names, the token
/// elsewhere in the answer; only `--var`s change.
#[test]
fn auth_runs_against_a_login_api_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = recorder();
    let target = format!("http://127.0.0.1:{}", server.port);
    let out = dir.path().join("o");
    let o = run_with(
        &[
            "run",
            "auth",
            "--target",
            &target,
            "--users",
            "1",
            "--iterations",
            "2",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            "--var",
            "model=gpt-4o-mini",
            "--var",
            "register_path=/api/signup",
            "--var",
            "login_path=/api/session",
            "--var",
            "username_field=email",
            "--var",
            "password_field=secret",
            "--var",
            "token_path=$.data.jwt",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let seen = server.seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api/signup", "/api/session", "/v1/chat/completions", "/v1/chat/completions"], "{seen:?}");
    let signup: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    let login: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert!(signup["email"].is_string() && signup["secret"].is_string(), "{signup}");
    assert_eq!(login["email"], signup["email"], "logs in as the user it registered");
    for chat in &seen[2..] {
        assert_eq!(chat.header("authorization"), Some("Bearer tok-123"), "{chat:?}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&chat.body).unwrap()["model"], "gpt-4o-mini");
    }
}

#[test]
fn list_marks_mock_only_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let step = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";
    write(dir.path(), "faults.toml", &format!("mock_only = true\n{step}"));
    write(dir.path(), "anywhere.toml", step);
    let o = run(&["list", "--scenarios-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let row = |name: &str| out.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(row("faults").contains("mock-only"), "{out}");
    assert!(!row("anywhere").contains("mock-only") && row("anywhere").contains("any"), "{out}");
}

#[test]
fn a_mock_only_scenario_run_against_a_target_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "faults.toml",
        "mock_only = true\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n",
    );
    let server = recorder();
    let target = format!("http://127.0.0.1:{}", server.port);
    let out = dir.path().join("o");
    let o =
        run(&["run", p.to_str().unwrap(), "--target", &target, "--iterations", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("marked mock_only"), "{}", text(&o.stderr));
    assert_eq!(server.seen.lock().unwrap().len(), 1, "it still runs: the author may know better");
}
