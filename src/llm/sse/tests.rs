use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

mod ordered;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn delta(d: Value) -> String {
    event(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m-1",
        "choices": [{"index": 0, "delta": d, "finish_reason": null}]}))
}

fn content(s: &str) -> String {
    delta(json!({"content": s}))
}

fn finish(reason: &str) -> String {
    event(&json!({"id": "chatcmpl-1", "model": "m-1", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
}

const DONE: &str = "data: [DONE]\n\n";

/// Feeds each frame at its time, then finishes; the first error wins.
fn run(p: &mut SseParser, frames: &[(&[u8], Duration)]) -> Result<(), StreamError> {
    for (bytes, at) in frames {
        p.feed(bytes, *at)?;
    }
    p.finish()
}

/// A fresh parser (assembling) over one frame.
fn parse_one(body: &str) -> (SseParser, Result<(), StreamError>) {
    let mut p = SseParser::new();
    p.reset(true);
    let r = run(&mut p, &[(body.as_bytes(), ms(5))]);
    (p, r)
}

fn assembled(p: &SseParser) -> Value {
    let mut out = Vec::new();
    p.assembled_json(&mut out);
    serde_json::from_slice(&out).unwrap()
}

/// Role-only chunk, content with escapes and multi-byte UTF-8, finish, usage, [DONE].
fn sample() -> String {
    [
        delta(json!({"role": "assistant", "content": ""})),
        content("Hé\"llo"),
        content(", wörld 🌍\n"),
        finish("stop"),
        event(&json!({"id": "chatcmpl-1", "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 0}}})),
        DONE.to_owned(),
    ]
    .concat()
}

/// Reads `body` whole (assembling), then cut in two at every byte, then a byte at a time: every reading must
/// be the whole one's. The whole reading and its assembled document.
fn read_cut_anywhere(body: &str) -> (SseParser, Value) {
    let (whole, r) = parse_one(body);
    r.unwrap();
    let expected = assembled(&whole);
    let bytes = body.as_bytes();
    let mut p = SseParser::new();
    for cut in 0..=bytes.len() {
        p.reset(true);
        run(&mut p, &[(&bytes[..cut], ms(5)), (&bytes[cut..], ms(5))]).unwrap();
        assert_eq!(p.summary(), whole.summary(), "cut at {cut}");
        assert_eq!(assembled(&p), expected, "cut at {cut}");
    }
    p.reset(true);
    for b in bytes {
        p.feed(std::slice::from_ref(b), ms(5)).unwrap();
    }
    p.finish().unwrap();
    assert_eq!(p.summary(), whole.summary());
    (whole, expected)
}

#[test]
fn split_at_every_byte_boundary_gives_the_same_summary() {
    for body in [sample(), sample().replace('\n', "\r\n"), sample().replace('\n', "\r")] {
        let (_, expected) = read_cut_anywhere(&body);
        assert_eq!(expected["choices"][0]["message"]["content"], "Hé\"llo, wörld 🌍\n");
    }
}

#[test]
fn line_endings_are_equivalent() {
    let (lf, r) = parse_one(&sample());
    r.unwrap();
    for body in [sample().replace('\n', "\r\n"), sample().replace('\n', "\r")] {
        let (p, r) = parse_one(&body);
        r.unwrap();
        assert_eq!(p.summary(), lf.summary());
        assert_eq!(p.summary().token_chunks, 2);
    }
}

#[test]
fn role_only_first_chunk_does_not_start_ttft() {
    let (role, hi) = (delta(json!({"role": "assistant"})), content("hi"));
    let mut p = SseParser::new();
    let frames: [(&[u8], Duration); 3] =
        [(role.as_bytes(), ms(10)), (hi.as_bytes(), ms(25)), (DONE.as_bytes(), ms(30))];
    run(&mut p, &frames).unwrap();
    let s = p.summary();
    assert_eq!((s.ttft, s.ttfo, s.last_token_at, s.token_chunks), (Some(ms(25)), Some(ms(25)), Some(ms(25)), 1));
    assert_eq!(s.model, "m-1");
    assert!(s.done);
}

#[test]
fn reasoning_comes_before_visible_output() {
    let think = delta(json!({"reasoning_content": "Let me "}));
    let alt = delta(json!({"reasoning": "think.", "reasoning_content": null}));
    let answer = content("42");
    let mut p = SseParser::new();
    p.reset(true);
    let frames: [(&[u8], Duration); 4] =
        [(think.as_bytes(), ms(10)), (alt.as_bytes(), ms(15)), (answer.as_bytes(), ms(40)), (DONE.as_bytes(), ms(41))];
    run(&mut p, &frames).unwrap();
    let s = p.summary();
    assert_eq!((s.ttft, s.ttfo, s.token_chunks), (Some(ms(10)), Some(ms(40)), 3));
    let msg = &assembled(&p)["choices"][0]["message"];
    assert_eq!(msg["reasoning_content"], "Let me think.");
    assert_eq!(msg["content"], "42");
}

#[test]
fn tool_call_stream_is_assembled() {
    let body = [
        delta(json!({"role": "assistant", "content": null})),
        delta(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]})),
        delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]})),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": "ty\":\"Paris\"}"}}]}),
        ),
        finish("tool_calls"),
        DONE.to_owned(),
    ]
    .concat();
    let (p, r) = parse_one(&body);
    r.unwrap();
    let s = p.summary();
    assert!(s.ttft.is_some());
    assert_eq!((s.ttfo, s.tool_calls, s.token_chunks), (None, 1, 3));
    assert_eq!(s.finish_reason, Some(FinishReason::ToolCalls));
    let doc = assembled(&p);
    assert_eq!(doc["object"], "chat.completion");
    let choice = &doc["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((&call["id"], &call["type"]), (&json!("call_1"), &json!("function")));
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
}

#[test]
fn parallel_tool_calls_are_counted_by_index_or_id() {
    let by_index = delta(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}},
        {"index": 1, "id": "b", "function": {"name": "g"}}]}));
    let (p, r) = parse_one(&[by_index.clone(), by_index, DONE.to_owned()].concat());
    r.unwrap();
    assert_eq!(p.summary().tool_calls, 2);
    let no_index = [
        delta(json!({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}]})),
        delta(json!({"tool_calls": [{"function": {"arguments": "}"}}]})),
        delta(json!({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "[]"}}]})),
        DONE.to_owned(),
    ];
    let (p, r) = parse_one(&no_index.concat());
    r.unwrap();
    assert_eq!(p.summary().tool_calls, 2);
    let calls = &assembled(&p)["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["function"]["arguments"], "{}");
    assert_eq!(calls[1]["function"]["name"], "g");
}

#[test]
fn output_tokens_come_from_usage_when_sent() {
    let (p, r) = parse_one(&sample());
    r.unwrap();
    let s = p.summary();
    assert_eq!(s.usage, Some(Usage { prompt_tokens: 7, completion_tokens: 3, reasoning_tokens: 0 }));
    assert_eq!(s.output_tokens(), (3, TokenSource::Usage));
    assert_eq!(assembled(&p)["usage"]["total_tokens"], 10);
    let (p, r) = parse_one(&[content("a"), content("b"), DONE.to_owned()].concat());
    r.unwrap();
    assert_eq!(p.summary().output_tokens(), (2, TokenSource::Chunks));
    assert!(assembled(&p).get("usage").is_none());
}

#[test]
fn malformed_payloads_are_reported() {
    for bad in ["data: {not json\n\n", "data: {\"id\":\"x\"}\n\n", "data: [1,2]\n\n", "data: 42\n\n", "data: null\n\n"]
    {
        let (_, r) = parse_one(&[content("a"), bad.to_owned(), DONE.to_owned()].concat());
        assert!(matches!(r, Err(StreamError::Malformed(_))), "{bad}: {r:?}");
    }
    let (_, r) = parse_one(&[delta(json!({"content": 5})), DONE.to_owned()].concat());
    assert!(matches!(r, Err(StreamError::Malformed(m)) if m.contains("invalid type")));
}

#[test]
fn server_errors_in_the_stream_are_reported() {
    let cases = [
        ("event: error\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n", "overloaded"),
        ("event: error\ndata: upstream timed out\n\n", "upstream timed out"),
        ("event: error\n\n", "server sent an error event"),
        ("data: {\"error\":{\"message\":\"rate limited\",\"code\":429}}\n\n", "rate limited"),
        ("data: {\"error\":\"boom\"}\n\n", "boom"),
    ];
    for (body, message) in cases {
        let (_, r) = parse_one(&[content("a"), body.to_owned(), DONE.to_owned()].concat());
        assert_eq!(r, Err(StreamError::ErrorEvent(message.to_owned())), "{body}");
    }
    // A null error is no error, and an event type other than `error` is a normal event.
    let body =
        [event(&json!({"error": null, "choices": []})), "event: message\n".to_owned() + &content("a"), DONE.into()];
    parse_one(&body.concat()).1.unwrap();
}

#[test]
fn a_cut_or_truncated_stream_is_missing_done() {
    for body in [
        content("a"),
        content("a") + "data: {\"choi",
        content("a") + "data: [DONE]",
        content("a") + "data: [DONE]\n",
        String::new(),
    ] {
        let (p, r) = parse_one(&body);
        assert_eq!(r, Err(StreamError::MissingDone), "{body:?}");
        assert!(!p.summary().done);
    }
}

#[test]
fn errors_are_sticky_until_reset() {
    let mut p = SseParser::new();
    let err = p.feed(b"data: oops\n\n", ms(1)).unwrap_err();
    assert_eq!(p.feed(content("a").as_bytes(), ms(2)), Err(err.clone()));
    assert_eq!(p.finish(), Err(err));
    assert_eq!(p.summary().token_chunks, 0);
    p.reset(false);
    run(&mut p, &[((content("a") + DONE).as_bytes(), ms(3))]).unwrap();
}

#[test]
fn input_after_done_is_ignored() {
    let body = content("a") + DONE + "data: garbage\n\n" + &content("b");
    let (p, r) = parse_one(&body);
    r.unwrap();
    assert_eq!(p.summary().token_chunks, 1);
    let mut p = p;
    p.feed(b"\xff\xfe not even SSE\n\n", ms(9)).unwrap();
    p.finish().unwrap();
}

#[test]
fn gaps_are_the_differences_between_token_chunks() {
    let (role, a, b, c, fin) =
        (delta(json!({"role": "assistant"})), content("a"), content("b"), content("c"), finish("stop"));
    let mut p = SseParser::new();
    let frames: [(&[u8], Duration); 6] = [
        (role.as_bytes(), ms(50)),
        (a.as_bytes(), ms(100)),
        (b.as_bytes(), ms(150)),
        (c.as_bytes(), ms(400)),
        (fin.as_bytes(), ms(450)),
        (DONE.as_bytes(), ms(451)),
    ];
    run(&mut p, &frames).unwrap();
    assert_eq!(p.gaps_us(), &[50_000, 250_000]);
    assert_eq!(p.summary().last_token_at, Some(ms(400)));
    // Two token chunks in one frame arrived together.
    p.reset(false);
    run(&mut p, &[((content("x") + &content("y") + DONE).as_bytes(), ms(7))]).unwrap();
    assert_eq!(p.gaps_us(), &[0]);
}

#[test]
fn sse_framing_details() {
    let chunk = delta(json!({"content": "x"})).replace("data: ", "data:");
    let body = [
        "\u{feff}: keep-alive comment\n\n",
        "id: 1\nretry: 1000\nfoo: bar\nevent\n",
        "data: \n\n", // empty data is a keep-alive
        &chunk,
        // One JSON document spread over several data lines, which are joined by \n.
        "data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"y\"}}]}\n\n",
        DONE,
    ]
    .concat();
    let (p, r) = parse_one(&body);
    r.unwrap();
    assert_eq!(p.summary().token_chunks, 2);
    assert_eq!(assembled(&p)["choices"][0]["message"]["content"], "xy");
}

#[test]
fn nulls_are_allowed_anywhere() {
    let chunk = json!({"id": null, "model": null, "usage": null, "choices": [null, {"index": null,
        "delta": {"role": null, "content": null, "reasoning": null, "tool_calls": null}, "finish_reason": null}]});
    let (p, r) = parse_one(&[event(&chunk), DONE.to_owned()].concat());
    r.unwrap();
    assert_eq!(p.summary(), &StreamSummary { done: true, ..StreamSummary::default() });
    assert_eq!(assembled(&p)["choices"][0]["message"]["content"], "");
}

#[test]
fn other_choices_count_as_tokens_but_are_not_assembled() {
    let two =
        json!({"choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}]});
    let (p, r) = parse_one(
        &[event(&two), event(&json!({"choices": [{"index": 1, "delta": {"content": "z"}}]})), DONE.into()].concat(),
    );
    r.unwrap();
    assert_eq!(p.summary().token_chunks, 2);
    assert_eq!(assembled(&p)["choices"][0]["message"]["content"], "mine");
}

#[test]
fn oversized_events_and_lines_are_rejected() {
    let mut p = SseParser::new();
    let line = [b"data: ".as_slice(), &vec![b'a'; 1 << 20], b"\n"].concat();
    let mut result = Ok(());
    for _ in 0..17 {
        result = p.feed(&line, ms(1));
    }
    assert!(matches!(result, Err(StreamError::Malformed(m)) if m.contains("SSE event")));
    p.reset(false);
    let part = vec![b'a'; 1 << 20];
    let mut result = Ok(());
    for _ in 0..17 {
        result = result.and(p.feed(&part, ms(1)));
    }
    assert!(matches!(result, Err(StreamError::Malformed(m)) if m.contains("SSE line")));
    p.reset(false);
    run(&mut p, &[((content("ok") + DONE).as_bytes(), ms(2))]).unwrap();
}

#[test]
fn reset_starts_a_new_response() {
    let (mut p, r) = parse_one(&sample());
    r.unwrap();
    p.reset(false);
    let other = event(&json!({"model": "m-2", "choices": [{"delta": {"content": "z"}}]}))
        + &event(&json!({"model": "m-3", "choices": []}));
    run(&mut p, &[((other + DONE).as_bytes(), ms(1))]).unwrap();
    let s = p.summary();
    assert_eq!((s.model.as_str(), s.token_chunks, s.usage, s.finish_reason), ("m-2", 1, None, None));
    // Not assembling: the document is still well-formed, with an empty message.
    assert_eq!(assembled(&p)["choices"][0]["message"]["content"], "");
}

#[test]
fn errors_display_on_one_line() {
    let (_, multi_line) = parse_one("data: {\"a\":\ndata: oops\n\n");
    let (_, server) = parse_one("event: error\ndata: line one\r\ndata: line two\n\n");
    for e in [multi_line.unwrap_err(), server.unwrap_err(), StreamError::MissingDone] {
        assert!(!e.to_string().contains(['\n', '\r']), "{e}");
    }
    assert_eq!(StreamError::Malformed("bad".into()).to_string(), "malformed SSE chunk: bad");
}

/// A byte-order mark opening the body is dropped wherever the frames cut it (found by `cargo fuzz run sse`: cut
/// after its first two bytes, the mark was kept and the first line read as an unknown field).
#[test]
fn a_byte_order_mark_cut_across_frames_is_still_dropped() {
    let body = format!("\u{feff}{}{DONE}", content("hi"));
    for cut in 0..=4 {
        let mut p = SseParser::new();
        p.reset(true);
        feed_split(&mut p, body.as_bytes(), &[cut, cut + 1]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(p.summary().token_chunks, 1, "cut at {cut}");
    }
}

/// Splits `bytes` at the given (arbitrary) positions and feeds the pieces in order.
fn feed_split(p: &mut SseParser, bytes: &[u8], cuts: &[usize]) -> Result<(), StreamError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for (i, cut) in cuts.into_iter().chain([bytes.len()]).enumerate() {
        p.feed(&bytes[start..cut], ms(i as u64))?;
        start = cut;
    }
    p.finish()
}

const FRAGMENTS: &[&str] = &[
    "data: ",
    "data:",
    "event: error\n",
    ": c\n",
    "\n",
    "\r",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    "\"choices\":",
    "\"delta\":",
    "\"content\":",
    "\"tool_calls\":",
    "\"usage\":",
    "\"error\":",
    "\"x\"",
    "null",
    ",",
    "0",
    "[DONE]",
    "\u{e9}",
    "\\u00e9",
    "\u{feff}",
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..6), assemble: bool) {
        let mut p = SseParser::new();
        p.reset(assemble);
        let _ = feed_split(&mut p, &bytes, &cuts);
        let mut out = Vec::new();
        p.assembled_json(&mut out);
        prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
    }

    #[test]
    fn sse_like_noise_never_panics(pieces in proptest::collection::vec(0..FRAGMENTS.len(), 0..80),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let body: String = pieces.iter().map(|&i| FRAGMENTS[i]).collect();
        let mut p = SseParser::new();
        p.reset(true);
        let _ = feed_split(&mut p, body.as_bytes(), &cuts);
        let mut out = Vec::new();
        p.assembled_json(&mut out);
        prop_assert!(serde_json::from_slice::<Value>(&out).is_ok());
    }

    #[test]
    fn valid_streams_always_complete(pieces in proptest::collection::vec(any::<String>(), 0..10),
                                     ending in 0..3usize, comments: bool,
                                     cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut body = delta(json!({"role": "assistant"}));
        for piece in &pieces {
            if comments {
                body.push_str(": ping\n\n");
            }
            body.push_str(&content(piece));
        }
        body.push_str(DONE);
        let body = body.replace('\n', ["\n", "\r\n", "\r"][ending]);
        let mut p = SseParser::new();
        p.reset(true);
        feed_split(&mut p, body.as_bytes(), &cuts).unwrap();
        prop_assert!(p.summary().done);
        let filled = pieces.iter().filter(|s| !s.is_empty()).count();
        prop_assert_eq!(p.summary().token_chunks as usize, filled);
        prop_assert_eq!(p.gaps_us().len(), filled.saturating_sub(1));
        prop_assert_eq!(&assembled(&p)["choices"][0]["message"]["content"], &Value::String(pieces.concat()));
    }
}

/// Feeds `bytes` cut at `cuts`, every piece at the same instant, so that only the split points differ.
fn outcome(
    bytes: &[u8],
    cuts: &[usize],
    assemble: bool,
) -> (Result<(), StreamError>, StreamSummary, Vec<u64>, Vec<u8>) {
    let mut p = SseParser::new();
    p.reset(assemble);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    let mut result = Ok(());
    for cut in cuts.into_iter().chain([bytes.len()]) {
        result = p.feed(&bytes[start..cut], ms(3));
        start = cut;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = p.finish();
    }
    let mut json = Vec::new();
    p.assembled_json(&mut json);
    (result, p.summary().clone(), p.gaps_us().to_vec(), json)
}

proptest! {
    /// Where the network splits a stream never changes what is measured: result, summary, gaps and assembled
    /// message are those of the stream read in one piece, for valid, broken and random input alike.
    #[test]
    fn split_points_never_change_the_outcome(pieces in proptest::collection::vec(0..FRAGMENTS.len() + 5, 0..60),
                                             tail in proptest::collection::vec(any::<u8>(), 0..24),
                                             cuts in proptest::collection::vec(any::<usize>(), 0..12),
                                             assemble: bool) {
        // The ordered ones teach a prefix and then take the repeat path, which skips the line scan.
        let whole_events = [content("ab"), finish("stop"), DONE.to_string(), ordered::text("ab"), ordered::stop("stop")];
        let mut body = Vec::new();
        for &i in &pieces {
            match FRAGMENTS.get(i) {
                Some(f) => body.extend_from_slice(f.as_bytes()),
                None => body.extend_from_slice(whole_events[i - FRAGMENTS.len()].as_bytes()),
            }
        }
        body.extend_from_slice(&tail);
        let whole = outcome(&body, &[], assemble);
        let split = outcome(&body, &cuts, assemble);
        prop_assert_eq!(&whole.0, &split.0);
        prop_assert_eq!(&whole.1, &split.1);
        prop_assert_eq!(&whole.2, &split.2);
        prop_assert_eq!(&whole.3, &split.3);
    }
}

/// The definitions end to end from the wire: a role chunk, one reasoning token, nine content tokens 20 ms apart,
/// then a gateway that sends the finish chunk, `usage` and `[DONE]` 100 ms after the last token.
#[test]
fn a_late_tail_leaves_tpot_at_the_token_spacing() {
    let usage = event(&json!({"id": "chatcmpl-1", "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 10, "completion_tokens_details": {"reasoning_tokens": 1}}}));
    let mut frames: Vec<(String, Duration)> = vec![(delta(json!({"role": "assistant", "content": ""})), ms(40))];
    frames.push((delta(json!({"reasoning_content": "hm"})), ms(50)));
    frames.extend((1..10).map(|i| (content("t"), ms(50 + 20 * i))));
    frames.push((finish("stop") + &usage + DONE, ms(330)));
    let mut p = SseParser::new();
    p.reset(false);
    let frames: Vec<(&[u8], Duration)> = frames.iter().map(|(f, at)| (f.as_bytes(), *at)).collect();
    run(&mut p, &frames).unwrap();
    let sample = p.llm_sample(ms(331));
    assert_eq!((sample.ttft, sample.ttfo, sample.last_token), (Some(ms(50)), Some(ms(70)), Some(ms(230))));
    assert_eq!((sample.output_tokens, sample.token_chunks, sample.from_usage), (10, 10, true));
    assert_eq!((sample.input_tokens, sample.reasoning_tokens), (7, 1));
    let mut l = crate::metrics::LlmStats::default();
    l.record(&sample);
    let ms_at = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
    assert!((ms_at(&l.tpot) - 20.0).abs() < 0.02, "tpot {}", ms_at(&l.tpot));
    assert!((ms_at(&l.stream_tail) - 101.0).abs() < 0.11, "stream_tail {}", ms_at(&l.stream_tail));
    assert!((ms_at(&l.icl) - 20.0).abs() < 0.02 && l.icl.len() == 9, "9 gaps of 20 ms");
}

/// A tool call's opening chunk (id and name) counts as a token, as the first argument piece does.
#[test]
fn a_tool_call_stream_times_its_deltas() {
    let call = |args: Value| delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": args}}]}));
    let open = delta(json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
        "function": {"name": "f", "arguments": ""}}]}));
    let frames = [(open, ms(30)), (call(json!("{\"a\"")), ms(30)), (call(json!(":1}")), ms(45))];
    let mut p = SseParser::new();
    p.reset(false);
    let mut frames: Vec<(String, Duration)> = frames.into();
    frames.push((finish("tool_calls") + DONE, ms(46)));
    let frames: Vec<(&[u8], Duration)> = frames.iter().map(|(f, at)| (f.as_bytes(), *at)).collect();
    run(&mut p, &frames).unwrap();
    let s = p.llm_sample(ms(47));
    assert_eq!((s.ttft, s.ttfo, s.last_token, s.token_chunks), (Some(ms(30)), None, Some(ms(45)), 3));
    assert_eq!((s.output_tokens, s.from_usage), (3, false));
}
