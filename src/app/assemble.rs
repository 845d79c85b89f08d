//! The engine's side of assembling a report: the `RunDescription` of a configured run, and the engine's result
//! seen as `result::assemble`'s plain inputs. The report itself is built in `result::assemble`.

use crate::config::{RunConfig, Target, display_target};
use crate::engine::{Arrival, EngineResult, LevelKind, LevelOutcome, Levels, LoadModel, Plan, StopReason};
use crate::result::assemble::{
    self as result, LevelRun, LevelsRun, RunDescription, RunOutput, StepLabel, Stop, ThresholdSpec,
};
use crate::result::{LevelsReport, LoadInfo, RunReport, ScenarioInfo, TargetInfo};

/// The description of a configured run against `base_url`.
pub fn describe(cfg: &RunConfig, plan: &Plan, base_url: &str) -> RunDescription {
    let (closed, open) = match &cfg.load {
        LoadModel::Closed(c) => (Some(c), None),
        LoadModel::Open(o) => (None, Some(o)),
    };
    let s = &cfg.scenario;
    RunDescription {
        scenario: ScenarioInfo {
            name: s.name.clone(),
            description: s.scenario.description.clone(),
            file: s.path.display().to_string(),
            hash: s.hash.clone(),
            tags: s.scenario.tags.clone(),
            vars: s.scenario.vars.clone(),
        },
        target: TargetInfo {
            url: display_target(base_url),
            embedded_mock: matches!(cfg.target, Target::EmbeddedMock(_)),
            mock_overrides: cfg.mock_settings.clone(),
        },
        load: LoadInfo {
            model: match &cfg.load {
                LoadModel::Closed(_) => "closed",
                LoadModel::Open(_) => "open",
            }
            .into(),
            users: closed.map(|c| c.users),
            spawn_rate: closed.and_then(|c| c.spawn_rate),
            rate: open.map(|o| o.rate),
            arrival: open.map(|o| match o.arrival {
                Arrival::Constant => "constant".to_string(),
                Arrival::Poisson => "poisson".to_string(),
            }),
            max_in_flight: open.map(|o| o.max_in_flight),
            connections: open.and(cfg.connections),
            stages: closed
                .map_or_else(Vec::new, |c| c.stages.iter().map(|s| (s.target, s.duration.as_secs_f64())).collect()),
            duration_s: cfg.load.duration().map(|d| d.as_secs_f64()),
            iterations: cfg.load.iterations(),
            seed: cfg.seed,
            timeout_s: cfg.timeout.as_secs_f64(),
            graceful_stop_s: cfg.graceful_stop.as_secs_f64(),
            tags: cfg.tags.include.clone(),
            exclude_tags: cfg.tags.exclude.clone(),
        },
        steps: plan
            .steps
            .iter()
            .map(|i| StepLabel {
                user: i.user.clone(),
                name: i.name.clone(),
                method: i.method.clone(),
                path: i.path.clone(),
                is_request: i.is_request(),
            })
            .collect(),
        flows: plan.classes.iter().map(|c| c.name.clone()).collect(),
        regression: Some(cfg.regression.clone()),
        thresholds: cfg
            .thresholds
            .iter()
            .filter_map(|t| {
                let (key, expr) = crate::config::split_threshold(&t.text)?;
                Some(ThresholdSpec { key: key.into(), expr: expr.into(), abort_on_fail: t.abort_on_fail })
            })
            .collect(),
    }
}

/// The report of an engine run described by `d`.
pub fn build(d: &RunDescription, r: &EngineResult) -> RunReport {
    result::build(d, &output(r))
}

/// The engine's result as recorder data.
pub fn output(r: &EngineResult) -> RunOutput<'_> {
    RunOutput {
        total: &r.total,
        series: &r.series,
        windows: &r.windows,
        started_at: r.started_at,
        elapsed: r.elapsed,
        stop: match r.stop {
            StopReason::DurationElapsed => Stop::DurationElapsed,
            StopReason::IterationsDone => Stop::IterationsDone,
            StopReason::Interrupted(s) => Stop::Signal(s.stop_reason()),
            StopReason::Aborted => Stop::Aborted,
        },
        cpu: r.cpu,
        workers: r.workers,
    }
}

/// The per-level table of a breaking-point search or sweep.
pub fn levels_report(levels: &Levels, outcomes: &[LevelOutcome]) -> LevelsReport {
    result::levels_report(&LevelsRun {
        kind: match levels.kind {
            LevelKind::Users => "users",
            LevelKind::Rate => "rate",
        },
        hold: levels.hold,
        breaking_point: levels.limits.is_some(),
        min_sustainable: levels.min_sustainable,
        levels: outcomes
            .iter()
            .map(|o| LevelRun { level: o.level, elapsed: o.elapsed, total: &o.total, broken: o.broken.as_deref() })
            .collect(),
    })
}
