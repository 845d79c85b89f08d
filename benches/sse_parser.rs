//! What the SSE parser costs per streamed response, alone (no I/O): an OpenAI-shaped chat stream of 1 and 16
//! output tokens (role chunk, token chunks, finish chunk, usage chunk, `[DONE]`), fed as one frame (a server
//! that writes the body at once) and as one frame per event (a server that flushes every token).
//! Run it with `cargo bench --bench sse_parser`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use run_load_test::llm::sse::SseParser;

const PREFIX: &str = r#"data: {"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_fc9f1d7035","choices":["#;

/// The events of one response, each ending with its blank line.
fn events(tokens: usize) -> Vec<String> {
    let words = ["Hello", " there", ",", " how", " can", " I", " help", " you", " today", "?"];
    let mut out = vec![format!(
        r#"{PREFIX}{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
    )];
    for i in 0..tokens {
        let word = words[i % words.len()];
        out.push(format!(
            r#"{PREFIX}{{"index":0,"delta":{{"content":"{word}"}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ));
    }
    out.push(format!(r#"{PREFIX}{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}"#));
    let mut usage = format!(r#"{PREFIX}],"usage":{{"prompt_tokens":12,"completion_tokens":{tokens},"#);
    let _ = write!(usage, r#""total_tokens":{},"completion_tokens_details":{{"reasoning_tokens":0}}}}}}"#, tokens + 12);
    out.push(usage);
    out.push("data: [DONE]".to_owned());
    out.into_iter().map(|e| e + "\n\n").collect()
}

fn response(p: &mut SseParser, frames: &[String], assemble: bool) -> u64 {
    p.reset(assemble);
    for (i, frame) in frames.iter().enumerate() {
        p.feed(frame.as_bytes(), Duration::from_micros(i as u64)).expect("a valid stream");
    }
    p.finish().expect("a complete stream");
    p.llm_sample(Duration::from_millis(1)).output_tokens
}

fn parser(c: &mut Criterion) {
    for tokens in [1, 16] {
        let per_event = events(tokens);
        let whole = vec![per_event.concat()];
        let mut group = c.benchmark_group(format!("sse_{tokens}_token"));
        group.throughput(Throughput::Elements(1));
        let mut p = SseParser::new();
        for (name, frames, assemble) in [
            ("one_frame", &whole, false),
            ("frame_per_event", &per_event, false),
            ("one_frame_assembled", &whole, true),
        ] {
            group.bench_function(name, |b| b.iter(|| response(&mut p, black_box(frames), assemble)));
        }
        group.finish();
    }
}

criterion_group!(benches, parser);
criterion_main!(benches);
