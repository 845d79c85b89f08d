//! One virtual user's state, reused for all of its requests: its transport (any [`Transport`]: the user loop
//! knows no protocol), buffers and stream parser, and the variables its templates see (captures, feeder rows,
//! its random stream and the built-ins). Built-ins that cost something (a formatted UUID, a random id, the
//! clock) are made lazily, at most once per step.
//!
//! [`Transport`]: crate::client::Transport

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minijinja::Value;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::plan::Plan;
use super::shared::{Flag, Local, Shared};
use crate::llm::sse::SseParser;
use crate::scenario::{Ctx, Text};

/// The built-ins drawn per step; the same within a step (its condition, request, captures and loop test).
struct Builtins {
    random_id: Value,
    uuid: Value,
    timestamp_ms: Value,
}

impl Builtins {
    fn draw(rng: &mut SmallRng) -> Builtins {
        let a: u64 = rng.random();
        let b: u64 = rng.random();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        );
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Builtins {
            random_id: Value::from(format!("{a:016x}")),
            uuid: Value::from(uuid),
            timestamp_ms: Value::from(now_ms),
        }
    }
}

/// What a user's templates see.
pub(super) struct Vars {
    user_id: u64,
    iteration: u64,
    captures: HashMap<String, Value>,
    pub(super) rng: SmallRng,
    /// This step's built-ins, once drawn.
    builtins: Option<Builtins>,
}

impl Vars {
    fn new(user_id: u64, rng: SmallRng) -> Vars {
        Vars { user_id, iteration: 0, captures: HashMap::new(), rng, builtins: None }
    }

    /// A new step draws its own built-ins (when it first renders a template).
    pub(super) fn begin_step(&mut self) {
        self.builtins = None;
    }

    pub(super) fn ctx(&mut self, plan: &Plan) -> Ctx {
        let b = self.builtins.get_or_insert_with(|| Builtins::draw(&mut self.rng));
        let builtins = [
            ("user_id", Value::from(self.user_id)),
            ("iteration", Value::from(self.iteration)),
            ("random_id", b.random_id.clone()),
            ("uuid", b.uuid.clone()),
            ("timestamp_ms", b.timestamp_ms.clone()),
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
    pub(super) fn start_iteration(&mut self, iteration: u64, appended: &[String], plan: &Plan) {
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

/// One virtual user, reused for all of its requests; `T` is its [`Transport`](crate::client::Transport)
/// (static dispatch: one copy of the user loop per protocol, no box per request).
pub(super) struct Session<T> {
    pub shared: Arc<Shared>,
    pub local: Rc<Local>,
    /// Its class, and whether its `on_start` ran (open model pools reuse users).
    pub class: usize,
    pub started: bool,
    pub client: T,
    pub vars: Vars,
    pub buf: Vec<u8>,
    pub json_buf: Vec<u8>,
    pub sse: SseParser,
    /// How often each step of the class looped back in this iteration.
    pub loops: Vec<u32>,
}

impl<T> Session<T> {
    pub(super) fn new(shared: &Arc<Shared>, local: &Rc<Local>, client: T, class: usize, id: u64) -> Session<T> {
        Session {
            shared: shared.clone(),
            local: local.clone(),
            class,
            started: false,
            client,
            vars: Vars::new(id, user_rng(shared.seed, id)),
            buf: Vec::new(),
            json_buf: Vec::new(),
            sse: SseParser::new(),
            loops: vec![0; shared.plan.classes.get(class).map_or(0, |c| c.steps.len())],
        }
    }

    /// A `when`/`loop` condition; one that cannot be evaluated (an undefined variable) is false.
    pub(super) fn holds(&mut self, cond: &Text) -> bool {
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
pub(super) async fn pause(stop: &Flag, d: Duration) -> bool {
    if d.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_hold_within_a_step_and_change_between_steps() {
        let mut v = Vars::new(3, user_rng(1, 3));
        let first = v.builtins.get_or_insert_with(|| Builtins::draw(&mut v.rng)).uuid.clone();
        let again = v.builtins.get_or_insert_with(|| Builtins::draw(&mut v.rng)).uuid.clone();
        assert_eq!(first, again);
        v.begin_step();
        let next = v.builtins.get_or_insert_with(|| Builtins::draw(&mut v.rng)).uuid.clone();
        assert_ne!(first, next);
        assert_eq!(first.as_str().map(str::len), Some(36));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_lasts_its_time_unless_a_stop_comes_first() {
        let stop = Flag::default();
        let t0 = tokio::time::Instant::now();
        assert!(pause(&stop, Duration::from_secs(5)).await);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        let canceller = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            canceller.cancel();
        });
        let t1 = tokio::time::Instant::now();
        assert!(!pause(&stop, Duration::from_secs(60)).await);
        assert_eq!(t1.elapsed(), Duration::from_secs(2));
        assert!(!pause(&stop, Duration::ZERO).await, "a stopped user does not start a zero wait");
    }
}
