//! Closed model: a fixed population of users, each starting its next iteration when the previous one ended
//! (and its think time passed). The pacing is per user: when it spawns (all at once, at `spawn_rate`, or in
//! the windows a ramping profile gives it) and how many iterations it may run.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::NEVER;
use super::super::segment::Stripe;
use super::super::session::{Session, pause, pick};
use super::super::shared::{Local, Shared};
use super::{ClosedLoad, Pacer, stages};
use crate::client::TransportFactory;

pub struct UserSlot {
    pub id: u64,
    pub class: usize,
    /// (start, stop) offsets from the run start; a `None` stop runs to the end.
    pub windows: Vec<(Duration, Option<Duration>)>,
    pub max_iterations: Option<u64>,
}

/// The users of each worker (at most one worker per user), in spawn order, with their windows. Users are
/// numbered for the whole run (every shard): this process runs its `stripe` of them, each with the class and
/// spawn time it has in the whole run, so N shards together spawn what one process would.
pub fn slots(c: &ClosedLoad, weights: &[u32], workers: usize, stripe: &Stripe) -> Vec<Vec<UserSlot>> {
    let local = stripe.scale(u64::from(c.users));
    let workers = workers.clamp(1, local.max(1) as usize);
    let mut slots: Vec<Vec<UserSlot>> = (0..workers).map(|_| Vec::new()).collect();
    let mine = assign_classes(weights, c.users).into_iter().enumerate().filter(|&(i, _)| stripe.contains(i as u64));
    for (j, (i, class)) in mine.enumerate() {
        let windows = if c.stages.is_empty() {
            let start = match c.spawn_rate {
                // The rate is range-checked; a start beyond any run's end still never panics.
                Some(r) if r > 0.0 => Duration::try_from_secs_f64(i as f64 / r).unwrap_or(NEVER),
                _ => Duration::ZERO,
            };
            vec![(start, None)]
        } else {
            stages::windows(&c.stages, i as u32)
        };
        slots[j % workers].push(UserSlot { id: i as u64, class, windows, max_iterations: c.iterations_per_user });
    }
    slots
}

/// Users in spawn order with their class, by smooth weighted round-robin: any prefix of the population has
/// the classes in proportion to their weights (as Locust distributes users).
fn assign_classes(weights: &[u32], users: u32) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..users)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let best = (0..current.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i))).unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

/// The closed model's pacer for one user: when each of its windows opens (its spawn time, or as a ramping
/// profile says), and when the open one closes.
struct Windows<'a> {
    start: Instant,
    windows: std::slice::Iter<'a, (Duration, Option<Duration>)>,
    /// The end of the window last opened; `None` runs to the end.
    end: Option<Instant>,
}

impl<'a> Windows<'a> {
    fn new(start: Instant, windows: &'a [(Duration, Option<Duration>)]) -> Windows<'a> {
        Windows { start, windows: windows.iter(), end: None }
    }

    /// Whether the current window is still open; reads the clock only when the window has an end (a user of
    /// the whole run, the usual case, costs no clock read per iteration).
    fn is_open(&self) -> bool {
        self.end.is_none() || self.open_at(Instant::now())
    }

    fn open_at(&self, now: Instant) -> bool {
        self.end.is_none_or(|end| now < end)
    }
}

impl Pacer for Windows<'_> {
    fn next_start(&mut self) -> Option<Instant> {
        let &(start, stop) = self.windows.next()?;
        self.end = stop.and_then(|s| self.start.checked_add(s));
        // A start beyond any representable time (from an absurd spawn rate) never comes.
        self.start.checked_add(start)
    }
}

/// Closed model: one user, running in its windows (from its spawn time to the end of the run, or as a
/// ramping profile says), on_start before its first iteration and on_stop after its last. Its transport is
/// built from `factory` when its first window opens.
pub async fn run_user<F: TransportFactory>(shared: Arc<Shared>, local: Rc<Local>, factory: Rc<F>, slot: UserSlot) {
    let class = &shared.plan.classes[slot.class];
    let mut user: Option<Session<F::Transport>> = None;
    let mut iteration = 0;
    let mut pacer = Windows::new(shared.start, &slot.windows);
    while let Some(at) = pacer.next_start() {
        let wait = at.saturating_duration_since(Instant::now());
        if !pause(&shared.stop.graceful, wait).await {
            break;
        }
        let u = user.get_or_insert_with(|| Session::new(&shared, &local, factory.build(), slot.class, slot.id));
        // A user whose setup (register, login) failed cannot do its work; its failures are already recorded.
        if !u.ensure_started().await {
            break;
        }
        local.users.set(local.users.get() + 1);
        let more = |n: u64| slot.max_iterations.is_none_or(|max| n < max);
        while more(iteration) && pacer.is_open() && !shared.stop.graceful.is_cancelled() && shared.claim_iteration() {
            if !u.iterate(&shared, slot.class, iteration, Duration::ZERO).await {
                break;
            }
            iteration += 1;
            if let Some(think) = class.think {
                let d = pick(&mut u.vars.rng, think);
                if !pause(&shared.stop.graceful, d).await {
                    break;
                }
            }
        }
        local.users.set(local.users.get() - 1);
    }
    if let Some(mut u) = user {
        u.finish().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_weights_in_every_prefix() {
        let a = assign_classes(&[3, 1], 8);
        assert_eq!(a.iter().filter(|&&c| c == 0).count(), 6);
        assert_eq!(&a[..4].iter().filter(|&&c| c == 1).count(), &1);
        assert_eq!(assign_classes(&[1], 3), vec![0, 0, 0]);
        assert!(assign_classes(&[1, 1], 0).is_empty());
    }

    #[test]
    fn shards_run_their_stripe_of_the_users_with_global_classes_and_spawn_times() {
        use super::super::super::segment::Sequence;
        let plan = [3, 1];
        let c = ClosedLoad {
            users: 10,
            spawn_rate: Some(2.0),
            duration: None,
            iterations: None,
            stages: vec![],
            iterations_per_user: None,
        };
        let whole: Vec<(u64, usize, Duration)> = slots(&c, &plan, 1, &Stripe::whole())
            .into_iter()
            .flatten()
            .map(|u| (u.id, u.class, u.windows[0].0))
            .collect();
        let seq = Sequence::even(4).unwrap();
        let mut union: Vec<(u64, usize, Duration)> = (0..4)
            .flat_map(|i| slots(&c, &plan, 2, &Stripe::new(&seq, i).unwrap()).into_iter().flatten())
            .map(|u| (u.id, u.class, u.windows[0].0))
            .collect();
        union.sort();
        assert_eq!(union, whole);
        let second: Vec<u64> =
            slots(&c, &plan, 8, &Stripe::new(&seq, 1).unwrap()).iter().flatten().map(|u| u.id).collect();
        assert_eq!(second, [1, 5, 9]);
    }

    #[test]
    fn a_user_is_paced_by_its_windows() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let windows = [(s(1), Some(s(3))), (s(5), None), (Duration::MAX, None)];
        let mut p = Windows::new(t0, &windows);
        assert_eq!(p.next_start(), Some(t0 + s(1)));
        assert!(p.open_at(t0 + s(2)) && !p.open_at(t0 + s(3)));
        assert_eq!(p.next_start(), Some(t0 + s(5)));
        assert!(p.open_at(t0 + s(1_000_000)), "the last window runs to the end");
        assert_eq!(p.next_start(), None, "a start beyond any clock never comes");
    }
}
