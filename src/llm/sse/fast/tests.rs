//! The fast reader against serde_json: what it accepts must read the same, and the shapes real servers send
//! must not fall back (or the fast path would silently stop paying for itself).

use proptest::prelude::*;

use super::{MAX_PREFIX, Plain, Prefix, assert_serde_agrees, chunk, plain_choices, read_into, repeat};
use crate::llm::sse::wire::Chunk;

const PREFIX: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_fc9f1d7035","choices":["#;

/// Chunks as OpenAI, vLLM, DeepSeek, Azure, Ollama and our mock send them.
fn real_chunks() -> Vec<String> {
    vec![
        format!(r#"{PREFIX}{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#),
        format!(r#"{PREFIX}{{"index":0,"delta":{{"content":" there"}},"logprobs":null,"finish_reason":null}}],"usage":null,"obfuscation":"x2"}}"#),
        format!(r#"{PREFIX}{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}"#),
        r#"{"id":"chatcmpl-fb3d","object":"chat.completion.chunk","created":1796288074,"model":"m","choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]}"#.into(),
        r#"{"id":"cmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-7B","choices":[{"index":0,"delta":{"content":"好"},"logprobs":null,"finish_reason":null,"stop_reason":null}]}"#.into(),
        r#"{"id":"d1","object":"chat.completion.chunk","created":1,"model":"deepseek-reasoner","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"Let me think"},"logprobs":null,"finish_reason":null}]}"#.into(),
        r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi"},"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"c","model":"gpt-4o","object":"chat.completion.chunk","system_fingerprint":"fp"}"#.into(),
        r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#.into(),
        r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"The"},"finish_reason":null}]}"#.into(),
        "{\n  \"id\": \"x\",\n  \"choices\": [ { \"index\": 0, \"delta\": { \"content\": \"a\" } }, { \"index\": 1, \"delta\": { \"content\": \"b\" } } ]\n}\n".into(),
        r#"{"id":"u","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#.into(),
        format!(r#"{PREFIX}],"usage":{{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":3,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}"#),
        r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":null,"content":"x","reasoning":"y"},"finish_reason":"length","temperature":-0.5e-3}]}"#.into(),
    ]
}

#[test]
fn what_real_servers_send_is_read_without_serde_and_reads_the_same() {
    for data in real_chunks() {
        let fast = chunk(data.as_bytes()).unwrap_or_else(|| panic!("fell back on {data}"));
        assert_serde_agrees(data.as_bytes(), &fast);
    }
}

#[test]
fn it_leaves_to_serde_what_it_does_not_read_itself() {
    for data in [
        r#"{"choices":[{"delta":{"content":"a\"b"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a\nb"}}]}"#,
        "{\"choices\":[{\"delta\":{\"content\":\"a\tb\"}}]}",
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"cost":0.01}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":1,"prompt_tokens":2}}"#,
        r#"{"choices":[],"usage":{"completion_tokens_details":{"reasoning_tokens":1.5}}}"#,
        r#"{"error":{"message":"overloaded"}}"#,
        r#"{"error":null,"choices":[]}"#,
        r#"{"model":"a","model":"b","choices":[]}"#,
        r#"{"choices":[{"index":1.0}]}"#,
        r#"{"choices":[{"index":18446744073709551616}]}"#,
        r#"{"choices":[{"index":-1}]}"#,
        r#"{"choices":[]} x"#,
        r#"{"choices":[],}"#,
        r#"{"created":01,"choices":[]}"#,
        r#"{"created":1.,"choices":[]}"#,
        r#"{"choices":"x"}"#,
        r#"["id","model"]"#,
        "{\"choices\":[{\"delta\":{\"content\":\"\u{7f}\"}}],\"x\":\u{c}1}",
    ] {
        assert!(chunk(data.as_bytes()).is_none(), "read {data}");
    }
    let deep = format!(r#"{{"x":{}1{},"choices":[]}}"#, "[".repeat(40), "]".repeat(40));
    assert!(chunk(deep.as_bytes()).is_none());
    assert!(chunk(b"{\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}").is_none());
    // Not UTF-8 anywhere, even in a member it would skip: serde_json's to judge.
    assert!(chunk(b"{\"x\":\"\xc3\",\"choices\":[]}").is_none());
}

#[test]
fn text_beyond_ascii_is_read_in_keys_values_and_skipped_members() {
    for data in [
        r#"{"é":1,"choices":[]}"#,
        r#"{"model":"modèle-日本","choices":[{"delta":{"content":"héllo 🦀"}}]}"#,
        r#"{"x":{"clé":["ü",{"ß":"€"}]},"choices":[{"finish_reason":"停止"}]}"#,
    ] {
        let fast = chunk(data.as_bytes()).unwrap_or_else(|| panic!("fell back on {data}"));
        assert_serde_agrees(data.as_bytes(), &fast);
    }
}

/// Decisions drawn from a tape of bytes (zeros once it runs out).
struct Tape<'a>(std::slice::Iter<'a, u8>);

impl Tape<'_> {
    fn pick(&mut self, n: usize) -> usize {
        usize::from(self.0.next().copied().unwrap_or(0)) % n
    }

    /// An object of up to four members from `list`, or (one time in three) `special` when given.
    fn object(&mut self, list: &[&str], special: Option<&str>) -> String {
        const WS: [&str; 5] = ["", " ", "\n", "\t", "\r\n "];
        let mut out = Vec::new();
        for _ in 0..self.pick(5) {
            match special {
                Some(s) if self.pick(3) == 0 => out.push(s.to_owned()),
                _ => out.push(list[self.pick(list.len())].to_owned()),
            }
        }
        let ws = WS[self.pick(WS.len())];
        format!("{{{ws}{}{ws}}}", out.join(&format!("{ws},{ws}")))
    }
}

const DELTA: [&str; 14] = [
    r#""role":"assistant""#,
    r#""content":"Hi""#,
    r#""content":"""#,
    r#""content":"a\"b""#,
    r#""content":null"#,
    r#""content":5"#,
    r#""reasoning_content":"r""#,
    r#""reasoning":"t""#,
    r#""tool_calls":null"#,
    r#""tool_calls":[{"index":0,"function":{"arguments":"{}"}}]"#,
    r#""refusal":null"#,
    r#""content":"é中""#,
    r#""x":{"y":[1,-2.5E+3,true,false,null,"s"]}"#,
    r#""content":"😀""#,
];
const CHOICE: [&str; 10] = [
    r#""index":0"#,
    r#""index":1"#,
    r#""index":null"#,
    r#""index":1e0"#,
    r#""finish_reason":"stop""#,
    r#""finish_reason":null"#,
    r#""logprobs":null"#,
    r#""logprobs":{"content":[]}"#,
    r#""delta":null"#,
    r#""delta":[]"#,
];
const TOP: [&str; 16] = [
    r#""id":"chatcmpl-1""#,
    r#""id":null"#,
    r#""id":1"#,
    r#""model":"gpt-4o""#,
    r#""model":"m\u00e9""#,
    r#""model":"mé""#,
    r#""object":"chat.completion.chunk""#,
    r#""created":1741570283"#,
    r#""created":-0.5"#,
    r#""usage":null"#,
    r#""usage":{"prompt_tokens":1,"completion_tokens":2}"#,
    r#""usage":{"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":2,"x":[]},"cost":1}"#,
    r#""usage":{"completion_tokens_details":null,"prompt_tokens":null,"completion_tokens":1.0}"#,
    r#""error":null"#,
    r#""choices":null"#,
    r#""extra":[[[]],{}]"#,
];

/// A chunk built from the tape: real members and broken ones, and sometimes one byte broken on purpose.
fn build(tape: &[u8]) -> Vec<u8> {
    let mut t = Tape(tape.iter());
    let mut choices = Vec::new();
    for _ in 0..t.pick(4) {
        if t.pick(6) == 0 {
            choices.push("null".to_owned());
        } else {
            let delta = format!(r#""delta":{}"#, t.object(&DELTA, None));
            choices.push(t.object(&CHOICE, Some(&delta)));
        }
    }
    let list = format!(r#""choices":[{}]"#, choices.join(","));
    let mut doc = t.object(&TOP, Some(&list)).into_bytes();
    if t.pick(3) == 0 {
        const STRAY: &[u8] = b"\"{}[],:\\0-e. \x01\xc3";
        let at = t.pick(doc.len());
        let b = STRAY[t.pick(STRAY.len())];
        match t.pick(3) {
            0 => {
                doc.remove(at);
            }
            1 => doc[at] = b,
            _ => doc.insert(at, b),
        }
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]
    #[test]
    fn whatever_it_accepts_serde_reads_the_same(tape in proptest::collection::vec(any::<u8>(), 0..96)) {
        let data = build(&tape);
        if let Some(fast) = chunk(&data) {
            assert_serde_agrees(&data, &fast);
        }
    }
}

/// The property above means little if the generator only made chunks one path reads: count both.
#[test]
fn the_generated_chunks_reach_both_paths() {
    let (mut read, mut left, mut state) = (0, 0, 0x9e37_79b9_7f4a_7c15_u64);
    for _ in 0..20_000 {
        let tape: Vec<u8> = (0..64)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect();
        let data = build(&tape);
        match chunk(&data) {
            Some(fast) => {
                assert_serde_agrees(&data, &fast);
                read += 1;
            }
            None => left += 1,
        }
    }
    assert!(read > 2_000 && left > 2_000, "read {read}, left to serde {left}");
}

proptest! {
    #[test]
    fn a_string_ends_where_a_byte_loop_says(s in proptest::collection::vec(any::<u8>(), 0..40)) {
        let expected = s.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        prop_assert_eq!(super::string_end(&s), expected);
    }
}

/// Reads `chunks` in order through one remembered prefix, as a stream's accumulator does: every result is the
/// one a fresh reader gives (and so serde_json's). Returns how many chunks were read after a reused prefix.
fn read_in_turn(chunks: &[&[u8]]) -> usize {
    reuses(chunks).into_iter().filter(|&r| r).count()
}

/// As `read_in_turn`, saying of each chunk whether it was read after a reused prefix.
fn reuses(chunks: &[&[u8]]) -> Vec<bool> {
    let mut prefix = Prefix::default();
    let mut reused = Vec::new();
    for data in chunks {
        reused.push(prefix.repeated_in(data).is_some());
        let mut c = Chunk::EMPTY;
        let streamed = read_into(data, &mut c, &mut prefix).map(|()| c);
        assert_eq!(streamed, chunk(data), "{}", String::from_utf8_lossy(data));
        if let Some(c) = &streamed {
            assert_serde_agrees(data, c);
        }
    }
    reused
}

/// The first chunks of one response after another through one prefix, as a user's parser reads them: a new
/// id of any length is read in place, the model after it where it moved to. Whatever else differs (the
/// time, the model, an id that is null or not a plain string) has the chunk read in full.
#[test]
fn a_new_id_reuses_the_prefix_and_reads_the_same() {
    let first = |id: &[u8], created: u32, model: &str| {
        let created = created.to_string();
        let parts: [&[u8]; 8] = [
            br#"{"id":"#,
            id,
            br#","object":"chat.completion.chunk","created":"#,
            created.as_bytes(),
            br#","model":"#,
            model.as_bytes(),
            b",",
            MOCK_FIRST.as_bytes(),
        ];
        parts.concat()
    };
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (first(br#""chatcmpl-1""#, 7, r#""m""#), false),
        (first(br#""chatcmpl-2""#, 7, r#""m""#), true),
        // Longer, shorter, empty, not ASCII: the model after the id is read where it moved to.
        (first(br#""chatcmpl-123456789""#, 7, r#""m""#), true),
        (first(br#""c""#, 7, r#""m""#), true),
        (first(br#""""#, 7, r#""m""#), true),
        (first("\"好的\"".as_bytes(), 7, r#""m""#), true),
        // Not a plain string: an escape, a control character, bytes that are not UTF-8. Read in full (by
        // serde_json, which refuses the last two), and the prefix learned before stays.
        (first(br#""a\"b""#, 7, r#""m""#), false),
        (first(b"\"a\x01\"", 7, r#""m""#), false),
        (first(b"\"\xc3\"", 7, r#""m""#), false),
        (first(b"\"\xff\xfe\"", 7, r#""m""#), false),
        (first(br#""d""#, 7, r#""m""#), true),
        // Another second, another model: read in full, remembered anew.
        (first(br#""e""#, 8, r#""m""#), false),
        (first(br#""f""#, 8, r#""n""#), false),
        (first(br#""g""#, 8, r#""n""#), true),
        // The id's closing quote must be where the prefix continues. (The space is JSON all the same, so that
        // chunk is read in full and its prefix learned: the next is read in full too.)
        (first(br#""h" "#, 8, r#""n""#), false),
        (first(br#""i""#, 8, r#""n""#), false),
        (first(br#""k""#, 8, r#""n""#), true),
        // A null id: no text to let free, so the prefix must repeat whole.
        (first(b"null", 8, r#""n""#), false),
        (first(b"null", 8, r#""n""#), true),
        (first(br#""j""#, 8, r#""n""#), false),
    ];
    let chunks: Vec<&[u8]> = cases.iter().map(|(c, _)| &c[..]).collect();
    let expected: Vec<bool> = cases.iter().map(|&(_, r)| r).collect();
    assert_eq!(reuses(&chunks), expected);

    // A model before the id stays where it was.
    let before =
        |id: &str| format!(r#"{{"object":"chat.completion.chunk","model":"m","id":"{id}","created":1,{MOCK_FIRST}"#);
    let (a, b, c) = (before("x"), before("longer-id"), before(""));
    assert_eq!(reuses(&[a.as_bytes(), b.as_bytes(), c.as_bytes()]), [false, true, true]);
}

/// Once a chunk brought a new id, the prefix holds it: the rest of that response's chunks repeat it byte for
/// byte, and are not checked again for where their id ends.
#[test]
fn a_new_responses_chunks_repeat_its_own_id() {
    let content = r#""choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#;
    let at = |id: &str, rest: &str| {
        format!(r#"{{"id":"{id}","object":"chat.completion.chunk","created":1,"model":"m",{rest}"#)
    };
    let mut prefix = Prefix::default();
    let mut new_ids = Vec::new();
    for (id, rest) in [("one", MOCK_FIRST), ("one", content), ("two-longer", MOCK_FIRST), ("two-longer", content)] {
        let data = at(id, rest);
        new_ids.push(prefix.repeated_in(data.as_bytes()).map(|r| r.3));
        let mut c = Chunk::EMPTY;
        read_into(data.as_bytes(), &mut c, &mut prefix).unwrap();
        assert_eq!(c.id.map(|t| t.0.into_owned()).as_deref(), Some(id));
        assert_eq!(c.model.map(|t| t.0.into_owned()).as_deref(), Some("m"));
    }
    assert_eq!(new_ids, [None, Some(false), Some(true), Some(false)]);

    // An id that would make the prefix longer than any learned from a chunk read in full is read in full, and
    // the prefix kept stays within that bound.
    let long = at(&"x".repeat(MAX_PREFIX), content);
    assert!(prefix.repeated_in(long.as_bytes()).is_none());
    let mut c = Chunk::EMPTY;
    read_into(long.as_bytes(), &mut c, &mut prefix).unwrap();
    assert!(prefix.text.len() <= MAX_PREFIX && prefix.text.contains("two-longer"), "{}", prefix.text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn a_new_id_of_any_bytes_reads_as_alone(
        ids in proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(b"a-1 \"\\\n\x01\xc3\xa9\xff\x7f".to_vec()), 0..10),
            2..5,
        ),
        model_first in any::<bool>(),
    ) {
        let (lead, tail): (&[u8], &[u8]) = if model_first {
            (br#"{"model":"m","id":""#, br#"","created":1,"#)
        } else {
            (br#"{"id":""#, br#"","created":1,"model":"m","#)
        };
        let chunks: Vec<Vec<u8>> = ids.iter().map(|id| [lead, &id[..], tail, MOCK_FIRST.as_bytes()].concat()).collect();
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        read_in_turn(&chunks);
    }
}

#[test]
fn a_repeated_prefix_is_read_once_and_reads_the_same() {
    let reals = real_chunks();
    let openai: Vec<&[u8]> = reals[..3].iter().chain(&reals[11..12]).map(|c| c.as_bytes()).collect();
    let mut prefix = Prefix::default();
    let mut c = Chunk::EMPTY;
    read_into(openai[0], &mut c, &mut prefix).unwrap();
    let expected = PREFIX.strip_suffix(r#""choices":["#).unwrap();
    assert_eq!(prefix.text, expected);
    assert_eq!(read_in_turn(&openai), 3);

    let p = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","#;
    let stream = [
        format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"a"}}}}]}}"#),
        // The same prefix, then a second `id`: serde's duplicate field, so serde's to read.
        format!(r#"{p}"id":"again","choices":[]}}"#),
        format!(r#"{p}"model":"again","choices":[]}}"#),
        // The same prefix, then something broken.
        format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"a"}}}}]"#),
        format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"b"}}}}],"usage":null}} x"#),
        // The model changes mid-stream: read in full, remembered anew.
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"n","choices":[]}"#.to_owned(),
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"n","choices":[],"usage":{"completion_tokens":2}}"#.to_owned(),
        // Kept members after the run (here `model` after `choices`) are not part of the prefix.
        r#"{"id":null,"object":"chat.completion.chunk","choices":[],"model":"late"}"#.to_owned(),
        r#"{"id":null,"object":"chat.completion.chunk","choices":[],"model":"later"}"#.to_owned(),
        r#"{"id":null,"object":"chat.completion.chunk","model":"late"}"#.to_owned(),
        // A kept member that ends the object is not part of the prefix either.
        r#"{"id":null,"object":"chat.completion.chunk","model":"other","choices":[]}"#.to_owned(),
    ];
    let stream: Vec<&[u8]> = stream.iter().map(|c| c.as_bytes()).collect();
    assert_eq!(read_in_turn(&stream), 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn chunks_read_after_a_remembered_prefix_read_as_alone(
        a in proptest::collection::vec(any::<u8>(), 0..96),
        b in proptest::collection::vec(any::<u8>(), 0..96),
        cut in any::<u16>(),
    ) {
        let (first, second) = (build(&a), build(&b));
        // The first chunk's leading bytes, then the second's tail: a prefix that matches, then anything.
        let at = usize::from(cut) % (first.len() + 1);
        let mixed: Vec<u8> = first[..at].iter().chain(&second[usize::from(cut) % (second.len() + 1)..]).copied().collect();
        read_in_turn(&[&first, &mixed, &second, &first, &first]);
    }
}

/// The property above means little unless the mixed chunks often start with a remembered prefix: count them.
#[test]
fn generated_mixes_reuse_the_prefix_often() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut tape = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect()
    };
    let mut reused = 0;
    for _ in 0..5_000 {
        let (first, second) = (build(&tape(64)), build(&tape(64)));
        let cut = usize::from(tape(1)[0]) * first.len() / 255;
        let mixed: Vec<u8> = first[..cut].iter().chain(&second[second.len() / 2..]).copied().collect();
        reused += read_in_turn(&[&first, &mixed, &first]);
    }
    // Deterministic (a fixed generator): 420 when written.
    assert!(reused > 300, "{reused} chunks read after a reused prefix");
}

/// The prefix of a stream from our mock, and its first chunk (a role delta, read member by member).
const MOCK: &str =
    r#"{"id":"chatcmpl-6125277c2a10bbf3","object":"chat.completion.chunk","created":1796377922,"model":"m","#;
const MOCK_FIRST: &str = r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;

/// Nearly every chunk of a stream is the prefix byte for byte, then one of the plain choices and the closing
/// brace: `repeat` reads those without a `Chunk` (and, in test builds, checks its reading against serde's),
/// with the id and model the prefix holds. Anything more, less or else is `read_into`'s.
#[test]
fn a_streams_plain_chunks_are_read_as_repeats() {
    let p = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","#;
    let content =
        |text: &str| format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#);
    let stream = [
        (format!("{p}{MOCK_FIRST}"), false), // teaches the prefix
        (format!("{p}{MOCK_FIRST}"), true),
        (content("a"), true),
        (content("wörld 🌍"), true),
        (content(""), true),
        (format!(r#"{p}"choices":[{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#), true),
        (format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"a"}}}}]}}"#), true),
        // Not a plain choice, not only the choices, not a string the reader takes as it is, not the prefix.
        (format!(r#"{p}"choices":[],"usage":{{"completion_tokens":2}}}}"#), false),
        (
            format!(r#"{p}"choices":[{{"index":0,"delta":{{"content":"a"}},"finish_reason":null}}],"usage":null}}"#),
            false,
        ),
        (content(r#"a\"b"#), false),
        (format!("{}\u{0} ", content("a")), false),
        (content("a").replace(r#""c1""#, r#""c2""#), false),
        (content("a").replacen('{', " {", 1), false),
    ];
    let mut prefix = Prefix::default();
    for (data, repeated) in &stream {
        // The chunk and nothing after it, as a whole payload must be.
        let got = repeat(data.as_bytes(), &prefix).filter(|r| r.2 == data.len());
        assert_eq!(got.is_some(), *repeated, "{data}");
        if got.is_some() {
            assert_eq!((prefix.id(), prefix.model()), (Some("c1"), Some("m")));
        }
        let mut c = Chunk::EMPTY;
        if read_into(data.as_bytes(), &mut c, &mut prefix).is_some() {
            assert_serde_agrees(data.as_bytes(), &c);
        }
    }
}

/// What follows a prefix, as `plain_choices` reads it: the content, or `None` for the member-by-member reader.
fn plain(rest: &[u8]) -> Option<String> {
    plain_choices(rest).map(|(plain, text, _)| {
        let what = match plain {
            Plain::Content => "content",
            Plain::Finish => "finish",
        };
        format!("{what} {}", String::from_utf8_lossy(text))
    })
}

#[test]
fn a_common_choice_after_a_prefix_is_matched_whole_and_reads_the_same() {
    let cases = [
        // Our mock, vLLM, OpenAI (a usage and an obfuscation member after the array), an empty delta's text.
        (r#""choices":[{"index":0,"delta":{"content":" low"},"finish_reason":null}]}"#, Some("content  low")),
        (
            r#""choices":[{"index":0,"delta":{"content":"好"},"logprobs":null,"finish_reason":null}]}"#,
            Some("content 好"),
        ),
        (
            r#""choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x2"}"#,
            Some("content  there"),
        ),
        (r#""choices":[{"index":0,"delta":{"content":""}}]}"#, Some("content ")),
        (r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#, Some("finish stop")),
        (
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}],"usage":null}"#,
            Some("finish length"),
        ),
        (r#""choices":[{"index":0,"delta":{},"finish_reason":null}]}"#, None),
        (r#""choices":[{"index":0,"delta":{},"finish_reason":"st\u006fp"}]}"#, None),
        (r#""choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":null}]}"#, None),
        // A stream's first chunk, its role not read.
        (MOCK_FIRST, Some("content ")),
        // Near misses: an escape, a finish reason, another index, a second choice, whitespace, a tool call's role.
        (r#""choices":[{"index":0,"delta":{"content":"a\"b"},"finish_reason":null}]}"#, None),
        (r#""choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#, None),
        (r#""choices":[{"index":1,"delta":{"content":"a"},"finish_reason":null}]}"#, None),
        (r#""choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},{"index":1}]}"#, None),
        (r#""choices": [{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#, None),
        (r#""choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#, None),
    ];
    let mut stream = vec![format!("{MOCK}{MOCK_FIRST}")];
    for (rest, text) in cases {
        assert_eq!(plain(rest.as_bytes()).as_deref(), text, "{rest}");
        stream.push(format!("{MOCK}{rest}"));
    }
    // What follows a matched array is read as before, a broken or duplicate member included.
    let choice = r#""choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]"#;
    for after in ["}", " }\n", r#","usage":null}"#, r#","usage":{"prompt_tokens":1,"completion_tokens":2}}"#] {
        stream.push(format!("{MOCK}{choice}{after}"));
    }
    for after in ["", "} x", ",}", r#","choices":[]}"#, r#","model":"again"}"#, r#","error":{"message":"e"}}"#] {
        stream.push(format!("{MOCK}{choice}{after}"));
        assert!(chunk(stream.last().unwrap().as_bytes()).is_none(), "{after}");
    }
    let stream: Vec<&[u8]> = stream.iter().map(|c| c.as_bytes()).collect();
    assert_eq!(read_in_turn(&stream), stream.len() - 1);
    // Not UTF-8 in the text after a prefix: left to serde_json, as when read alone.
    let bad = [
        format!("{MOCK}{MOCK_FIRST}").into_bytes(),
        [MOCK.as_bytes(), &b"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xc3\"}}]}"[..]].concat(),
    ];
    assert_eq!(read_in_turn(&[&bad[0], &bad[1]]), 1);
    assert!(chunk(&bad[1]).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    #[test]
    fn common_choices_after_a_prefix_read_as_alone(
        text in proptest::collection::vec(proptest::sample::select(b"a \"\\\n\x01\xc3\xa9\xff\x7f".to_vec()), 0..6),
        open in 0..4usize,
        tail in 0..7usize,
        after in 0..6usize,
    ) {
        const TAILS: [&str; 7] = [
            r#""},"finish_reason":null}]"#,
            r#""},"logprobs":null,"finish_reason":null}]"#,
            r#""}}]"#,
            r#""},"finish_reason":"stop"}]"#,
            r#""} ,"finish_reason":null}]"#,
            r#""}]"#,
            r#""},{"index":1}]"#,
        ];
        const AFTER: [&str; 6] = ["}", ",\"usage\":null}", " }", ",\"choices\":null}", "", "}}"];
        const OPEN: [&str; 4] = [
            r#""choices":[{"index":0,"delta":{"content":""#,
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":""#,
            r#""choices":[{"index":0,"delta":{},"finish_reason":""#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":""#,
        ];
        let open = OPEN[open].as_bytes();
        let rest = [open, &text[..], TAILS[tail].as_bytes(), AFTER[after].as_bytes()].concat();
        let mixed = [MOCK.as_bytes(), &rest].concat();
        let first = format!("{MOCK}{MOCK_FIRST}");
        prop_assert_eq!(read_in_turn(&[first.as_bytes(), &mixed, &mixed]), 2);
    }
}
