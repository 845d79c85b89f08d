//! `RunConfig::resolve`: merges command-line overrides, the scenario file and defaults (CLI > TOML > defaults)
//! into one validated configuration. Reads files; writes nothing.

mod flags;
mod outputs;

pub use outputs::{OutputFiles, report_formats};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::{
    Arrival, BreakLimits, ClosedLoad, LevelKind, Levels, LoadModel, OpenLoad, RateStage, TagFilter, parse_plan,
    stages_peak, stages_total,
};
use crate::limits;
use crate::mock::{Alias, MockConfig};
use crate::result::RuleSet;
pub use crate::scenario::ArrivalKind;
use crate::scenario::feeder::Feeder;
use crate::scenario::{self, LoadedScenario, ScenarioError};
use crate::slo::Threshold;

pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

/// `latency{step:a}: p(95) < 1s` → key and expression (the selector may contain colons).
fn split_threshold(s: &str) -> Option<(&str, &str)> {
    let from = s.find('}').unwrap_or(0);
    let colon = from + s.get(from..)?.find(':')?;
    Some((s[..colon].trim(), s[colon + 1..].trim()))
}

/// Everything the command line can say about a run, free of clap types.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub scenario: String,
    pub scenarios_dir: PathBuf,
    pub target: Option<String>,
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub duration: Option<Duration>,
    pub iterations: Option<u64>,
    pub rate: Option<f64>,
    pub arrival: Option<ArrivalKind>,
    pub max_in_flight: Option<u32>,
    pub iterations_per_user: Option<u64>,
    /// `metric{selector}: expression` gates added to the scenario's `[thresholds]`.
    pub thresholds: Vec<String>,
    /// Goose test plan `"10,1m;10,5m;0,30s"`: ramping users.
    pub stages: Option<String>,
    /// `users=5,10,20` or `rate=10,50,100`: run each level for `hold`, without stopping at a break.
    pub sweep: Option<String>,
    pub hold: Option<Duration>,
    pub tags: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub timeout: Option<Duration>,
    pub graceful_stop: Option<Duration>,
    pub workers: Option<usize>,
    pub insecure: bool,
    pub quiet: bool,
    /// Compare the run with this stored result.
    pub baseline: Option<PathBuf>,
    /// Store this run as a baseline: `Some(None)` for `baselines/<scenario>.json`.
    pub save_baseline: Option<Option<PathBuf>>,
    pub junit: Option<PathBuf>,
    pub summary_md: Option<PathBuf>,
    /// `key=value` settings of the embedded mock on top of the scenario's `[mock]` table.
    pub mock_settings: Vec<String>,
    /// `--format` names (`json`, `csv`, `md`, `junit`, `hlog`); empty for the defaults.
    pub formats: Vec<String>,
    /// One JSON object per second, written while the run goes on.
    pub ndjson: Option<PathBuf>,
    /// Serve the Prometheus exposition here during the run.
    pub metrics_addr: Option<SocketAddr>,
    /// Push the final values to this Pushgateway.
    pub pushgateway: Option<String>,
    /// `--no-fail-fast`: run the whole load even when every first request fails the same way.
    pub no_fail_fast: bool,
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
}

fn flag(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Flag { flag, message: message.into() }
}

impl RunConfig {
    pub fn resolve(o: Overrides) -> Result<RunConfig, ConfigError> {
        flags::check(&o)?;
        let Overrides {
            scenario,
            scenarios_dir,
            target,
            users,
            spawn_rate,
            duration,
            iterations,
            rate,
            arrival,
            max_in_flight,
            iterations_per_user,
            thresholds,
            stages,
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
            baseline,
            save_baseline,
            junit,
            summary_md,
            mock_settings,
            formats,
            ndjson,
            metrics_addr,
            pushgateway,
            no_fail_fast,
        } = o;
        let path = scenario::locate_scenario(&scenario, &scenarios_dir)?;
        let loaded = scenario::load(&path)?;
        let s = &loaded.scenario;

        let cli_duration = duration;
        let toml_users = flags::scenario_count(&loaded, &s.load.users, limits::USERS)?.map(|u| u as u32);
        let toml_iterations = flags::scenario_count(&loaded, &s.load.iterations, limits::ITERATIONS)?;
        let iterations = iterations.or(toml_iterations);
        let duration = duration.or(s.load.duration.as_ref().map(|d| d.get_ref().0)).or(if iterations.is_none() {
            Some(DEFAULT_DURATION)
        } else {
            None
        });
        if users.is_some() && rate.is_some() {
            return Err(flag("--rate", "give --users (closed model) or --rate (open model), not both"));
        }
        let toml_rate = s.load.rate.as_ref().map(|r| *r.get_ref());
        // The command line picks the model when it names one; otherwise the scenario does.
        let rate_flag = rate;
        let open_rate = match (users, rate) {
            (Some(_), _) => None,
            (None, Some(r)) => Some(r),
            (None, None) => toml_rate,
        };
        let load = match open_rate {
            Some(rate) => {
                // The file's stages ramp the file's rate; a rate from the command line is held flat.
                if iterations_per_user.is_some() {
                    return Err(flag("--iterations-per-user", "applies to the closed model (--users), not to --rate"));
                }
                let rate_from_file = rate_flag.is_none();
                let rate_stages: Vec<RateStage> = if rate_from_file {
                    s.load
                        .stages
                        .iter()
                        .map(|st| RateStage { target: *st.target.get_ref(), duration: st.duration.0 })
                        .collect()
                } else {
                    Vec::new()
                };
                let rate_total: Duration = rate_stages.iter().map(|s| s.duration).sum();
                if spawn_rate.is_some() {
                    return Err(flag(
                        "--spawn-rate",
                        "applies to the closed model (--users); the open model starts at --rate",
                    ));
                }
                LoadModel::Open(OpenLoad {
                    rate,
                    arrival: match arrival.or(s.load.arrival) {
                        Some(ArrivalKind::Poisson) => Arrival::Poisson,
                        Some(ArrivalKind::Constant) | None => Arrival::Constant,
                    },
                    max_in_flight: match max_in_flight {
                        Some(m) => m,
                        None => flags::scenario_count(&loaded, &s.load.max_in_flight, limits::MAX_IN_FLIGHT)?
                            .map_or(DEFAULT_MAX_IN_FLIGHT, |m| m as u32),
                    },
                    duration: if rate_stages.is_empty() { duration } else { cli_duration.or(Some(rate_total)) },
                    iterations,
                    stages: rate_stages,
                })
            }
            None => {
                // Stages from the command line, else from the file unless --users overrides it.
                let stages = match stages {
                    Some(plan) => parse_plan(&plan).map_err(|e| flag("--stages", e.to_string()))?,
                    None if users.is_none() => flags::user_stages(&loaded)?,
                    None => Vec::new(),
                };
                let peak = (!stages.is_empty()).then(|| stages_peak(&stages));
                if peak == Some(0) {
                    return Err(flag("--stages", "the plan never starts a user: give a stage a target of at least 1"));
                }
                LoadModel::Closed(ClosedLoad {
                    users: peak.or(users).or(toml_users).unwrap_or(1),
                    spawn_rate: spawn_rate.or(s.load.spawn_rate.as_ref().map(|r| *r.get_ref())),
                    duration: if stages.is_empty() { duration } else { cli_duration.or(Some(stages_total(&stages))) },
                    iterations,
                    stages,
                    iterations_per_user: match iterations_per_user {
                        Some(i) => Some(i),
                        None => flags::scenario_count(&loaded, &s.load.iterations_per_user, limits::ITERATIONS)?,
                    },
                })
            }
        };

        let (base_arrival, base_in_flight) = match &load {
            LoadModel::Open(o) => (o.arrival, o.max_in_flight),
            LoadModel::Closed(_) => (Arrival::Constant, DEFAULT_MAX_IN_FLIGHT),
        };
        let levels = match (sweep, &s.load.breaking_point) {
            (Some(spec), _) => {
                Some(flags::parse_sweep(&spec, hold.unwrap_or(DEFAULT_HOLD), base_arrival, base_in_flight)?)
            }
            (None, Some(bp)) => {
                let b = bp.get_ref();
                let (kind, values) = match (&b.users, &b.rate) {
                    (Some(u), _) => (LevelKind::Users, u.iter().map(|&x| f64::from(x)).collect()),
                    (None, Some(r)) => (LevelKind::Rate, r.clone()),
                    (None, None) => (LevelKind::Users, Vec::new()),
                };
                Some(Levels {
                    kind,
                    values,
                    hold: hold.unwrap_or(b.hold.0),
                    limits: Some(BreakLimits {
                        max_error_rate: b.max_error_rate.unwrap_or(0.01),
                        max_p95: b.max_p95.map(|d| d.0),
                    }),
                    arrival: base_arrival,
                    max_in_flight: base_in_flight,
                    min_sustainable: b.min_sustainable,
                })
            }
            (None, None) => None,
        };

        let mut gates = Vec::new();
        for (key, entries) in &s.thresholds {
            for e in entries {
                // Validated when the scenario loaded, so this cannot fail; mapped anyway rather than unwrapped.
                let mut t = crate::slo::parse(key, &e.expr).map_err(|e| flag("[thresholds]", e.to_string()))?;
                t.abort_on_fail = e.abort_on_fail;
                t.delay_abort_eval = e.delay_abort_eval.map_or(Duration::ZERO, |d| d.0);
                gates.push(t);
            }
        }
        let regression = crate::baseline::rule_set(&s.regression).map_err(|e| flag("[regression]", e))?;
        for t in &thresholds {
            let (key, expr) = split_threshold(t).ok_or_else(|| {
                flag("--threshold", format!("`{t}` is not `METRIC: EXPR`, e.g. 'latency{{step:chat}}: p(95) < 500ms'"))
            })?;
            gates.push(crate::slo::parse(key, expr).map_err(|e| flag("--threshold", e.to_string()))?);
        }

        let seed = seed.unwrap_or_else(|| {
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        let target = match target {
            Some(_) if !mock_settings.is_empty() => {
                return Err(flag("--mock", "sets the embedded mock, which does not run with --target; drop one"));
            }
            Some(t) => Target::Url(check_url("--target", &t)?),
            None => {
                let mut m = mock_config(&loaded, seed)?;
                apply_mock_settings(&mut m, &mock_settings)?;
                Target::EmbeddedMock(Box::new(m))
            }
        };
        let outputs = GateOutputs {
            // A report directory stands for the result.json in it.
            baseline: baseline.map(|p| if p.is_dir() { p.join("result.json") } else { p }),
            save_baseline: save_baseline.map(|p| p.unwrap_or_else(|| crate::baseline::default_path(&loaded.name))),
            junit: output_file("--junit", junit)?,
            summary_md: output_file("--summary-md", summary_md)?,
        };
        if let Some(p) = &outputs.save_baseline {
            output_file("--save-baseline", Some(p.clone()))?;
        }
        let files = outputs::resolve(&formats, ndjson)?;
        // Both sources were range-checked: the flag above, the scenario's when it loaded.
        let timeout = timeout.or(s.defaults.timeout.map(|d| d.0)).unwrap_or(DEFAULT_TIMEOUT);
        let graceful_stop = graceful_stop.unwrap_or_else(|| timeout.min(Duration::from_secs(10)));
        let out_dir = out.unwrap_or_else(|| default_out_dir(&loaded.name));
        if out_dir.is_file() {
            return Err(flag("--out", format!("`{}` is a file; give a directory", out_dir.display())));
        }
        let base_dir = loaded.path.parent().unwrap_or(Path::new("."));
        let mut feeders = Vec::new();
        for spec in &s.feeders {
            let f = Feeder::load(spec, base_dir).map_err(|message| {
                let at = loaded.source.find(&format!("\"{}\"", spec.name));
                ScenarioError::at(&loaded.path, &loaded.source, at, message.to_string())
            })?;
            feeders.push(f);
        }
        let workers = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let fail_fast = !no_fail_fast && s.load.fail_fast.unwrap_or(true);
        Ok(RunConfig {
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
            thresholds: gates,
            regression,
            outputs,
            mock_settings,
            files,
            prometheus: PrometheusOutputs {
                metrics_addr,
                pushgateway: pushgateway.as_deref().map(|u| check_url("--pushgateway", u)).transpose()?,
            },
            fail_fast,
        })
    }
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
    m.apply(&parsed).map_err(|e| flag("--mock", e))
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
        ScenarioError::at(&loaded.path, &loaded.source, at, message)
    })?;
    Ok(m)
}

fn check_url(name: &'static str, t: &str) -> Result<String, ConfigError> {
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
