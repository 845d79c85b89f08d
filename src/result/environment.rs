//! How healthy the generating host was during a run: a jHiccup-style probe (a thread that asks to sleep a fixed
//! interval and records how late it woke) and what the OS reports (CPU pressure, steal, load). A comparison
//! reads it to tell a slower service from a busier machine.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The host during the run, as `result.json` stores it under `environment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Wake-up lateness of every hiccup probe (workers and, for the embedded mock, its runtime), merged.
    pub hiccup: HiccupSummary,
    /// Worst lateness in each second of the run, ms, aligned with `series`.
    #[serde(default)]
    pub hiccup_per_second: Vec<f64>,
    /// Share of the run some runnable task waited for a CPU (`/proc/pressure/cpu` `some`), %; absent where the
    /// kernel does not offer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure_pct: Option<f64>,
    /// Share of CPU time stolen by the hypervisor over the run (`/proc/stat`), %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_pct: Option<f64>,
    /// One-minute load average at the end of the run divided by the cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_per_core: Option<f64>,
    pub cores: u32,
    /// Beyond the bounds a timing comparison can trust: the verdict of a comparison with this run may be
    /// `inconclusive` rather than `regressed`.
    pub disturbed: bool,
    /// Why it is disturbed, one line each, with the numbers (empty when it is not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// Lateness of the hiccup probes beyond their interval, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HiccupSummary {
    /// The interval each probe asks to sleep, ms.
    pub interval_ms: f64,
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// HdrHistogram V2 deflate, base64, µs of lateness (empty when nothing was probed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub histogram: String,
}
