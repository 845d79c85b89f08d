//! Step search: the same engine run level after level (users or arrival rate), each held for a while,
//! stopping at the first level that breaks its limits: the breaking point teams otherwise guess. A sweep is
//! the same without limits.

use std::time::Duration;

use super::super::{EngineError, EngineResult, EngineSpec, Observer, StopReason, run};
use super::{Arrival, ClosedLoad, LoadModel, OpenLoad};
use crate::client::TransportFactory;
use crate::metrics::{Recorder, concat_windows};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelKind {
    Users,
    Rate,
}

/// When a level counts as broken.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakLimits {
    pub max_error_rate: f64,
    pub max_p95: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Levels {
    pub kind: LevelKind,
    pub values: Vec<f64>,
    pub hold: Duration,
    /// `None`: a sweep, every level runs.
    pub limits: Option<BreakLimits>,
    pub arrival: Arrival,
    pub max_in_flight: u32,
    pub min_sustainable: Option<f64>,
}

pub struct LevelOutcome {
    pub level: f64,
    pub elapsed: Duration,
    pub total: Recorder,
    /// Why the level broke its limits; `None` when it held.
    pub broken: Option<String>,
}

impl Levels {
    fn load(&self, level: f64) -> LoadModel {
        match self.kind {
            LevelKind::Users => LoadModel::Closed(ClosedLoad {
                // Levels are whole numbers of users within `limits::USERS` (checked in config): exact.
                users: level as u32,
                spawn_rate: None,
                duration: Some(self.hold),
                iterations: None,
                stages: Vec::new(),
                iterations_per_user: None,
            }),
            LevelKind::Rate => LoadModel::Open(OpenLoad {
                rate: level,
                arrival: self.arrival,
                max_in_flight: self.max_in_flight,
                duration: Some(self.hold),
                iterations: None,
                stages: Vec::new(),
            }),
        }
    }

    fn judge(&self, r: &EngineResult) -> Option<String> {
        let limits = self.limits.as_ref()?;
        let t = r.total.total();
        if t.requests == 0 {
            return Some("no request completed".into());
        }
        let rate = t.failures as f64 / t.requests as f64;
        if rate > limits.max_error_rate {
            return Some(format!("failure rate {:.2}% > {:.2}%", rate * 100.0, limits.max_error_rate * 100.0));
        }
        if self.kind == LevelKind::Rate && r.total.dropped > 0 {
            return Some(format!("{} arrivals dropped at max_in_flight", r.total.dropped));
        }
        let p95 = Duration::from_micros(t.latency.value_at_quantile(0.95));
        match limits.max_p95 {
            Some(max) if !t.latency.is_empty() && p95 > max => Some(format!("p95 {p95:?} > {max:?}")),
            _ => None,
        }
    }
}

/// Runs the levels in order with `spec(load)` building each level's engine spec; returns the merged result
/// (one continuous time series) and each level's own numbers. In a breaking-point search, `slo` may break a
/// level too (the scenario's thresholds, judged by the caller: the engine judges no SLO).
pub fn run_levels<F: TransportFactory + Clone + Send + 'static>(
    levels: &Levels,
    mut spec: impl FnMut(LoadModel) -> EngineSpec<F>,
    observer: &mut dyn Observer,
    slo: &dyn Fn(&EngineResult) -> Option<String>,
) -> Result<(EngineResult, Vec<LevelOutcome>), EngineError> {
    let mut merged: Option<EngineResult> = None;
    let mut outcomes = Vec::new();
    for &level in &levels.values {
        let r = run(spec(levels.load(level)), observer)?;
        let broken = levels.judge(&r).or_else(|| levels.limits.as_ref().and_then(|_| slo(&r)));
        let stop = broken.is_some() || matches!(r.stop, StopReason::Interrupted(_) | StopReason::Aborted);
        outcomes.push(LevelOutcome { level, elapsed: r.elapsed, total: r.total.clone(), broken });
        merged = Some(match merged {
            None => r,
            Some(mut m) => {
                m.append(r);
                m
            }
        });
        if stop {
            break;
        }
    }
    merged.map(|m| (m, outcomes)).ok_or_else(|| EngineError::Start("no level to run".to_string()))
}

impl EngineResult {
    /// Continues this result with the next run: totals add up, the series and the windows go on in time.
    pub fn append(&mut self, mut next: EngineResult) {
        self.panics.append(&mut next.panics);
        let offset = self.elapsed.as_secs_f64();
        self.total.add(&next.total);
        self.series.extend(next.series.into_iter().map(|mut p| {
            p.t_s += offset;
            p
        }));
        self.hiccup_max.append(&mut next.hiccup_max);
        self.windows = concat_windows(std::mem::take(&mut self.windows), next.windows, offset);
        self.elapsed += next.elapsed;
        self.cpu += next.cpu;
        self.workers = self.workers.max(next.workers);
        self.stop = next.stop;
    }
}
