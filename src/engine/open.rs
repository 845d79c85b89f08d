//! Open model: arrivals on a schedule (constant spacing or Poisson), independent of how fast the target
//! answers. Each arrival takes an idle user from this worker's pool and runs one iteration, its latency counted
//! from the scheduled start (coordinated-omission correct, as wrk2); with `max_in_flight` iterations running, the
//! arrival is dropped and counted, never queued into a hidden backlog.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};
use tokio::time::Instant;

use super::vu::{Local, Shared, User};
use super::{Arrival, OpenLoad};
use crate::metrics::record;

/// This worker's part of the open load: its share of the rate and of `max_in_flight`.
#[derive(Debug, Clone)]
pub struct OpenShare {
    pub worker: usize,
    pub workers: usize,
    pub load: OpenLoad,
}

/// Arrival times for one worker. Constant arrivals of all workers interleave (worker w is offset by w/rate),
/// so together they form one evenly spaced stream at the full rate; Poisson streams superpose to Poisson.
struct Schedule {
    next: Instant,
    gap: Duration,
    poisson: Option<(Exp<f64>, SmallRng)>,
}

impl Schedule {
    fn new(share: &OpenShare, start: Instant, seed: u64) -> Option<Schedule> {
        let rate = share.load.rate / share.workers as f64;
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let gap = Duration::from_secs_f64(1.0 / rate);
        let phase = Duration::from_secs_f64(share.worker as f64 / share.load.rate);
        let poisson = match share.load.arrival {
            Arrival::Constant => None,
            Arrival::Poisson => Some((
                Exp::new(rate).ok()?,
                SmallRng::seed_from_u64(seed ^ ((share.worker as u64 + 1) * 0x51_7CC1_B727_220A)),
            )),
        };
        let mut s = Schedule { next: start + phase, gap, poisson };
        if s.poisson.is_some() {
            s.next = start;
            s.advance();
        }
        Some(s)
    }

    fn advance(&mut self) {
        self.next += match &mut self.poisson {
            None => self.gap,
            Some((exp, rng)) => Duration::from_secs_f64(exp.sample(rng)),
        };
    }
}

pub async fn dispatch(shared: Arc<Shared>, local: Rc<Local>, share: OpenShare) {
    let Some(mut schedule) = Schedule::new(&share, shared.start, shared.seed) else { return };
    let max_local = (share.load.max_in_flight as usize).div_ceil(share.workers).max(1);
    let idle: Rc<RefCell<Vec<User>>> = Rc::new(RefCell::new(Vec::new()));
    let created = Rc::new(Cell::new(0usize));
    let weights: Vec<u32> = shared.plan.classes.iter().map(|c| c.weight).collect();
    let total_weight: u32 = weights.iter().sum();
    let mut pick_rng = SmallRng::seed_from_u64(shared.seed ^ 0xA5A5_0000 ^ share.worker as u64);
    let mut running = tokio::task::JoinSet::new();
    let mut iteration = 0u64;
    loop {
        tokio::select! {
            biased;
            _ = shared.stop.graceful.cancelled() => break,
            _ = tokio::time::sleep_until(schedule.next) => {}
        }
        let intended = schedule.next;
        schedule.advance();
        local.rec.borrow_mut().arrivals += 1;
        let class = pick_class(&weights, total_weight, &mut pick_rng);
        let position = idle.borrow().iter().position(|u| u.class == class);
        let user = position.map(|i| idle.borrow_mut().swap_remove(i));
        let user = match user {
            Some(u) => Some(u),
            None if created.get() < max_local => {
                created.set(created.get() + 1);
                let id = (share.worker + created.get() * share.workers) as u64;
                Some(User::new(&shared, &local, class, id))
            }
            None => None,
        };
        let Some(mut user) = user else {
            local.rec.borrow_mut().dropped += 1;
            continue;
        };
        if !shared.claim_iteration() {
            break;
        }
        let (idle, created, local) = (idle.clone(), created.clone(), local.clone());
        let n = iteration;
        iteration += 1;
        running.spawn_local(async move {
            let lag = Instant::now().saturating_duration_since(intended);
            record(&mut local.rec.borrow_mut().lag, u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1));
            local.users.set(local.users.get() + 1);
            let ready = user.started || user.start(class).await;
            user.started = ready;
            if ready {
                user.iterate(class, n, lag).await;
            }
            local.users.set(local.users.get() - 1);
            if ready {
                idle.borrow_mut().push(user);
            } else {
                // A user whose setup failed is discarded; a new one may take its place.
                created.set(created.get() - 1);
            }
        });
        // Reap finished iterations so the set does not grow over a long run.
        while running.try_join_next().is_some() {}
    }
    // A graceful stop lets running iterations end their current step; a hard stop aborts this task and, with
    // it, the set.
    while running.join_next().await.is_some() {}
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
