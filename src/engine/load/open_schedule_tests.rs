//! The one global arrival schedule: shards and workers each take their stripe of it, and together they are it.

use super::super::super::segment::{Sequence, Stripe};
use super::super::RateStage;
use super::*;

fn load(arrival: Arrival, stages: &[(f64, u64)]) -> OpenLoad {
    OpenLoad {
        rate: 200.0,
        arrival,
        max_in_flight: 1000,
        duration: None,
        iterations: None,
        stages: stages.iter().map(|&(target, s)| RateStage { target, duration: Duration::from_secs(s) }).collect(),
    }
}

/// `(global index, offset from the start)` of every arrival before `horizon` of the workers of one process
/// owning `stripe`.
fn arrivals(load: &OpenLoad, stripe: &Stripe, workers: usize, horizon: Duration) -> Vec<(u64, Duration)> {
    let start = Instant::now();
    let mut all: Vec<(u64, Duration)> = shares(load, workers, stripe)
        .iter()
        .flat_map(|share| {
            let mut s = Schedule::new(share, start, 42).expect("arrivals");
            std::iter::from_fn(move || {
                let t = s.next_start()?;
                (t - start < horizon).then_some((s.due_k, t - start))
            })
            .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

fn cases() -> Vec<OpenLoad> {
    let ramp = [(400.0, 2), (0.0, 1)];
    vec![
        load(Arrival::Constant, &[]),
        load(Arrival::Poisson, &[]),
        load(Arrival::Constant, &ramp),
        load(Arrival::Poisson, &ramp),
    ]
}

#[test]
fn four_shards_together_are_the_single_schedule() {
    let horizon = Duration::from_secs(3);
    for l in cases() {
        let single = arrivals(&l, &Stripe::whole(), 1, horizon);
        assert!(single.len() > 300, "{:?}: {}", l.arrival, single.len());
        for seq in [Sequence::even(4).unwrap(), Sequence::parse("0,1/8,1/2,5/6,1").unwrap()] {
            let mut union: Vec<(u64, Duration)> = Vec::new();
            for i in 0..seq.segments().len() {
                let stripe = Stripe::new(&seq, i).unwrap();
                let mine = arrivals(&l, &stripe, 1 + i % 3, horizon);
                // Exactly the shard's stripe of the global arrivals: its count is the stripe's scale.
                assert_eq!(mine.len() as u64, stripe.scale(single.len() as u64), "{seq} segment {i}");
                union.extend(mine);
            }
            union.sort();
            let before = union.len();
            union.dedup_by_key(|a| a.0);
            assert_eq!(union.len(), before, "shards share no arrival");
            assert_eq!(union, single, "{:?} {seq}", l.arrival);
        }
    }
}

#[test]
fn the_worker_count_does_not_change_the_schedule() {
    for l in cases() {
        let one = arrivals(&l, &Stripe::whole(), 1, Duration::from_secs(2));
        assert_eq!(arrivals(&l, &Stripe::whole(), 2, Duration::from_secs(2)), one, "{:?}", l.arrival);
        assert_eq!(arrivals(&l, &Stripe::whole(), 5, Duration::from_secs(2)), one, "{:?}", l.arrival);
    }
}

#[test]
fn max_in_flight_is_split_by_the_segments() {
    let seq = Sequence::even(4).unwrap();
    let split: Vec<u32> = (0..4).map(|i| local_max_in_flight(10, &Stripe::new(&seq, i).unwrap())).collect();
    assert_eq!(split.iter().sum::<u32>(), 10);
    assert_eq!(local_max_in_flight(1, &Stripe::new(&seq, 3).unwrap()), 1, "at least one");
}
