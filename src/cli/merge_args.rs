//! `run-load-test merge`: the flags of adding shards into one report, with the gate flags `run` has.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{FormatArg, FormatParser, GateArgs, ScenariosDir, parse_duration};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards: report directories (holding result.json and seconds.ndjson) or their result.json files
    #[arg(required = true, num_args = 1.., value_name = "DIR|FILE")]
    pub shards: Vec<PathBuf>,
    /// How many shards the run had [default: the count the shards declare]
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,
    /// Merge the shards there are when some are missing or refused: the report says `partial`, and the exit
    /// code is never 0 (4 unless a gate failed)
    #[arg(long)]
    pub allow_partial: bool,
    /// Where to write the merged report [default: reports/<scenario>-<timestamp>-merged]
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The largest difference between the shards' engine starts
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "1s")]
    pub max_skew: Duration,
    #[command(flatten)]
    pub gate: GateArgs,
    /// Push the merged final metrics to this Prometheus Pushgateway (PUT
    /// /metrics/job/run_load_test/scenario/<name>), as `run --pushgateway` does for one process
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Report files besides result.json: json, csv, html, md, junit; repeatable or comma-separated
    /// [default: json,html,csv]
    #[arg(long = "format", value_delimiter = ',', value_name = "FORMAT,..", value_parser = FormatParser { run: false })]
    pub formats: Vec<FormatArg>,
    /// No summary table; only errors
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}
