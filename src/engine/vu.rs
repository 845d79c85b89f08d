//! The one user loop every load model feeds: a user's setup (`on_start`), its iterations (the class's steps
//! in order, following `when` and `loop`, thinking between steps) and its teardown (`on_stop`). When an
//! iteration starts is the load model's business (`load/`); what one step does is `step.rs`'s.

use std::time::Duration;

use tokio::time::Instant;

use super::plan::{Action, ClassPlan, StepPlan};
use super::session::{Session, pause, pick};
use super::shared::Shared;
use super::step::{run_delay, run_step};
use crate::client::Transport;

impl<T: Transport> Session<T> {
    /// Runs the class's `on_start` steps; false when one failed (the user cannot work).
    async fn start(&mut self, class: usize) -> bool {
        let shared = self.shared.clone();
        run_sequence(self, &shared.plan.classes[class].on_start).await
    }

    /// Runs the class's `on_start` steps unless they ran; false when the user could not set up.
    pub(super) async fn ensure_started(&mut self) -> bool {
        if !self.started {
            self.started = self.start(self.class).await;
        }
        self.started
    }

    /// Runs the class's `on_stop` steps (logout, cleanup) once the user has no more work; nothing for a user
    /// that never set up.
    pub(super) async fn finish(&mut self) {
        if !self.started {
            return;
        }
        let shared = self.shared.clone();
        run_sequence(self, &shared.plan.classes[self.class].on_stop).await;
    }

    /// One iteration of `class`; `lag` is how late it started against its schedule (open model). `shared` is
    /// the caller's (the session's own, cloned per iteration, would bounce one atomic between all workers).
    pub(super) async fn iterate(&mut self, shared: &Shared, class: usize, iteration: u64, lag: Duration) -> bool {
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

/// on_start / on_stop: each step once, in order, stopping at a failure that aborts.
async fn run_sequence<T: Transport>(u: &mut Session<T>, steps: &[StepPlan]) -> bool {
    for step in steps {
        u.vars.begin_step();
        if let Some(w) = &step.flow.when {
            if !u.holds(w) {
                continue;
            }
        }
        let http = match &step.action {
            Action::Http(http) => http,
            Action::Delay(d) => {
                if !run_delay(u, step, d.bounds).await {
                    return false;
                }
                continue;
            }
        };
        let (ok, _) = run_step(u, step, http, None).await;
        if !ok && step.flow.abort_on_failure {
            return false;
        }
    }
    true
}

/// Runs one flow (following `when` and `loop`); false when a stop cut it short.
async fn run_iteration<T: Transport>(u: &mut Session<T>, class: &ClassPlan, class_idx: usize, lag: Duration) -> bool {
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
        u.vars.begin_step();
        if let Some(w) = &step.flow.when {
            if !u.holds(w) {
                i += 1;
                continue;
            }
        }
        let mut abort = false;
        match &step.action {
            Action::Delay(d) => {
                if !run_delay(u, step, d.bounds).await {
                    return false;
                }
            }
            Action::Http(http) => {
                let (step_ok, step_cost) = run_step(u, step, http, lag.take()).await;
                steps_run += 1;
                cost += step_cost;
                if !step_ok {
                    ok = false;
                    abort = step.flow.abort_on_failure;
                }
            }
        }
        // The step's think time holds after a failure too: a user whose requests fail at once must not spin.
        if let Some(think) = step.flow.think {
            let d = pick(&mut u.vars.rng, think);
            if !pause(&u.shared.stop.graceful, d).await {
                return false;
            }
        }
        if abort {
            break;
        }
        if let Some(lp) = &step.flow.repeat {
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
