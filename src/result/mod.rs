//! The result of a run as `result.json` stores it: `RunReport` and its parts, `SCHEMA_VERSION` and the JSON
//! Schema, the verdict and comparison types, reading any stored result back (`read`), and building a report from
//! what a run measured (`assemble`). Imports only `metrics`; renders and prints nothing, so renderers, `slo`,
//! `baseline`, `app` and a shard merge can all use it.

pub mod assemble;
mod environment;
pub mod journal;
mod read;
mod repeats;
mod report;
mod shards;
mod verdict;

pub use environment::{Environment, HiccupSummary};
pub use read::{ReadError, StoredFile, parse_result, read_result};
pub use repeats::{CV_WARN_PCT, RepeatStat, Repeats, RunSpread, cv_pct, median, stdev};
pub use report::{
    ConnectionUse, Failure, GeneratorInfo, Histograms, LevelReport, LevelsReport, LoadInfo, MachineInfo, OLDEST_SCHEMA,
    OpenSummary, Pacing, RunReport, RunStatus, SCHEMA_VERSION, ScenarioInfo, ShardInfo, StepReport, TargetInfo,
    ToolInfo, json_schema,
};
pub use shards::{HdrSettings, MergedShard, Partial};
pub use verdict::{BaselineRef, Change, Comparison, DEFAULT_CONFIDENCE, Delta, Rule, RuleSet, Verdict};
