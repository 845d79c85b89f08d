//! Open model: arrivals on a schedule (constant spacing or Poisson), independent of how fast the target
//! answers. Each arrival takes an idle user from this worker's pool and runs one iteration, its latency counted
//! from the scheduled start (coordinated-omission correct, as wrk2); with `max_in_flight` iterations running, the
//! arrival is dropped and counted, never queued into a hidden backlog.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use tokio::time::Instant;

use super::super::segment::Stripe;
use super::super::shared::Local;
use super::{Arrival, OpenLoad, Pacer};

/// This worker's part of the open load: its stripe of the one global arrival schedule (the shard's stripe, then
/// every `workers`-th arrival of it), and its share of `max_in_flight`.
#[derive(Debug, Clone)]
pub struct OpenShare {
    pub worker: usize,
    pub workers: usize,
    pub load: OpenLoad,
    /// The global arrival indices this process (shard) owns.
    pub stripe: Stripe,
}

impl OpenShare {
    /// Whether global arrival `k` is this worker's: the shard's, and its place in the shard's stripe falls to
    /// this worker.
    fn owns(&self, k: u64) -> bool {
        self.stripe.contains(k) && self.stripe.scale(k) % self.workers as u64 == self.worker as u64
    }
}

/// The global arrival rate over time: linear segments `(seconds, rate at start, rate at end)`, then `tail` for
/// the rest of the run.
struct Profile {
    segments: Vec<(f64, f64, f64)>,
    tail: f64,
}

impl Profile {
    fn new(load: &OpenLoad) -> Profile {
        let mut from = load.rate;
        let mut segments = Vec::new();
        for st in &load.stages {
            segments.push((st.duration.as_secs_f64(), from, st.target));
            from = st.target;
        }
        Profile { segments, tail: from }
    }

    /// Seconds from the start at which the expected number of arrivals reaches `n` (the inverse of the rate's
    /// integral); `None` when the rate has fallen to zero for good.
    fn time_at(&self, mut n: f64) -> Option<f64> {
        let mut t = 0.0;
        for &(d, r0, r1) in &self.segments {
            let in_segment = (r0 + r1) / 2.0 * d;
            if n <= in_segment && d > 0.0 {
                // r0·τ + (r1 − r0)·τ² / 2d = n
                let a = (r1 - r0) / (2.0 * d);
                let tau =
                    if a.abs() < 1e-12 { n / r0 } else { (-r0 + (r0 * r0 + 4.0 * a * n).max(0.0).sqrt()) / (2.0 * a) };
                return tau.is_finite().then(|| t + tau.clamp(0.0, d));
            }
            n -= in_segment;
            t += d;
        }
        (self.tail > 0.0).then(|| t + n / self.tail)
    }
}

/// One worker's arrivals out of the ONE global schedule, by time rescaling: global arrival `k` comes when the
/// expected-arrivals count reaches `n_k`, with unit steps (constant) or Exp(1) steps from one seeded stream
/// (Poisson). Every worker of every shard computes the same `n_k` and keeps only the arrivals it owns, so
/// the union over workers and shards is exactly the one-process schedule, whatever the worker count: what
/// coordinated-omission correction and a merge of shards both need.
struct Schedule {
    start: Instant,
    share: OpenShare,
    /// `n_k` of global arrival `k`; before the first, `k` is `None`.
    n: f64,
    k: Option<u64>,
    profile: Profile,
    poisson: Option<(Exp<f64>, SmallRng)>,
    next: Instant,
    next_k: u64,
    /// The global index of the arrival `next_start` returned last.
    due_k: u64,
    /// No arrival after `next` (the rate ended at zero).
    last: bool,
}

impl Schedule {
    fn new(share: &OpenShare, start: Instant, seed: u64) -> Option<Schedule> {
        if !(share.load.rate.is_finite() && share.load.rate >= 0.0) {
            return None;
        }
        let poisson = match share.load.arrival {
            Arrival::Constant => None,
            // The stream of the former worker 0, so a one-worker run keeps the schedule of earlier versions.
            Arrival::Poisson => Some((Exp::new(1.0).ok()?, SmallRng::seed_from_u64(seed ^ 0x51_7CC1_B727_220A))),
        };
        let mut s = Schedule {
            start,
            share: share.clone(),
            n: 0.0,
            k: None,
            profile: Profile::new(&share.load),
            poisson,
            next: start,
            next_k: 0,
            due_k: 0,
            last: false,
        };
        s.advance().then_some(s)
    }

    /// Moves to this worker's next arrival; false when there is none (the rate ended at zero).
    fn advance(&mut self) -> bool {
        match &mut self.poisson {
            // Constant: `n_k = k`, so the next owned arrival is found without stepping through the others.
            None => {
                let from = self.k.map_or(0, |k| k + 1);
                let Some(k) = self.next_owned(from) else { return false };
                self.k = Some(k);
                self.n = k as f64;
            }
            // Poisson: every global step is drawn, in order, from the one stream; the others' are skipped.
            Some((exp, rng)) => loop {
                self.n += exp.sample(rng);
                let k = self.k.map_or(0, |k| k + 1);
                self.k = Some(k);
                if self.share.owns(k) {
                    break;
                }
            },
        }
        // An arrival too far away to represent is one that never comes.
        let next = self.profile.time_at(self.n).and_then(|t| Duration::try_from_secs_f64(t).ok());
        match next.and_then(|d| self.start.checked_add(d)) {
            Some(next) => {
                self.next = next;
                self.next_k = self.k.unwrap_or(0);
                true
            }
            None => false,
        }
    }

    /// The first global index from `from` on that this worker owns.
    fn next_owned(&self, from: u64) -> Option<u64> {
        let (w, workers) = (self.share.worker as u64, self.share.workers as u64);
        // Its place in the shard's stripe: the first place ≥ the places before `from` that is this worker's.
        let before = self.share.stripe.scale(from);
        let place = before.checked_add((w + workers - before % workers) % workers)?;
        let k = self.share.stripe.nth(place);
        (k != u64::MAX).then_some(k)
    }
}

/// One share per worker (at most one worker per iteration allowed in flight), over this shard's stripe.
pub fn shares(load: &OpenLoad, workers: usize, stripe: &Stripe) -> Vec<OpenShare> {
    let mut load = load.clone();
    load.max_in_flight = local_max_in_flight(load.max_in_flight, stripe);
    let workers = workers.clamp(1, load.max_in_flight as usize);
    (0..workers).map(|worker| OpenShare { worker, workers, load: load.clone(), stripe: stripe.clone() }).collect()
}

/// This shard's part of `max_in_flight`: its share of the global limit, at least 1 so that it can run at all.
pub fn local_max_in_flight(global: u32, stripe: &Stripe) -> u32 {
    u32::try_from(stripe.scale(u64::from(global))).unwrap_or(u32::MAX).max(1)
}

impl Pacer for Schedule {
    fn next_start(&mut self) -> Option<Instant> {
        if self.last {
            return None;
        }
        let due = self.next;
        self.due_k = self.next_k;
        self.last = !self.advance();
        Some(due)
    }
}

/// A generator that fell behind and was stopped (the run's end, a signal) leaves arrivals that were already due
/// unstarted: the schedule promised them, so they count as arrivals and as dropped, never vanish from the
/// report. `first` is the arrival in hand when the stop came; later ones count up to the earlier of the run's
/// end and now.
fn count_missed(schedule: &mut Schedule, first: Instant, deadline: Option<Instant>, local: &Local) {
    let now = Instant::now();
    let cutoff = deadline.map_or(now, |d| d.min(now));
    let mut missed = 0u64;
    let mut next = Some(first);
    while next.is_some_and(|t| t < cutoff) {
        missed += 1;
        next = schedule.next_start();
    }
    let mut rec = local.rec.borrow_mut();
    rec.arrivals += missed;
    rec.dropped += missed;
}

fn pick_class(weights: &[u32], total: u32, rng: &mut SmallRng) -> usize {
    if weights.len() <= 1 || total == 0 {
        return 0;
    }
    let mut x = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rate: f64, stages: &[(f64, u64)]) -> OpenLoad {
        OpenLoad {
            rate,
            arrival: Arrival::Constant,
            max_in_flight: 1,
            duration: None,
            iterations: None,
            stages: stages
                .iter()
                .map(|&(target, s)| super::super::RateStage { target, duration: Duration::from_secs(s) })
                .collect(),
        }
    }

    #[test]
    fn a_flat_rate_spaces_arrivals_evenly() {
        let p = Profile::new(&load(10.0, &[]));
        assert_eq!(p.time_at(1.0), Some(0.1));
        assert_eq!(p.time_at(25.0), Some(2.5));
    }

    #[test]
    fn a_ramp_inverts_its_integral() {
        // 0 -> 10/s over 10 s: N(t) = t^2 / 2, so N = 50 at t = 10 and N = 12.5 at t = 5.
        let p = Profile::new(&load(0.0, &[(10.0, 10)]));
        assert!((p.time_at(12.5).unwrap() - 5.0).abs() < 1e-9);
        assert!((p.time_at(50.0).unwrap() - 10.0).abs() < 1e-9);
        // Then 10/s holds.
        assert!((p.time_at(60.0).unwrap() - 11.0).abs() < 1e-9);
        // Down to zero: arrivals end.
        let down = Profile::new(&load(10.0, &[(0.0, 2)]));
        assert!(down.time_at(10.0).is_some());
        assert_eq!(down.time_at(10.5), None);
    }

    #[test]
    fn constant_arrivals_of_all_workers_interleave() {
        let start = Instant::now();
        let mut due: Vec<Duration> = (0..2)
            .flat_map(|worker| {
                let share = OpenShare { worker, workers: 2, load: load(10.0, &[]), stripe: Stripe::whole() };
                let mut s = Schedule::new(&share, start, 1).expect("arrivals");
                (0..3).filter_map(|_| s.next_start()).map(|t| t - start).collect::<Vec<_>>()
            })
            .collect();
        due.sort();
        let ms: Vec<u128> = due.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 100, 200, 300, 400, 500]);
    }

    #[tokio::test]
    async fn an_arrival_too_far_to_represent_never_comes_and_never_panics() {
        // Config refuses such rates; the schedule must still not panic if one gets through.
        for rate in [1e-300, f64::MIN_POSITIVE, 1e-30] {
            // The first arrival is at the start; the second is beyond any clock.
            let share = OpenShare { worker: 0, workers: 1, load: load(rate, &[]), stripe: Stripe::whole() };
            let mut s = Schedule::new(&share, Instant::now(), 1).expect("a first arrival");
            assert!(!s.advance(), "{rate}");
        }
        let share = OpenShare { worker: 0, workers: 1, load: load(1e6, &[]), stripe: Stripe::whole() };
        let mut s = Schedule::new(&share, Instant::now(), 1).unwrap();
        assert!((0..1000).all(|_| s.advance()));
    }
}

#[path = "open_run.rs"]
mod run;
pub use run::dispatch;

#[cfg(test)]
#[path = "open_schedule_tests.rs"]
mod schedule_tests;
