//! The streaming definitions against servers that time their chunks: a gateway started here on 127.0.0.1 that
//! sends its `usage` chunk and `[DONE]` 100 ms after the last token, and the embedded mock, whose tail is
//! immediate. TPOT must be the token spacing in both; the late tail must show in `stream_tail`, not in TPOT.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Token spacing of the slow-tail gateway. Large against scheduling jitter on a busy machine: tokens are written
/// at absolute deadlines, so a late write shifts one token, not every later one, and TPOT divides the error by
/// the ten gaps.
const SPACING: Duration = Duration::from_millis(50);
const TOKENS: u32 = 11;
const FIRST_TOKEN: Duration = Duration::from_millis(30);
const TAIL: Duration = Duration::from_millis(100);

/// A gateway that streams `TOKENS` content chunks `SPACING` apart, then, `TAIL` after the last one, the finish
/// chunk, the usage chunk and `[DONE]` in one write (HTTP/1.1 chunked, keep-alive). Returns its URL.
fn slow_tail_gateway() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = connection(sock);
            });
        }
    });
    url
}

fn connection(sock: TcpStream) -> std::io::Result<()> {
    // Without it, Nagle's algorithm would hold each small token write until the previous one is acknowledged.
    sock.set_nodelay(true)?;
    let mut w = sock.try_clone()?;
    let mut r = BufReader::new(sock);
    while read_request(&mut r)?.is_some() {
        let start = Instant::now();
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
        let chunk = |data: &str| {
            let event = format!("data: {data}\n\n");
            format!("{:x}\r\n{event}\r\n", event.len())
        };
        let prefix = r#"{"id":"c1","object":"chat.completion.chunk","model":"gw-model","choices":"#;
        w.write_all(
            chunk(&format!(r#"{prefix}[{{"index":0,"delta":{{"role":"assistant","content":""}}}}]}}"#)).as_bytes(),
        )?;
        for i in 0..TOKENS {
            let due = start + FIRST_TOKEN + SPACING * i;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let token = format!(r#"{prefix}[{{"index":0,"delta":{{"content":"t{i} "}},"finish_reason":null}}]}}"#);
            w.write_all(chunk(&token).as_bytes())?;
        }
        std::thread::sleep(TAIL);
        let finish = format!(r#"{prefix}[{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#);
        let usage = format!(r#"{prefix}[],"usage":{{"prompt_tokens":5,"completion_tokens":{TOKENS}}}}}"#);
        let end = [chunk(&finish), chunk(&usage), chunk("[DONE]"), "0\r\n\r\n".to_owned()].concat();
        w.write_all(end.as_bytes())?;
    }
    Ok(())
}

const SCENARIO: &str = "[load]\nusers = 1\niterations = 5\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\nstream = true\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }], stream = true, \
    stream_options = { include_usage = true } }\n";

fn llm(r: &Value) -> &Value {
    &r["steps"][0]["stats"]["llm"]
}

fn ms_of(l: &Value, metric: &str, stat: &str) -> f64 {
    l[metric][stat].as_f64().unwrap_or_else(|| panic!("{metric}.{stat} missing: {l:#}"))
}

#[test]
fn a_gateway_that_sends_usage_and_done_late_leaves_tpot_at_the_token_spacing() {
    let _quiet = timed();
    let url = slow_tail_gateway();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tail.toml", SCENARIO);
    let r = run_report(&p, &dir.path().join("out"), &["--target", &url]);
    let l = llm(&r);
    assert_eq!((u(&l["responses"]), u(&l["streamed"]), u(&l["tokens_from_usage"])), (5, 5, 5), "{l:#}");
    assert_eq!(u(&l["output_tokens"]), 5 * u64::from(TOKENS));
    let spacing = SPACING.as_secs_f64() * 1000.0;
    let tpot = ms_of(l, "tpot", "p50_ms");
    let tail = ms_of(l, "stream_tail", "p50_ms");
    // The median of five streams, each off by at most one late write divided by ten gaps.
    assert!((tpot - spacing).abs() <= spacing * 0.10, "tpot p50 {tpot} ms is the {spacing} ms token spacing: {l:#}");
    // The server waits at least TAIL after writing the last token; the client can only see it later.
    assert!(tail >= TAIL.as_secs_f64() * 1000.0 * 0.95, "stream_tail p50 {tail} ms shows the 100 ms tail: {l:#}");
    assert!(tpot < tail / 1.5, "the tail is not in TPOT: {tpot} vs {tail}");
    let icl = ms_of(l, "icl", "p50_ms");
    assert!((icl - spacing).abs() <= spacing * 0.25, "icl p50 {icl} ms: gaps between token chunks");
    // E2E (latency) runs to the end of the stream: first token + 10 gaps + the tail.
    let e2e = r["steps"][0]["stats"]["latency"]["p50_ms"].as_f64().unwrap();
    assert!(e2e >= ms_of(l, "ttft", "p50_ms") + 10.0 * spacing * 0.9 + tail * 0.9, "e2e {e2e}: {l:#}");
}

#[test]
fn on_the_mock_tpot_is_its_token_delay_and_the_tail_is_short() {
    let _quiet = timed();
    let dir = tempfile::tempdir().unwrap();
    let scenario = SCENARIO.replace("iterations = 5", "iterations = 8")
        + "[mock]\noutput_tokens = 12\nfirst_token_delay = \"5ms\"\ntoken_delay = \"25ms\"\n";
    let p = write(dir.path(), "mock.toml", &scenario);
    let r = run_report(&p, &dir.path().join("out"), &[]);
    let l = llm(&r);
    assert_eq!(u(&l["tokens_from_usage"]), 8, "{l:#}");
    let tpot = ms_of(l, "tpot", "p50_ms");
    // The mock writes token k at first + k × token_delay (absolute deadlines), so TPOT is token_delay.
    assert!((tpot - 25.0).abs() <= 2.5, "tpot p50 {tpot} ms is the mock's 25 ms token_delay: {l:#}");
    // Its finish chunk, usage and [DONE] follow the last token at once.
    let tail = ms_of(l, "stream_tail", "p50_ms");
    assert!(tail < tpot / 2.0, "stream_tail p50 {tail} ms is short on the mock: {l:#}");
}
