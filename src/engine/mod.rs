//! Runs the load: worker threads with virtual users, the closed-model spawn schedule, stop conditions
//! (duration, iterations, SIGINT/SIGTERM/SIGHUP) and the once-a-second merge of worker snapshots into totals
//! and a time series.
//! Formats nothing and judges nothing: progress goes to an `Observer`, results come back as data.

mod aggregate;
mod json_body;
mod levels;
mod open;
pub mod plan;
pub(crate) mod signals;
mod stages;
mod step;
mod vu;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use aggregate::Progress;
pub use levels::{BreakLimits, LevelKind, LevelOutcome, Levels, run_levels};
pub use plan::{Endpoint, Plan, StepInfo, TagFilter, compile};
pub use signals::Signal;
pub use stages::{Stage, parse_plan, peak as stages_peak, total as stages_total};

use crate::client::ClientFactory;
use crate::metrics::{Recorder, SeriesPoint};
use vu::{Shared, Stop, UserSlot};

/// Later than any run ends (runs last at most `limits::MAX_DURATION`), yet far from overflowing a clock.
const NEVER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Closed model: a fixed population of users, each sending its next request when the previous one finished.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedLoad {
    /// Users at the peak (with `stages`, the highest target).
    pub users: u32,
    /// Users started per second; `None` starts all at once.
    pub spawn_rate: Option<f64>,
    pub duration: Option<Duration>,
    /// Iterations in total, shared by all users.
    pub iterations: Option<u64>,
    /// Ramping profile; empty: all `users` from their spawn time to the end.
    pub stages: Vec<Stage>,
    /// Each user stops after this many iterations (k6 `per-vu-iterations`).
    pub iterations_per_user: Option<u64>,
}

/// How arrivals are spaced in the open model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Constant,
    Poisson,
}

/// Open model: iterations start at `rate` per second whatever the target does; latency counts from the
/// scheduled start.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoad {
    pub rate: f64,
    pub arrival: Arrival,
    /// Iterations running at once at most; further arrivals are dropped (and counted).
    pub max_in_flight: u32,
    pub duration: Option<Duration>,
    pub iterations: Option<u64>,
    /// Ramping rate (k6 `ramping-arrival-rate`): from `rate`, reach each stage's target over its duration.
    pub stages: Vec<RateStage>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStage {
    pub target: f64,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    Closed(ClosedLoad),
    Open(OpenLoad),
}

impl LoadModel {
    pub fn duration(&self) -> Option<Duration> {
        match self {
            LoadModel::Closed(c) => c.duration,
            LoadModel::Open(o) => o.duration,
        }
    }

    pub fn iterations(&self) -> Option<u64> {
        match self {
            LoadModel::Closed(c) => c.iterations,
            LoadModel::Open(o) => o.iterations,
        }
    }
}

pub struct EngineSpec {
    pub plan: Arc<Plan>,
    pub load: LoadModel,
    pub seed: u64,
    pub workers: usize,
    pub graceful_stop: Duration,
    /// Connections to the target; the plan was compiled for its endpoint.
    pub client: ClientFactory,
    /// Values that must never appear in recorded messages (added to the process-wide `redact`).
    pub secrets: Vec<String>,
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

/// How often the run looks at the signal counters: well under the second a stop may take.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// How long workers may take to hand over their last snapshot after a hard stop.
const JOIN_BOUND: Duration = Duration::from_secs(3);
/// After a stop signal, users get at most this long (or `graceful_stop`, if shorter) to finish their step.
const SIGNAL_GRACE: Duration = Duration::from_secs(2);

pub fn run(spec: EngineSpec, observer: &mut dyn Observer) -> Result<EngineResult, String> {
    crate::client::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(drive(spec, observer))
}

async fn drive(spec: EngineSpec, observer: &mut dyn Observer) -> Result<EngineResult, String> {
    let EngineSpec { plan, load, seed, workers, graceful_stop, client: factory, secrets } = spec;
    crate::redact::install(secrets);
    let jobs: Vec<worker::Job> = match &load {
        LoadModel::Closed(c) => {
            let workers = workers.clamp(1, c.users.max(1) as usize);
            let weights: Vec<u32> = plan.classes.iter().map(|c| c.weight).collect();
            let mut slots: Vec<Vec<UserSlot>> = (0..workers).map(|_| Vec::new()).collect();
            for (i, class) in assign_classes(&weights, c.users).into_iter().enumerate() {
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
                slots[i % workers].push(UserSlot {
                    id: i as u64,
                    class,
                    windows,
                    max_iterations: c.iterations_per_user,
                });
            }
            slots.into_iter().map(worker::Job::Closed).collect()
        }
        LoadModel::Open(o) => {
            let workers = workers.clamp(1, o.max_in_flight.max(1) as usize);
            (0..workers).map(|worker| worker::Job::Open(open::OpenShare { worker, workers, load: o.clone() })).collect()
        }
    };
    let workers = jobs.len();
    let n_steps = plan.steps.len();
    let n_flows = plan.classes.len();
    let start = Instant::now();
    let started_at = SystemTime::now();
    let stop = Stop::default();
    let shared = Arc::new(Shared {
        plan,
        factory,
        stop: stop.clone(),
        iterations_left: load.iterations().map(AtomicU64::new),
        seed,
        start,
        open: matches!(load, LoadModel::Open(_)),
        deadline: load.duration().and_then(|d| start.checked_add(d)),
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
    let mut handles = Vec::new();
    for (w, job) in jobs.into_iter().enumerate() {
        handles.push(
            worker::spawn(w, shared.clone(), job, tx.clone())
                .map_err(|e| format!("cannot start a worker thread: {e}"))?,
        );
    }
    drop(tx);
    drop(shared);

    let mut agg = aggregate::Aggregator::new(workers, n_steps, n_flows, start, load.duration());
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
    let mut thread_panics = Vec::new();
    for h in handles {
        // Once every worker returned, joining is immediate; otherwise one still running was given up on (see
        // `give_up`) and joining it could wait forever.
        if all_returned || h.is_finished() {
            if let Err(p) = h.join() {
                thread_panics.push(worker::panic_message(p.as_ref()));
            }
        }
    }
    let elapsed = start.elapsed();
    let aggregate::Finished { total, series, cpu, tail, mut panics } = agg.finish(elapsed);
    panics.append(&mut thread_panics);
    for (p, interval) in &tail {
        // The run is over: what the observer wants no longer matters, what it sees still does.
        let _ = observer.tick(p, interval, &total);
    }
    Ok(EngineResult {
        total,
        series,
        started_at,
        elapsed,
        stop: reason.unwrap_or(StopReason::IterationsDone),
        cpu,
        workers,
        panics,
    })
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
}
