//! `RunReport`, the one result type that `result.json` stores, with each of its parts, the schema version and
//! the JSON Schema generated from it. Plain data: building it is `assemble`, reading it back is `read`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::environment::Environment;
use super::repeats::Repeats;
use super::shards::{HdrSettings, MergedShard, Partial};
use super::verdict::{Comparison, RuleSet, Verdict};
use crate::metrics::{ErrorSummary, FlowSummary, LatencySummary, RequestSummary, SeriesPoint, Window};

/// Bumped on any change of `result.json` an older reader could not take (every struct denies unknown fields, so
/// a new field counts). 2: step histograms gained `stream_tail`. 3: `scenario.vars`, gateway attribution in the LLM
/// summaries, `stream_tail` in the LLM summary, `environment` (the host's health). 4: `windows` (per-window
/// histograms per step and user class, the noise of every compared metric), `repeats` (each run of `run
/// --repeat` with the headline statistics across them), `current_runs` in comparison rows, and `shard` (this
/// process's part of a distributed run, its host and start skew), `hdr` (the histograms' settings), and in a
/// merged report of shards `shards` (each shard's row) and `partial` (shards missing from it). 5: `open.pacing`
/// (how finely arrivals were placed), `open.connections` (the pool's use) and `load.connections`.
pub const SCHEMA_VERSION: u32 = 5;

/// The oldest schema this version still reads: each version since only added optional fields, so an older
/// baseline stays usable.
pub const OLDEST_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub scenario: ScenarioInfo,
    pub target: TargetInfo,
    pub load: LoadInfo,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub status: RunStatus,
    /// `duration_elapsed`, `iterations_done`, `threshold_abort`, `fail_fast`, `interrupted` (SIGINT), `sigterm`,
    /// `sighup`, or `killed` (rebuilt from the journal of a process that died).
    pub stop_reason: String,
    /// Set when the run measured nothing valid (status `failed`, exit code 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// All steps together.
    pub totals: RequestSummary,
    pub steps: Vec<StepReport>,
    /// One per user class: its iterations as flows.
    pub flows: Vec<FlowSummary>,
    pub errors: Vec<ErrorSummary>,
    /// One point per second of the run.
    pub series: Vec<SeriesPoint>,
    /// What each stretch of the run measured, per step (as `steps`) and user class (as `flows`): at most 128
    /// windows of 1, 2, 4, ... seconds. A baseline comparison takes the noise of every statistic from how it
    /// moves between windows. Absent in results written before schema 4.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    pub generator: GeneratorInfo,
    /// The machine that generated the load (baselines from another machine are compared with a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineInfo>,
    /// Open model only: schedule keeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenSummary>,
    /// SLO verdicts, in the order the thresholds were given; any failure makes the exit code 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Verdict>,
    /// The comparison with a baseline (`--baseline`); any regression makes the exit code 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The scenario's `[regression]` rules, kept so that `compare` judges this result the way `run` would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RuleSet>,
    /// Breaking-point search or sweep: one row per level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<LevelsReport>,
    /// Latency of all successful requests (HdrHistogram V2 deflate, base64).
    pub histograms: Histograms,
    /// The embedded mock's own counters (`GET /mock/stats`: injected faults, fallbacks, 429s), so what was
    /// injected can be compared with what was measured. Absent for a real target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_stats: Option<serde_json::Value>,
    /// Set when the process died before writing this report and `report DIR` rebuilt it from the run journal:
    /// says so, and up to which second of the run the journal went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
    /// The generating host's health during the run (hiccups, CPU pressure, steal, load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// `run --repeat N`: each run's own report and the headline statistics across the runs; the rest of this
    /// report is all runs together (totals added, the series one after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
    /// Set when this process ran one part of a distributed run (`--shard`, `--segment`, or a cluster engine's
    /// environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The HdrHistogram settings of the histograms (written by shards and merges, which need them equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr: Option<HdrSettings>,
    /// `merge`: every shard merged into this report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<MergedShard>,
    /// `merge --allow-partial`: the shards this report lacks, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
}

/// One shard of a distributed run: which part of the load it sent, where, and when it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardInfo {
    /// 1-based shard number (`--shard I/N`, or a cluster engine's 0-based index plus one); absent for a bare
    /// `--segment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The part of the run, `from:to` as exact fractions (`1/4:1/2`).
    pub segment: String,
    /// Every shard's segment boundaries, `0,1/4,1/2,3/4,1`.
    pub sequence: String,
    /// The machine's host name.
    pub host: String,
    /// Where the identity came from: `flag`, `RLT_SHARD`, `kubernetes`, `slurm`, `slurm-array`.
    pub source: String,
    /// `--start-at`, resolved (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_start: Option<String>,
    /// The load's actual start minus `requested_start`, ms (positive: late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_ms: Option<f64>,
    /// Stopped by another shard's `abort_on_fail` threshold (`--abort-file`): that shard's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: String,
    pub file: String,
    /// `sha256:<hex>` of the scenario file.
    pub hash: String,
    pub tags: Vec<String>,
    /// The `[vars]` the run used (`--var` and `[mock] vars` applied; `${env:...}` unexpanded, so no secret).
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetInfo {
    /// Base URL, credentials removed.
    pub url: String,
    /// True when no `--target` was given and the embedded mock gateway served the run.
    pub embedded_mock: bool,
    /// `--mock key=value` settings the embedded mock ran with, on top of the scenario's `[mock]` table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mock_overrides: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadInfo {
    /// `closed`: a fixed population of users, each waiting for its response before the next request.
    /// `open`: iterations start on a schedule (`rate`) whatever the target does; latency counts from the
    /// scheduled start.
    pub model: String,
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub rate: Option<f64>,
    /// `constant` or `poisson`.
    pub arrival: Option<String>,
    pub max_in_flight: Option<u32>,
    /// Open model: connections the iterations in flight share (`[load] connections`); absent: one per
    /// iteration in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Ramping profile of the closed model: `[target users, seconds]` per stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<(u32, f64)>,
    pub duration_s: Option<f64>,
    pub iterations: Option<u64>,
    pub seed: u64,
    pub timeout_s: f64,
    pub graceful_stop_s: f64,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP), or killed and rebuilt from its journal.
    Interrupted,
    /// A threshold with `abort_on_fail` failed during the run.
    Aborted,
    /// The run measured nothing valid (exit 3): `failure` says why.
    Failed,
}

/// Why a run measured nothing valid (exit code 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// `no_success`: no request succeeded (every one failed, or none completed); `fail_fast`: the first
    /// requests all failed with the same non-transient error and the run was stopped; `panic`: a worker
    /// panicked and its share of the load is missing.
    pub kind: String,
    /// One line: what happened, with the error kind, step and first response excerpt where there is one.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineInfo {
    /// `linux`, `macos`, ...
    pub os: String,
    pub arch: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
}

impl MachineInfo {
    pub fn this() -> Self {
        MachineInfo {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    pub user: String,
    pub name: String,
    pub method: String,
    /// The path as written in the scenario (templates unexpanded).
    pub path: String,
    pub stats: RequestSummary,
    pub histograms: Histograms,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Histograms {
    pub latency: String,
    pub ttfb: String,
    /// Streaming steps: LLM timings (absent when nothing was measured).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ttft: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ttfo: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icl: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tpot: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ntpot: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stream_tail: String,
    /// The overhead the gateway reported per response (absent when it reported none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway_overhead: String,
}

impl Histograms {
    /// Every histogram a baseline comparison may need, LLM timings only where something was measured.
    pub fn of(s: &crate::metrics::StepStats) -> Histograms {
        use crate::metrics::{Hist, LlmStats, encode_histogram, encode_nonempty};
        let llm = |f: fn(&LlmStats) -> &Hist| s.llm.as_ref().map_or_else(String::new, |l| encode_nonempty(f(l)));
        Histograms {
            latency: encode_histogram(&s.latency),
            ttfb: encode_histogram(&s.ttfb),
            ttft: llm(|l| &l.ttft),
            ttfo: llm(|l| &l.ttfo),
            icl: llm(|l| &l.icl),
            tpot: llm(|l| &l.tpot),
            ntpot: llm(|l| &l.ntpot),
            stream_tail: llm(|l| &l.stream_tail),
            gateway_overhead: llm(|l| &l.gateway.overhead),
        }
    }
}

impl crate::metrics::catalog::StoredStepHistograms for Histograms {
    fn encoded(&self, m: crate::metrics::catalog::Metric) -> Option<&str> {
        use crate::metrics::catalog::Metric as M;
        Some(match m {
            M::Latency => &self.latency,
            M::Ttfb => &self.ttfb,
            M::Ttft => &self.ttft,
            M::Ttfo => &self.ttfo,
            M::Icl => &self.icl,
            M::Tpot => &self.tpot,
            M::Ntpot => &self.ntpot,
            M::StreamTail => &self.stream_tail,
            M::GatewayOverhead => &self.gateway_overhead,
            M::FlowLatency
            | M::StepsPerFlow
            | M::Errors
            | M::RateLimited
            | M::Dropped
            | M::FallbackRate
            | M::GatewayRetries
            | M::Requests
            | M::Rps
            | M::OutputTokensPerS
            | M::Cost => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenSummary {
    pub target_rate: f64,
    /// Iterations started per second over the arrival window (the run's duration, without the final drain).
    pub achieved_rate: f64,
    /// Arrivals the schedule produced.
    pub arrivals: u64,
    /// Arrivals that found `max_in_flight` iterations running and were not started.
    pub dropped: u64,
    /// Actual − scheduled start of started iterations.
    pub schedule_lag: Option<LatencySummary>,
    /// How finely arrivals were placed: what the schedule lag (and so the corrected latencies) can resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
    /// The connections the iterations in flight shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// `timerfd` (Linux: the kernel's high-resolution timer) or `tokio` (tokio's 1 ms timer).
    pub mechanism: String,
    /// An arrival is started at most this early, and (the machine willing) this late, µs.
    pub resolution_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUse {
    /// Connections opened (replacements of broken ones included).
    pub opened: u64,
    /// The most lent at once (summed over workers).
    pub peak: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelsReport {
    /// `users` (closed model) or `rate` (open model).
    pub kind: String,
    pub hold_s: f64,
    /// `breaking_point` (stops at the first broken level) or `sweep` (runs every level).
    pub mode: String,
    pub levels: Vec<LevelReport>,
    /// The highest level that held its limits.
    pub last_ok: Option<f64>,
    /// The first level that broke them.
    pub first_broken: Option<f64>,
    pub min_sustainable: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelReport {
    pub level: f64,
    pub duration_s: f64,
    pub stats: RequestSummary,
    /// 1 − failure rate.
    pub success_rate: f64,
    /// Why the level broke its limits.
    pub broken: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratorInfo {
    pub workers: usize,
    /// CPU time of the load generator's worker threads (an embedded mock is not counted).
    pub cpu_s: f64,
    pub requests_per_cpu_s: f64,
    /// Share of the workers' available CPU time used; near 1.0 means the generator may have been the bottleneck.
    pub cpu_utilization: f64,
    /// Requests cut off by the end of the run, counted neither as successes nor failures.
    pub interrupted_requests: u64,
    /// Why the generator itself may have limited the run (CPU saturated, or open-model schedule lag p99
    /// above 10 ms); absent when it kept up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottleneck: Option<String>,
}

/// The JSON Schema of `result.json`, as committed in `schema/result.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RunReport);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}
