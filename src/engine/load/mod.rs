//! The load models, one file each: `closed` (a population of users, spawned at a rate or following `stages`),
//! `open` (arrivals on a schedule), `levels` (a model run level after level). Each one only paces: it says
//! when the next user or iteration starts, and hands it to the one user loop (`vu.rs`), as vegeta's `Pacer`
//! says when the next hit is due and leaves the attack to the attacker.

pub mod closed;
pub mod levels;
pub mod open;
pub mod pacing;
pub mod pool;
pub mod stages;

use std::time::Duration;

use tokio::time::Instant;

pub use stages::Stage;

/// A load model's pacing, as vegeta's `Pacer`: when the next start is due (an arrival's iteration in the open
/// model, a user's next window in the closed one); `None` once no more will come. What starts is the user
/// loop's business (`vu.rs`), the same for every model.
pub(super) trait Pacer {
    fn next_start(&mut self) -> Option<Instant>;
}

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
