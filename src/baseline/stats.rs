//! The noise side of a comparison: standard errors of the statistics we compare, computed from what a result
//! stores (histograms, counters, the per-second series, in blocks of seconds). Deterministic: the same two files always give the same
//! verdict, which a CI gate needs more than a resampling test's extra generality.

use crate::metrics::Hist;

/// The two-sided standard normal quantile for a confidence level, e.g. 0.99 → 2.576 (Abramowitz & Stegun
/// 26.2.23, absolute error below 4.5e-4: far below what a gate decision depends on).
pub fn z_for(confidence: f64) -> f64 {
    let p = ((1.0 - confidence) / 2.0).clamp(1e-12, 0.5);
    let t = (-2.0 * p.ln()).sqrt();
    t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

/// Standard error of the q-quantile of a histogram, from the distribution-free order-statistic interval: the
/// sample quantile's rank is Binomial(n, q), so one standard error spans the values at ranks n·q ± √(n·q·(1−q)).
/// The wider side is taken: near the top of a small sample one side is cut off at the maximum, and a gate had
/// better overstate the noise than cry regression. In the histogram's units.
pub fn quantile_se(h: &Hist, q: f64) -> f64 {
    let n = h.len() as f64;
    if n < 1.0 {
        return 0.0;
    }
    let s = (q * (1.0 - q) / n).sqrt().max(0.5 / n);
    let v = h.value_at_quantile(q) as f64;
    let lo = h.value_at_quantile((q - s).max(0.0)) as f64;
    let hi = h.value_at_quantile((q + s).min(1.0)) as f64;
    (hi - v).max(v - lo)
}

/// Standard error of the mean.
pub fn mean_se(h: &Hist) -> f64 {
    let n = h.len() as f64;
    if n < 2.0 { 0.0 } else { h.stdev() / n.sqrt() }
}

/// Standard error of a proportion of `x` events in `n` trials. Half an event is added (and one trial) so that a
/// run without a single error does not claim its error rate is exactly zero.
pub fn proportion_se(x: u64, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let p = (x as f64 + 0.5) / (n as f64 + 1.0);
    (p * (1.0 - p) / n as f64).sqrt()
}

/// Standard error of a run-level number from its per-second values, treating the seconds as independent: it
/// sees the spread between seconds that per-request counting misses, not that neighbouring seconds move
/// together. `None` below 3 values.
pub fn batch_se(values: &[f64]) -> Option<f64> {
    let k = values.len();
    if k < 3 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / k as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    Some((var / k as f64).sqrt())
}

/// Standard error of a run-level number from its per-second values, by overlapping batch means (Meketon &
/// Schmeiser 1984) over blocks of ⌊√k⌋ seconds: a slow drift or a burst of slow seconds makes neighbouring
/// seconds alike, and a block sees that where independent seconds would not (the effective number of
/// samples is smaller than the number of seconds). Never narrower than [`batch_se`]: with few blocks the
/// estimate is itself noisy, and a gate had better overstate the noise than cry regression. Deterministic, no
/// resampling. `None` below 3 values.
pub fn block_se(values: &[f64]) -> Option<f64> {
    let iid = batch_se(values)?;
    let k = values.len();
    let b = (k as f64).sqrt().floor() as usize;
    if b < 2 {
        return Some(iid);
    }
    let mean = values.iter().sum::<f64>() / k as f64;
    let mut window: f64 = values[..b].iter().sum();
    let mut squares = (window / b as f64 - mean).powi(2);
    for j in b..k {
        window += values[j] - values[j - b];
        squares += (window / b as f64 - mean).powi(2);
    }
    let (k, b) = (k as f64, b as f64);
    let long_run_var = k * b / ((k - b) * (k - b + 1.0)) * squares;
    Some(iid.max((long_run_var / k).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{new_hist, record};

    #[test]
    fn z_matches_the_normal_table() {
        for (c, z) in [(0.90, 1.6449), (0.95, 1.9600), (0.99, 2.5758), (0.999, 3.2905)] {
            assert!((z_for(c) - z).abs() < 1e-3, "{c}: {}", z_for(c));
        }
    }

    #[test]
    fn quantile_se_shrinks_with_the_sample() {
        let hist = |n: u64| {
            let mut h = new_hist();
            for i in 0..n {
                record(&mut h, 1000 + (i * 7919) % 1000);
            }
            h
        };
        let (small, large) = (quantile_se(&hist(100), 0.5), quantile_se(&hist(10_000), 0.5));
        // Uniform on 1000..2000: se of the median ≈ 1000 × √(0.25/n) = 50 and 5.
        assert!((35.0..65.0).contains(&small), "{small}");
        assert!((3.5..6.5).contains(&large), "{large}");
        assert_eq!(quantile_se(&new_hist(), 0.5), 0.0);
    }

    #[test]
    fn proportion_and_batch_errors() {
        assert!(proportion_se(0, 1000) > 0.0, "no error seen is not proof of a zero rate");
        assert!(proportion_se(0, 100_000) < proportion_se(0, 100));
        let p: f64 = 10.5 / 1001.0;
        assert!((proportion_se(10, 1000) - (p * (1.0 - p) / 1000.0).sqrt()).abs() < 1e-12);
        assert_eq!(batch_se(&[1.0, 2.0]), None);
        let se = batch_se(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((se - (1.6667_f64 / 4.0).sqrt()).abs() < 1e-3, "{se}");
    }

    /// A fixed pseudo-random sequence, uniform on [-0.5, 0.5): white noise.
    fn white(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    #[test]
    fn blocks_agree_with_independent_seconds_on_white_noise() {
        for seed in 1..=5 {
            let v: Vec<f64> = white(60, seed).iter().map(|x| 100.0 + 10.0 * x).collect();
            let (iid, block) = (batch_se(&v).unwrap(), block_se(&v).unwrap());
            assert!(block >= iid && block < 1.5 * iid, "seed {seed}: block {block}, iid {iid}");
        }
    }

    #[test]
    fn blocks_widen_the_band_for_drifts_and_bursts() {
        // A slow drift: 100 → 130 ms over a minute, with the same white noise on top.
        let drift: Vec<f64> = white(60, 7).iter().enumerate().map(|(i, x)| 100.0 + i as f64 * 0.5 + 4.0 * x).collect();
        // Bursts: five slow seconds in a row every twenty (a neighbour's cron job), else quiet.
        let bursts: Vec<f64> =
            white(60, 9).iter().enumerate().map(|(i, x)| if i % 20 < 5 { 160.0 } else { 100.0 } + 4.0 * x).collect();
        for (name, v) in [("drift", drift), ("bursts", bursts)] {
            let (iid, block) = (batch_se(&v).unwrap(), block_se(&v).unwrap());
            assert!(block > 1.5 * iid, "{name}: block {block}, iid {iid}");
        }
        // Shuffling the bursty seconds into random order removes the autocorrelation, and the widening with it.
        let mut shuffled: Vec<f64> = (0..60).map(|i| if i % 4 == 0 { 160.0 } else { 100.0 }).collect();
        shuffled.swap(3, 40);
        let (iid, block) = (batch_se(&shuffled).unwrap(), block_se(&shuffled).unwrap());
        assert!(block < 1.3 * iid, "alternating slow seconds are not a burst: block {block}, iid {iid}");
        assert_eq!(block_se(&[1.0, 2.0]), None);
        assert_eq!(block_se(&[1.0, 2.0, 3.0]), batch_se(&[1.0, 2.0, 3.0]), "one second a block: independent");
    }
}
