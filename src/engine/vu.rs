//! The one virtual-user loop: start on schedule, run the class's steps in order, record into the worker's own
//! recorder, think, repeat until told to stop. Every outcome of a request is recorded; nothing here can fail.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minijinja::Value;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::{ClassPlan, Plan, StepPlan};
use super::step::{run_delay, run_step};
use crate::client::{ClientFactory, HttpClient};
use crate::llm::sse::SseParser;
use crate::metrics::Recorder;
use crate::scenario::{Ctx, Text};

/// Stop in two stages: `graceful` ends iterations at the next step boundary, `hard` aborts the users (each
/// worker watches it once, so requests never race it).
#[derive(Clone, Default)]
pub struct Stop {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}

/// What every worker thread shares, read-only except the iteration budget (one atomic per iteration).
pub struct Shared {
    pub plan: Arc<Plan>,
    pub factory: ClientFactory,
    pub stop: Stop,
    pub iterations_left: Option<AtomicU64>,
    pub seed: u64,
    pub start: Instant,
    /// Open model: latencies are measured from the schedule.
    pub open: bool,
    /// When a timed run ends (no arrival is scheduled from then on).
    pub deadline: Option<Instant>,
}

impl Shared {
    pub(super) fn claim_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }

    /// A server's message as it may be kept: the run's secrets masked in every form, control characters
    /// escaped. Called once per error kind and step (the first sample), never per request.
    pub(super) fn redact(&self, msg: String) -> String {
        crate::redact::server_text(&msg)
    }
}

/// One worker thread's state: its recorder and gauges. Single-threaded, so no locks.
pub struct Local {
    pub rec: RefCell<Recorder>,
    pub users: Cell<u64>,
    pub in_flight: Cell<u64>,
    /// Steps running now, by step id (retry waits included): what a hard stop cuts off.
    pub running: Box<[Cell<u64>]>,
    /// Panics of this worker's user tasks: their share of the load is missing, the run must say so.
    pub panics: RefCell<Vec<String>>,
}

impl Local {
    pub fn new(steps: usize, flows: usize) -> Local {
        Local {
            rec: RefCell::new(Recorder::new(steps, flows)),
            users: Cell::new(0),
            in_flight: Cell::new(0),
            running: (0..steps).map(|_| Cell::new(0)).collect(),
            panics: RefCell::new(Vec::new()),
        }
    }

    /// Notes a finished task: a panic is kept (as its message), anything else is nothing to report.
    pub fn reap(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done {
            if e.is_panic() {
                self.panics.borrow_mut().push(super::worker::panic_message(e.into_panic().as_ref()));
            }
        }
    }

    /// On a hard stop: every step still running becomes a failure of kind `interrupted`; returns how many.
    pub fn interrupt(&self) -> u64 {
        let mut rec = self.rec.borrow_mut();
        let mut total = 0;
        for (stats, n) in rec.steps.iter_mut().zip(self.running.iter()) {
            let n = n.replace(0);
            if n > 0 {
                stats.record_interrupted(n, || {
                    "still running when the run was stopped hard (after the graceful stop)".into()
                });
                total += n;
            }
        }
        rec.interrupted += total;
        total
    }
}

/// Runs a step, marked as running for as long as it does (a hard stop drops this future mid-way).
async fn tracked_step(u: &mut User, step: &StepPlan, lag: Option<Duration>) -> (bool, f64) {
    let local = u.local.clone();
    let running = local.running.get(step.id);
    if let Some(c) = running {
        c.set(c.get() + 1);
    }
    let r = run_step(u, step, lag).await;
    if let Some(c) = running {
        c.set(c.get() - 1);
    }
    r
}

pub struct UserSlot {
    pub id: u64,
    pub class: usize,
    /// (start, stop) offsets from the run start; a `None` stop runs to the end.
    pub windows: Vec<(Duration, Option<Duration>)>,
    pub max_iterations: Option<u64>,
}

pub(super) struct Vars {
    user_id: u64,
    iteration: u64,
    captures: HashMap<String, Value>,
    pub(super) rng: SmallRng,
}

impl Vars {
    pub(super) fn ctx(&mut self, plan: &Plan) -> Ctx {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        );
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let builtins = [
            ("user_id", Value::from(self.user_id)),
            ("iteration", Value::from(self.iteration)),
            ("random_id", Value::from(format!("{a:016x}"))),
            ("uuid", Value::from(uuid)),
            ("timestamp_ms", Value::from(now_ms)),
            ("scenario", Value::from(plan.scenario.as_str())),
        ];
        let vars = plan.vars.iter().map(|(k, v)| (k.as_str(), Value::from(v.as_str())));
        let caps = self.captures.iter().map(|(k, v)| (k.as_str(), v.clone()));
        Ctx::new(builtins.into_iter().chain(vars).chain(caps))
    }

    /// Sets a captured variable, or appends to the list it holds.
    pub(super) fn set(&mut self, name: &str, value: Value, append: bool) {
        if !append {
            self.captures.insert(name.to_string(), value);
            return;
        }
        let mut items: Vec<Value> = match self.captures.get(name) {
            Some(list) => list.try_iter().map(|it| it.collect()).unwrap_or_default(),
            None => Vec::new(),
        };
        items.push(value);
        self.captures.insert(name.to_string(), Value::from(items));
    }

    /// Appended lists belong to one iteration (one conversation); scalars such as a login token persist.
    fn start_iteration(&mut self, iteration: u64, appended: &[String], plan: &Plan) {
        self.iteration = iteration;
        for name in appended {
            self.captures.remove(name);
        }
        for f in &plan.feeders {
            let row = f.pick(self.user_id, &mut self.rng);
            match self.captures.get_mut(f.name()) {
                Some(v) => *v = row,
                None => {
                    self.captures.insert(f.name().to_string(), row);
                }
            }
        }
    }
}

/// One virtual user's state, reused for all of its requests.
pub(super) struct User {
    pub shared: Arc<Shared>,
    pub local: Rc<Local>,
    /// Its class, and whether its `on_start` ran (open model pools reuse users).
    pub class: usize,
    pub started: bool,
    pub client: HttpClient,
    pub vars: Vars,
    pub buf: Vec<u8>,
    pub json_buf: Vec<u8>,
    pub sse: SseParser,
    loops: Vec<u32>,
}

impl User {
    /// A `when`/`loop` condition; one that cannot be evaluated (an undefined variable) is false.
    fn holds(&mut self, cond: &Text) -> bool {
        let ctx = self.vars.ctx(&self.shared.plan);
        self.shared.plan.templates.render(cond, &ctx).is_ok_and(|s| s.trim() == "1")
    }
}

fn user_rng(seed: u64, user: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ user.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub(super) fn pick(rng: &mut SmallRng, bounds: (Duration, Duration)) -> Duration {
    let (lo, hi) = bounds;
    if hi <= lo { lo } else { rng.random_range(lo..=hi) }
}

/// Sleeps unless a graceful stop comes first; false means stop.
pub(super) async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    if d.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

impl User {
    pub(super) fn new(shared: &Arc<Shared>, local: &Rc<Local>, class: usize, id: u64) -> User {
        User {
            shared: shared.clone(),
            local: local.clone(),
            class,
            started: false,
            client: shared.factory.build(),
            vars: Vars { user_id: id, iteration: 0, captures: HashMap::new(), rng: user_rng(shared.seed, id) },
            buf: Vec::new(),
            json_buf: Vec::new(),
            sse: SseParser::new(),
            loops: vec![0; shared.plan.classes.get(class).map_or(0, |c| c.steps.len())],
        }
    }

    /// Runs the class's `on_start` steps; false when one failed (the user cannot work).
    pub(super) async fn start(&mut self, class: usize) -> bool {
        let shared = self.shared.clone();
        run_sequence(self, &shared.plan.classes[class].on_start).await
    }

    /// Runs the class's `on_stop` steps (logout, cleanup) once the user has no more work.
    pub(super) async fn finish(&mut self) {
        let shared = self.shared.clone();
        run_sequence(self, &shared.plan.classes[self.class].on_stop).await;
    }

    /// One iteration of `class`; `lag` is how late it started against its schedule (open model).
    pub(super) async fn iterate(&mut self, class: usize, iteration: u64, lag: Duration) -> bool {
        let shared = self.shared.clone();
        let c = &shared.plan.classes[class];
        self.vars.start_iteration(iteration, &c.appended, &shared.plan);
        #[cfg(debug_assertions)]
        test_panic_hook(iteration);
        run_iteration(self, c, class, lag).await
    }
}

/// Debug builds only (what the integration tests run): with `RUN_LOAD_TEST_PANIC_AT=N` in the environment,
/// a user panics at its iteration N, so the tests can show that a panic fails the run. Absent from release builds.
#[cfg(debug_assertions)]
fn test_panic_hook(iteration: u64) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = *AT.get_or_init(|| std::env::var("RUN_LOAD_TEST_PANIC_AT").ok().and_then(|v| v.parse().ok()));
    if at == Some(iteration) {
        panic!("test hook RUN_LOAD_TEST_PANIC_AT: iteration {iteration}");
    }
}

/// Closed model: one user, running in its windows (from its spawn time to the end of the run, or as a
/// ramping profile says), on_start before its first iteration and on_stop after its last.
pub async fn run_user(shared: Arc<Shared>, local: Rc<Local>, slot: UserSlot) {
    let class = &shared.plan.classes[slot.class];
    let mut user: Option<User> = None;
    let mut iteration = 0;
    for &(start, stop) in &slot.windows {
        // A start beyond any representable time (from an absurd spawn rate) never comes.
        let Some(at) = shared.start.checked_add(start) else { break };
        let wait = at.saturating_duration_since(Instant::now());
        if !pause(&shared.stop.graceful, wait).await {
            break;
        }
        let u = match &mut user {
            Some(u) => u,
            None => {
                let mut u = User::new(&shared, &local, slot.class, slot.id);
                u.started = u.start(slot.class).await;
                user.insert(u)
            }
        };
        // A user whose setup (register, login) failed cannot do its work; its failures are already recorded.
        if !u.started {
            break;
        }
        local.users.set(local.users.get() + 1);
        let in_window = |now: Instant| stop.and_then(|s| shared.start.checked_add(s)).is_none_or(|s| now < s);
        let more = |n: u64| slot.max_iterations.is_none_or(|max| n < max);
        while more(iteration)
            && in_window(Instant::now())
            && !shared.stop.graceful.is_cancelled()
            && shared.claim_iteration()
        {
            if !u.iterate(slot.class, iteration, Duration::ZERO).await {
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
    if let Some(mut u) = user.filter(|u| u.started) {
        u.finish().await;
    }
}

/// on_start / on_stop: each step once, in order, stopping at a failure that aborts.
async fn run_sequence(u: &mut User, steps: &[StepPlan]) -> bool {
    for step in steps {
        if let Some(w) = &step.when {
            if !u.holds(w) {
                continue;
            }
        }
        if let Some(bounds) = step.delay {
            if !run_delay(u, step, bounds).await {
                return false;
            }
            continue;
        }
        let (ok, _) = tracked_step(u, step, None).await;
        if !ok && step.abort_on_failure {
            return false;
        }
    }
    true
}

/// Runs one flow (following `when` and `loop`); false when a stop cut it short.
async fn run_iteration(u: &mut User, class: &ClassPlan, class_idx: usize, lag: Duration) -> bool {
    // The flow began when it was scheduled to (open model), not when the generator got round to it.
    let flow_start = Instant::now() - lag;
    let mut lag = Some(lag).filter(|_| u.shared.open);
    let (mut ok, mut steps_run, mut cost) = (true, 0u64, 0.0);
    u.loops.iter_mut().for_each(|l| *l = 0);
    let mut i = 0;
    while let Some(step) = class.steps.get(i) {
        if u.shared.stop.graceful.is_cancelled() {
            return false;
        }
        if let Some(w) = &step.when {
            if !u.holds(w) {
                i += 1;
                continue;
            }
        }
        let mut abort = false;
        if let Some(bounds) = step.delay {
            if !run_delay(u, step, bounds).await {
                return false;
            }
        } else {
            let (step_ok, step_cost) = tracked_step(u, step, lag.take()).await;
            steps_run += 1;
            cost += step_cost;
            if !step_ok {
                ok = false;
                abort = step.abort_on_failure;
            }
        }
        // The step's think time holds after a failure too: a user whose requests fail at once must not spin.
        if let Some(think) = step.think {
            let d = pick(&mut u.vars.rng, think);
            if !pause(&u.shared.stop.graceful, d).await {
                return false;
            }
        }
        if abort {
            break;
        }
        if let Some(lp) = &step.repeat {
            if u.loops[i] < lp.max && u.holds(&lp.condition) {
                u.loops[i] += 1;
                i = lp.to;
                continue;
            }
        }
        i += 1;
    }
    u.local.rec.borrow_mut().flows[class_idx].record(ok, flow_start.elapsed(), steps_run, cost);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;

    #[test]
    fn a_hard_stop_turns_running_steps_into_interrupted_failures() {
        let local = Local::new(2, 1);
        local.running[1].set(3);
        assert_eq!(local.interrupt(), 3);
        let rec = local.rec.borrow();
        assert_eq!((rec.steps[0].requests, rec.steps[1].requests, rec.steps[1].failures), (0, 3, 3));
        assert_eq!((rec.steps[1].errors[0].kind, rec.steps[1].errors[0].count), (ErrorKind::Interrupted, 3));
        assert_eq!(rec.interrupted, 3);
        drop(rec);
        assert_eq!(local.interrupt(), 0, "counted once");
    }
}
