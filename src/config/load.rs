//! The load model of a run: the closed or open model, its stages, and the levels of a sweep or a
//! breaking-point search, from the flags over the scenario's `[load]` table.

use std::time::Duration;

use super::flags::{parse_sweep, scenario_count, user_stages};
use super::{ConfigError, DEFAULT_DURATION, DEFAULT_HOLD, DEFAULT_MAX_IN_FLIGHT, flag};
use crate::engine::{
    Arrival, BreakLimits, ClosedLoad, LevelKind, Levels, LoadModel, OpenLoad, RateStage, parse_plan, stages_peak,
    stages_total,
};
use crate::limits;
use crate::scenario::{ArrivalKind, LoadKeys, LoadedScenario, ModelConflict};

/// The flags that shape the load, their numbers already read against `limits`.
#[derive(Debug, Default)]
pub(super) struct LoadFlags {
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub iterations: Option<u64>,
    pub iterations_per_user: Option<u64>,
    pub rate: Option<f64>,
    pub max_in_flight: Option<u32>,
    pub connections: Option<u32>,
    pub arrival: Option<ArrivalKind>,
    pub duration: Option<Duration>,
    pub stages: Option<String>,
    pub hold: Option<Duration>,
}

/// The closed or the open model: the command line picks the model when it names one; otherwise the scenario
/// does.
pub(super) fn model(f: &LoadFlags, loaded: &LoadedScenario) -> Result<LoadModel, ConfigError> {
    let s = &loaded.scenario;
    let iterations = f.iterations.or(scenario_count(loaded, &s.load.iterations, limits::ITERATIONS)?);
    let duration = f.duration.or(s.load.duration.as_ref().map(|d| d.get_ref().0)).or(if iterations.is_none() {
        Some(DEFAULT_DURATION)
    } else {
        None
    });
    let toml_rate = s.load.rate.as_ref().map(|r| *r.get_ref());
    let open_rate = match (f.users, f.rate) {
        (Some(_), _) => None,
        (None, Some(r)) => Some(r),
        (None, None) => toml_rate,
    };
    check_model(f, open_rate.is_some())?;
    match open_rate {
        Some(rate) => open(f, loaded, rate, duration, iterations).map(LoadModel::Open),
        None => closed(f, loaded, duration, iterations).map(LoadModel::Closed),
    }
}

/// The flags within the chosen model, by the rules the scenario's `[load]` keys follow. `--max-in-flight`
/// with the closed model has never been refused (it is unused there), so it is not checked here either.
fn check_model(f: &LoadFlags, open: bool) -> Result<(), ConfigError> {
    let keys = LoadKeys {
        // `--users` with `--rate` conflict; `--users` with the scenario's `rate` picks the closed model.
        users: f.users.is_some(),
        rate: if f.users.is_some() { f.rate.is_some() } else { open },
        spawn_rate: f.spawn_rate.is_some(),
        iterations_per_user: f.iterations_per_user.is_some(),
        max_in_flight: false,
    };
    match keys.conflict() {
        None | Some(ModelConflict::MaxInFlightWithoutRate) => Ok(()),
        Some(ModelConflict::UsersAndRate) => {
            Err(flag("--rate", "give --users (closed model) or --rate (open model), not both"))
        }
        Some(ModelConflict::SpawnRateWithRate) => {
            Err(flag("--spawn-rate", "applies to the closed model (--users); the open model starts at --rate"))
        }
        Some(ModelConflict::IterationsPerUserWithRate) => {
            Err(flag("--iterations-per-user", "applies to the closed model (--users), not to --rate"))
        }
    }
}

fn open(
    f: &LoadFlags,
    loaded: &LoadedScenario,
    rate: f64,
    duration: Option<Duration>,
    iterations: Option<u64>,
) -> Result<OpenLoad, ConfigError> {
    let s = &loaded.scenario;
    // The file's stages ramp the file's rate; a rate from the command line is held flat.
    let stages: Vec<RateStage> = if f.rate.is_none() {
        s.load.stages.iter().map(|st| RateStage { target: *st.target.get_ref(), duration: st.duration.0 }).collect()
    } else {
        Vec::new()
    };
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    Ok(OpenLoad {
        rate,
        arrival: match f.arrival.or(s.load.arrival) {
            Some(ArrivalKind::Poisson) => Arrival::Poisson,
            Some(ArrivalKind::Constant) | None => Arrival::Constant,
        },
        max_in_flight: match f.max_in_flight {
            Some(m) => m,
            None => scenario_count(loaded, &s.load.max_in_flight, limits::MAX_IN_FLIGHT)?
                .map_or(DEFAULT_MAX_IN_FLIGHT, |m| m as u32),
        },
        duration: if stages.is_empty() { duration } else { f.duration.or(Some(total)) },
        iterations,
        stages,
    })
}

fn closed(
    f: &LoadFlags,
    loaded: &LoadedScenario,
    duration: Option<Duration>,
    iterations: Option<u64>,
) -> Result<ClosedLoad, ConfigError> {
    let s = &loaded.scenario;
    // Stages from the command line, else from the file unless --users overrides it.
    let stages = match &f.stages {
        Some(plan) => parse_plan(plan).map_err(|e| flag("--stages", e.to_string()))?,
        None if f.users.is_none() => user_stages(loaded)?,
        None => Vec::new(),
    };
    let peak = (!stages.is_empty()).then(|| stages_peak(&stages));
    if peak == Some(0) {
        return Err(flag("--stages", "the plan never starts a user: give a stage a target of at least 1"));
    }
    let toml_users = scenario_count(loaded, &s.load.users, limits::USERS)?.map(|u| u as u32);
    Ok(ClosedLoad {
        users: peak.or(f.users).or(toml_users).unwrap_or(1),
        spawn_rate: f.spawn_rate.or(s.load.spawn_rate.as_ref().map(|r| *r.get_ref())),
        duration: if stages.is_empty() { duration } else { f.duration.or(Some(stages_total(&stages))) },
        iterations,
        stages,
        iterations_per_user: match f.iterations_per_user {
            Some(i) => Some(i),
            None => scenario_count(loaded, &s.load.iterations_per_user, limits::ITERATIONS)?,
        },
    })
}

/// The open model's connection pool: `--connections` over `[load] connections`; `None`: one per iteration in
/// flight.
pub(super) fn connections(flag: Option<u32>, loaded: &LoadedScenario) -> Result<Option<u32>, ConfigError> {
    match flag {
        Some(c) => Ok(Some(c)),
        None => Ok(scenario_count(loaded, &loaded.scenario.load.connections, limits::CONNECTIONS)?.map(|c| c as u32)),
    }
}

/// `--sweep`, else the scenario's `[load.breaking_point]`: the levels run one after the other.
pub(super) fn levels(
    f: &LoadFlags,
    sweep: Option<&str>,
    load: &LoadModel,
    loaded: &LoadedScenario,
) -> Result<Option<Levels>, ConfigError> {
    let (arrival, max_in_flight) = match load {
        LoadModel::Open(o) => (o.arrival, o.max_in_flight),
        LoadModel::Closed(_) => (Arrival::Constant, DEFAULT_MAX_IN_FLIGHT),
    };
    if let Some(spec) = sweep {
        return parse_sweep(spec, f.hold.unwrap_or(DEFAULT_HOLD), arrival, max_in_flight).map(Some);
    }
    let Some(bp) = &loaded.scenario.load.breaking_point else { return Ok(None) };
    let b = bp.get_ref();
    let (kind, values) = match (&b.users, &b.rate) {
        (Some(u), _) => (LevelKind::Users, u.iter().map(|&x| f64::from(x)).collect()),
        (None, Some(r)) => (LevelKind::Rate, r.clone()),
        (None, None) => (LevelKind::Users, Vec::new()),
    };
    Ok(Some(Levels {
        kind,
        values,
        hold: f.hold.unwrap_or(b.hold.0),
        limits: Some(BreakLimits { max_error_rate: b.max_error_rate.unwrap_or(0.01), max_p95: b.max_p95.map(|d| d.0) }),
        arrival,
        max_in_flight,
        min_sustainable: b.min_sustainable,
    }))
}
