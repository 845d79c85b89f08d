//! Runs the load: worker threads (`worker.rs`) whose users follow the one user loop (`vu.rs`, over a
//! `session.rs` each) as the load model's pacer says (`load/`), stop conditions (duration, iterations,
//! SIGINT/SIGTERM/SIGHUP) and the once-a-second merge of worker snapshots into totals and a time series.
//! Formats nothing and judges nothing: progress goes to an `Observer`, results come back as data.

mod aggregate;
mod capture;
mod error;
mod json_body;
pub mod load;
pub mod plan;
pub mod segment;
mod session;
mod shared;
pub(crate) mod signals;
mod step;
mod trial;
mod vu;
mod worker;

#[cfg(test)]
mod transport_tests;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use aggregate::Progress;
pub use capture::{Captured, CheckLine, ExchangeLog, REQUEST_BODY_BYTES};
pub use error::EngineError;
pub use load::levels::{BreakLimits, LevelKind, LevelOutcome, Levels, run_levels};
pub use load::pool::WithConnections;
pub use load::stages::{Stage, parse_plan, peak as stages_peak, total as stages_total};
pub use load::{Arrival, ClosedLoad, LoadModel, OpenLoad, RateStage};
pub use plan::{Endpoint, Plan, StepInfo, TagFilter, compile};
pub use shared::panic_message;
pub use signals::Signal;
pub use trial::{ClassTrial, MAX_RETRY_WAIT, TrialResult, TrialSpec, trial};

use crate::client::TransportFactory;
use crate::metrics::{Recorder, SeriesPoint, Window};
use shared::{Shared, Stop};

/// Later than any run ends (runs last at most `limits::MAX_DURATION`), yet far from overflowing a clock.
pub(crate) const NEVER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// One run of the engine. `F` makes the users' transports (`client::ClientFactory` for HTTP/1.1): the engine
/// reaches the target only through it, so it names no protocol.
pub struct EngineSpec<F> {
    pub plan: Arc<Plan>,
    pub load: LoadModel,
    pub seed: u64,
    pub workers: usize,
    pub graceful_stop: Duration,
    /// Connections to the target; the plan was compiled for its endpoint.
    pub client: F,
    /// Values that must never appear in recorded messages (added to the process-wide `redact`).
    pub secrets: Vec<String>,
    /// Records the first exchanges of each step in full (`run --http-debug`); shared across a sweep's levels.
    pub capture: Option<Arc<ExchangeLog>>,
    /// The part of the run's users, iterations and arrivals this process owns (`Stripe::whole()` unsharded).
    pub stripe: segment::Stripe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    DurationElapsed,
    IterationsDone,
    /// SIGINT, SIGTERM or SIGHUP (the first one received).
    Interrupted(Signal),
    /// The observer asked to stop (a threshold with `abort_on_fail` failed).
    Aborted,
}

pub struct EngineResult {
    pub total: Recorder,
    pub series: Vec<SeriesPoint>,
    /// The worst hiccup-probe wake-up of each point of `series`, ms (the total is `total.hiccup`).
    pub hiccup_max: Vec<f64>,
    /// What each stretch of the run measured, per step and user class (at most `metrics::MAX_WINDOWS`).
    pub windows: Vec<Window>,
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub stop: StopReason,
    /// CPU time of the generator's worker threads.
    pub cpu: Duration,
    pub workers: usize,
    /// Panics of worker threads or of their users: the run lost that share of its load.
    pub panics: Vec<String>,
}

/// What the observer wants after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop the run gracefully, as at the end of its duration, and report it as aborted.
    Abort,
}

/// Sees the run once a second: the progress line's numbers, what was recorded in that second, and everything
/// recorded so far.
pub trait Observer {
    fn tick(&mut self, progress: &Progress, interval: &Recorder, totals: &Recorder) -> Control;

    /// A stop signal arrived: `count` of them so far (the first stops gracefully, the second at once).
    fn signalled(&mut self, _signal: Signal, _count: u32) {}
}

/// How often the run looks at the signal counters: well under the second a stop may take.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// How long workers may take to hand over their last snapshot after a hard stop.
const JOIN_BOUND: Duration = Duration::from_secs(3);
/// After a stop signal, users get at most this long (or `graceful_stop`, if shorter) to finish their step.
const SIGNAL_GRACE: Duration = Duration::from_secs(2);

pub fn run<F>(spec: EngineSpec<F>, observer: &mut dyn Observer) -> Result<EngineResult, EngineError>
where
    F: TransportFactory + Clone + Send + 'static,
{
    crate::client::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::Start(format!("cannot start the runtime: {e}")))?;
    rt.block_on(drive(spec, observer))
}

async fn drive<F>(spec: EngineSpec<F>, observer: &mut dyn Observer) -> Result<EngineResult, EngineError>
where
    F: TransportFactory + Clone + Send + 'static,
{
    let EngineSpec { plan, load, seed, workers, graceful_stop, client: factory, secrets, capture, stripe } = spec;
    crate::redact::install(secrets);
    let jobs = jobs(&load, &plan, workers, &stripe);
    let workers = jobs.len();
    let n_steps = plan.steps.len();
    let n_flows = plan.classes.len();
    let start = Instant::now();
    let started_at = SystemTime::now();
    let stop = Stop::default();
    let shared = Arc::new(Shared {
        plan,
        stop: stop.clone(),
        // A shard runs its share of the iterations: the shares of all shards add up to the total.
        iterations_left: load.iterations().map(|n| AtomicU64::new(stripe.scale(n))),
        seed,
        start,
        open: matches!(load, LoadModel::Open(_)),
        deadline: load.duration().and_then(|d| start.checked_add(d)),
        capture,
    });
    // A signal during setup (or between a sweep's levels): the users start already stopped.
    let (pending, count) = signals::received();
    let mut reason = pending.map(StopReason::Interrupted);
    if count > 0 {
        stop.graceful.cancel();
    }
    if count > 1 {
        stop.hard.cancel();
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handles = spawn_workers(jobs, shared, &factory, tx)?;

    let mut agg = aggregate::Aggregator::new(workers, (n_steps, n_flows), (start, started_at), load.duration());
    let far = start + NEVER;
    let deadline = load.duration().and_then(|d| start.checked_add(d)).map_or(far, |d| d.min(far));
    let mut hard_at = if count > 0 { start + graceful_stop.min(SIGNAL_GRACE) } else { far };
    // After a hard stop, workers get this long to hand over their last snapshot; one stuck where no abort
    // reaches it (a blocking call) is left behind rather than keeping the process alive.
    let mut give_up = if count > 1 { start + JOIN_BOUND } else { far };
    let mut all_returned = false;
    // Signals are counted by their handlers; polled here so one received before this run began still stops it.
    let mut signals_seen = count;
    if let Some(s) = pending {
        observer.signalled(s, count);
    }
    let mut poll = tokio::time::interval(SIGNAL_POLL);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(snap) => {
                    for (p, interval) in agg.absorb(snap) {
                        let abort = observer.tick(&p, &interval, agg.total()) == Control::Abort;
                        if abort && !matches!(reason, Some(StopReason::Interrupted(_) | StopReason::Aborted)) {
                            reason = Some(StopReason::Aborted);
                            stop.graceful.cancel();
                            hard_at = hard_at.min(Instant::now() + graceful_stop);
                        }
                    }
                }
                None => {
                    all_returned = true;
                    break;
                }
            },
            _ = tokio::time::sleep_until(deadline), if reason.is_none() => {
                reason = Some(StopReason::DurationElapsed);
                stop.graceful.cancel();
                hard_at = Instant::now() + graceful_stop;
            },
            _ = tokio::time::sleep_until(hard_at) => {
                stop.hard.cancel();
                hard_at = far;
                give_up = give_up.min(Instant::now() + JOIN_BOUND);
            },
            _ = tokio::time::sleep_until(give_up) => break,
            _ = poll.tick() => {
                let (first, count) = signals::received();
                if count > signals_seen {
                    signals_seen = count;
                    let first = first.unwrap_or(Signal::Int);
                    observer.signalled(first, count);
                    if !matches!(reason, Some(StopReason::Interrupted(_))) {
                        reason = Some(StopReason::Interrupted(first));
                        stop.graceful.cancel();
                        hard_at = hard_at.min(Instant::now() + graceful_stop.min(SIGNAL_GRACE));
                    }
                    if count >= 2 {
                        stop.hard.cancel();
                        hard_at = far;
                        give_up = give_up.min(Instant::now() + JOIN_BOUND);
                    }
                }
            },
        }
    }
    let mut thread_panics = join_workers(handles, all_returned);
    let elapsed = start.elapsed();
    let aggregate::Finished { total, series, hiccup_max, windows, cpu, tail, mut panics } = agg.finish(elapsed);
    panics.append(&mut thread_panics);
    for (p, interval) in &tail {
        // The run is over: what the observer wants no longer matters, what it sees still does.
        let _ = observer.tick(p, interval, &total);
    }
    Ok(EngineResult {
        total,
        series,
        hiccup_max,
        windows,
        started_at,
        elapsed,
        stop: reason.unwrap_or(StopReason::IterationsDone),
        cpu,
        workers,
        panics,
    })
}

/// What each worker runs: its closed-model users or its share of the open-model arrivals.
fn jobs(load: &LoadModel, plan: &Plan, workers: usize, stripe: &segment::Stripe) -> Vec<worker::Job> {
    match load {
        LoadModel::Closed(c) => {
            let weights: Vec<u32> = plan.classes.iter().map(|c| c.weight).collect();
            load::closed::slots(c, &weights, workers, stripe).into_iter().map(worker::Job::Closed).collect()
        }
        LoadModel::Open(o) => load::open::shares(o, workers, stripe).into_iter().map(worker::Job::Open).collect(),
    }
}

/// Starts one thread per job; the run keeps no handle on `shared` or the sender, so the channel closes when
/// the last worker is done.
fn spawn_workers<F: TransportFactory + Clone + Send + 'static>(
    jobs: Vec<worker::Job>,
    shared: Arc<Shared>,
    factory: &F,
    tx: tokio::sync::mpsc::UnboundedSender<worker::Snapshot>,
) -> Result<Vec<std::thread::JoinHandle<()>>, EngineError> {
    let mut handles = Vec::new();
    for (w, job) in jobs.into_iter().enumerate() {
        handles.push(
            worker::spawn(w, shared.clone(), factory.clone(), job, tx.clone())
                .map_err(|e| EngineError::Start(format!("cannot start a worker thread: {e}")))?,
        );
    }
    Ok(handles)
}

/// The panics of worker threads that ended.
fn join_workers(handles: Vec<std::thread::JoinHandle<()>>, all_returned: bool) -> Vec<String> {
    let mut panics = Vec::new();
    for h in handles {
        // Once every worker returned, joining is immediate; otherwise one still running was given up on (see
        // `give_up`) and joining it could wait forever.
        if all_returned || h.is_finished() {
            if let Err(p) = h.join() {
                panics.push(shared::panic_message(p.as_ref()));
            }
        }
    }
    panics
}
