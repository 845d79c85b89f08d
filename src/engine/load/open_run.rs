//! The open model's dispatcher and its runners. The dispatcher waits for each arrival on the worker's precise
//! timer and hands it to an idle runner: a long-lived task (at most one per iteration allowed in flight,
//! created as needed) that takes the arrival from its slot, runs the iteration, and waits for the next. A
//! hand-over is a write into the runner's slot and a wake-up: no task, allocation or channel message per
//! arrival.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::super::session::Session;
use super::super::super::shared::{Local, Shared};
use super::super::Pacer;
use super::super::pacing::ArrivalTimer;
use super::super::pool::{Pool, Pooled};
use super::{OpenShare, Schedule, count_missed, pick_class};
use crate::client::TransportFactory;
use crate::metrics::record;

/// Boxed: a user passes from the idle list to a job, a runner's slot and back for every arrival, and moving its
/// ~700 bytes each time was a ninth of a worker's instructions per arrival (callgrind, 3k/s).
type User<F> = Box<Session<Pooled<F>>>;

/// One arrival, handed to a runner with the user that runs it.
struct Job<F: TransportFactory> {
    user: User<F>,
    intended: Instant,
    class: usize,
    iteration: u64,
}

/// Where the dispatcher leaves a runner's next arrival.
struct Slot<F: TransportFactory> {
    job: Cell<Option<Job<F>>>,
    waker: Cell<Option<Waker>>,
}

impl<F: TransportFactory> Slot<F> {
    fn hand(&self, job: Job<F>) {
        self.job.set(Some(job));
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What the dispatcher and its runners share on this worker.
struct Crew<F: TransportFactory> {
    shared: Arc<Shared>,
    local: Rc<Local>,
    idle_runners: RefCell<Vec<Rc<Slot<F>>>>,
    /// Users between iterations, of every class; `created` counts them with those running.
    idle_users: RefCell<Vec<User<F>>>,
    created: Cell<usize>,
    /// No more arrivals: runners end once their iteration does.
    closed: Cell<bool>,
}

/// Runs this worker's arrivals until the schedule, the iteration budget or a stop ends them; its users share
/// a pool of connections from `factory`.
pub async fn dispatch<F: TransportFactory + 'static>(
    shared: Arc<Shared>,
    local: Rc<Local>,
    factory: Rc<F>,
    share: OpenShare,
) {
    let Some(mut schedule) = Schedule::new(&share, shared.start, shared.seed) else { return };
    let max_local = (share.load.max_in_flight as usize).div_ceil(share.workers).max(1);
    // The shard's part of the connections, split as `max_in_flight` is; by default one per iteration in flight.
    let conns = factory.connections().map_or(max_local, |c| {
        let shard = super::local_max_in_flight(c, &share.stripe) as usize;
        shard.div_ceil(share.workers).max(1)
    });
    let pool = Pool::new(factory, conns);
    let mut pacer = ArrivalTimer::for_this_thread();
    let crew = Rc::new(Crew {
        shared: shared.clone(),
        local: local.clone(),
        idle_runners: RefCell::new(Vec::new()),
        idle_users: RefCell::new(Vec::new()),
        created: Cell::new(0),
        closed: Cell::new(false),
    });
    let weights: Vec<u32> = shared.plan.classes.iter().map(|c| c.weight).collect();
    let total_weight: u32 = weights.iter().sum();
    let mut running = JoinSet::new();
    let mut late = 0u32;
    // The arrival in hand when a stop came: due arrivals the stop kept from starting are counted below.
    let mut stopped_at: Option<Instant> = None;
    while let Some(intended) = schedule.next_start() {
        // Arrivals due before the end are started even if the generator runs late (their lag is recorded);
        // waiting for a future one gives way to a stop.
        if shared.deadline.is_some_and(|d| intended >= d) {
            // The run lasts its duration (the achieved rate is over it) even when the last iteration ends
            // sooner: the run's end comes as a graceful stop.
            shared.stop.graceful.cancelled().await;
            break;
        }
        if intended > Instant::now() {
            tokio::select! {
                biased;
                _ = shared.stop.graceful.cancelled() => {
                    stopped_at = Some(intended);
                    break;
                }
                _ = pacer.wait_until(intended) => {}
            }
        } else {
            // Running late, arrivals never sleep: give the started iterations, the snapshot tick and a stop
            // their turn, or a rate beyond this machine starves them all.
            late = late.wrapping_add(1);
            if late % 64 == 0 {
                tokio::task::yield_now().await;
                if shared.stop.graceful.is_cancelled() {
                    stopped_at = Some(intended);
                    break;
                }
            }
        }
        local.rec.borrow_mut().arrivals += 1;
        // Drawn per global arrival, so an arrival has the same class whichever worker or shard runs it.
        let k = schedule.due_k;
        let mut pick_rng = SmallRng::seed_from_u64(shared.seed ^ 0xA5A5_0000 ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let class = pick_class(&weights, total_weight, &mut pick_rng);
        let position = crew.idle_users.borrow().iter().position(|u| u.class == class);
        let user = position.map(|i| crew.idle_users.borrow_mut().swap_remove(i));
        let user = match user {
            Some(u) => Some(u),
            None if crew.created.get() < max_local => {
                crew.created.set(crew.created.get() + 1);
                // Named after the arrival that made it: unique across workers and shards.
                Some(Box::new(Session::new(&shared, &local, pool.handle(), class, k)))
            }
            None => None,
        };
        let Some(user) = user else {
            local.rec.borrow_mut().dropped += 1;
            continue;
        };
        if !shared.claim_iteration() {
            crew.idle_users.borrow_mut().push(user);
            break;
        }
        // The global arrival number: `{{ iteration }}` is unique across workers and shards, as the schedule is.
        let job = Job { user, intended, class, iteration: k };
        let idle = crew.idle_runners.borrow_mut().pop();
        match idle {
            Some(slot) => slot.hand(job),
            None => {
                // At most one runner per user, so at most `max_local`: made once, then reused.
                let slot = Rc::new(Slot { job: Cell::new(Some(job)), waker: Cell::new(None) });
                running.spawn_local(runner(crew.clone(), slot));
            }
        }
    }
    if let Some(first) = stopped_at {
        count_missed(&mut schedule, first, shared.deadline, &local);
    }
    // A graceful stop lets running iterations end their current step; a hard stop aborts this task and, with
    // it, the runners.
    crew.closed.set(true);
    let idle: Vec<Rc<Slot<F>>> = std::mem::take(&mut *crew.idle_runners.borrow_mut());
    for slot in idle {
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
    while let Some(done) = running.join_next().await {
        local.reap(done);
    }
    // Users that set up (registered, logged in) tear down as in the closed model, all at once: the graceful
    // stop's window bounds them.
    let users: Vec<User<F>> = std::mem::take(&mut *crew.idle_users.borrow_mut());
    for mut u in users.into_iter().filter(|u| u.started) {
        running.spawn_local(async move { u.finish().await });
    }
    while let Some(done) = running.join_next().await {
        local.reap(done);
    }
    let (opened, peak) = pool.stats();
    let mut rec = local.rec.borrow_mut();
    rec.conns_opened += opened;
    rec.conns_peak += peak;
    rec.pacing_us = rec.pacing_us.max(pacer.resolution().micros);
}

/// One runner: the arrivals handed to its slot, one after the other, until the dispatcher closes. The
/// iteration runs in this loop's own state rather than in a helper future: a future made per arrival is built
/// and then moved into place, a ~5 KB copy per arrival (memmove went from 3.6 % to 2.95 % of the generator's
/// CPU at 50k/s without it).
async fn runner<F: TransportFactory + 'static>(crew: Rc<Crew<F>>, slot: Rc<Slot<F>>) {
    let local = &crew.local;
    loop {
        let next = std::future::poll_fn(|cx| match slot.job.take() {
            Some(job) => Poll::Ready(Some(job)),
            None if crew.closed.get() => Poll::Ready(None),
            None => {
                slot.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        let Some(Job { mut user, intended, class, iteration }) = next else { return };
        // Handed over too late to run at all: a stop came between the arrival and this runner's turn.
        if crew.shared.stop.graceful.is_cancelled() {
            local.rec.borrow_mut().dropped += 1;
            crew.idle_users.borrow_mut().push(user);
        } else {
            let lag = Instant::now().saturating_duration_since(intended);
            record(&mut local.rec.borrow_mut().lag, u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1));
            local.users.set(local.users.get() + 1);
            // Tested before the call: the setup's future is as large as an iteration's, and built only to return.
            let ready = user.started || user.ensure_started().await;
            if ready {
                user.iterate(&crew.shared, class, iteration, lag).await;
            }
            local.users.set(local.users.get() - 1);
            if ready {
                crew.idle_users.borrow_mut().push(user);
            } else {
                // A user whose setup failed is discarded; a new one may take its place.
                crew.created.set(crew.created.get() - 1);
            }
        }
        if crew.closed.get() {
            return;
        }
        crew.idle_runners.borrow_mut().push(slot.clone());
    }
}
