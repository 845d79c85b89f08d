//! Turns an engine result into the `RunReport`: summaries per step, per flow and in total, errors, series.
//! What the report says about the run itself comes from a `RunDescription`, not the configuration, so a report
//! can also be assembled from a run journal after the process died.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::baseline::RuleSet;
use crate::config::{RunConfig, Target, display_target};
use crate::engine::{Arrival, EngineResult, LevelKind, LevelOutcome, Levels, LoadModel, Plan, StopReason};
use crate::metrics::{ErrorSummary, FlowSummary, encode_nonempty, latency_summary, request_summary};
use crate::report::{
    GeneratorInfo, Histograms, LevelReport, LevelsReport, LoadInfo, MachineInfo, OpenSummary, RunReport, RunStatus,
    SCHEMA_VERSION, ScenarioInfo, StepReport, TargetInfo, ToolInfo,
};

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Everything a report needs besides the measurements: the scenario, target and load as reported, and the
/// names of the recorder's steps and flows in recorder order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDescription {
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub load: LoadInfo,
    /// Every step of the plan, delays included, so indices match the recorder's.
    pub steps: Vec<StepLabel>,
    /// The user classes, in recorder order.
    pub flows: Vec<String>,
    #[serde(default)]
    pub regression: Option<RuleSet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLabel {
    pub user: String,
    pub name: String,
    pub method: String,
    pub path: String,
    /// A step that sends no request (a `delay`): it has no row in the report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delay: bool,
}

impl StepLabel {
    pub fn is_request(&self) -> bool {
        !self.delay
    }
}

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
                delay: !i.is_request(),
            })
            .collect(),
        flows: plan.classes.iter().map(|c| c.name.clone()).collect(),
        regression: Some(cfg.regression.clone()),
    }
}

pub fn build(d: &RunDescription, r: &EngineResult) -> RunReport {
    let elapsed = r.elapsed;
    let steps = d
        .steps
        .iter()
        .zip(&r.total.steps)
        .filter(|(info, _)| info.is_request())
        .map(|(info, stats)| StepReport {
            user: info.user.clone(),
            name: info.name.clone(),
            method: info.method.clone(),
            path: info.path.clone(),
            stats: request_summary(stats, elapsed),
            histograms: Histograms::of(stats),
        })
        .collect();
    let errors = d
        .steps
        .iter()
        .zip(&r.total.steps)
        .flat_map(|(info, stats)| {
            stats.errors.iter().map(move |e| ErrorSummary {
                user: info.user.clone(),
                step: info.name.clone(),
                kind: e.kind.to_string(),
                count: e.count,
                message: e.sample.clone(),
            })
        })
        .collect::<Vec<_>>();
    let flows = d
        .flows
        .iter()
        .zip(&r.total.flows)
        .map(|(name, f)| FlowSummary {
            user: name.clone(),
            completed: f.completed,
            failed: f.failed,
            flows_per_s: per_s(f.completed, elapsed),
            latency: latency_summary(&f.latency),
            steps_mean: if f.steps.is_empty() { 0.0 } else { f.steps.mean() },
            steps_max: f.steps.max(),
            cost_per_flow_usd: if f.completed > 0 { f.cost / f.completed as f64 } else { 0.0 },
            latency_histogram: encode_nonempty(&f.latency),
            steps_histogram: encode_nonempty(&f.steps),
        })
        .collect();
    let total = r.total.total();
    let cpu_s = r.cpu.as_secs_f64();
    let utilization = cpu_s / (elapsed.as_secs_f64() * r.workers as f64).max(1e-9);
    let lag = latency_summary(&r.total.lag);
    let bottleneck = if utilization > 0.9 {
        Some(format!("generator CPU at {:.0}% of its threads", utilization * 100.0))
    } else {
        lag.as_ref()
            .filter(|l| l.p99_ms > 10.0)
            .map(|l| format!("open-model schedule lag p99 {:.1} ms: iterations started late", l.p99_ms))
    };
    let window =
        d.load.duration_s.map_or(elapsed, |s| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(elapsed).min(elapsed));
    let open_summary = (d.load.model == "open").then(|| OpenSummary {
        target_rate: d.load.rate.unwrap_or(0.0),
        // Over the arrival window: the drain of the last iterations after it is not a lower rate.
        achieved_rate: per_s(r.total.arrivals.saturating_sub(r.total.dropped), window),
        arrivals: r.total.arrivals,
        dropped: r.total.dropped,
        schedule_lag: lag.clone(),
    });
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo { name: env!("CARGO_PKG_NAME").into(), version: env!("CARGO_PKG_VERSION").into() },
        scenario: d.scenario.clone(),
        target: d.target.clone(),
        load: d.load.clone(),
        started_at: rfc3339(r.started_at),
        ended_at: rfc3339(r.started_at + elapsed),
        duration_s: elapsed.as_secs_f64(),
        status: match r.stop {
            StopReason::Interrupted(_) => RunStatus::Interrupted,
            StopReason::Aborted => RunStatus::Aborted,
            StopReason::DurationElapsed | StopReason::IterationsDone => RunStatus::Completed,
        },
        stop_reason: match r.stop {
            StopReason::DurationElapsed => "duration_elapsed",
            StopReason::IterationsDone => "iterations_done",
            StopReason::Interrupted(s) => s.stop_reason(),
            StopReason::Aborted => "threshold_abort",
        }
        .into(),
        failure: None,
        totals: request_summary(&total, elapsed),
        steps,
        flows,
        errors,
        series: r.series.clone(),
        generator: GeneratorInfo {
            workers: r.workers,
            cpu_s,
            requests_per_cpu_s: if cpu_s > 0.0 { total.requests as f64 / cpu_s } else { 0.0 },
            cpu_utilization: utilization,
            interrupted_requests: r.total.interrupted,
            bottleneck,
        },
        machine: Some(MachineInfo::this()),
        open: open_summary,
        levels: None,
        thresholds: Vec::new(),
        comparison: None,
        regression: d.regression.clone(),
        histograms: Histograms::of(&total),
        mock_stats: None,
        rebuilt: None,
    }
}

fn per_s(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// The per-level table of a breaking-point search or sweep.
pub fn levels_report(levels: &Levels, outcomes: &[LevelOutcome]) -> LevelsReport {
    let rows: Vec<LevelReport> = outcomes
        .iter()
        .map(|o| {
            let stats = request_summary(&o.total.total(), o.elapsed);
            LevelReport {
                level: o.level,
                duration_s: o.elapsed.as_secs_f64(),
                success_rate: 1.0 - stats.failure_rate,
                stats,
                broken: o.broken.clone(),
            }
        })
        .collect();
    LevelsReport {
        kind: match levels.kind {
            LevelKind::Users => "users",
            LevelKind::Rate => "rate",
        }
        .into(),
        hold_s: levels.hold.as_secs_f64(),
        mode: if levels.limits.is_some() { "breaking_point" } else { "sweep" }.into(),
        last_ok: rows.iter().take_while(|r| r.broken.is_none()).last().map(|r| r.level),
        first_broken: rows.iter().find(|r| r.broken.is_some()).map(|r| r.level),
        min_sustainable: levels.min_sustainable,
        levels: rows,
    }
}
