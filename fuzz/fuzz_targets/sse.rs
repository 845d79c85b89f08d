//! The SSE parser on arbitrary bytes cut at arbitrary points: never a panic, and the split points never change the
//! outcome (result, summary, gaps, assembled message) compared with the same bytes in one piece.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use run_load_test::llm::sse::{SseParser, StreamError, StreamSummary};

type Outcome = (Result<(), StreamError>, StreamSummary, Vec<u64>, Vec<u8>);

fn outcome(bytes: &[u8], cuts: &[usize], assemble: bool) -> Outcome {
    let mut p = SseParser::new();
    p.reset(assemble);
    let mut start = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain([&bytes.len()]) {
        result = p.feed(&bytes[start..cut], Duration::from_millis(3));
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

fuzz_target!(|data: &[u8]| {
    // The first byte: assemble or not, and how many cut points; then one byte per cut point (a fraction of the body).
    let Some((&head, rest)) = data.split_first() else { return };
    let n = usize::from(head >> 1) % 8;
    if rest.len() < n {
        return;
    }
    let (seeds, body) = rest.split_at(n);
    let mut cuts: Vec<usize> = seeds.iter().map(|&s| usize::from(s) * body.len() / 255).collect();
    cuts.sort_unstable();
    let assemble = head & 1 == 1;
    let whole = outcome(body, &[], assemble);
    let split = outcome(body, &cuts, assemble);
    assert_eq!(whole, split, "cut at {cuts:?}");
    if let Ok(()) = whole.0 {
        // An assembled message is always valid JSON.
        assert!(whole.3.is_empty() || std::str::from_utf8(&whole.3).is_ok());
    }
});
