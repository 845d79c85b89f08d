//! Builds the `RunReport` from what a run measured: summaries per step, per flow and in total, errors, series.
//! What the report says about the run itself comes from a `RunDescription`, and the measurements come as a
//! `RunOutput` of plain recorder data, so a report can be assembled without the configuration or the engine:
//! after a run, from a run journal after the process died, or from stored shards.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::report::{
    ConnectionUse, GeneratorInfo, Histograms, LevelReport, LevelsReport, LoadInfo, MachineInfo, OpenSummary, Pacing,
    RunReport, RunStatus, SCHEMA_VERSION, ScenarioInfo, StepReport, TargetInfo, ToolInfo,
};
use super::verdict::RuleSet;
use crate::metrics::{
    ErrorSummary, FlowSummary, Recorder, SeriesPoint, Window, encode_nonempty, latency_summary, request_summary,
};

fn rfc3339(t: SystemTime) -> String {
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
    /// The scenario's thresholds as written (`metric{selector}: expression`), so that a merge of shards judges
    /// them once on the whole run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdSpec>,
}

/// A threshold as configured: enough to parse it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    pub key: String,
    pub expr: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort_on_fail: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLabel {
    pub user: String,
    pub name: String,
    pub method: String,
    pub path: String,
    /// False for a step that sends nothing (a delay): it has no row in the report, only its errors count.
    /// Absent in journals written before the field existed, whose steps were requests but for delays.
    #[serde(default = "yes")]
    pub is_request: bool,
}

fn yes() -> bool {
    true
}

/// Why the run ended, as the report states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    DurationElapsed,
    IterationsDone,
    /// Stopped by a signal: its `stop_reason` (`interrupted` for SIGINT, `sigterm`, `sighup`).
    Signal(&'static str),
    /// A threshold with `abort_on_fail` (or fail-fast) stopped it.
    Aborted,
}

impl Stop {
    pub fn status(self) -> RunStatus {
        match self {
            Stop::Signal(_) => RunStatus::Interrupted,
            Stop::Aborted => RunStatus::Aborted,
            Stop::DurationElapsed | Stop::IterationsDone => RunStatus::Completed,
        }
    }

    /// The report's `stop_reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Stop::DurationElapsed => "duration_elapsed",
            Stop::IterationsDone => "iterations_done",
            Stop::Signal(reason) => reason,
            Stop::Aborted => "threshold_abort",
        }
    }
}

/// What a run measured, as recorder data: the engine's result (or a journal's, or merged shards') seen from
/// here, so that `result` needs no engine.
pub struct RunOutput<'a> {
    /// The whole run, one entry per step of the description, delays included.
    pub total: &'a Recorder,
    pub series: &'a [SeriesPoint],
    /// Per-window histograms, one entry per step of the description (delays included) in each window.
    pub windows: &'a [Window],
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub stop: Stop,
    /// CPU time of the generator's worker threads.
    pub cpu: Duration,
    pub workers: usize,
}

/// A breaking-point search or sweep, as its table reads it.
pub struct LevelsRun<'a> {
    /// `users` (closed model) or `rate` (open model).
    pub kind: &'static str,
    pub hold: Duration,
    /// Limits were set: the search stops at the first broken level. Otherwise a sweep runs every level.
    pub breaking_point: bool,
    pub min_sustainable: Option<f64>,
    pub levels: Vec<LevelRun<'a>>,
}

/// One level of a [`LevelsRun`].
pub struct LevelRun<'a> {
    pub level: f64,
    pub elapsed: Duration,
    pub total: &'a Recorder,
    /// Why the level broke its limits; `None` when it held.
    pub broken: Option<&'a str>,
}

pub fn build(d: &RunDescription, r: &RunOutput<'_>) -> RunReport {
    let elapsed = r.elapsed;
    let steps = d
        .steps
        .iter()
        .zip(&r.total.steps)
        .filter(|(info, _)| info.is_request)
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
        pacing: (r.total.pacing_us > 0).then(|| Pacing {
            mechanism: if r.total.pacing_us < 1000 { "timerfd" } else { "tokio" }.into(),
            resolution_us: r.total.pacing_us,
        }),
        connections: (r.total.conns_opened > 0)
            .then_some(ConnectionUse { opened: r.total.conns_opened, peak: r.total.conns_peak }),
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
        status: r.stop.status(),
        stop_reason: r.stop.reason().into(),
        failure: None,
        totals: request_summary(&total, elapsed),
        steps,
        flows,
        errors,
        series: r.series.to_vec(),
        windows: request_windows(d, r.windows),
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
        environment: None,
        repeats: None,
        shard: None,
        hdr: None,
        shards: Vec::new(),
        partial: None,
    }
}

/// The windows with the steps the report has rows for (delays dropped), so their steps align with `steps`.
fn request_windows(d: &RunDescription, windows: &[Window]) -> Vec<Window> {
    windows
        .iter()
        .map(|w| Window {
            t_s: w.t_s,
            duration_s: w.duration_s,
            steps: w.steps.iter().zip(&d.steps).filter(|(_, info)| info.is_request).map(|(s, _)| s.clone()).collect(),
            flows: w.flows.clone(),
        })
        .collect()
}

fn per_s(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// The per-level table of a breaking-point search or sweep.
pub fn levels_report(run: &LevelsRun<'_>) -> LevelsReport {
    let rows: Vec<LevelReport> = run
        .levels
        .iter()
        .map(|o| {
            let stats = request_summary(&o.total.total(), o.elapsed);
            LevelReport {
                level: o.level,
                duration_s: o.elapsed.as_secs_f64(),
                success_rate: 1.0 - stats.failure_rate,
                stats,
                broken: o.broken.map(str::to_string),
            }
        })
        .collect();
    LevelsReport {
        kind: run.kind.into(),
        hold_s: run.hold.as_secs_f64(),
        mode: if run.breaking_point { "breaking_point" } else { "sweep" }.into(),
        last_ok: rows.iter().take_while(|r| r.broken.is_none()).last().map(|r| r.level),
        first_broken: rows.iter().find(|r| r.broken.is_some()).map(|r| r.level),
        min_sustainable: run.min_sustainable,
        levels: rows,
    }
}
