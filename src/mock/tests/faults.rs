//! Each response fault, as the raw bytes on the wire show it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::MockConfig;
use super::{chat, events, fast, hello, start, stats};

fn streamed() -> Value {
    hello(json!({"stream": true, "stream_options": {"include_usage": true}}))
}

#[tokio::test]
async fn a_stall_delays_everything_then_answers_normally() {
    let stall = Duration::from_millis(120);
    let server = start(MockConfig { stall_rate: 1.0, stall, ..fast() });
    for request in [hello(json!({})), streamed()] {
        let sent = Instant::now();
        let reply = chat(server.addr(), request).await;
        assert!(reply.marker_after.is_none_or(|t| t >= stall));
        assert!(sent.elapsed() >= stall && reply.status == 200 && !reply.cut);
    }
    assert_eq!(stats(server.addr()).await["stalls"], 2);
}

#[tokio::test]
async fn a_reset_cuts_the_body_after_the_headers() {
    // Zero delays too: nothing then makes the body wait, and the cut must still come after the headers.
    let instant = MockConfig { first_token_delay: Duration::ZERO, token_delay: Duration::ZERO, ..fast() };
    for config in [fast(), instant] {
        let server = start(MockConfig { reset_rate: 1.0, ..config });
        let whole = chat(server.addr(), hello(json!({}))).await;
        assert_eq!(whole.status, 200);
        assert!(whole.cut && !whole.body.is_empty());
        assert!(serde_json::from_slice::<Value>(&whole.body).is_err());
        let stream = chat(server.addr(), streamed()).await;
        assert_eq!(stream.status, 200);
        assert!(stream.cut);
        let events = events(&stream.body);
        // The role chunk and half of the 8 tokens, then nothing.
        assert_eq!(events.len(), 5, "{events:?}");
        assert!(events.iter().all(|e| serde_json::from_str::<Value>(e).is_ok()));
        assert_eq!(stats(server.addr()).await["resets"], 2);
    }
}

#[tokio::test]
async fn a_malformed_chunk_sits_mid_stream() {
    let server = start(MockConfig { malformed_rate: 1.0, ..fast() });
    let reply = chat(server.addr(), streamed()).await;
    assert!(!reply.cut);
    let events = events(&reply.body);
    let bad: Vec<usize> = (0..events.len()).filter(|&i| serde_json::from_str::<Value>(&events[i]).is_err()).collect();
    assert_eq!(bad.len(), 2, "{events:?}");
    assert_eq!(events[bad[0]], r#"{"choices": ["#);
    assert_eq!(bad[0], 5);
    assert_eq!(events.last().unwrap(), "[DONE]");
    // Streams only: a non-streamed request is answered normally and not counted.
    assert!(chat(server.addr(), hello(json!({}))).await.json()["choices"][0]["message"]["content"].is_string());
    assert_eq!(stats(server.addr()).await["malformed"], 1);
}

#[tokio::test]
async fn a_midstream_error_ends_the_stream_without_done() {
    let server = start(MockConfig { midstream_error_rate: 1.0, ..fast() });
    let reply = chat(server.addr(), streamed()).await;
    assert!(!reply.cut);
    let events = events(&reply.body);
    assert_eq!(events.len(), 6, "{events:?}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last, json!({"error": {"message": "upstream provider failed", "type": "server_error"}}));
    assert!(!events.iter().any(|e| e == "[DONE]" || e.contains("finish_reason\":\"stop")));
    assert_eq!(stats(server.addr()).await["midstream_errors"], 1);
}

#[tokio::test]
async fn a_no_done_stream_is_otherwise_complete() {
    let server = start(MockConfig { no_done_rate: 1.0, ..fast() });
    let reply = chat(server.addr(), streamed()).await;
    assert!(!reply.cut);
    let events = events(&reply.body);
    assert!(!events.iter().any(|e| e == "[DONE]"));
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 8);
    assert!(events.iter().any(|e| e.contains(r#""finish_reason":"stop""#)));
    assert_eq!(stats(server.addr()).await["no_done"], 1);
}

#[tokio::test]
async fn injected_failures_say_retry_after_when_set() {
    let plain = start(MockConfig { error_rate: 1.0, error_status: 503, ..fast() });
    let reply = chat(plain.addr(), hello(json!({}))).await;
    assert_eq!((reply.status, reply.header("retry-after-ms")), (503, None));
    let server =
        start(MockConfig { error_rate: 1.0, error_status: 429, retry_after: Duration::from_millis(1_250), ..fast() });
    let reply = chat(server.addr(), hello(json!({}))).await;
    assert_eq!(reply.status, 429);
    assert_eq!((reply.header("retry-after-ms"), reply.header("retry-after")), (Some("1250"), Some("2")));
    assert_eq!(stats(server.addr()).await["injected_errors"], 1);
}
