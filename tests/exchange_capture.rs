//! Seeing what is sent and received: `try` prints every exchange of one iteration per user class (secrets
//! masked), `run --http-debug` writes the first exchanges of each step to `http-debug.log`, and a failed streamed
//! step's error quotes the body that failed it. Against the embedded mock or small servers on 127.0.0.1.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};

use crate::common::*;

const SECRET: &str = "sk-try-0123456789abcdefSECRET";

/// Three steps: a chat request the mock refuses (400, and the iteration goes on), a streamed chat whose check
/// fails, and one that passes with a capture. A 5 s think time `try` skips.
const SCENARIO: &str = r#"
name = "try-me"
[vars]
model = "mock_agent"
[defaults]
headers = { authorization = "Bearer ${env:RLT_TRY_KEY}" }
[[user]]
name = "Agent"
think_time = { min = "5s", max = "5s" }
  [[user.step]]
  name = "no-messages"
  post = "/v1/chat/completions"
  json = { model = "{{ model }}" }
  on_failure = "continue"
  [[user.step]]
  name = "streamed"
  post = "/v1/chat/completions"
  stream = true
  json = { model = "{{ model }}", messages = [{ role = "user", content = "hi" }], stream = true, stream_options = { include_usage = true } }
  expect = { body_contains = "NOT_IN_THE_ANSWER" }
  on_failure = "continue"
  [[user.step]]
  name = "plain"
  post = "/v1/chat/completions"
  json = { model = "{{ model }}", messages = [{ role = "user", content = "hi" }] }
  expect = { status = 200, json_path = ["$.choices"] }
  capture = { completion_id = "$.id" }
"#;

fn run_with_key(args: &[&str]) -> std::process::Output {
    let _shared = untimed();
    bin().args(args).env("RLT_TRY_KEY", SECRET).output().expect("spawn run-load-test")
}

#[test]
fn try_shows_a_masked_key_a_400_body_and_a_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "try-me.toml", SCENARIO);
    let o = run_with_key(&["try", s.to_str().unwrap(), "--var", "model=gpt-4o-mini"]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "a failed exchange is exit 1\nstdout: {out}\nstderr: {err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET), "the key never appears: {out}{err}");
    assert!(!out.contains("0123456789abcdef"), "not even in part: {out}");
    assert_eq!(out.matches("> authorization: Bearer ***").count(), 3, "{out}");
    // The 400 and the reason the mock gave, in the response and in the failure.
    assert!(out.contains("< 400 Bad Request"), "{out}");
    assert!(out.contains("< {\"error\":{\"code\":null,\"message\":\"'messages' is required"), "{out}");
    assert!(out.contains("= FAILED (status:400): unexpected status 400: {\"error\""), "{out}");
    // `--var` reached the body.
    assert!(out.contains(r#"> {"model":"gpt-4o-mini"}"#), "{out}");
    // The streamed step: its summary, then the check that failed and why.
    assert!(out.contains("stream: ") && out.contains("[DONE] received"), "{out}");
    assert!(out.contains("check ok:     status 2xx"), "{out}");
    assert!(out.contains("check FAILED: body contains `NOT_IN_THE_ANSWER` (not found in the body)"), "{out}");
    assert!(out.contains("= FAILED (check): body does not contain `NOT_IN_THE_ANSWER`: {"), "{out}");
    // The last step passed, with its capture.
    assert!(out.contains("captured completion_id = chatcmpl-"), "{out}");
    assert!(out.contains("check ok:     JSON path `$.choices` matches"), "{out}");
    assert_eq!(out.matches("  = passed").count(), 1, "{out}");
    assert!(out.contains("try: 1 user class, 3 exchanges: 1 passed, 2 failed"), "{out}");
}

#[test]
fn try_passes_with_exit_0_and_refuses_an_unknown_var_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ok = SCENARIO.split("  [[user.step]]").next().unwrap().to_string()
        + "  [[user.step]]\n  name = \"health\"\n  get = \"/health\"\n";
    let s = write(dir.path(), "ok.toml", &ok);
    let o = run_with_key(&["try", s.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("< 200 OK") && out.contains("try: 1 user class, 1 exchange: 1 passed, 0 failed"), "{out}");

    let o = run_with_key(&["try", s.to_str().unwrap(), "--var", "modle=x"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--var modle: scenario") && err.contains("its [vars] are: model"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = run_with_key(&["try", s.to_str().unwrap(), "--var", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("is not KEY=VALUE"), "{}", text(&o.stderr));
}

#[test]
fn http_debug_writes_at_most_n_exchanges_per_step_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        write(dir.path(), "try-me.toml", &SCENARIO.replace("min = \"5s\", max = \"5s\"", "min = \"0s\", max = \"0s\""));
    let out = dir.path().join("out");
    let args = [
        "run",
        s.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--users",
        "3",
        "--iterations",
        "12",
        "--http-debug=2",
        "--no-fail-fast",
        "--quiet",
    ];
    let o = run_with_key(&args);
    // Failed requests without a threshold do not fail the gate: the point here is the file.
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let log = std::fs::read_to_string(out.join("http-debug.log")).expect("http-debug.log written");
    assert!(!log.contains(SECRET) && !log.contains("0123456789abcdef"), "{log}");
    for step in ["no-messages", "streamed", "plain"] {
        assert_eq!(log.matches(&format!("── Agent › {step}\n")).count(), 2, "2 of the 12 exchanges of {step}: {log}");
    }
    assert!(log.contains("> authorization: Bearer ***"), "{log}");
    assert!(log.contains("'messages' is required"), "the 400 body: {log}");
    // Without the flag there is no file.
    let out2 = dir.path().join("out2");
    let mut plain: Vec<&str> = args.iter().copied().filter(|a| *a != "--http-debug=2").collect();
    plain[3] = out2.to_str().unwrap();
    run_with_key(&plain);
    assert!(out2.join("result.json").exists() && !out2.join("http-debug.log").exists());
}

#[test]
fn http_debug_out_of_range_is_exit_2() {
    let o = run(&["run", "smoke", "--http-debug=0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--http-debug"), "{}", text(&o.stderr));
}

/// Answers every request on a connection with `answer` (a whole HTTP/1.1 response); returns the server's URL.
fn serve(answer: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            std::thread::spawn(move || connection(sock, answer));
        }
    });
    url
}

fn connection(sock: TcpStream, answer: &str) {
    let mut w = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    while let Ok(Some(_)) = read_request(&mut r) {
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

const STREAMED: &str = r#"
name = "streamed"
[load]
users = 1
iterations = 2
fail_fast = false
[[user]]
name = "U"
  [[user.step]]
  name = "chat"
  post = "/v1/chat/completions"
  stream = true
  json = { model = "m", messages = [{ role = "user", content = "hi" }], stream = true }
"#;

/// The error sample of the run's only step.
fn streamed_error(answer: &'static str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let s = write(dir.path(), "streamed.toml", STREAMED);
    let out = dir.path().join("out");
    let url = serve(answer);
    let o = run(&["run", s.to_str().unwrap(), "--target", &url, "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(3), "nothing succeeded: {}", text(&o.stderr));
    let report = read_report(&out);
    let errors = &report["errors"];
    assert_eq!(u(&errors[0]["count"]), 2, "{errors}");
    errors[0]["message"].as_str().unwrap().to_string()
}

#[test]
fn a_failed_streamed_step_quotes_the_body_that_failed_it() {
    // An error status: its body is the reason.
    let e = streamed_error(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 39\r\n\r\n{\"error\":\"model `m` is not configured\"}",
    );
    assert!(e.starts_with("unexpected status 400: {\"error\":\"model `m` is not configured\"}"), "{e}");
    // A 200 that is not a stream (a gateway that answered in JSON): the content type, and what it said.
    let e = streamed_error(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 36\r\n\r\n{\"error\":\"streaming is not enabled\"}",
    );
    assert!(e.contains("expected a text/event-stream response, got content-type application/json"), "{e}");
    assert!(e.ends_with(": {\"error\":\"streaming is not enabled\"}"), "{e}");
    // A stream that ends without [DONE]: the last bytes it sent.
    let e = streamed_error(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 36\r\n\r\n{\"error\":\"upstream connection lost\"}",
    );
    assert!(e.starts_with("stream ended without data: [DONE]: {\"error\":\"upstream connection lost\"}"), "{e}");
}
