//! Streams whose chunks order their members as servers do (`id`, `object`, `created`, `model`, then
//! `choices`): only these teach the reader a prefix and take the repeat path (`fast::repeat`, and
//! `Accumulator::repeat_event` for a whole event in a frame). serde_json's `json!`, which the parent's helpers
//! use, sorts `choices` first, so those never do.

use super::*;

fn chunk(choice: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m-1\",\"choices\":[{choice}]}}\n\n"
    )
}

fn role() -> String {
    chunk(r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#)
}

pub(super) fn text(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    chunk(&format!(r#"{{"index":0,"delta":{{"content":{quoted}}},"finish_reason":null}}"#))
}

pub(super) fn stop(reason: &str) -> String {
    chunk(&format!(r#"{{"index":0,"delta":{{}},"finish_reason":"{reason}"}}"#))
}

/// Role, texts plain and escaped, in and beyond ASCII, empty, a finish reason, usage, [DONE].
fn stream() -> String {
    let usage = chunk("").replace(
        r#""choices":[]}"#,
        r#""choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}"#,
    );
    [role(), text("Hé"), text("llo"), text(""), text(" \"w\"\n"), text("örld 🌍"), stop("stop"), usage, DONE.to_owned()]
        .concat()
}

#[test]
fn an_ordered_stream_reads_the_same_cut_anywhere_and_with_any_line_ending() {
    for body in [stream(), stream().replace('\n', "\r\n"), stream().replace('\n', "\r")] {
        let (whole, expected) = read_cut_anywhere(&body);
        assert_eq!(expected["choices"][0]["message"]["content"], "Héllo \"w\"\nörld 🌍");
        assert_eq!((expected["id"].as_str(), expected["model"].as_str()), (Some("chatcmpl-1"), Some("m-1")));
        let s = whole.summary();
        assert_eq!(
            (s.token_chunks, s.finish_reason, s.usage.map(|u| u.completion_tokens)),
            (4, Some(FinishReason::Stop), Some(5))
        );
    }
}

#[test]
fn a_response_that_repeats_the_last_ones_id_still_names_its_model_and_id() {
    let (mut p, r) = parse_one(&[role(), text("a"), stop("stop"), DONE.to_owned()].concat());
    r.unwrap();
    for assemble in [true, false, true] {
        p.reset(assemble);
        let body = [text("b"), text("é"), stop("length"), DONE.to_owned()].concat();
        run(&mut p, &[(body.as_bytes(), ms(1))]).unwrap();
        let s = p.summary();
        assert_eq!((s.model.as_str(), s.token_chunks, s.finish_reason), ("m-1", 2, Some(FinishReason::Length)));
        let doc = assembled(&p);
        let (id, content) = if assemble { ("chatcmpl-1", "bé") } else { ("", "") };
        assert_eq!((doc["id"].as_str(), doc["choices"][0]["message"]["content"].as_str()), (Some(id), Some(content)));
    }
}

/// A prefix taught by a chunk sent as several `data:` lines holds a line break. A frame that repeats it byte
/// for byte is then two SSE lines, not one event: the second line is a field of its own (here an unknown
/// one), and the event is the first line alone, which is not JSON.
#[test]
fn a_prefix_with_a_line_break_is_not_taken_for_one_line() {
    let pretty = "data: {\"id\":\"c\",\ndata: \"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[]}\n\n";
    let crafted = "data: {\"id\":\"c\",\n\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n";
    let (_, r) = parse_one(&[pretty, pretty, crafted, DONE].concat());
    assert!(matches!(r, Err(StreamError::Malformed(ref m)) if m.contains(r#"`{"id":"c",`"#)), "{r:?}");
}

/// The bound on an event holds on the repeat path too: an event one byte longer than it is refused, one as
/// long as it is read (after a shorter one that taught the prefix).
#[test]
fn the_event_bound_holds_for_repeated_chunks() {
    let event = text("abc");
    let len = event.trim_end().len() - "data: ".len();
    for (max, ok) in [(len, true), (len - 1, false)] {
        let mut p = SseParser::new();
        p.set_max_bytes(max);
        p.reset(false);
        let r = run(&mut p, &[([text(""), event.clone(), DONE.to_owned()].concat().as_bytes(), ms(1))]);
        assert_eq!(r.is_ok(), ok, "max {max}: {r:?}");
    }
}
