//! The chat request served by `wire` rather than hyper: the same bytes on the wire as hyper writes for it,
//! keep-alive and pipelining, requests cut anywhere, and every other request handed to hyper with the bytes
//! already read.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::MockConfig;
use super::super::wire::{Parsed, parse};
use super::{IO_LIMIT, dechunk, fast, hello, send_raw, start};

const CHAT: &str = "POST /v1/chat/completions HTTP/1.1\r\n";

fn with_body(head: &str, body: &str) -> Vec<u8> {
    format!("{head}content-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

#[test]
fn parse_takes_a_request_with_a_plain_length_or_none() {
    let body = r#"{"messages":[]}"#;
    let request = with_body(&format!("{CHAT}host: x\r\nauthorization: Bearer abc\r\nAuthorization: no\r\n"), body);
    let Parsed::Served(head) = parse(&request) else { panic!("not taken") };
    assert!(head.chat && !head.close);
    assert_eq!(head.len + head.body, request.len());
    assert_eq!(head.body, body.len());
    assert_eq!(&request[head.authorization.unwrap()], b"Bearer abc");
    // Every cut before the head's end is partial, whatever follows it.
    let end = head.len;
    for cut in 0..end {
        assert_eq!(parse(&request[..cut]), Parsed::Partial, "cut at {cut}");
    }
    let closing = with_body(&format!("{CHAT}Connection: Close\r\n"), body);
    assert!(matches!(parse(&closing), Parsed::Served(h) if h.close && h.authorization.is_none()));
    let kept = with_body(&format!("{CHAT}connection: keep-alive\r\n"), body);
    assert!(matches!(parse(&kept), Parsed::Served(h) if !h.close));
    // The chat route by its path without the query, as `front` routes it; the rest is the router's.
    for (request, chat) in [
        (with_body("POST /v1/chat/completions?x=1 HTTP/1.1\r\n", body), true),
        (with_body("GET /v1/chat/completions HTTP/1.1\r\n", ""), false),
        (with_body("POST /v1/chat/completions/ HTTP/1.1\r\n", body), false),
        (with_body("POST /v1/echo HTTP/1.1\r\n", body), false),
        (b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(), false),
    ] {
        assert!(
            matches!(parse(&request), Parsed::Served(h) if h.chat == chat),
            "{}",
            String::from_utf8_lossy(&request)
        );
    }
    // No length is an empty body.
    assert!(matches!(parse(format!("{CHAT}host: x\r\n\r\n").as_bytes()), Parsed::Served(h) if h.body == 0));

    for other in [
        with_body("POST /v1/chat/completions HTTP/1.0\r\n", body),
        with_body("POST http://x/v1/chat/completions HTTP/1.1\r\n", body),
        b"HEAD /health HTTP/1.1\r\n\r\n".to_vec(),
        b"CONNECT x:80 HTTP/1.1\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\n\r\n".to_vec(),
        with_body(&format!("{CHAT}transfer-encoding: chunked\r\n"), body),
        with_body(&format!("{CHAT}expect: 100-continue\r\n"), body),
        with_body(&format!("{CHAT}connection: upgrade\r\nupgrade: h2c\r\n"), body),
        with_body(&format!("{CHAT}content-length: 15\r\n"), body),
        format!("{CHAT}content-length: +15\r\n\r\n{body}").into_bytes(),
        format!("{CHAT}content-length: 1 5\r\n\r\n{body}").into_bytes(),
        format!("{CHAT}content-length: 99999999999999999999\r\n\r\n").into_bytes(),
        format!("{CHAT}content-length: 67108865\r\n\r\n").into_bytes(),
        b"POST /v1/chat/completions HTTP/1.1\r\nbad header\r\n\r\n".to_vec(),
        format!("{CHAT}{}\r\n", "x-a: b\r\n".repeat(33)).into_bytes(),
    ] {
        assert_eq!(parse(&other), Parsed::Other, "{}", String::from_utf8_lossy(&other));
    }
}

/// The response to `request` (which asks to close): its head without `date`, its body's data (de-chunked:
/// chunk sizes follow the pace of the writes) with `"created"` zeroed, and whether the body was whole. The date
/// and the creation time are the clock's, not the server's choice.
async fn answer(config: &MockConfig, request: &[u8]) -> (String, String, bool) {
    let server = start(config.clone());
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(IO_LIMIT, stream.read_to_end(&mut bytes)).await.expect("the reply timed out");
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("no head");
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let head: Vec<&str> = head.split("\r\n").filter(|line| !line.starts_with("date: ")).collect();
    let (body, whole) = match head.contains(&"transfer-encoding: chunked") {
        true => dechunk(&bytes[split + 4..]),
        false => (bytes[split + 4..].to_vec(), true),
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut parts = body.split("\"created\":");
    let mut zeroed = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        zeroed.push_str("\"created\":0");
        zeroed.push_str(part.trim_start_matches(|c: char| c.is_ascii_digit()));
    }
    (head.join("\r\n"), zeroed, whole)
}

#[tokio::test]
async fn a_chat_answer_is_the_bytes_hyper_writes_for_it() {
    let instant = MockConfig { first_token_delay: Duration::ZERO, token_delay: Duration::ZERO, ..fast() };
    let configs = [
        fast(),
        instant.clone(),
        MockConfig { output_tokens: 3000, ..instant.clone() },
        MockConfig { error_rate: 1.0, error_status: 429, retry_after: Duration::from_millis(1500), ..fast() },
        MockConfig { error_rate: 1.0, error_status: 529, ..fast() },
        MockConfig { error_rate: 1.0, error_status: 204, ..fast() },
        MockConfig { error_rate: 1.0, error_status: 304, ..fast() },
        MockConfig { error_rate: 1.0, error_status: 103, ..fast() },
        MockConfig { reset_rate: 1.0, ..fast() },
        MockConfig { reset_rate: 1.0, ..instant.clone() },
        MockConfig { malformed_rate: 1.0, ..fast() },
        MockConfig { midstream_error_rate: 1.0, ..fast() },
        MockConfig { no_done_rate: 1.0, ..fast() },
        MockConfig { auth_required: true, ..fast() },
        MockConfig { reasoning_tokens: 3, react_steps: 2, ..instant },
    ];
    let tools = json!({"tools": [{"type": "function", "function": {"name": "search"}}]});
    let bodies =
        [hello(json!({"stream": true, "stream_options": {"include_usage": true}})), hello(json!({})), hello(tools)]
            .map(|b| b.to_string());
    for config in &configs {
        for body in &bodies {
            let ours = with_body(&format!("{CHAT}host: x\r\nconnection: close\r\n"), body);
            // Chunked, the request is hyper's to serve.
            let hypers = format!(
                "{CHAT}host: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            let (a, b) = (answer(config, &ours).await, answer(config, hypers.as_bytes()).await);
            assert_eq!(a, b, "{config:?}, {body}");
        }
    }
}

#[tokio::test]
async fn a_routed_answer_is_the_bytes_hyper_writes_for_it() {
    let chat = hello(json!({"max_tokens": 2})).to_string();
    let requests = [
        ("GET", "/health", "", ""),
        ("GET", "/v1/models", "", ""),
        ("POST", "/v1/echo", "content-type: text/plain\r\n", "hello"),
        ("POST", "/v1/echo", "", "{}"),
        ("POST", "/v1/auth/register", "", r#"{"username":"u","password":"p"}"#),
        ("POST", "/v1/auth/register", "", "not json"),
        ("POST", "/v1/auth/login", "", r#"{"username":"nobody","password":"p"}"#),
        ("POST", "/v1/tools/search", "", r#"{"query":"x"}"#),
        ("GET", "/nope?a=1", "", ""),
        ("DELETE", "/v1/chat/completions", "", ""),
        ("GET", "/v1/chat/completions", "", ""),
        ("POST", "/v1/chat/completions?x=1", "", &chat),
    ];
    let config = MockConfig { tool_latency: Duration::from_millis(1), ..fast() };
    for (method, path, headers, body) in requests {
        let line = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}");
        let ours = with_body(&line, body);
        let hypers = format!("{line}transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        let hypers = hypers.replace("\r\n0\r\n\r\n0\r\n\r\n", "\r\n0\r\n\r\n");
        let (a, b) = (answer(&config, &ours).await, answer(&config, hypers.as_bytes()).await);
        assert!(a.0.starts_with("HTTP/1.1 "), "{method} {path}: {}", a.0);
        assert_eq!(a, b, "{method} {path}");
    }
}

/// Reads one response from a kept-alive connection: its status and body.
async fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = parsed.parse(buf) {
            let status = parsed.code.unwrap();
            let length = parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
            let length = length.map(|h| std::str::from_utf8(h.value).unwrap().parse::<usize>().unwrap());
            loop {
                match length {
                    Some(n) if buf.len() >= len + n => {
                        let body = buf[len..len + n].to_vec();
                        buf.drain(..len + n);
                        return (status, body);
                    }
                    None if buf.ends_with(b"0\r\n\r\n") => {
                        let (body, whole) = dechunk(&buf[len..]);
                        assert!(whole);
                        buf.clear();
                        return (status, body);
                    }
                    _ => read_more(stream, buf).await,
                }
            }
        }
        read_more(stream, buf).await;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(IO_LIMIT, stream.read(&mut chunk)).await.expect("read timed out").unwrap();
    assert!(n > 0, "closed early after {}", String::from_utf8_lossy(buf));
    buf.extend_from_slice(&chunk[..n]);
}

#[tokio::test]
async fn a_kept_connection_serves_its_requests_in_order_and_hands_the_rest_to_hyper() {
    let server = start(fast());
    let chat = with_body(&format!("{CHAT}host: x\r\n"), &hello(json!({"max_tokens": 2})).to_string());
    let health = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n";
    // Chunked, this one is hyper's: the connection is handed over with the requests behind it.
    let echo = b"POST /v1/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        stream.write_all(&chat).await.unwrap();
        let (status, body) = response(&mut stream, &mut buf).await;
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains(r#""completion_tokens":2"#));
    }
    // Pipelined in one write and answered in order: two chats and a health check (all served here), then a
    // chunked echo and a chat, hyper's.
    let five = [chat.as_slice(), chat.as_slice(), health.as_slice(), echo.as_slice(), chat.as_slice()].concat();
    stream.write_all(&five).await.unwrap();
    let statuses = [response(&mut stream, &mut buf).await, response(&mut stream, &mut buf).await];
    assert!(statuses.iter().all(|(status, _)| *status == 200));
    let (status, body) = response(&mut stream, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, br#"{"status":"ok"}"#.as_slice()));
    let (status, body) = response(&mut stream, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, b"hi".as_slice()));
    let (status, body) = response(&mut stream, &mut buf).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains(r#""completion_tokens":2"#));
    assert_eq!(super::stats(server.addr()).await["chat_requests"], 6);
}

#[tokio::test]
async fn a_request_sent_a_byte_at_a_time_is_read_whole() {
    let server = start(fast());
    let body = hello(json!({"max_tokens": 1, "stream": true})).to_string();
    let request = with_body(&format!("{CHAT}host: x\r\n"), &body);
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for byte in &request {
        stream.write_all(std::slice::from_ref(byte)).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut buf = Vec::new();
    let (status, body) = response(&mut stream, &mut buf).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn shutdown_closes_an_idle_kept_connection() {
    let server = start(fast());
    let chat = with_body(&format!("{CHAT}host: x\r\n"), &hello(json!({"max_tokens": 1})).to_string());
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(&chat).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(response(&mut stream, &mut buf).await.0, 200);
    std::thread::spawn(move || server.shutdown());
    let mut rest = Vec::new();
    let read = tokio::time::timeout(IO_LIMIT, stream.read_to_end(&mut rest)).await.expect("not closed");
    assert!(read.is_ok_and(|n| n == 0));
}

#[tokio::test]
async fn a_head_too_large_for_the_chat_path_is_still_answered() {
    let server = start(fast());
    // 20 KB of headers: past what `wire` reads before handing the request to hyper (but within hyper's 100).
    let filler: String = (0..50).map(|i| format!("x-filler-{i}: {}\r\n", "y".repeat(400))).collect();
    let body = hello(json!({"max_tokens": 1})).to_string();
    let request = with_body(&format!("{CHAT}host: x\r\nconnection: close\r\n{filler}"), &body);
    let reply = send_raw(server.addr(), &request).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn a_request_whose_client_left_gives_up_its_slot() {
    // Every answer stalls far past the test's bounds, and one request may be served at a time.
    let config = MockConfig { stall_rate: 1.0, stall: Duration::from_secs(60), max_concurrency: 1, ..fast() };
    let server = start(config);
    let chat = with_body(&format!("{CHAT}host: x\r\n"), &hello(json!({"max_tokens": 1})).to_string());
    let mut gone = TcpStream::connect(server.addr()).await.unwrap();
    gone.write_all(&chat).await.unwrap();
    // The first request holds the slot (its stall is counted) before its client leaves.
    let deadline = tokio::time::Instant::now() + IO_LIMIT;
    while super::stats(server.addr()).await["stalls"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the first request never stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(gone);
    // Until the server sees the close, a second request is turned away; once it has, the second takes the
    // slot and stalls in turn. Were the first request's handler left running, the slot would stay taken for
    // its whole minute.
    let mut waiting = Vec::new();
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the slot was never given up");
        let mut next = TcpStream::connect(server.addr()).await.unwrap();
        next.write_all(&chat).await.unwrap();
        waiting.push(next);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if super::stats(server.addr()).await["stalls"] == 2 {
            break;
        }
    }
}

proptest::proptest! {
    /// Whatever the bytes (a chat request with headers drawn from those `parse` decides on, then bytes
    /// changed at random), `parse` does not panic, and takes a request only as httparse reads it: a whole
    /// HTTP/1.1 head with at most one plain length and nothing that needs hyper, the chat route told apart.
    #[test]
    fn parse_takes_a_head_only_as_httparse_reads_it(
        picks in proptest::collection::vec(0usize..10, 0..6),
        flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 0..4),
        cut in 0usize..400,
    ) {
        const FIELDS: [&str; 10] = [
            "content-length: 7", "content-length: 07", "Content-Length: 1", "connection: close",
            "Connection: keep-alive", "connection: upgrade", "transfer-encoding: chunked",
            "authorization: Bearer t", "expect: 100-continue", "x-other: y",
        ];
        let mut request = String::from(CHAT);
        for &p in &picks {
            request.push_str(FIELDS[p]);
            request.push_str("\r\n");
        }
        request.push_str("\r\n{\"messages\":[]}");
        let mut bytes = request.into_bytes();
        for (at, byte) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
        }
        bytes.truncate(cut.max(1));
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut reference = httparse::Request::new(&mut headers);
        let read = reference.parse(&bytes);
        match parse(&bytes) {
            Parsed::Served(head) => {
                proptest::prop_assert_eq!(read.ok(), Some(httparse::Status::Complete(head.len)));
                proptest::prop_assert_eq!(reference.version, Some(1));
                let chat = (reference.method, reference.path) == (Some("POST"), Some("/v1/chat/completions"));
                proptest::prop_assert_eq!(head.chat, chat);
                let lengths: Vec<_> =
                    reference.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")).collect();
                proptest::prop_assert!(lengths.len() <= 1);
                let value = lengths.first().map_or(b"0".as_slice(), |h| h.value);
                proptest::prop_assert!(value.iter().all(u8::is_ascii_digit));
                proptest::prop_assert_eq!(std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()), Some(head.body));
                proptest::prop_assert!(!reference.headers.iter().any(|h| ["transfer-encoding", "expect", "upgrade"]
                    .iter().any(|n| h.name.eq_ignore_ascii_case(n))));
                if let Some(range) = head.authorization {
                    proptest::prop_assert!(range.end <= head.len);
                }
            }
            Parsed::Partial => proptest::prop_assert_eq!(read.ok(), Some(httparse::Status::Partial)),
            Parsed::Other => {}
        }
    }
}
