//! `try`: every user class once, one after the other, through the same user loop and step code as a load
//! (so what it shows is what a run sends): the class's `on_start`, one iteration (its `when` and `loop` followed),
//! its `on_stop`. Nothing waits that need not: think times and `delay` steps are skipped and a retry waits at
//! most `MAX_RETRY_WAIT`. Every exchange is recorded in the `ExchangeLog`, in order.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::capture::ExchangeLog;
use super::error::EngineError;
use super::plan::{Action, Plan, StepPlan};
use super::session::Session;
use super::shared::{Local, Shared, Stop};
use crate::client::TransportFactory;
use crate::metrics::Recorder;

/// A retry in a trial shows that the step retries; waiting out a 30 s `Retry-After` would show nothing more.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(1);

pub struct TrialSpec<F> {
    /// Compiled for `client`'s endpoint; its waits are removed here.
    pub plan: Plan,
    pub client: F,
    pub seed: u64,
    /// Values that must never appear in recorded messages (added to the process-wide `redact`).
    pub secrets: Vec<String>,
    /// Receives every exchange (a log without a per-step bound).
    pub log: Arc<ExchangeLog>,
}

/// How one user class went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassTrial {
    pub name: String,
    /// Its `on_start` steps passed (or it has none), so its iteration ran.
    pub started: bool,
}

pub struct TrialResult {
    pub classes: Vec<ClassTrial>,
    /// What a run's recorder would hold after these requests.
    pub total: Recorder,
}

/// Runs each user class once; see the module comment.
pub fn trial<F: TransportFactory>(spec: TrialSpec<F>) -> Result<TrialResult, EngineError> {
    let TrialSpec { mut plan, client, seed, secrets, log } = spec;
    crate::redact::install(secrets);
    without_waits(&mut plan);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::Start(format!("cannot start the runtime: {e}")))?;
    let (steps, flows) = (plan.steps.len(), plan.classes.len());
    let shared = Arc::new(Shared {
        plan: Arc::new(plan),
        stop: Stop::default(),
        iterations_left: None,
        seed,
        start: tokio::time::Instant::now(),
        open: false,
        deadline: None,
        capture: Some(log),
    });
    let local = Rc::new(Local::new(steps, flows));
    let classes = rt.block_on(async {
        let mut classes = Vec::new();
        for (i, class) in shared.plan.classes.iter().enumerate() {
            let mut user = Session::new(&shared, &local, client.build(), i, i as u64);
            let started = user.ensure_started().await;
            if started {
                user.iterate(&shared, i, 0, Duration::ZERO).await;
            }
            user.finish().await;
            classes.push(ClassTrial { name: class.name.clone(), started });
        }
        classes
    });
    let total = local.rec.borrow().clone();
    Ok(TrialResult { classes, total })
}

/// Think times and `delay` steps become zero; retry waits are capped at `MAX_RETRY_WAIT`.
fn without_waits(plan: &mut Plan) {
    for class in &mut plan.classes {
        class.think = None;
        let steps = class.steps.iter_mut().chain(class.on_start.iter_mut()).chain(class.on_stop.iter_mut());
        steps.for_each(without_step_waits);
    }
}

fn without_step_waits(step: &mut StepPlan) {
    step.flow.think = None;
    if let Action::Delay(d) = &mut step.action {
        d.bounds = (Duration::ZERO, Duration::ZERO);
    }
    if let Some(r) = &mut step.flow.retry {
        r.backoff = r.backoff.min(MAX_RETRY_WAIT);
        r.max_wait = r.max_wait.min(MAX_RETRY_WAIT);
    }
}
