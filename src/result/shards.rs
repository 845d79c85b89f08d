//! What result.json says of a distributed run beyond one shard: the histograms' settings (which must agree for
//! shards to add), and, in a merged report, every shard's row and what was missing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// HdrHistogram settings of every histogram in the report. Shards merge only when theirs are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HdrSettings {
    pub significant_digits: u8,
    /// The highest trackable value, µs; 0 when the histograms grow as needed (auto-resize, the default).
    pub highest_trackable: u64,
}

impl HdrSettings {
    /// What `metrics::new_hist` builds: 3 significant digits, auto-resizing.
    pub const CURRENT: HdrSettings = HdrSettings { significant_digits: 3, highest_trackable: 0 };
}

/// One shard of a merged report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergedShard {
    /// 1-based shard number.
    pub index: u64,
    pub host: String,
    /// The directory or file it was read from.
    pub file: String,
    /// This shard's engine start minus the earliest shard's, ms (whole ms: the seconds record their start so).
    pub start_skew_ms: f64,
    /// This shard's start minus the `--start-at` it was given, ms, as the shard measured it (positive: late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<f64>,
    pub requests: u64,
    /// The shard's own status (`completed`, `aborted`, ...) and stop reason.
    pub status: String,
    pub stop_reason: String,
}

/// A merge of fewer shards than the run had (`merge --allow-partial`): its numbers are not the whole run's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    /// 1-based numbers of the shards not merged.
    pub missing: Vec<u64>,
    /// One line per problem found (a missing shard, a file left out and why).
    pub reasons: Vec<String>,
}
