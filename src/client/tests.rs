use std::time::Duration;

use super::*;
use crate::llm::sse::SseParser;

fn get(client_path: &str, host: &HeaderValue) -> Request {
    http::Request::get(client_path).header(http::header::HOST, host.clone()).body(Bytes::new()).unwrap()
}

#[test]
fn status_429_is_rate_limited() {
    assert_eq!(status_kind(429), ErrorKind::RateLimited);
    assert_eq!(status_kind(503), ErrorKind::Status(503));
}

#[test]
fn endpoint_parsing_keeps_prefix_and_port() {
    let f = ClientFactory::new("http://gw.local:8000/api/", false, Duration::from_secs(1)).unwrap();
    assert_eq!(f.prefix(), "/api");
    assert_eq!(f.host_header(), "gw.local:8000");
    assert!(ClientFactory::new("ftp://x", false, Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let factory = ClientFactory::new(&format!("http://127.0.0.1:{port}"), false, Duration::from_secs(1)).unwrap();
    let mut client = factory.build();
    let err = client
        .exchange(&get("/x", factory.host_header()), Duration::from_secs(2), Reading::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connect, "{}", err.message);
}

#[tokio::test]
async fn keeps_the_connection_and_reads_the_body() {
    let mock = crate::mock::spawn(crate::mock::MockConfig::default(), ([127, 0, 0, 1], 0).into()).unwrap();
    let factory = ClientFactory::new(&mock.base_url(), false, Duration::from_secs(1)).unwrap();
    let mut client = factory.build();
    let mut buf = Vec::new();
    for _ in 0..3 {
        buf.clear();
        let ex = client
            .exchange(
                &get("/health", factory.host_header()),
                Duration::from_secs(2),
                Reading { buf: Some(&mut buf), keep: true, ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(ex.status, 200);
        assert_eq!(ex.bytes as usize, buf.len());
        assert!(String::from_utf8_lossy(&buf).contains("ok"));
    }
    let ex = client
        .exchange(&get("/nope", factory.host_header()), Duration::from_secs(2), Reading::default())
        .await
        .unwrap();
    assert_eq!(ex.status, 404);
    mock.shutdown();
}

#[tokio::test]
async fn a_slow_response_times_out() {
    let cfg = crate::mock::MockConfig { first_token_delay: Duration::from_millis(500), ..Default::default() };
    let mock = crate::mock::spawn(cfg, ([127, 0, 0, 1], 0).into()).unwrap();
    let factory = ClientFactory::new(&mock.base_url(), false, Duration::from_secs(1)).unwrap();
    let mut client = factory.build();
    let req = http::Request::post("/v1/chat/completions")
        .header(http::header::HOST, factory.host_header().clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from_static(br#"{"model":"m","messages":[]}"#))
        .unwrap();
    let err = client.exchange(&req, Duration::from_millis(100), Reading::default()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    mock.shutdown();
}

/// What a raw test server does with each connection, after reading the request head.
#[derive(Clone)]
enum Act {
    Write(&'static [u8]),
    /// Writes this chunk again and again until the client goes away.
    Repeat(&'static [u8]),
    Stall,
    /// Waits for the next request head.
    ReadHead,
    /// Closes with a TCP reset instead of a FIN.
    Reset,
}

/// A server on 127.0.0.1 that plays `acts` on every connection, then closes it.
async fn raw_server(acts: Vec<Act>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let acts = acts.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                for act in std::iter::once(Act::ReadHead).chain(acts) {
                    match act {
                        Act::ReadHead => {
                            head.clear();
                            while !head.ends_with(b"\r\n\r\n") {
                                match sock.read(&mut b).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => head.push(b[0]),
                                }
                            }
                        }
                        Act::Write(bytes) => {
                            if sock.write_all(bytes).await.is_err() {
                                return;
                            }
                        }
                        Act::Repeat(chunk) => while sock.write_all(chunk).await.is_ok() {},
                        Act::Stall => tokio::time::sleep(Duration::from_secs(3600)).await,
                        Act::Reset => {
                            let _ = sock.set_zero_linger();
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// One exchange with a server playing `acts`: (result, bytes kept in the buffer).
async fn against(acts: Vec<Act>, keep: bool, sse: bool, max_body: usize) -> (Result<Exchange, Failure>, Vec<u8>) {
    let url = raw_server(acts).await;
    let factory = ClientFactory::new(&url, false, Duration::from_secs(2)).unwrap();
    let mut client = factory.build();
    let mut buf = Vec::new();
    let mut parser = SseParser::new();
    let sink = sse.then_some(&mut parser);
    let reading = Reading { buf: Some(&mut buf), keep, sink, max_body, capture: &[], expect: None, tap: None };
    let r = client.exchange(&get("/", factory.host_header()), Duration::from_secs(20), reading).await;
    (r, buf)
}

async fn failure(acts: Vec<Act>, keep: bool, sse: bool) -> Failure {
    match against(acts, keep, sse, DEFAULT_MAX_BODY).await.0 {
        Ok(ex) => panic!("expected a failure, got status {}", ex.status),
        Err(f) => f,
    }
}

#[tokio::test]
async fn invalid_http_is_a_protocol_failure() {
    use Act::Write;
    let cases: [&'static [u8]; 5] = [
        b"HELLO WORLD\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03binary garbage\r\n\r\n",
    ];
    for (i, bytes) in cases.into_iter().enumerate() {
        for keep in [false, true] {
            let f = failure(vec![Write(bytes)], keep, false).await;
            assert_eq!(f.kind, ErrorKind::Protocol, "case {i} keep {keep}: {}", f.message);
        }
    }
}

#[tokio::test]
async fn an_oversized_head_is_a_protocol_failure() {
    let f = failure(
        vec![Act::Write(b"HTTP/1.1 200 OK\r\n"), Act::Repeat(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaa\r\n")],
        false,
        false,
    )
    .await;
    assert_eq!(f.kind, ErrorKind::Protocol, "{}", f.message);
}

#[tokio::test]
async fn a_connection_lost_before_the_head_is_a_connect_failure() {
    for acts in [
        vec![],
        vec![Act::Reset],
        vec![Act::Write(b"HTTP/1.1 200 OK\r\ncontent-le")],
        vec![Act::Write(b"HTTP/1.1 200 OK\r\n"), Act::Reset],
    ] {
        let f = failure(acts, false, false).await;
        assert_eq!(f.kind, ErrorKind::Connect, "{}", f.message);
    }
}

#[tokio::test]
async fn a_body_cut_after_the_head_is_a_body_or_stream_failure() {
    let head_cl: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b";
    let f = failure(vec![Act::Write(head_cl)], true, false).await;
    assert_eq!(f.kind, ErrorKind::Body, "{}", f.message);
    let f = failure(vec![Act::Write(head_cl), Act::Reset], false, false).await;
    assert_eq!(f.kind, ErrorKind::Body, "{}", f.message);
    let sse: &'static [u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
        6\r\ndata: \r\n";
    let f = failure(vec![Act::Write(sse)], false, true).await;
    assert_eq!(f.kind, ErrorKind::Stream, "{}", f.message);
}

#[tokio::test]
async fn a_stalled_body_times_out() {
    let url = raw_server(vec![Act::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab"), Act::Stall]).await;
    let factory = ClientFactory::new(&url, false, Duration::from_secs(2)).unwrap();
    let mut client = factory.build();
    let err = client
        .exchange(&get("/", factory.host_header()), Duration::from_millis(300), Reading::default())
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.bytes), (ErrorKind::Timeout, 2), "{}", err.message);
}

const HUGE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n";
const HUGE_ERROR: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1073741824\r\n\r\n";
const ZEROS: &[u8] = &[b'0'; 64 * 1024];

#[tokio::test]
async fn a_body_over_max_body_fails_without_being_read_whole() {
    let mut chunk = b"4000\r\n".to_vec();
    chunk.extend_from_slice(&[b'1'; 0x4000]);
    chunk.extend_from_slice(b"\r\n");
    let chunk: &'static [u8] = Box::leak(chunk.into_boxed_slice());
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    for (head, data) in [(HUGE_HEAD, ZEROS), (CHUNKED, chunk)] {
        let (r, buf) = against(vec![Act::Write(head), Act::Repeat(data)], true, false, 64 * 1024).await;
        let f = r.unwrap_err();
        assert_eq!(f.kind, ErrorKind::Body, "{}", f.message);
        assert!(f.message.contains("max_body (64 KiB)"), "{}", f.message);
        assert!(f.bytes < 64 * 1024 + 2 * ZEROS.len() as u64, "read {} bytes", f.bytes);
        assert!(buf.len() <= 64 * 1024);
    }
}

#[tokio::test]
async fn an_llm_answer_over_max_body_is_a_body_failure() {
    const CHAT_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3000000\r\n\r\n\
        {\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"";
    let (r, _) =
        against(vec![Act::Write(CHAT_HEAD), Act::Repeat(b"aaaaaaaaaaaaaaaa")], true, false, DEFAULT_MAX_BODY).await;
    let f = r.unwrap_err();
    assert_eq!(f.kind, ErrorKind::Body);
    assert!(f.message.contains("max_body (1 MiB)"), "{}", f.message);
}

#[tokio::test]
async fn an_error_body_is_read_only_for_its_excerpt() {
    for keep in [false, true] {
        let (r, buf) = against(vec![Act::Write(HUGE_ERROR), Act::Repeat(ZEROS)], keep, false, DEFAULT_MAX_BODY).await;
        let ex = r.unwrap();
        assert_eq!(ex.status, 500);
        assert_eq!(buf.len(), EXCERPT_BYTES);
        assert!(ex.bytes <= 2 * ZEROS.len() as u64, "read {} bytes of a 1 GB error body", ex.bytes);
    }
}

#[tokio::test]
async fn a_small_error_body_is_drained_to_keep_the_connection() {
    let resp = |status: &str| -> &'static [u8] {
        let mut r = format!("HTTP/1.1 {status}\r\ncontent-length: 2000\r\n\r\n").into_bytes();
        r.extend_from_slice(&[b'e'; 2000]);
        Box::leak(r.into_boxed_slice())
    };
    // A second connection would get the 503 again: the 502 proves the first one was reused.
    let url = raw_server(vec![Act::Write(resp("503 No")), Act::ReadHead, Act::Write(resp("502 No")), Act::Stall]).await;
    let factory = ClientFactory::new(&url, false, Duration::from_secs(2)).unwrap();
    let mut client = factory.build();
    let mut buf = Vec::new();
    for status in [503, 502] {
        buf.clear();
        let reading = Reading { buf: Some(&mut buf), ..Default::default() };
        let ex = client.exchange(&get("/", factory.host_header()), Duration::from_secs(5), reading).await.unwrap();
        assert_eq!((ex.status, ex.bytes, buf.len()), (status, 2000, EXCERPT_BYTES));
    }
}

#[tokio::test]
async fn a_16_mib_sse_line_is_a_stream_failure() {
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 16777300\r\n\r\ndata: ";
    let (r, _) = against(vec![Act::Write(HEAD), Act::Repeat(ZEROS)], false, true, DEFAULT_MAX_BODY).await;
    let f = r.unwrap_err();
    assert_eq!(f.kind, ErrorKind::Stream);
    assert!(f.message.contains("larger than max_body (1 MiB)"), "{}", f.message);
    assert!(f.bytes < 2 << 20, "read {} bytes", f.bytes);
}

#[tokio::test]
async fn an_unasked_for_encoding_cannot_be_checked() {
    const GZ: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\n\x1f\x8b\x08\x00";
    let f = failure(vec![Act::Write(GZ)], true, false).await;
    assert_eq!(f.kind, ErrorKind::Body);
    assert!(f.message.contains("content-encoding `gzip`"), "{}", f.message);
    // A step that does not read the body just counts the bytes.
    let (r, _) = against(vec![Act::Write(GZ)], false, false, DEFAULT_MAX_BODY).await;
    assert_eq!(r.unwrap().status, 200);
}

#[test]
fn retry_after_saturates_and_flags_what_it_ignores() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let advice = |pairs: &[(&'static str, &'static str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        retry_after(&h, now)
    };
    let wait = |d| RetryAdvice { wait: Some(d), invalid: false };
    let ignored = RetryAdvice { wait: None, invalid: true };
    assert_eq!(advice(&[("retry-after", "18446744073709551616")]), wait(Duration::MAX));
    assert_eq!(advice(&[("retry-after", "1e300")]), wait(Duration::MAX));
    assert_eq!(advice(&[("retry-after", "inf")]), wait(Duration::MAX));
    assert_eq!(advice(&[("retry-after-ms", "1e300")]), wait(Duration::MAX));
    assert_eq!(advice(&[("retry-after-ms", "18446744073709551616000")]), wait(Duration::MAX));
    assert_eq!(advice(&[("retry-after", "-5")]), ignored);
    assert_eq!(advice(&[("retry-after", "NaN")]), ignored);
    assert_eq!(advice(&[("retry-after", "soon")]), ignored);
    assert_eq!(advice(&[("retry-after-ms", "-1")]), ignored);
    assert_eq!(advice(&[]), RetryAdvice::default());
    // An HTTP date is a delay from now; one in the past means now.
    assert_eq!(advice(&[("retry-after", "Tue, 14 Nov 2023 22:13:27 GMT")]), wait(Duration::from_secs(7)));
    assert_eq!(advice(&[("retry-after", "Tue, 14 Nov 2023 22:13:00 GMT")]), wait(Duration::ZERO));
    // Milliseconds first; an invalid one falls back to Retry-After but is still counted.
    assert_eq!(advice(&[("retry-after", "2"), ("retry-after-ms", "150")]), wait(Duration::from_millis(150)));
    assert_eq!(
        advice(&[("retry-after", "2"), ("retry-after-ms", "soon")]),
        RetryAdvice { wait: Some(Duration::from_secs(2)), invalid: true }
    );
}

#[test]
fn limits_read_in_human_units() {
    assert_eq!(human_bytes(1 << 20), "1 MiB");
    assert_eq!(human_bytes(512 << 10), "512 KiB");
    assert_eq!(human_bytes(64_000), "64000 bytes");
}

#[tokio::test]
async fn a_tap_copies_the_head_and_the_first_bytes_of_a_streamed_body() {
    let mock = crate::mock::spawn(crate::mock::MockConfig::default(), ([127, 0, 0, 1], 0).into()).unwrap();
    let factory = ClientFactory::new(&mock.base_url(), false, Duration::from_secs(1)).unwrap();
    let mut client = factory.build();
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = http::Request::post("/v1/chat/completions")
        .header(http::header::HOST, factory.host_header().clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body))
        .unwrap();
    let (mut buf, mut parser, mut tap) = (Vec::new(), SseParser::new(), Tap::default());
    let (sink, max_body) = (Some(&mut parser), DEFAULT_MAX_BODY);
    let reading =
        Reading { buf: Some(&mut buf), keep: false, sink, capture: &[], expect: None, max_body, tap: Some(&mut tap) };
    let ex = client.exchange(&req, Duration::from_secs(5), reading).await.unwrap();
    assert_eq!(ex.status, 200);
    assert!(tap.responded);
    assert_eq!(tap.headers.get("content-type").map(|v| v.as_bytes()), Some(&b"text/event-stream"[..]));
    assert!(tap.body.starts_with(b"data: {"), "{}", String::from_utf8_lossy(&tap.body));
    assert_eq!(tap.body.len() as u64, ex.bytes.min(TAP_BODY_BYTES as u64));
    assert!(parser.summary().done, "the sink still read the whole stream");
    assert!(buf.is_empty(), "a tap keeps nothing in the step's buffer");
    mock.shutdown();
}

/// Echoes each request's body back: reads the head, then exactly `content-length` bytes.
async fn echo_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 65536];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the body was cut");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
            let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            s.write_all(&out).await.unwrap();
        }
    });
    url
}

#[tokio::test]
async fn bodies_small_and_large_arrive_whole_on_one_connection() {
    let url = echo_server().await;
    let factory = ClientFactory::new(&url, false, Duration::from_secs(5)).unwrap();
    let mut client = factory.build();
    // Around the size up to which a body shares the head's buffer, and well past it.
    for len in [0, 1, 300, 4095, 4096, 4097, 70_000, 1_000_000] {
        let sent: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let req = http::Request::post("/echo")
            .header(http::header::HOST, factory.host_header().clone())
            .body(Bytes::from(sent.clone()))
            .unwrap();
        // As rendered per request, and as a step with nothing to render sends it (serialized once).
        for req in [req.clone(), prepared(req)] {
            let mut buf = Vec::new();
            let ex = client
                .exchange(
                    &req,
                    Duration::from_secs(5),
                    Reading { buf: Some(&mut buf), keep: true, max_body: 4 << 20, ..Default::default() },
                )
                .await
                .unwrap();
            assert_eq!(ex.status, 200);
            assert_eq!(buf, sent, "a {len}-byte body");
        }
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_not_failed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut closed_tx = Some(closed_tx);
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            // One response per connection, keep-alive by its framing, then the server closes it (an idle
            // timeout, say): the client must not send its next request there.
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            drop(s);
            if let Some(tx) = closed_tx.take() {
                tx.send(()).unwrap();
            }
        }
    });
    let factory = ClientFactory::new(&url, false, Duration::from_secs(5)).unwrap();
    let mut client = factory.build();
    let req = get("/", factory.host_header());
    let ex = client.exchange(&req, Duration::from_secs(5), Reading::default()).await.unwrap();
    assert_eq!(ex.status, 200);
    closed_rx.await.unwrap();
    // A timer wait parks the runtime, so its I/O driver sees the close before the next request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for req in [req.clone(), prepared(req)] {
        let ex = client.exchange(&req, Duration::from_secs(5), Reading::default()).await.unwrap();
        assert_eq!(ex.status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.connects, 3, "one connection per response, none failed");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fires_no_sooner_than_asked_and_at_most_a_64th_later() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        // The first request is answered; every later one (a timed-out connection is replaced) is read and
        // never answered.
        let mut answered = false;
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let answer = !std::mem::replace(&mut answered, true);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if answer {
                    let _ = s.read(&mut buf).await.unwrap();
                    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                }
                while s.read(&mut buf).await.unwrap_or(0) > 0 {}
            });
        }
    });
    let factory = ClientFactory::new(&url, false, Duration::from_secs(5)).unwrap();
    let mut client = factory.build();
    let req = get("/", factory.host_header());
    let timeout = Duration::from_secs(1);
    assert_eq!(client.exchange(&req, timeout, Reading::default()).await.unwrap().status, 200);
    // Started within the slack of the timer the first request armed (kept), then well past it (re-armed).
    for pause in [Duration::from_millis(5), Duration::from_millis(400)] {
        tokio::time::sleep(pause).await;
        let start = tokio::time::Instant::now();
        let f = client.exchange(&req, timeout, Reading::default()).await.unwrap_err();
        assert_eq!(f.kind, ErrorKind::Timeout);
        let took = start.elapsed();
        // tokio's timer rounds a deadline up to its next millisecond.
        let latest = timeout + timeout / 64 + Duration::from_millis(1);
        assert!(took >= timeout && took <= latest, "timed out after {took:?} (pause {pause:?})");
    }
}

/// A head's headers are kept by name, any case, in the order asked. A name whose length (modulo 64) no header
/// has is skipped without a comparison: here the head's are 7, 11 and 74 bytes long, and the last name asked
/// for, of 10 bytes, shares 74's bit and is compared.
#[test]
fn captured_headers_are_found_by_name_whatever_their_length() {
    let long = "x-".to_owned() + &"a".repeat(72);
    let head = [
        httparse::Header { name: "X-Model", value: b"gpt" },
        httparse::Header { name: "x-cache-hit", value: b"1" },
        httparse::Header { name: &long, value: b"long" },
    ];
    let names: Vec<HeaderName> =
        ["x-model", "x-absent", "x-cache-hit", "x-cache-mis", &long, &("x-".to_owned() + &"b".repeat(8))]
            .into_iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
            .collect();
    let c = Captured::from_raw(&head, &names);
    let got: Vec<Option<&[u8]>> = (0..names.len()).map(|i| c.get(i).map(|v| v.as_bytes())).collect();
    assert_eq!(got, [Some(&b"gpt"[..]), None, Some(b"1"), None, Some(b"long"), None]);
    // Nothing asked for is there: nothing kept, nothing allocated.
    assert!(Captured::from_raw(&head, &names[1..2]).0.capacity() == 0);
}
