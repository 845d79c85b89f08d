//! The lines of a run journal (`journal.ndjson`, kept by a shard as `seconds.ndjson`): plain data, so that the
//! run writing it (`app`) and `merge` reading shards agree on one definition.

use serde::{Deserialize, Serialize};

use super::assemble::RunDescription;
use super::report::ShardInfo;
use super::shards::HdrSettings;

/// Bumped on any incompatible change of the journal's lines.
pub const VERSION: u32 = 1;

/// What a shard keeps of its run's seconds once `result.json` is written (a plain run removes its journal).
pub const SHARD_SECONDS: &str = "seconds.ndjson";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub journal: u32,
    /// RFC 3339, UTC: when the journal started, before any `--start-at` wait; the engine's own start is in the
    /// first second (`Second::start_ms`).
    pub started_at: String,
    pub run: RunDescription,
    /// The histograms' settings; absent in journals written before shards existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr: Option<HdrSettings>,
    /// The shard identity (without its skew, which is known only once the load starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
}

/// One second of the run, as the engine merged it: written with a borrowed recorder, read with an owned one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Second<R> {
    /// Seconds of run before this interval (a sweep's levels follow on).
    pub t: f64,
    /// Length of the interval: 1 s, except the last one of a run (or of a level).
    pub d: f64,
    pub users: u64,
    pub in_flight: u64,
    pub rec: R,
    /// The first second only: the engine's start, ms since the Unix epoch (after any `--start-at` wait), so
    /// that shards' seconds can be put on one wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
}
