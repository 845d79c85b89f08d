use std::time::Duration;

use super::*;

fn get(client_path: &str, host: &HeaderValue) -> Request {
    http::Request::get(client_path).header(http::header::HOST, host.clone()).body(Full::new(Bytes::new())).unwrap()
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
        .exchange(get("/x", factory.host_header()), Duration::from_secs(2), Reading::default())
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
                get("/health", factory.host_header()),
                Duration::from_secs(2),
                Reading { keep: Some(&mut buf), ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(ex.status, 200);
        assert_eq!(ex.bytes as usize, buf.len());
        assert!(String::from_utf8_lossy(&buf).contains("ok"));
    }
    let ex =
        client.exchange(get("/nope", factory.host_header()), Duration::from_secs(2), Reading::default()).await.unwrap();
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
        .body(Full::new(Bytes::from_static(br#"{"model":"m","messages":[]}"#)))
        .unwrap();
    let err = client.exchange(req, Duration::from_millis(100), Reading::default()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    mock.shutdown();
}

#[test]
fn retry_after_prefers_milliseconds() {
    let mut h = http::HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    h.insert("retry-after-ms", HeaderValue::from_static("150"));
    assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    h.insert("retry-after-ms", HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
}
