//! `RunConfig::resolve`: merges the run flags (`cli::RunArgs`), the scenario file and defaults (CLI > TOML >
//! defaults) into one validated configuration. Reads files; writes nothing.

mod flags;
mod load;
mod outputs;
pub mod shard;
mod trial;

pub use outputs::{OutputFiles, report_formats};
pub use trial::TryConfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cli::{ArrivalArg, GateArgs, MockArgs, RunArgs};
use crate::engine::{Levels, LoadModel, TagFilter};
use crate::limits::{self, RangeError};
use crate::mock::{Alias, MockConfig, MockConfigError};
use crate::result::RuleSet;
use crate::scenario::feeder::Feeder;
use crate::scenario::{self, ArrivalKind, LoadedScenario, ScenarioError};
use crate::slo::Threshold;

pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

/// `latency{step:a}: p(95) < 1s` → key and expression (the selector may contain colons).
pub fn split_threshold(s: &str) -> Option<(&str, &str)> {
    let from = s.find('}').unwrap_or(0);
    let colon = from + s.get(from..)?.find(':')?;
    Some((s[..colon].trim(), s[colon + 1..].trim()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// No `--target`: the embedded mock gateway, started on a free loopback port.
    EmbeddedMock(Box<MockConfig>),
    /// A base URL such as `http://gw:8000` (no trailing slash).
    Url(String),
}

#[derive(Debug)]
pub struct RunConfig {
    pub scenario: LoadedScenario,
    pub target: Target,
    pub load: LoadModel,
    /// Open model: `[load] connections` or `--connections`; `None`: one per iteration in flight.
    pub connections: Option<u32>,
    pub seed: u64,
    pub timeout: Duration,
    pub graceful_stop: Duration,
    pub workers: usize,
    pub insecure: bool,
    pub quiet: bool,
    pub out_dir: PathBuf,
    pub tags: TagFilter,
    /// Loaded once here (files relative to the scenario); moved into the plan.
    pub feeders: Vec<Feeder>,
    /// A breaking-point search or a sweep instead of one load.
    pub levels: Option<Levels>,
    /// SLO gates: the scenario's `[thresholds]`, then `--threshold` ones.
    pub thresholds: Vec<Threshold>,
    /// How the run is compared with a baseline (the scenario's `[regression]` over the built-in rules).
    pub regression: RuleSet,
    /// Gate outputs: where the run is compared, stored, and reported for CI.
    pub outputs: GateOutputs,
    /// `--mock key=value` as given (already applied to the embedded mock), for the report.
    pub mock_settings: Vec<String>,
    /// Report files: formats rendered after the run, live logs written during it.
    pub files: OutputFiles,
    /// Prometheus: the live endpoint and the final push.
    pub prometheus: PrometheusOutputs,
    /// Stop a run whose first requests all fail the same non-transient way (`[load] fail_fast`,
    /// `--no-fail-fast`).
    pub fail_fast: bool,
    /// `--http-debug`: exchanges recorded per step into `http-debug.log`.
    pub http_debug: Option<u32>,
    /// `--repeat`: how many times the scenario runs (1: once, as without the flag).
    pub repeat: u32,
    /// This process's part of a distributed run; `None` runs the whole load.
    pub shard: Option<shard::Shard>,
    /// `--start-at`: no load is sent before this moment.
    pub start_at: Option<SystemTime>,
    /// `--abort-file` (or `RLT_ABORT_FILE`): the shards' shared stop signal.
    pub abort_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrometheusOutputs {
    /// Where `/metrics` is served while the run goes on.
    pub metrics_addr: Option<SocketAddr>,
    /// Pushgateway base URL (or a full `/metrics/job/...` grouping path), no trailing slash.
    pub pushgateway: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateOutputs {
    pub baseline: Option<PathBuf>,
    /// `--on-inconclusive`; `None`: exit 4.
    pub on_inconclusive: Option<crate::cli::OnInconclusive>,
    pub save_baseline: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub summary_md: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    /// A number flag out of its range, worded as clap words a bad value (`invalid value '0' for '--users <N>'`).
    #[error("invalid value '{value}' for '{flag}': {range}")]
    Value { flag: String, value: String, range: RangeError },
    /// The `mock` command's settings, as the mock words what it cannot serve.
    #[error("{0}")]
    Mock(MockConfigError),
    /// `--var` names no variable of the scenario, or a derived `[vars]` value does not render.
    #[error(transparent)]
    Vars(#[from] scenario::VarError),
    /// The shard identity or `--start-at`, worded with the flag or variable and the fix.
    #[error(transparent)]
    Shard(#[from] shard::ShardError),
}

/// The scenario as one run against one target sends it (`run` and `try` alike): `[mock] vars` when the
/// embedded mock is the target, `--var` over `[vars]`, derived vars rendered; then the key rule: a header's
/// unset `${env:NAME}` without a fallback is refused against a real target (before any load, naming the
/// variable and its line) and gets the stand-in key against the embedded mock.
pub fn bind_scenario(
    loaded: &mut LoadedScenario,
    vars: &[(String, String)],
    real_target: bool,
) -> Result<(), ConfigError> {
    scenario::resolve_vars(loaded, vars, !real_target)?;
    if real_target {
        loaded.check_header_keys()?;
    } else {
        loaded.stand_in_header_keys();
    }
    Ok(())
}

fn flag(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Flag { flag, message: message.into() }
}

impl RunConfig {
    /// The run flags over the scenario over the defaults, in named steps. `args` is destructured whole, so a
    /// flag added to `RunArgs` and not read here fails to compile instead of being silently ignored.
    pub fn resolve(args: RunArgs) -> Result<RunConfig, ConfigError> {
        let RunArgs {
            scenario,
            target,
            users,
            spawn_rate,
            duration,
            iterations,
            iterations_per_user,
            rate,
            arrival,
            max_in_flight,
            connections,
            stages,
            thresholds,
            sweep,
            hold,
            tags,
            exclude_tags,
            out,
            seed,
            timeout,
            graceful_stop,
            workers,
            insecure,
            quiet,
            scenarios,
            gate,
            mock_settings,
            headers,
            formats,
            ndjson,
            metrics_addr,
            pushgateway,
            no_fail_fast,
            vars,
            http_debug,
            repeat,
            shard,
            segment,
            segment_sequence,
            shard_count,
            start_at,
            abort_file,
        } = args;
        let shard_flags = shard::ShardFlags { shard, segment, segment_sequence, shard_count };
        let (shard, start_at) = shard::from_process(shard_flags, start_at).map_err(ConfigError::Shard)?;
        let load_flags = load::LoadFlags {
            users: flags::number("users", users, |t| limits::USERS.parse_u32(t))?,
            spawn_rate: flags::number("spawn_rate", spawn_rate, |t| limits::SPAWN_RATE.parse(t))?,
            iterations: flags::number("iterations", iterations, |t| limits::ITERATIONS.parse(t))?,
            iterations_per_user: flags::number("iterations_per_user", iterations_per_user, |t| {
                limits::ITERATIONS.parse(t)
            })?,
            rate: flags::number("rate", rate, |t| limits::RATE.parse(t))?,
            max_in_flight: flags::number("max_in_flight", max_in_flight, |t| limits::MAX_IN_FLIGHT.parse_u32(t))?,
            connections: flags::number("connections", connections, |t| limits::CONNECTIONS.parse_u32(t))?,
            arrival: arrival.map(arrival_kind),
            duration,
            stages,
            hold,
        };
        let workers = flags::number("workers", workers, |t| limits::WORKERS.parse(t).map(|w| w as usize))?;
        let repeat = flags::number("repeat", repeat, |t| limits::REPEAT.parse_u32(t))?.unwrap_or(1);
        flags::check_durations(duration, hold, timeout, graceful_stop)?;
        let mut loaded = scenario::load(&scenario::locate_scenario(&scenario, &scenarios.dir)?)?;
        flags::add_headers(&mut loaded, &headers)?;
        let load = load::model(&load_flags, &loaded)?;
        let levels = load::levels(&load_flags, sweep.as_deref(), &load, &loaded)?;
        check_repeat(repeat, levels.is_some(), sweep.is_some())?;
        check_shard_runs(shard.is_some(), repeat, levels.is_some(), sweep.is_some())?;
        let thresholds = gates(&loaded, &thresholds)?;
        let regression =
            crate::baseline::rule_set(&loaded.scenario.regression).map_err(|e| flag("[regression]", e.to_string()))?;
        // Shards must draw the same schedule: without --seed they all take 0 rather than their own clocks.
        let seed = seed.or(shard.as_ref().map(|_| 0)).unwrap_or_else(clock_seed);
        let target = resolve_target(target.as_deref(), &mock_settings, &loaded, seed)?;
        bind_scenario(&mut loaded, &vars, matches!(target, Target::Url(_)))?;
        let outputs = gate_outputs(&loaded, shard.is_some(), gate)?;
        let files = outputs::resolve(&formats, ndjson)?;
        // Both sources were range-checked: the flag above, the scenario's when it loaded.
        let timeout = timeout.or(loaded.scenario.defaults.timeout.map(|d| d.0)).unwrap_or(DEFAULT_TIMEOUT);
        let graceful_stop = graceful_stop.unwrap_or_else(|| timeout.min(Duration::from_secs(10)));
        let out_dir = out_dir(out, &loaded.name)?;
        let mut feeders = feeders(&loaded)?;
        shard::stripe_feeders(shard.as_ref(), &mut feeders);
        let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let fail_fast = !no_fail_fast && loaded.scenario.load.fail_fast.unwrap_or(true);
        let pushgateway = pushgateway.as_deref().map(|u| check_url("--pushgateway", u)).transpose()?;
        Ok(RunConfig {
            // Before `loaded` moves into the config.
            connections: load::connections(load_flags.connections, &loaded)?,
            scenario: loaded,
            target,
            load,
            seed,
            timeout,
            graceful_stop,
            workers,
            insecure,
            quiet,
            out_dir,
            tags: TagFilter { include: tags, exclude: exclude_tags },
            feeders,
            levels,
            thresholds,
            regression,
            outputs,
            mock_settings,
            files,
            prometheus: PrometheusOutputs { metrics_addr, pushgateway },
            fail_fast,
            http_debug: flags::number("http_debug", http_debug, |t| limits::HTTP_DEBUG.parse_u32(t))?,
            repeat,
            shard,
            start_at,
            abort_file,
        })
    }
}

fn arrival_kind(a: ArrivalArg) -> ArrivalKind {
    match a {
        ArrivalArg::Constant => ArrivalKind::Constant,
        ArrivalArg::Poisson => ArrivalKind::Poisson,
    }
}

/// Without --seed: the clock's nanoseconds, a different workload each run.
fn clock_seed() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A sweep's levels are already a series of runs, each judged on its own: repeating them is another experiment
/// (a level's median over repeats), not this one.
fn check_repeat(repeat: u32, levels: bool, sweep: bool) -> Result<(), ConfigError> {
    if repeat > 1 && levels {
        let what = if sweep { "--sweep" } else { "the scenario's [load.breaking_point]" };
        return Err(flag("--repeat", format!("cannot be combined with {what}; run the levels once, or drop them")));
    }
    Ok(())
}

/// A shard sends a part of the load: compared with a baseline (or saved as one) it would judge a part as if it
/// were the whole, the per-runner verdict k6-operator users get. `merge` compares the merged result once.
fn check_shard_gate(shard: bool, outputs: &GateOutputs) -> Result<(), ConfigError> {
    if !shard {
        return Ok(());
    }
    let (name, flag_name) = match (&outputs.baseline, &outputs.save_baseline) {
        (Some(_), _) => ("--baseline", "--baseline FILE"),
        (_, Some(_)) => ("--save-baseline", "--save-baseline FILE"),
        _ => return Ok(()),
    };
    Err(flag(
        name,
        format!("a shard runs part of the load; give {flag_name} to `merge`, which judges the shards together"),
    ))
}

/// A shard runs one load for `merge` to add to the others. Levels and repeats are series of runs that `merge`
/// would flatten into one: each shard's breaking-point search would stop at its own level, and the merged
/// report would keep neither the levels nor the runs.
fn check_shard_runs(shard: bool, repeat: u32, levels: bool, sweep: bool) -> Result<(), ConfigError> {
    if !shard {
        return Ok(());
    }
    if levels {
        let (name, what) = if sweep {
            ("--sweep", "--sweep")
        } else {
            ("[load.breaking_point]", "the scenario's [load.breaking_point]")
        };
        return Err(flag(
            name,
            format!(
                "a shard cannot run {what}: the shards would break at different levels; run each level as its own \
                 sharded run (--rate or --users per level), or the levels on one machine"
            ),
        ));
    }
    if repeat > 1 {
        return Err(flag(
            "--repeat",
            "a shard cannot repeat its part: run the sharded run N times, merge each, and judge them with \
             `compare BASE merged-1 merged-2 ...`"
                .to_string(),
        ));
    }
    Ok(())
}

/// `--out`, or the scenario's default directory; never an existing file.
fn out_dir(out: Option<PathBuf>, scenario: &str) -> Result<PathBuf, ConfigError> {
    let dir = out.unwrap_or_else(|| default_out_dir(scenario));
    if dir.is_file() {
        return Err(flag("--out", format!("`{}` is a file; give a directory", dir.display())));
    }
    Ok(dir)
}

/// The scenario's `[thresholds]`, then the `--threshold` ones.
fn gates(loaded: &LoadedScenario, flags: &[String]) -> Result<Vec<Threshold>, ConfigError> {
    let mut gates = Vec::new();
    for (key, entries) in &loaded.scenario.thresholds {
        for e in entries {
            // Validated when the scenario loaded, so this cannot fail; mapped anyway rather than unwrapped.
            let mut t = crate::slo::parse(key, &e.expr).map_err(|e| flag("[thresholds]", e.to_string()))?;
            t.abort_on_fail = e.abort_on_fail;
            t.delay_abort_eval = e.delay_abort_eval.map_or(Duration::ZERO, |d| d.0);
            gates.push(t);
        }
    }
    for t in flags {
        let (key, expr) = split_threshold(t).ok_or_else(|| {
            flag("--threshold", format!("`{t}` is not `METRIC: EXPR`, e.g. 'latency{{step:chat}}: p(95) < 500ms'"))
        })?;
        gates.push(crate::slo::parse(key, expr).map_err(|e| flag("--threshold", e.to_string()))?);
    }
    Ok(gates)
}

/// `--target`, or the embedded mock set by the scenario and `--mock`.
fn resolve_target(
    url: Option<&str>,
    mock_settings: &[String],
    loaded: &LoadedScenario,
    seed: u64,
) -> Result<Target, ConfigError> {
    match url {
        Some(_) if !mock_settings.is_empty() => {
            Err(flag("--mock", "sets the embedded mock, which does not run with --target; drop one"))
        }
        Some(t) => Ok(Target::Url(check_url("--target", t)?)),
        None => {
            let mut m = mock_config(loaded, seed)?;
            apply_mock_settings(&mut m, mock_settings)?;
            Ok(Target::EmbeddedMock(Box::new(m)))
        }
    }
}

/// Where the run is compared, stored and reported for CI; the files are refused now if they are directories.
fn gate_outputs(loaded: &LoadedScenario, shard: bool, gate: GateArgs) -> Result<GateOutputs, ConfigError> {
    let GateArgs { baseline, on_inconclusive, save_baseline, junit, summary_md } = gate;
    let outputs = GateOutputs {
        on_inconclusive,
        // A report directory stands for the result.json in it.
        baseline: baseline.map(|p| if p.is_dir() { p.join("result.json") } else { p }),
        save_baseline: save_baseline.map(|p| p.unwrap_or_else(|| crate::baseline::default_path(&loaded.name))),
        junit: output_file("--junit", junit)?,
        summary_md: output_file("--summary-md", summary_md)?,
    };
    if let Some(p) = &outputs.save_baseline {
        output_file("--save-baseline", Some(p.clone()))?;
    }
    check_shard_gate(shard, &outputs)?;
    Ok(outputs)
}

/// The scenario's feeders, loaded once here (files relative to the scenario).
fn feeders(loaded: &LoadedScenario) -> Result<Vec<Feeder>, ScenarioError> {
    let base_dir = loaded.path.parent().unwrap_or(Path::new("."));
    loaded
        .scenario
        .feeders
        .iter()
        .map(|spec| {
            Feeder::load(spec, base_dir).map_err(|message| {
                let at = loaded.source.find(&format!("\"{}\"", spec.name));
                ScenarioError::at(&loaded.path, &loaded.source, at, message.to_string())
            })
        })
        .collect()
}

/// A file the run will write: refused now if it is a directory, rather than after the run.
fn output_file(name: &'static str, p: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    match p {
        Some(p) if p.is_dir() => Err(flag(name, format!("`{}` is a directory; give a file path", p.display()))),
        other => Ok(other),
    }
}

/// `--mock key=value`: each setting as if written in the scenario's `[mock]` table (`token_delay=12ms`,
/// `error_rate=0.1`); a value that is not TOML is taken as a string.
pub fn apply_mock_settings(m: &mut MockConfig, settings: &[String]) -> Result<(), ConfigError> {
    if settings.is_empty() {
        return Ok(());
    }
    let mut doc = String::new();
    for kv in settings {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| flag("--mock", format!("`{kv}` is not KEY=VALUE, e.g. token_delay=12ms")))?;
        let (k, v) = (k.trim(), v.trim());
        let line = if toml::from_str::<toml::Table>(&format!("x = {v}")).is_ok() {
            format!("{k} = {v}\n")
        } else {
            format!("{k} = {}\n", toml::Value::String(v.to_string()))
        };
        doc.push_str(&line);
    }
    let parsed: crate::mock::MockSettings = toml::from_str(&doc)
        .map_err(|e| flag("--mock", format!("{}; the keys are those of the [mock] table", e.message())))?;
    if parsed.vars.is_some() {
        return Err(flag("--mock", "`vars` sets the scenario's [vars]; use --var KEY=VALUE"));
    }
    m.apply(&parsed).map_err(|e| flag("--mock", e.to_string()))
}

/// `mock`: the scenario's mock (`--scenario`) or the defaults, then each flag given over it.
pub fn mock_from_args(a: MockArgs) -> Result<MockConfig, ConfigError> {
    let MockArgs {
        port: _,
        host: _,
        output_tokens,
        first_token_delay,
        token_delay,
        error_rate,
        error_status,
        seed,
        scenario,
        settings,
        scenarios,
    } = a;
    let seed = seed.unwrap_or(0);
    let mut m = match scenario {
        Some(name) => {
            let path = scenario::locate_scenario(&name, &scenarios.dir)?;
            mock_config(&scenario::load(&path)?, seed)?
        }
        None => MockConfig { seed, ..MockConfig::default() },
    };
    m.output_tokens = output_tokens.unwrap_or(m.output_tokens);
    m.first_token_delay = first_token_delay.unwrap_or(m.first_token_delay);
    m.token_delay = token_delay.unwrap_or(m.token_delay);
    m.error_rate = error_rate.unwrap_or(m.error_rate);
    m.error_status = error_status.unwrap_or(m.error_status);
    m.validate().map_err(ConfigError::Mock)?;
    apply_mock_settings(&mut m, &settings).map_err(|e| match e {
        ConfigError::Flag { flag: "--mock", message } => flag("--set", message),
        other => other,
    })?;
    Ok(m)
}

/// The embedded mock for a scenario: defaults, then the scenario's `[aliases]`, then its `[mock]` table.
pub fn mock_config(loaded: &LoadedScenario, seed: u64) -> Result<MockConfig, ScenarioError> {
    let s = &loaded.scenario;
    let mut m = MockConfig { seed, ..MockConfig::default() };
    for (name, tiers) in &s.aliases {
        m.aliases.retain(|a| &a.name != name);
        m.aliases.push(Alias { name: name.clone(), tiers: tiers.clone() });
    }
    m.apply(&s.mock).map_err(|message| {
        let at = loaded.source.find("[mock]");
        ScenarioError::at(&loaded.path, &loaded.source, at, message.to_string())
    })?;
    Ok(m)
}

pub fn check_url(name: &'static str, t: &str) -> Result<String, ConfigError> {
    let bad = || flag(name, format!("`{t}` is not an http(s) URL; use e.g. http://127.0.0.1:8000"));
    let url = url::Url::parse(t).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(t.trim_end_matches('/').to_string())
}

/// `reports/<scenario>-<UTC timestamp>`, e.g. `reports/stress-20261123T101500Z`.
pub fn default_out_dir(scenario: &str) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let safe: String =
        scenario.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Path::new("reports").join(format!("{safe}-{stamp}"))
}

/// The target as it may be shown: user and password of the URL removed.
pub fn display_target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
