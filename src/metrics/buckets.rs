//! Fixed-bound buckets filled from HdrHistogram counts, for exporters that want cumulative buckets (Prometheus).
//!
//! Exact, not interpolated: durations are measured in nanoseconds and recorded as whole microseconds (truncated),
//! and every bound below is the first value of an HdrHistogram sub-bucket (3 significant digits: unit 1 µs below
//! 2,048 µs, then 2, 4, 8 … µs per octave). So the HDR bucket holding any recorded value lies wholly below or
//! wholly at-or-above each bound, and the bucket of bound `B` counts exactly the values whose measured duration
//! was below `B`. (Prometheus reads `le` as "≤"; the two differ only for a duration of exactly `B` to the
//! nanosecond.) Round bounds such as 25 ms, 100 ms or 1 s are not sub-bucket edges, which is why the series
//! below doubles from 5 ms and 7.5 ms instead: ≈√2 steps from 1 ms to 61.44 s (past the 60 s default timeout).

use super::Hist;

/// Upper bounds of the duration buckets, in microseconds: 1 ms, 2.5 ms, then 5 ms·2ⁿ and 7.5 ms·2ⁿ.
pub const DURATION_BOUNDS_US: [u64; 30] = [
    1_000, 2_500, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 40_000, 60_000, 80_000, 120_000, 160_000, 240_000,
    320_000, 480_000, 640_000, 960_000, 1_280_000, 1_920_000, 2_560_000, 3_840_000, 5_120_000, 7_680_000, 10_240_000,
    15_360_000, 20_480_000, 30_720_000, 40_960_000, 61_440_000,
];

/// Upper bounds of the hiccup-probe lateness buckets, µs: most wake-ups are under a millisecond late, a stall
/// is tens or hundreds. Each is a sub-bucket edge as above (1 µs units below 2,048 µs, then 1,250 units of the
/// octave's step).
pub const HICCUP_BOUNDS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000,
];

/// Counts per bucket (not cumulative), kept by adding histograms; what Prometheus' `_bucket`, `_sum` and
/// `_count` are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    bounds: &'static [u64],
    /// `counts[i]`: values below `bounds[i]` and not below `bounds[i - 1]`; the last entry holds the values at
    /// or above the last bound (they appear only in `+Inf`).
    counts: Vec<u64>,
    count: u64,
    /// Each value taken at the middle of its HDR bucket (as hdrhistogram's mean does): within 0.05 %.
    sum_us: f64,
}

impl Buckets {
    /// `bounds` must be increasing sub-bucket edges of `new_hist()` (see the module note; tested below).
    pub fn new(bounds: &'static [u64]) -> Self {
        Buckets { bounds, counts: vec![0; bounds.len() + 1], count: 0, sum_us: 0.0 }
    }

    pub fn durations() -> Self {
        Buckets::new(&DURATION_BOUNDS_US)
    }

    pub fn hiccups() -> Self {
        Buckets::new(&HICCUP_BOUNDS_US)
    }

    /// Adds every value recorded in `h`. Cost: one pass over `h`'s non-empty HDR buckets.
    pub fn add(&mut self, h: &Hist) {
        if h.is_empty() {
            return;
        }
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            // The highest value of the HDR bucket: the first bound above it is above every value in the bucket,
            // and the bound before it is at or below the bucket's lowest value because bounds are edges.
            let high = v.value_iterated_to();
            let i = self.bounds.partition_point(|&b| b <= high);
            self.counts[i] += n;
            self.count += n;
            self.sum_us += h.median_equivalent(high) as f64 * n as f64;
        }
    }

    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Per-bucket counts, one per bound and a last one for the values beyond them.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum_us(&self) -> f64 {
        self.sum_us
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{StepStats, new_hist, record};

    #[test]
    fn every_bound_is_a_sub_bucket_edge() {
        let h = new_hist();
        for &b in &DURATION_BOUNDS_US {
            assert_eq!(
                h.lowest_equivalent(b),
                b,
                "{b} µs is inside an HDR sub-bucket: counts below it would be approximate"
            );
        }
        assert!(DURATION_BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn buckets_count_exactly_the_durations_below_each_bound() {
        // Durations straddling every bound by a nanosecond and a microsecond, plus values far beyond the last.
        let mut durations = Vec::new();
        for &b in &DURATION_BOUNDS_US {
            let b = Duration::from_micros(b);
            let ns = Duration::from_nanos(1);
            let us = Duration::from_micros(1);
            durations.extend([b - us, b - ns, b, b + ns, b + us, b + us * 3]);
        }
        durations.extend([Duration::from_nanos(1), Duration::from_secs(90), Duration::from_secs(3600)]);
        let mut s = StepStats::default();
        for d in &durations {
            s.record_ok(*d, *d, 0);
        }
        let mut b = Buckets::durations();
        b.add(&s.latency);
        let mut cumulative = 0;
        for (i, &bound) in DURATION_BOUNDS_US.iter().enumerate() {
            cumulative += b.counts()[i];
            let expected = durations.iter().filter(|d| **d < Duration::from_micros(bound)).count() as u64;
            assert_eq!(cumulative, expected, "bucket below {bound} µs");
        }
        assert_eq!(b.count(), durations.len() as u64);
        assert_eq!(b.counts().iter().sum::<u64>(), b.count());
        let true_sum: f64 = durations.iter().map(|d| d.as_micros() as f64).sum();
        assert!((b.sum_us() - true_sum).abs() / true_sum < 0.001, "{} vs {true_sum}", b.sum_us());
    }

    #[test]
    fn adding_intervals_equals_adding_the_merged_histogram() {
        let (mut a, mut c) = (new_hist(), new_hist());
        for v in [3, 999, 1_000, 4_999, 5_000, 70_000, 61_440_000, 99_000_000] {
            record(&mut a, v);
        }
        for v in [1, 2_501, 7_499, 7_500] {
            record(&mut c, v);
        }
        let mut separate = Buckets::durations();
        separate.add(&a);
        separate.add(&c);
        a.add(&c).unwrap();
        let mut merged = Buckets::durations();
        merged.add(&a);
        assert_eq!(separate, merged);
        assert_eq!(merged.counts()[..4], [3, 1, 2, 2]);
        assert_eq!(*merged.counts().last().unwrap(), 2, "at or beyond 61.44 s: only in +Inf");
    }
}
