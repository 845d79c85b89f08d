//! End-to-end tests against a spawned server, over hand-written HTTP/1.1 on loopback so that nothing
//! between the test and the socket (pooling, buffering) blurs what the mock actually sent and when.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::synth::Tokens;
use super::{MockConfig, MockServer, spawn};

mod agent;
mod faults;
mod gateway;
mod wire;

/// Bounds every exchange so a wedged server fails the test instead of hanging it.
const IO_LIMIT: Duration = Duration::from_secs(10);

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Time from sending to the first byte of the first content chunk, when asked for.
    marker_after: Option<Duration>,
    /// The body ended early: the connection failed, or it closed before the announced length or the last
    /// chunk.
    cut: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn request_id(&self) -> u64 {
        self.header("x-mock-request-id").unwrap().parse().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn start(config: MockConfig) -> MockServer {
    assert_eq!(config.validate(), Ok(()));
    spawn(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

fn fast() -> MockConfig {
    MockConfig {
        first_token_delay: Duration::from_millis(1),
        token_delay: Duration::from_millis(1),
        ..MockConfig::default()
    }
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    marker: Option<&[u8]>,
) -> Reply {
    let headers: Vec<(&str, &str)> = content_type.map(|ct| ("Content-Type", ct)).into_iter().collect();
    tokio::time::timeout(IO_LIMIT, exchange(addr, method, path, &headers, body, marker))
        .await
        .expect("exchange timed out")
}

/// Any request, with any headers; the reply's `cut` tells whether the body was complete.
async fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let marker = Some(br#""delta":{"content":"#.as_slice());
    tokio::time::timeout(IO_LIMIT, exchange(addr, method, path, headers, body, marker))
        .await
        .expect("exchange timed out")
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    marker: Option<&[u8]>,
) -> Reply {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    exchange_raw(addr, &request, marker).await
}

/// Sends `request` as it is (it must ask the server to close) and reads the reply to the end.
async fn exchange_raw(addr: SocketAddr, request: &[u8], marker: Option<&[u8]>) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let sent = Instant::now();
    stream.write_all(request).await.unwrap();

    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let mut marker_after = None;
    let mut failed = false;
    loop {
        let Ok(n) = stream.read(&mut buf).await else {
            failed = true;
            break;
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let (Some(m), None) = (marker, marker_after)
            && raw.windows(m.len()).any(|w| w == m)
        {
            marker_after = Some(sent.elapsed());
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let payload = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let (body, complete) = if chunked {
        dechunk(payload)
    } else {
        let announced = headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse().unwrap());
        (payload.to_vec(), announced.is_none_or(|len: usize| len == payload.len()))
    };
    Reply { status, headers, body, marker_after, cut: failed || !complete }
}

/// The chunks' data, and whether the final zero-size chunk arrived.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { return (out, false) };
        let size = std::str::from_utf8(&data[..eol]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return (out, false);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

async fn chat(addr: SocketAddr, request: Value) -> Reply {
    let body = request.to_string();
    let marker = Some(br#""delta":{"content":"#.as_slice());
    send(addr, "POST", "/v1/chat/completions", Some("application/json"), body.as_bytes(), marker).await
}

fn hello(extra: Value) -> Value {
    let mut request = json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello there mock"}]}
        ]
    });
    if let (Some(r), Some(e)) = (request.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    request
}

#[tokio::test]
async fn non_streaming_honours_token_caps() {
    let server = start(fast());
    let cases = [
        (json!({}), 8),
        (json!({"max_tokens": 3}), 3),
        (json!({"max_tokens": 5, "max_completion_tokens": 2}), 2),
        (json!({"max_completion_tokens": 100}), 8),
        (json!({"max_tokens": 0}), 0),
    ];
    for (extra, n) in cases {
        let reply = chat(server.addr(), hello(extra)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let v = reply.json();
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["id"].as_str().unwrap().len(), "chatcmpl-".len() + 16);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gpt-test");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        let expected: String = Tokens::new(0, reply.request_id(), n).collect();
        assert_eq!(v["choices"][0]["message"]["content"], expected.as_str());
        assert_eq!(v["usage"]["completion_tokens"], n);
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], 5 + n);
    }
    server.shutdown();
}

fn events(body: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.ends_with("\n\n"));
    text.split_terminator("\n\n").map(|e| e.strip_prefix("data: ").unwrap().to_string()).collect()
}

#[tokio::test]
async fn streaming_sends_the_full_chunk_sequence_after_the_first_token_delay() {
    let first_token_delay = Duration::from_millis(40);
    let server = start(MockConfig {
        output_tokens: 4,
        first_token_delay,
        token_delay: Duration::from_millis(1),
        ..MockConfig::default()
    });
    for include_usage in [true, false] {
        let request = hello(json!({
            "stream": true, "stream_options": {"include_usage": include_usage}
        }));
        let reply = chat(server.addr(), request).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        assert!(reply.marker_after.unwrap() >= first_token_delay);
        let events = events(&reply.body);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(chunks.len(), 1 + 4 + 1 + usize::from(include_usage));
        let id = chunks[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-"));
        for c in &chunks {
            assert_eq!(c["id"], id);
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "gpt-test");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        let expected: Vec<&str> = Tokens::new(0, reply.request_id(), 4).collect();
        for (c, token) in chunks[1..5].iter().zip(expected) {
            assert_eq!(c["choices"][0]["delta"], json!({ "content": token }));
            assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
        }
        assert_eq!(chunks[5]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
        if include_usage {
            assert_eq!(chunks[6]["choices"], json!([]));
            assert_eq!(chunks[6]["usage"], json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}));
        }
    }
}

#[tokio::test]
async fn response_ids_differ_between_requests() {
    let server = start(fast());
    let a = chat(server.addr(), hello(json!({}))).await.json();
    let b = chat(server.addr(), hello(json!({"stream": false}))).await.json();
    assert_ne!(a["id"], b["id"]);
}

async fn failing_indices(config: &MockConfig) -> BTreeSet<u64> {
    let server = start(config.clone());
    let mut failed = BTreeSet::new();
    for _ in 0..200 {
        let reply = chat(server.addr(), hello(json!({"max_tokens": 1}))).await;
        match reply.status {
            200 => {}
            503 => {
                assert_eq!(reply.json()["error"]["type"], "server_error");
                failed.insert(reply.request_id());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    failed
}

#[tokio::test]
async fn fault_injection_is_seeded_and_reproducible() {
    let config = MockConfig {
        error_rate: 0.5,
        error_status: 503,
        seed: 7,
        first_token_delay: Duration::from_millis(1),
        token_delay: Duration::ZERO,
        ..MockConfig::default()
    };
    let first = failing_indices(&config).await;
    assert!((60..=140).contains(&first.len()), "{} failures", first.len());
    assert_eq!(first, failing_indices(&config).await);
}

#[tokio::test]
async fn bad_requests_are_answered_with_openai_errors() {
    let server = start(fast());
    let addr = server.addr();
    let bodies: [&[u8]; 4] = [b"{not json", b"", br#"{"messages": "hi"}"#, b"[1,2]"];
    for body in bodies {
        let reply = send(addr, "POST", "/v1/chat/completions", None, body, None).await;
        assert_eq!(reply.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
        reply.request_id();
    }
    for (method, path) in [("GET", "/nope"), ("POST", "/v1/completions"), ("GET", "/v1/chat/completions")] {
        let reply = send(addr, method, path, None, b"", None).await;
        assert_eq!(reply.status, 404, "{method} {path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json()["error"]["message"].is_string());
    }
}

/// `request` sent as it is, bounded like `send`.
async fn send_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    tokio::time::timeout(IO_LIMIT, exchange_raw(addr, request, None)).await.expect("exchange timed out")
}

#[tokio::test]
async fn the_chat_route_reads_bodies_as_the_router_reads_them_on_the_other_routes() {
    let server = start(fast());
    let addr = server.addr();
    // One byte over the 64 MiB limit: refused on the chat route (served ahead of the router) exactly as on a
    // routed one.
    for path in ["/v1/chat/completions", "/v1/echo"] {
        let mut request =
            format!("POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 67108865\r\n\r\n")
                .into_bytes();
        request.resize(request.len() + 67_108_865, b' ');
        let reply = send_raw(addr, &request).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, 413, "{path}: {text}");
        assert!(text.contains("Failed to buffer the request body: length limit exceeded"), "{path}: {text}");
    }
    // A chunked body is read whole.
    let body = r#"{"messages":[{"role":"user","content":"hi there"}],"max_tokens":2}"#;
    let (a, b) = body.split_at(20);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let reply = send_raw(addr, request.as_bytes()).await;
    let text = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, 200, "{text}");
    assert!(text.contains(r#""prompt_tokens":2"#), "{text}");
}

#[tokio::test]
async fn health_models_and_echo() {
    let server = start(fast());
    let addr = server.addr();
    let health = send(addr, "GET", "/health", None, b"", None).await;
    assert_eq!((health.status, health.json()), (200, json!({"status": "ok"})));
    let models = send(addr, "GET", "/v1/models", None, b"", None).await;
    assert_eq!(models.json()["data"][0]["id"], "mock-model");

    let body = br#"{"captured":"tok-123", "n": [1, 2]}"#;
    let echo = send(addr, "POST", "/v1/echo", None, body, None).await;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("content-type"), Some("application/json"));
    assert_eq!(echo.body, body);
    let echo = send(addr, "POST", "/v1/echo", Some("text/plain"), b"not json at all", None).await;
    assert_eq!(echo.header("content-type"), Some("text/plain"));
    assert_eq!(echo.body, b"not json at all");
}

#[tokio::test]
async fn bind_errors_are_returned_and_shutdown_releases_the_port() {
    let server = start(fast());
    let addr = server.addr();
    assert!(spawn(fast(), addr).is_err());
    assert_eq!(server.base_url(), format!("http://{addr}"));
    server.shutdown();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn serve_stops_when_its_shutdown_future_resolves() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::serve(listener, fast(), async {
        let _ = stopped.await;
    }));
    let health = send(addr, "GET", "/health", None, b"", None).await;
    assert_eq!(health.status, 200);
    stop.send(()).unwrap();
    tokio::time::timeout(IO_LIMIT, server).await.unwrap().unwrap().unwrap();
}

/// The probe on the mock's runtime reports through `/mock/stats` and the in-process handle; a take starts afresh.
#[tokio::test]
async fn the_mocks_hiccup_probe_shows_in_its_stats_and_handle() {
    let server = start(fast());
    let addr = server.addr();
    // Polled rather than slept on: the first wake-up comes when the machine lets it, within the bound.
    let deadline = Instant::now() + IO_LIMIT;
    let mut seen = stats(addr).await;
    while seen["hiccups"]["samples"].as_u64().unwrap_or(0) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = stats(addr).await;
    }
    let h = &seen["hiccups"];
    assert!(h["samples"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(h["interval_ms"], 1.0);
    assert!(h["p50_ms"].as_f64().unwrap() <= h["max_ms"].as_f64().unwrap(), "{h}");
    let taken = server.take_hiccups();
    assert!(taken.len() >= h["samples"].as_u64().unwrap(), "the handle holds what the stats showed and more");
    server.shutdown();
}

async fn stats(addr: SocketAddr) -> Value {
    send(addr, "GET", "/mock/stats", None, b"", None).await.json()
}

/// The JSON chunks of a stream, `[DONE]` and anything unparsable left out.
fn chunks(body: &[u8]) -> Vec<Value> {
    events(body).iter().filter_map(|e| serde_json::from_str(e).ok()).collect()
}
