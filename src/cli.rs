//! Command-line surface: clap derive types and value parsers, each flag defined once. A leaf: imports nothing
//! of the crate. Ranges are not checked here: numbers keep the text as typed ([`NumberArg`]) and
//! `config::resolve` reads them against the one `limits` table it also reads the scenario with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod gate_args;
mod merge_args;
mod render_args;
pub use gate_args::GateArgs;
pub use merge_args::MergeArgs;
pub use render_args::{RenderCommand, RenderCommon, RenderK8sArgs, RenderSlurmArgs};

#[derive(Debug, Parser)]
#[command(
    name = "run-load-test",
    version,
    about = "Load-test HTTP services and AI agent gateways; gate CI on SLOs and baselines",
    after_help = "Without --target, `run` starts an embedded mock gateway on a loopback port and tests that."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios in the scenarios directory
    List(ListArgs),
    /// Run a scenario (a name in the scenarios directory, or a path to a .toml file)
    Run(Box<RunArgs>),
    /// Send one iteration of each user class and print every request and response (secrets masked): exit 0
    /// when every exchange passed its checks, 1 when one failed
    #[command(name = "try")]
    Try(TryArgs),
    /// Serve the mock OpenAI-compatible gateway in the foreground until Ctrl-C
    Mock(MockArgs),
    /// Compare two stored results (a baseline and a later run): exit 1 on a regression, 4 when inconclusive
    Compare(CompareArgs),
    /// Re-render a stored result (a result.json or a report directory) in other formats; rebuilds result.json
    /// from the run journal of a run that was killed
    Report(ReportArgs),
    /// Add the shards of a distributed run into one report (histograms added exactly) and judge it once:
    /// thresholds, baseline, every output format, one exit code
    Merge(Box<MergeArgs>),
    /// Print the JSON Schema of result.json
    Schema,
    /// Print what a cluster engine needs to run a scenario in N shards and merge them: Kubernetes manifests
    /// or a Slurm batch script (see docs/distributed.md)
    #[command(subcommand)]
    Render(RenderCommand),
}

/// `--scenarios-dir`, shared by every command that finds a scenario by name.
#[derive(Debug, Clone, Args)]
pub struct ScenariosDir {
    /// Directory holding the scenario files
    #[arg(long = "scenarios-dir", id = "scenarios_dir", default_value = "scenarios", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a result.json (or a report directory holding one)
    pub baseline: PathBuf,
    /// The run to judge: a result.json (or a report directory holding one); several are judged together as the
    /// runs of `run --repeat` are, on the median of their values
    #[arg(required = true, num_args = 1.., value_name = "CURRENT")]
    pub current: Vec<PathBuf>,
    /// Take the [regression] rules from this scenario (default: the rules stored in CURRENT)
    #[arg(long, value_name = "SCENARIO")]
    pub scenario: Option<String>,
    /// Write a JUnit XML report: one test case per compared metric (and per threshold of CURRENT)
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (fits $GITHUB_STEP_SUMMARY)
    #[arg(long, value_name = "PATH")]
    pub summary_md: Option<PathBuf>,
    /// Only errors; the exit code tells the verdict
    #[arg(short, long)]
    pub quiet: bool,
    /// When the only failing comparisons are inconclusive (the host may explain them): fail (exit 1) or pass
    /// (exit 0) [default: exit 4]
    #[arg(long, value_name = "fail|pass")]
    pub on_inconclusive: Option<OnInconclusive>,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A result.json, or a report directory holding one (or the journal.ndjson of a killed run)
    pub result: PathBuf,
    /// Formats to render: json, csv (Locust's three files), md, junit; repeatable or comma-separated.
    /// Without it the summary table is printed
    #[arg(short, long = "format", value_delimiter = ',', value_name = "FORMAT,..", value_parser = FormatParser { run: false })]
    pub formats: Vec<FormatArg>,
    /// Write the files here (default: print to stdout; csv goes beside the result)
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario name (scenarios/<NAME>.toml) or path to a scenario file
    pub scenario: String,
    /// Base URL of the service under test; without it the embedded mock gateway is the target
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Number of concurrent virtual users (1-100000)
    #[arg(short, long, value_name = "N", allow_negative_numbers = true)]
    pub users: Option<NumberArg>,
    /// Users started per second until all are running (0.001-100000)
    #[arg(short = 'r', long, value_name = "PER_SEC", allow_negative_numbers = true)]
    pub spawn_rate: Option<NumberArg>,
    /// How long to run, e.g. 30s, 5m, 1h30m (at most 30 days)
    #[arg(short, long, value_parser = parse_duration, value_name = "DURATION", allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// Stop after this many user iterations (flows) in total, shared by all users (1-10^12)
    #[arg(short, long, value_name = "N", allow_negative_numbers = true)]
    pub iterations: Option<NumberArg>,
    /// Closed model: each user stops after this many iterations
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub iterations_per_user: Option<NumberArg>,
    /// Open model: start this many iterations per second whatever the target does, instead of --users
    /// (0.001-1000000)
    #[arg(long, value_name = "PER_SEC", allow_negative_numbers = true)]
    pub rate: Option<NumberArg>,
    /// Open model: how arrivals are spaced
    #[arg(long, value_enum, value_name = "KIND")]
    pub arrival: Option<ArrivalArg>,
    /// Open model: iterations running at once at most; further arrivals are dropped and counted (1-100000)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_in_flight: Option<NumberArg>,
    /// Open model: connections the iterations in flight share; an exchange waits for a free one (1-100000;
    /// default: one per iteration in flight)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub connections: Option<NumberArg>,
    /// Ramping users as a goose test plan: "10,1m;10,5m;0,30s" (ramp to 10 over 1m, hold 5m, down over 30s)
    #[arg(long, value_name = "PLAN")]
    pub stages: Option<String>,
    /// An SLO gate on top of the scenario's [thresholds], e.g. 'latency{step:chat}: p(95) < 500ms' (repeatable)
    #[arg(long = "threshold", value_name = "METRIC: EXPR")]
    pub thresholds: Vec<String>,
    /// Run each level in turn, e.g. users=5,10,20,50 or rate=10,50,100 (a concurrency table)
    #[arg(long, value_name = "KIND=LEVELS")]
    pub sweep: Option<String>,
    /// How long each sweep or breaking-point level is held
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", allow_negative_numbers = true)]
    pub hold: Option<Duration>,
    /// Only run user classes and steps carrying one of these tags
    #[arg(long, value_delimiter = ',', value_name = "TAG,..")]
    pub tags: Vec<String>,
    /// Skip user classes and steps carrying one of these tags
    #[arg(long, value_delimiter = ',', value_name = "TAG,..")]
    pub exclude_tags: Vec<String>,
    /// Directory for this run's report files (default: reports/<scenario>-<UTC timestamp>)
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for every random choice (think times, random ids, the embedded mock)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Per-request timeout, overriding the scenario's [defaults] timeout
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// How long in-flight requests may finish after the run stops before they are cut off
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", allow_negative_numbers = true)]
    pub graceful_stop: Option<Duration>,
    /// Generator worker threads (default: available cores; 1-1024)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub workers: Option<NumberArg>,
    /// Skip TLS certificate verification (for self-signed test gateways)
    #[arg(long)]
    pub insecure: bool,
    /// No progress display and no summary table; only errors
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
    #[command(flatten)]
    pub gate: GateArgs,
    /// Set the embedded mock like its [mock] table, e.g. --mock token_delay=12ms (repeatable)
    #[arg(long = "mock", value_name = "KEY=VALUE")]
    pub mock_settings: Vec<String>,
    /// Override a variable of the scenario's [vars], e.g. --var model=gpt-4o-mini (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Send this header with every request, over the scenario's [defaults] headers, e.g. a gateway's routing:
    /// -H 'x-portkey-provider: openai' (repeatable; ${env:NAME} in the value reads the environment)
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Report files besides result.json: json, csv (Locust's stats.csv, stats_history.csv, failures.csv), md,
    /// junit, hlog (HdrHistogram interval logs per step); repeatable or comma-separated [default: json,csv]
    #[arg(long = "format", value_delimiter = ',', value_name = "FORMAT,..", value_parser = FormatParser { run: true })]
    pub formats: Vec<FormatArg>,
    /// Append one JSON object per second to this file while the run goes on (for `tail -f`)
    #[arg(long, value_name = "PATH")]
    pub ndjson: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics during the run: PORT or IP:PORT (loopback unless an IP says otherwise)
    #[arg(long, value_parser = parse_metrics_addr, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Push the final metrics to this Prometheus Pushgateway (PUT /metrics/job/run_load_test/scenario/<name>)
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Send the whole load even when the first requests all fail the same non-transient way (refused, 400,
    /// 401, 403, 404); by default such a run stops after 2 s with exit code 3
    #[arg(long)]
    pub no_fail_fast: bool,
    /// Write the first N exchanges of every step (request, response, checks; secrets masked) to
    /// http-debug.log in the report folder: --http-debug or --http-debug=N [default N: 3; 1-1000]
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_missing_value = "3")]
    pub http_debug: Option<NumberArg>,
    /// Run the scenario N times (2 s apart, each its own series) and judge the baseline comparison on the
    /// median of the runs, their spread in the noise test [default: 1; 1-100]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub repeat: Option<NumberArg>,
    /// Run shard I of N (I from 1, like Playwright's and Jest's --shard=1/4): this process sends its exact
    /// share of the users, iterations and arrivals; without it RLT_SHARD=I/N, a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX) or Slurm (SLURM_PROCID/SLURM_NTASKS, SLURM_ARRAY_TASK_ID) name the shard
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Run this part of the load instead of a numbered shard, k6 style: FROM:TO, e.g. 0:1/4 or 0.5:1
    #[arg(long, value_name = "FROM:TO")]
    pub segment: Option<String>,
    /// All the shards' segments, as boundaries: 0,1/4,1/2,1 [default: N equal ones with --shard; the segment
    /// and the rest with --segment]
    #[arg(long, value_name = "B0,B1,..")]
    pub segment_sequence: Option<String>,
    /// The shard count of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX is the index); or RLT_SHARD_COUNT
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u64>,
    /// Wait until this moment before sending load (after every input is checked): an RFC 3339 UTC time such as
    /// 2026-12-03T10:00:00Z, or +30s from now; at most 5 s in the past
    #[arg(long, value_name = "TIME|+DURATION")]
    pub start_at: Option<String>,
    /// A file on storage every shard sees: a shard whose abort_on_fail threshold fails writes it, and every
    /// shard that finds it (checked once a second) stops with threshold_abort
    #[arg(long, value_name = "PATH", env = "RLT_ABORT_FILE")]
    pub abort_file: Option<PathBuf>,
}

/// `try`: one iteration of each user class, every exchange printed.
#[derive(Debug, Args)]
pub struct TryArgs {
    /// Scenario name (scenarios/<NAME>.toml) or path to a scenario file
    pub scenario: String,
    /// Base URL of the service under test; without it the embedded mock gateway is the target
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Set a variable of the scenario's [vars], e.g. --var model=gpt-4o-mini (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Send this header with every request, over the scenario's [defaults] headers (repeatable), as `run -H`
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Per-request timeout, overriding the scenario's [defaults] timeout
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", allow_negative_numbers = true)]
    pub timeout: Option<Duration>,
    /// Skip TLS certificate verification (for self-signed test gateways)
    #[arg(long)]
    pub insecure: bool,
    /// Seed for every random choice (random ids, feeder rows, the embedded mock)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Set the embedded mock like its [mock] table, e.g. --mock error_rate=1 (repeatable)
    #[arg(long = "mock", value_name = "KEY=VALUE")]
    pub mock_settings: Vec<String>,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}

/// `--var KEY=VALUE`: the key is a variable name (letters, digits, `_`), the value any text, `=` included.
pub fn parse_var(s: &str) -> Result<(String, String), ValueError> {
    let not_pair = || ValueError(format!("`{s}` is not KEY=VALUE; write e.g. --var model=gpt-4o-mini"));
    let (k, v) = s.split_once('=').filter(|(k, _)| !k.trim().is_empty()).ok_or_else(not_pair)?;
    let k = k.trim();
    let word = !k.is_empty() && !k.starts_with(|c: char| c.is_ascii_digit());
    if !word || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ValueError(format!("`{k}` is not a variable name (letters, digits and _), in `{s}`")));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--on-inconclusive`: what a gate whose only failing comparisons are inconclusive exits with (without the
/// flag: its own code, 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnInconclusive {
    /// Exit 1, as a regression
    Fail,
    /// Exit 0, as a pass
    Pass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArrivalArg {
    /// Evenly spaced
    Constant,
    /// Exponential gaps (a Poisson process), as independent clients arrive
    Poisson,
}

/// A number flag as typed (`10`, `1e3`, `-1`): `config::resolve` reads it against its range in `limits`, so
/// a flag and the scenario key it overrides share one rule and one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberArg(pub String);

impl FromStr for NumberArg {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(NumberArg(s.to_string()))
    }
}

impl From<&str> for NumberArg {
    fn from(s: &str) -> Self {
        NumberArg(s.to_string())
    }
}

/// `--format`: the report files a command writes. `hlog` is recorded during `run` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
    Html,
    #[value(alias = "markdown")]
    Md,
    Junit,
    Hlog,
}

/// Parses `--format` names without case, with the messages the flag always had (`--format: unknown format
/// ...`), which clap's own enum parser would word differently.
#[derive(Debug, Clone, Copy)]
struct FormatParser {
    /// `run` may name `hlog`; `report` cannot make it from a stored result.
    run: bool,
}

impl clap::builder::TypedValueParser for FormatParser {
    type Value = FormatArg;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<FormatArg, clap::Error> {
        let text = value.to_string_lossy();
        let name = text.trim();
        // A blank entry (`json,,csv`) names nothing; result.json is always written, so it stands for json.
        if name.is_empty() {
            return Ok(FormatArg::Json);
        }
        let invalid = |message: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, message + "\n");
        match FormatArg::from_str(name, true) {
            Ok(FormatArg::Hlog) if !self.run => Err(invalid(
                "--format: `hlog` is recorded second by second during `run --format hlog`; a stored result cannot make it"
                    .into(),
            )),
            Ok(f) => Ok(f),
            Err(_) => {
                let names: Vec<String> = FormatArg::value_variants()
                    .iter()
                    .filter(|f| **f != FormatArg::Hlog)
                    .filter_map(|f| f.to_possible_value().map(|v| v.get_name().to_string()))
                    .collect();
                let hlog = if self.run { " or hlog" } else { "" };
                Err(invalid(format!("--format: unknown format `{name}`; use {}{hlog}", names.join(", "))))
            }
        }
    }
}

/// How `run` names a flag in a message about its value: `--users <N>`, as clap's own value errors do.
pub fn run_flag(id: &str) -> String {
    let mut cmd = RunArgs::augment_args(clap::Command::new("run"));
    cmd.build();
    cmd.get_arguments().find(|a| a.get_id() == id).map_or_else(|| format!("--{id}"), |a| a.to_string())
}

#[derive(Debug, Args)]
pub struct MockArgs {
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind; loopback unless you mean otherwise
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Completion tokens per response (a request's max_tokens caps it)
    #[arg(long, value_name = "N")]
    pub output_tokens: Option<u32>,
    /// Delay before the first token
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub first_token_delay: Option<Duration>,
    /// Delay between further tokens
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub token_delay: Option<Duration>,
    /// Fraction (0..1) of chat completions answered with --error-status
    #[arg(long, value_name = "FRACTION")]
    pub error_rate: Option<f64>,
    /// HTTP status of injected failures
    #[arg(long, value_name = "CODE")]
    pub error_status: Option<u16>,
    /// Seed for generated text and injected failures
    #[arg(long)]
    pub seed: Option<u64>,
    /// Take aliases and the [mock] table from this scenario (name or path); flags override it
    #[arg(long, value_name = "SCENARIO")]
    pub scenario: Option<String>,
    /// Set any key of the [mock] table, over the scenario and the flags above, e.g. --set retry_after=100ms
    /// (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}

/// A flag value clap's parser refused; clap prints it after `invalid value '..' for '--flag <V>': `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

/// Accepts humantime forms ("30s", "1m30s", "250ms") and a bare number of seconds ("30").
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| {
            ValueError(format!("invalid duration `{s}`: must be a number of seconds from 0 to 2592000 (30 days)"))
        });
    }
    humantime::parse_duration(t)
        .map_err(|e| ValueError(format!("invalid duration `{s}` ({e}); use e.g. 500ms, 30s, 5m")))
}

/// A bad value as one line (`invalid value '0' for '--users <N>': must be ...`), without clap's usage hint;
/// `None` for other errors (help, version, unknown flags), which clap prints as it likes.
pub fn value_error(e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    if !matches!(e.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return None;
    }
    let text = e.render().to_string();
    // Keep what helps ("[possible values: ...]"), drop the pointer to --help.
    let kept: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("For more information")).collect();
    let line = kept.join(" ");
    Some(line.strip_prefix("error: ").unwrap_or(&line).to_string())
}

/// `--metrics-addr`: `9464` and `localhost:9464` mean loopback; any other address must be written as an IP, so
/// that serving beyond this machine is always a deliberate choice and never the result of a name lookup.
pub fn parse_metrics_addr(s: &str) -> Result<SocketAddr, ValueError> {
    let t = s.trim();
    let port = t.parse::<u16>().ok().or_else(|| t.strip_prefix("localhost:").and_then(|p| p.parse().ok()));
    if let Some(port) = port {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    t.parse::<SocketAddr>().map_err(|_| {
        ValueError(format!("`{s}` is not PORT or IP:PORT, e.g. 127.0.0.1:9464 (0.0.0.0:9464 serves beyond loopback)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metrics_addr_is_loopback_unless_an_ip_is_written() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 9464));
        assert_eq!(parse_metrics_addr("9464"), Ok(loopback));
        assert_eq!(parse_metrics_addr("localhost:9464"), Ok(loopback));
        assert_eq!(parse_metrics_addr("0.0.0.0:9464"), Ok(SocketAddr::from(([0, 0, 0, 0], 9464))));
        assert_eq!(parse_metrics_addr("[::1]:9464").map(|a| a.port()), Ok(9464));
        for bad in ["gateway.internal:9464", "127.0.0.1", "localhost", ":9464", "99999"] {
            let e = parse_metrics_addr(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("`{bad}` is not PORT or IP:PORT")), "{e}");
        }
    }

    #[test]
    fn bad_values_clap_refuses_are_one_line_errors() {
        let err = |args: &[&str]| {
            let mut argv = vec!["run-load-test", "run", "stress"];
            argv.extend_from_slice(args);
            let e = Cli::try_parse_from(argv).unwrap_err();
            value_error(&e).unwrap_or_else(|| panic!("{args:?} is not a value error: {e}"))
        };
        assert!(err(&["--duration", "-5"]).contains("--duration"));
        assert_eq!(
            err(&["--arrival", "burst"]),
            "invalid value 'burst' for '--arrival <KIND>' [possible values: constant, poisson]"
        );
        assert_eq!(err(&["--duration", "soon"]).lines().count(), 1);
    }

    #[test]
    fn format_names_ignore_case_and_blanks() {
        let formats = |list: &str| {
            let Command::Run(a) = Cli::try_parse_from(["run-load-test", "run", "s", "--format", list]).unwrap().command
            else {
                panic!("run")
            };
            a.formats
        };
        assert_eq!(formats("JSON,markdown"), [FormatArg::Json, FormatArg::Md]);
        assert_eq!(formats("csv,,hlog"), [FormatArg::Csv, FormatArg::Json, FormatArg::Hlog]);
    }

    #[test]
    fn vars_are_key_value_pairs_in_order() {
        let argv = ["run-load-test", "run", "s", "--var", "model=gpt-4o-mini", "--var", " q =a=b", "--var", "e="];
        let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else { panic!("run") };
        let pairs: Vec<(&str, &str)> = a.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("model", "gpt-4o-mini"), ("q", "a=b"), ("e", "")]);
        for bad in ["model", "=x"] {
            let e = Cli::try_parse_from(["run-load-test", "run", "s", "--var", bad]).unwrap_err();
            let line = value_error(&e).unwrap();
            assert!(line.contains("--var <KEY=VALUE>") && line.contains("not KEY=VALUE"), "{line}");
        }
    }

    #[test]
    fn run_flags_are_named_as_clap_names_them() {
        assert_eq!(run_flag("users"), "--users <N>");
        assert_eq!(run_flag("spawn_rate"), "--spawn-rate <PER_SEC>");
        assert_eq!(run_flag("iterations_per_user"), "--iterations-per-user <N>");
    }

    #[test]
    fn vars_are_key_equals_value() {
        assert_eq!(parse_var("model=gpt-4o-mini"), Ok(("model".into(), "gpt-4o-mini".into())));
        assert_eq!(parse_var(" path = /v1/x=y"), Ok(("path".into(), " /v1/x=y".into())));
        assert_eq!(parse_var("empty="), Ok(("empty".into(), String::new())));
        for bad in ["novalue", "=x", "1st=x", "a-b=x", "a b=x"] {
            assert!(parse_var(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
