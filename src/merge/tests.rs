use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::metrics::{ErrorKind, StepStats};
use crate::result::ShardInfo;
use crate::result::assemble::{self, RunDescription, RunOutput, StepLabel, Stop, ThresholdSpec};
use crate::result::journal::VERSION;

fn description(thresholds: &[&str]) -> RunDescription {
    let r = crate::report::fixture::one_step("s", "U", "chat", &StepStats::default(), 1.0);
    let label =
        |m: &str| StepLabel { user: "U".into(), name: m.into(), method: m.into(), path: "/".into(), is_request: true };
    RunDescription {
        scenario: r.scenario,
        target: r.target,
        load: r.load,
        steps: vec![label("chat"), label("tool")],
        flows: vec!["U".into()],
        regression: None,
        thresholds: thresholds
            .iter()
            .map(|t| {
                let (key, expr) = t.split_once(": ").unwrap();
                ThresholdSpec { key: key.into(), expr: expr.into(), abort_on_fail: false }
            })
            .collect(),
    }
}

/// Shard `n` of `count`, its seconds given as recorders, its engine started at `start_ms`.
fn shard(n: u64, count: u64, seconds: Vec<Recorder>, start_ms: u64, d: &RunDescription) -> ShardInput {
    let mut total = Recorder::new(2, 1);
    seconds.iter().for_each(|s| total.add(s));
    let secs = seconds.len() as f64;
    let out = RunOutput {
        total: &total,
        series: &[],
        windows: &[],
        started_at: std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(start_ms),
        elapsed: Duration::from_secs_f64(secs),
        stop: Stop::DurationElapsed,
        cpu: Duration::ZERO,
        workers: 1,
    };
    let mut report = assemble::build(d, &out);
    let info = ShardInfo {
        index: Some(n),
        count: Some(count),
        segment: String::new(),
        sequence: String::new(),
        host: format!("h{n}"),
        source: "flag".into(),
        requested_start: None,
        start_skew_ms: None,
        aborted_by: None,
    };
    report.shard = Some(info.clone());
    let header = Header { journal: VERSION, started_at: String::new(), run: d.clone(), hdr: None, shard: Some(info) };
    let seconds = seconds
        .into_iter()
        .enumerate()
        .map(|(i, rec)| Second {
            t: i as f64,
            d: 1.0,
            users: 1,
            in_flight: 0,
            rec,
            start_ms: (i == 0).then_some(start_ms),
        })
        .collect();
    ShardInput::in_memory(format!("dir{n}"), report, header, seconds)
}

fn options(allow_partial: bool) -> Options {
    Options { expect: None, allow_partial, max_skew: Duration::from_secs(1) }
}

fn recorder(ms: &[u64]) -> Recorder {
    let mut r = Recorder::new(2, 1);
    for &m in ms {
        r.steps[0].record_ok(Duration::from_micros(m), Duration::from_micros(m / 2), 10);
    }
    r
}

/// Every recorded value bucket with its count, and the percentiles: what a histogram holds, whatever size it
/// grew to (the encoding differs with the size an auto-resizing histogram reached).
fn counts(encoded: &str) -> (Vec<(u64, u64)>, Vec<u64>) {
    let h = crate::metrics::decode_histogram(encoded).unwrap();
    let buckets = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
    let q = [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0].iter().map(|q| h.value_at_quantile(*q)).collect();
    (buckets, q)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Samples dealt out to k shards (over several seconds each) and merged are exactly the samples recorded in
    /// one recorder: every count and every percentile, per step and in total.
    #[test]
    fn merging_shards_equals_recording_everything_in_one(
        samples in prop::collection::vec((1u64..5_000_000, 0usize..8, 0usize..3, any::<bool>()), 1..400),
        k in 1usize..6,
    ) {
        let d = description(&[]);
        let mut one = Recorder::new(2, 1);
        let mut shards: Vec<Vec<Recorder>> = (0..k).map(|_| (0..3).map(|_| Recorder::new(2, 1)).collect()).collect();
        for &(us, who, sec, failed) in &samples {
            let step = usize::from(us % 3 == 0);
            for r in [&mut one, &mut shards[who % k][sec]] {
                if failed {
                    r.steps[step].record_err(ErrorKind::Timeout, 0, || "slow".into());
                } else {
                    r.steps[step].record_ok(Duration::from_micros(us), Duration::from_micros(us / 3), 7);
                }
            }
        }
        let inputs: Vec<ShardInput> = shards
            .into_iter()
            .enumerate()
            .map(|(i, secs)| shard(i as u64 + 1, k as u64, secs, 1_000_000 + 37 * i as u64, &d))
            .collect();
        let all = merge(inputs, Vec::new(), &options(false)).unwrap();
        // What a push to the Pushgateway reads: the same recorder as one process's, step by step.
        prop_assert_eq!(all.total.total().requests, one.total().requests);
        for (m, e) in all.total.steps.iter().zip(&one.steps) {
            prop_assert_eq!((m.requests, m.failures, m.latency.len()), (e.requests, e.failures, e.latency.len()));
        }
        prop_assert_eq!(&all.steps, &vec![("U".to_string(), "chat".to_string()), ("U".to_string(), "tool".to_string())]);
        let merged = &all.report;
        let expected = assemble::build(&d, &RunOutput {
            total: &one, series: &[], windows: &[], started_at: std::time::SystemTime::UNIX_EPOCH,
            elapsed: Duration::from_secs(3), stop: Stop::DurationElapsed, cpu: Duration::ZERO, workers: 1,
        });
        prop_assert_eq!(counts(&merged.histograms.latency), counts(&expected.histograms.latency));
        for (m, e) in merged.steps.iter().zip(&expected.steps) {
            prop_assert_eq!(counts(&m.histograms.latency), counts(&e.histograms.latency));
            prop_assert_eq!(counts(&m.histograms.ttfb), counts(&e.histograms.ttfb));
            prop_assert_eq!((m.stats.requests, m.stats.failures), (e.stats.requests, e.stats.failures));
            prop_assert_eq!(
                serde_json::to_value(&m.stats.latency).unwrap(),
                serde_json::to_value(&e.stats.latency).unwrap()
            );
        }
        prop_assert_eq!((merged.totals.requests, merged.totals.failures), (expected.totals.requests, expected.totals.failures));
        prop_assert_eq!(serde_json::to_value(&merged.totals.latency).unwrap(), serde_json::to_value(&expected.totals.latency).unwrap());
        let series: u64 = merged.series.iter().map(|p| p.requests).sum();
        prop_assert_eq!(series, expected.totals.requests, "the series adds up to the totals");
    }
}

#[test]
fn seconds_are_placed_on_one_wall_clock_and_thresholds_judged_once() {
    let d = description(&["latency: p(50) < 50ms"]);
    // Shard 2 started 600 ms after shard 1: its second 0 starts in merged second 0, its second 1 in second 1.
    let a = shard(1, 2, vec![recorder(&[10_000]), recorder(&[10_000])], 5_000, &d);
    let b = shard(2, 2, vec![recorder(&[90_000, 90_000]), recorder(&[90_000])], 5_600, &d);
    let r = merge(vec![a, b], Vec::new(), &options(false)).unwrap().report;
    let per_second: Vec<u64> = r.series.iter().map(|p| p.requests).collect();
    assert_eq!(per_second, [3, 2]);
    assert!((r.duration_s - 2.6).abs() < 1e-9, "{}", r.duration_s);
    assert_eq!(r.thresholds.len(), 1);
    assert!(!r.thresholds[0].pass, "p50 of all five is 90 ms: judged on the whole, not per shard");
    let rows: Vec<(u64, f64, u64)> = r.shards.iter().map(|s| (s.index, s.start_skew_ms, s.requests)).collect();
    assert_eq!(rows, [(1, 0.0, 2), (2, 600.0, 3)]);
    assert_eq!(r.status, RunStatus::Completed);
    assert!(r.partial.is_none());
}

#[test]
fn a_missing_shard_is_refused_unless_partial_is_allowed() {
    let d = description(&[]);
    let make = || vec![shard(1, 3, vec![recorder(&[5])], 0, &d), shard(3, 3, vec![recorder(&[5])], 0, &d)];
    let e = merge(make(), Vec::new(), &options(false)).unwrap_err().to_string();
    assert_eq!(e, "shard 2/3 missing: pass its directory too, or --allow-partial to merge the rest");
    let r = merge(make(), Vec::new(), &options(true)).unwrap().report;
    let p = r.partial.unwrap();
    assert_eq!(p.missing, [2]);
    assert_eq!(r.totals.requests, 2);
}

#[test]
fn another_scenario_a_torn_journal_and_a_late_shard_are_refused_by_name() {
    let d = description(&[]);
    let mut other = shard(2, 2, vec![recorder(&[5])], 0, &d);
    other.report.scenario.hash = "sha256:other".into();
    let e = merge(vec![shard(1, 2, vec![recorder(&[5])], 0, &d), other], Vec::new(), &options(false)).unwrap_err();
    assert!(e.to_string().starts_with("dir2: scenario hash sha256:other differs from dir1's"), "{e}");

    let mut torn = shard(2, 2, vec![recorder(&[5, 6])], 0, &d);
    torn.counted.requests = 1;
    let e = merge(vec![shard(1, 2, vec![recorder(&[5])], 0, &d), torn], Vec::new(), &options(false)).unwrap_err();
    assert!(e.to_string().starts_with("dir2: its seconds hold 1 requests (0 failed) but its result.json 2"), "{e}");

    let late = shard(2, 2, vec![recorder(&[5])], 2_500, &d);
    let e = merge(vec![shard(1, 2, vec![recorder(&[5])], 0, &d), late], Vec::new(), &options(false)).unwrap_err();
    assert!(e.to_string().starts_with("dir2: started 2500 ms after dir1 (more than --max-skew 1s)"), "{e}");
}

#[test]
fn a_shard_that_did_not_complete_keeps_the_merge_from_saying_completed() {
    let d = description(&[]);
    let mut aborted = shard(2, 2, vec![recorder(&[5])], 0, &d);
    aborted.report.status = RunStatus::Aborted;
    aborted.report.stop_reason = "threshold_abort".into();
    let r = merge(vec![shard(1, 2, vec![recorder(&[5])], 0, &d), aborted], Vec::new(), &options(false)).unwrap().report;
    assert_eq!((r.status, r.stop_reason.as_str()), (RunStatus::Aborted, "threshold_abort"));
    assert_eq!(r.shards[1].status, "aborted");
}

/// Shard `n` of `count` re-declared as a bare `--segment`: no number, only its segment and sequence.
fn segment_shard(n: u64, seconds: Vec<Recorder>, segment: &str, sequence: &str, d: &RunDescription) -> ShardInput {
    let mut s = shard(n, 2, seconds, 0, d);
    for info in [s.report.shard.as_mut(), s.header.shard.as_mut()].into_iter().flatten() {
        (info.index, info.count) = (None, None);
        (info.segment, info.sequence) = (segment.into(), sequence.into());
    }
    s
}

#[test]
fn unequal_segments_merge_by_their_place_in_one_sequence() {
    let d = description(&[]);
    // A small machine ran the first quarter, a big one the rest, each with a bare --segment.
    let small = segment_shard(1, vec![recorder(&[5])], "0:1/4", "0,1/4,1", &d);
    let big = segment_shard(2, vec![recorder(&[5, 6, 7])], "1/4:1", "0,1/4,1", &d);
    let r = merge(vec![big, small], Vec::new(), &options(false)).unwrap().report;
    assert_eq!(r.totals.requests, 4);
    let mut numbers: Vec<u64> = r.shards.iter().map(|s| s.index).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2], "each shard's number is its segment's place in the sequence");

    // Two shards whose sequences differ deal their stripes differently: refused, naming the fix.
    let a = segment_shard(1, vec![recorder(&[5])], "0:1/4", "0,1/4,1", &d);
    let b = segment_shard(2, vec![recorder(&[5])], "1/4:1/2", "0,1/4,1/2,1", &d);
    let e = merge(vec![a, b], Vec::new(), &options(false)).unwrap_err().to_string();
    assert!(e.contains("dir2: segment sequence 0,1/4,1/2,1 differs from dir1's 0,1/4,1"), "{e}");
    assert!(e.contains("--segment-sequence"), "{e}");

    // A segment that is not in its own sequence has no place: not a shard.
    let lost = segment_shard(2, vec![recorder(&[5])], "1/3:1", "0,1/4,1", &d);
    let a = segment_shard(1, vec![recorder(&[5])], "0:1/4", "0,1/4,1", &d);
    let e = merge(vec![a, lost], Vec::new(), &options(false)).unwrap_err().to_string();
    assert!(e.contains("dir2: not a shard"), "{e}");
}
