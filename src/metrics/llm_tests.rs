//! The streaming definitions (docs/metrics.md, "LLM responses") on samples with exact, synthetic times.

use std::time::Duration;

use super::*;
use crate::metrics::llm_summary;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// p50 of a histogram in ms; HdrHistogram keeps 3 significant digits, so exact inputs come back within 0.1 %.
fn p50_ms(h: &Hist) -> f64 {
    h.value_at_quantile(0.5) as f64 / 1000.0
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.001 + 0.001
}

/// `n` token chunks `spacing` apart from `first`, then a tail of `tail` before the stream ends.
fn stream(first: Duration, spacing: Duration, n: u32, tail: Duration) -> (LlmSample<'static>, Vec<u64>) {
    let last = first + spacing * (n - 1);
    let gaps = vec![u64::try_from(spacing.as_micros()).unwrap(); n as usize - 1];
    let sample = LlmSample {
        latency: last + tail,
        ttft: Some(first),
        ttfo: Some(first),
        last_token: Some(last),
        token_chunks: u64::from(n),
        output_tokens: u64::from(n),
        from_usage: true,
        ..LlmSample::default()
    };
    (sample, gaps)
}

#[test]
fn a_late_usage_chunk_and_done_are_stream_tail_not_tpot() {
    // 10 tokens 20 ms apart from 50 ms; the usage chunk and [DONE] come 100 ms after the last token.
    let (sample, gaps) = stream(ms(50), ms(20), 10, ms(100));
    let mut l = LlmStats::default();
    l.record(&LlmSample { gaps_us: &gaps, ..sample });
    assert!(close(p50_ms(&l.tpot), 20.0), "tpot {} is the token spacing", p50_ms(&l.tpot));
    assert!(close(p50_ms(&l.stream_tail), 100.0), "stream_tail {}", p50_ms(&l.stream_tail));
    assert!(close(p50_ms(&l.ttft), 50.0) && close(p50_ms(&l.icl), 20.0));
    // E2E is the end of the stream: latency 330 ms; NTPOT divides it by the same 10 tokens.
    assert!(close(p50_ms(&l.ntpot), 33.0), "ntpot {}", p50_ms(&l.ntpot));
    // Measured to the end of the stream, TPOT would have been (330 − 50) / 9 = 31.1 ms: the bug this replaces.
    let s = llm_summary(&l, Duration::from_secs(1));
    assert!(close(s.tpot.unwrap().p50_ms, 20.0));
    assert!(close(s.stream_tail.unwrap().p95_ms, 100.0), "the report carries stream_tail");
}

#[test]
fn tpot_divides_by_the_reported_token_count_not_the_chunks() {
    // 5 chunks 40 ms apart, 3 tokens each by usage (a gateway that re-chunks): 160 ms over 14 tokens.
    let (sample, gaps) = stream(ms(30), ms(40), 5, ms(1));
    let mut l = LlmStats::default();
    l.record(&LlmSample { gaps_us: &gaps, output_tokens: 15, ..sample });
    assert!(close(p50_ms(&l.tpot), 160.0 / 14.0), "tpot {}", p50_ms(&l.tpot));
    assert!(close(p50_ms(&l.icl), 40.0), "icl stays per chunk");
    assert_eq!(l.output_tokens, 15);
    // Counted chunks when the stream had no usage: the same count everywhere.
    let mut l = LlmStats::default();
    l.record(&LlmSample { gaps_us: &gaps, from_usage: false, ..sample });
    assert!(close(p50_ms(&l.tpot), 40.0));
    assert_eq!((l.output_tokens, l.from_usage), (5, 0));
}

#[test]
fn one_token_or_one_chunk_has_no_tpot() {
    let mut l = LlmStats::default();
    // One token: TTFT, a tail and NTPOT, no TPOT.
    let (one, _) = stream(ms(30), ms(1), 1, ms(5));
    l.record(&one);
    // Many tokens (by usage) in one chunk: nothing between tokens to measure; 0 would read as infinitely fast.
    l.record(&LlmSample { output_tokens: 12, ..one });
    // Usage says one token although two chunks carried text: the divisor would be 0.
    let (two, gaps) = stream(ms(30), ms(10), 2, ms(5));
    l.record(&LlmSample { gaps_us: &gaps, output_tokens: 1, ..two });
    assert_eq!(l.tpot.len(), 0, "no TPOT from any of them");
    assert_eq!((l.ttft.len(), l.stream_tail.len(), l.ntpot.len(), l.streamed), (3, 3, 3, 3));
    assert!(close(p50_ms(&l.stream_tail), 5.0));
}

#[test]
fn tokens_in_one_frame_give_the_smallest_tpot_not_zero() {
    // Two chunks read in the same frame share a timestamp: a 1 µs floor, like every other duration.
    let (sample, gaps) = stream(ms(8), Duration::ZERO, 3, ms(0));
    let mut l = LlmStats::default();
    l.record(&LlmSample { gaps_us: &gaps, ..sample });
    assert_eq!((l.tpot.len(), l.tpot.max()), (1, 1));
}

#[test]
fn a_response_that_is_not_a_stream_has_only_ntpot() {
    let mut l = LlmStats::default();
    l.record(&LlmSample { latency: ms(200), output_tokens: 50, from_usage: true, ..LlmSample::default() });
    assert_eq!((l.ttft.len(), l.tpot.len(), l.stream_tail.len(), l.icl.len(), l.streamed), (0, 0, 0, 0, 0));
    assert!(close(p50_ms(&l.ntpot), 4.0));
    // No tokens: no per-token figure at all.
    l.record(&LlmSample { latency: ms(200), ..LlmSample::default() });
    assert_eq!((l.ntpot.len(), l.responses), (1, 2));
}

/// Gaps are recorded in runs of equal values; every gap still counts once, a zero as 1 µs.
#[test]
fn every_gap_counts_once_whether_in_a_run_or_alone() {
    let gaps = [0, 0, 5, 5, 5, 0, 7, 7000, 5];
    let mut l = LlmStats::default();
    l.record(&LlmSample { gaps_us: &gaps, ..LlmSample::default() });
    let counts: Vec<u64> = [1, 5, 7, 7000].iter().map(|&v| l.icl.count_at(v)).collect();
    assert_eq!((l.icl.len(), counts), (9, vec![3, 4, 1, 1]));
}
