use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[test]
fn failures_stay_out_of_latency_and_sample_once() {
    let mut s = StepStats::default();
    s.record_ok(Duration::from_millis(10), Duration::from_millis(2), 100);
    s.record_err(ErrorKind::Status(503), 0, || "first".into());
    s.record_err(ErrorKind::Status(503), 0, || unreachable!("sample is taken once"));
    s.record_err(ErrorKind::Timeout, 0, || "t".into());
    assert_eq!((s.requests, s.failures, s.latency.len()), (4, 3, 1));
    let sum = request_summary(&s, Duration::from_secs(2));
    let l = sum.latency.as_ref().unwrap();
    assert!((l.p50_ms - 10.0).abs() < 0.01, "p50 {} must be the recorded 10 ms", l.p50_ms);
    assert_eq!(sum.errors.get("status:503"), Some(&2));
    assert_eq!(sum.errors.get("timeout"), Some(&1));
    assert_eq!(sum.rps, 2.0);
    assert_eq!(sum.failure_rate, 0.75);
}

#[test]
fn huge_values_do_not_panic() {
    let mut s = StepStats::default();
    s.record_ok(Duration::from_secs(86_400 * 365), Duration::MAX, 0);
    assert_eq!(s.latency.len(), 1);
    assert!(s.latency.max() >= 86_400 * 365 * 999_000, "the histogram grew instead of clamping");
}

#[test]
fn take_interval_resets_but_keeps_shape() {
    let mut r = Recorder::new(2, 1);
    r.steps[1].record_ok(Duration::from_millis(5), Duration::from_millis(1), 1);
    r.flows[0].record(true, Duration::from_millis(5), 1, 0.0);
    let snap = r.take_interval();
    assert_eq!(snap.total().requests, 1);
    assert_eq!(r.total().requests, 0);
    assert_eq!((r.steps.len(), r.flows.len()), (2, 1));
}

#[test]
fn histogram_round_trips_through_base64() {
    let mut h = new_hist();
    for v in [1, 10, 100, 1000, 123_456] {
        record(&mut h, v);
    }
    let back = decode_histogram(&encode_histogram(&h)).unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    assert!(decode_histogram("not base64!").is_err());
    assert!(decode_histogram("aGVsbG8=").is_err());
}

proptest! {
    #[test]
    fn merge_equals_recording_everything_in_one(a in prop::collection::vec(1u64..10_000_000, 0..200),
                                                 b in prop::collection::vec(1u64..10_000_000, 0..200)) {
        let mut ra = Recorder::new(1, 0);
        let mut rb = Recorder::new(1, 0);
        let mut all = Recorder::new(1, 0);
        for &v in &a { ra.steps[0].record_ok(Duration::from_micros(v), Duration::from_micros(v), 1); all.steps[0].record_ok(Duration::from_micros(v), Duration::from_micros(v), 1); }
        for &v in &b { rb.steps[0].record_ok(Duration::from_micros(v), Duration::from_micros(v), 1); all.steps[0].record_ok(Duration::from_micros(v), Duration::from_micros(v), 1); }
        ra.add(&rb);
        prop_assert_eq!(ra.steps[0].requests, all.steps[0].requests);
        prop_assert_eq!(latency_summary(&ra.steps[0].latency), latency_summary(&all.steps[0].latency));
    }

    #[test]
    fn percentiles_are_monotonic(v in prop::collection::vec(1u64..100_000_000, 1..500)) {
        let mut h = new_hist();
        v.iter().for_each(|&x| record(&mut h, x));
        prop_assert_eq!(h.max(), h.highest_equivalent(*v.iter().max().unwrap()));
        let s = latency_summary(&h).unwrap();
        prop_assert!(s.min_ms <= s.p50_ms && s.p50_ms <= s.p90_ms && s.p90_ms <= s.p95_ms);
        prop_assert!(s.p95_ms <= s.p99_ms && s.p99_ms <= s.p999_ms && s.p999_ms <= s.max_ms);
    }
}

#[test]
fn a_serialized_recorder_reads_back_the_same() {
    let mut r = Recorder::new(2, 1);
    r.steps[0].record_ok(Duration::from_millis(12), Duration::from_millis(3), 40);
    r.steps[0].record_err(ErrorKind::Status(503), 7, || "busy".into());
    r.steps[1].record_llm(&LlmSample {
        latency: Duration::from_millis(9),
        output_tokens: 5,
        model: "m",
        ..Default::default()
    });
    r.flows[0].record(true, Duration::from_millis(20), 2, 0.5);
    r.arrivals = 3;
    let back: Recorder = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    let (a, b) = (r.total(), back.total());
    assert_eq!((b.requests, b.failures, b.bytes), (a.requests, a.failures, a.bytes));
    assert_eq!(b.latency, a.latency);
    assert_eq!(back.steps[0].errors[0].kind, ErrorKind::Status(503));
    assert_eq!(back.steps[0].errors[0].sample, "busy");
    assert_eq!(back.steps[1].llm.as_ref().unwrap().output_tokens, 5);
    assert_eq!(back.flows[0].steps, r.flows[0].steps);
    assert_eq!(back.arrivals, 3);
    // Read back, histograms still take any value and any merge.
    let mut merged = back.clone();
    merged.add(&back);
    merged.steps[0].record_ok(Duration::from_secs(3600), Duration::from_secs(1), 0);
    assert_eq!(merged.steps[0].latency.len(), 3);
}

#[test]
fn served_models_are_capped_at_64_then_other() {
    let names: Vec<String> = (0..100).map(|i| format!("model-{i}")).collect();
    fn sample(m: &str) -> LlmSample<'_> {
        LlmSample { latency: Duration::from_millis(5), output_tokens: 1, model: m, ..Default::default() }
    }
    let mut s = StepStats::default();
    for n in &names {
        s.record_llm(&sample(n));
    }
    let l = s.llm.as_ref().unwrap();
    assert_eq!(l.models.len(), MAX_MODELS + 1);
    assert_eq!(l.models.iter().filter(|m| m.model == OTHER_MODEL).map(|m| m.requests).sum::<u64>(), 36);
    assert_eq!(l.models_other, 36);
    // A name seen before the cap keeps its own row.
    s.record_llm(&sample("model-3"));
    assert_eq!(s.llm.as_ref().unwrap().models.iter().find(|m| m.model == "model-3").unwrap().requests, 2);
    // Merging two workers that each saw 64 other names keeps the cap.
    let mut other = StepStats::default();
    for i in 100..164 {
        other.record_llm(&sample(&format!("model-{i}")));
    }
    s.add(&other);
    let l = s.llm.as_ref().unwrap();
    assert_eq!(l.models.len(), MAX_MODELS + 1);
    assert_eq!(l.models_other, 36 + 64);
    assert_eq!(l.models.iter().map(|m| m.requests).sum::<u64>(), 165);
    let sum = request_summary(&s, Duration::from_secs(1));
    assert_eq!(sum.llm.as_ref().unwrap().models_other, 100);
    assert!(sum.warnings.iter().any(|w| w.contains("more than 64 distinct served models")), "{:?}", sum.warnings);
}

#[test]
fn served_model_labels_are_short_and_plain() {
    assert_eq!(served_model_label("gpt-4o-mini:2024/07@eu+x_1.0"), "gpt-4o-mini:2024/07@eu+x_1.0");
    assert!(matches!(served_model_label("gpt-4o"), std::borrow::Cow::Borrowed(_)));
    assert_eq!(served_model_label("a b\u{1b}[31mc\"<"), "a_b__31mc__");
    assert_eq!(served_model_label(&"é".repeat(100)), "_".repeat(64));
    assert_eq!(served_model_label(&"x".repeat(1000)).len(), 128);
}

#[test]
fn invalid_retry_advice_is_a_warning() {
    let s = StepStats { retry_after_invalid: 3, ..Default::default() };
    let sum = request_summary(&s, Duration::from_secs(1));
    assert_eq!(sum.retry_after_invalid, 3);
    assert!(sum.warnings.iter().any(|w| w.starts_with("3 Retry-After values")), "{:?}", sum.warnings);
}

#[test]
fn unexpected_statuses_are_capped_at_64_then_status_other() {
    let mut s = StepStats::default();
    for code in 100..300u16 {
        s.record_err(ErrorKind::Status(code), 0, || format!("status {code}"));
    }
    s.record_err(ErrorKind::Status(100), 0, || unreachable!());
    s.record_err(ErrorKind::Timeout, 0, || "t".into());
    let statuses = s.errors.iter().filter(|e| matches!(e.kind, ErrorKind::Status(_))).count();
    assert_eq!(statuses, MAX_STATUS_KINDS + 1);
    let sum = request_summary(&s, Duration::from_secs(1));
    assert_eq!(sum.errors.get("status:other"), Some(&(200 - 64)));
    assert_eq!(sum.errors.get("status:100"), Some(&2));
    assert_eq!(sum.errors.get("timeout"), Some(&1));
    assert!(sum.warnings.iter().any(|w| w.contains("`status:other`")), "{:?}", sum.warnings);
    // Merging keeps the cap.
    let mut other = StepStats::default();
    for code in 300..400u16 {
        other.record_err(ErrorKind::Status(code), 0, String::new);
    }
    s.add(&other);
    assert_eq!(s.errors.iter().filter(|e| matches!(e.kind, ErrorKind::Status(_))).count(), MAX_STATUS_KINDS + 1);
}

#[test]
fn gateway_numbers_add_up_per_step_per_model_and_across_workers() {
    use super::{GatewaySample, LlmSample, LlmStats, MAX_TARGETS};
    let sample = |model, target, retries, reported, unpriced| LlmSample {
        latency: Duration::from_millis(10),
        output_tokens: 3,
        model,
        cost: if reported { 0.5 } else { 0.25 },
        gateway: GatewaySample {
            retries,
            cache_hit: retries == 0,
            target: Some(target),
            overhead: Some(Duration::from_millis(2)),
            cost_reported: reported,
            unpriced,
            attributed: true,
            expected: Some("litellm"),
        },
        ..LlmSample::default()
    };
    let mut a = LlmStats::default();
    a.record(&sample("m1", 0, 0, true, false));
    a.record(&sample("m2", 4_000_000, 3, false, false));
    let mut b = LlmStats::default();
    b.record(&sample("m2", 1, 1, false, true));
    a.add(&b);
    let g = &a.gateway;
    assert_eq!((g.retries, g.cache_hits, g.cost_reported, g.priced, g.unpriced), (4, 1, 1, 1, 1));
    assert_eq!((g.attributed, g.expected.as_deref()), (3, Some("litellm")));
    assert_eq!((g.reported_cost, g.priced_cost), (0.5, 0.25), "an unpriced response adds to neither");
    assert_eq!(g.overhead.len(), 3);
    assert_eq!(g.targets.len(), MAX_TARGETS, "an absurd index lands in the last slot");
    assert_eq!((g.targets[0], g.targets[1], g.targets[MAX_TARGETS - 1]), (1, 1, 1));
    let m2 = a.models.iter().find(|m| m.model == "m2").unwrap();
    assert_eq!((m2.requests, m2.gateway_retries, m2.unpriced), (2, 4, 1));
}
