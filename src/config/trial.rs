//! `TryConfig::resolve`: what `try` needs of the flags and the scenario (target, variables, timeout, data),
//! checked by the same rules as `run`'s. The load settings are not read: `try` sends one iteration per class.

use std::time::{Duration, SystemTime};

use super::{ConfigError, DEFAULT_TIMEOUT, Target, feeders, flags, resolve_target};
use crate::cli::TryArgs;
use crate::scenario::feeder::Feeder;
use crate::scenario::{self, LoadedScenario};

#[derive(Debug)]
pub struct TryConfig {
    /// With `--var` values already set in its `[vars]`.
    pub scenario: LoadedScenario,
    pub target: Target,
    pub seed: u64,
    pub timeout: Duration,
    pub insecure: bool,
    pub feeders: Vec<Feeder>,
}

impl TryConfig {
    pub fn resolve(args: TryArgs) -> Result<TryConfig, ConfigError> {
        let TryArgs { scenario, target, vars, headers, timeout, insecure, seed, mock_settings, scenarios } = args;
        flags::check_durations(None, None, timeout, None)?;
        let mut loaded = scenario::load(&scenario::locate_scenario(&scenario, &scenarios.dir)?)?;
        flags::add_headers(&mut loaded, &headers)?;
        // A fresh seed per try, as per run: ids drawn from it (a user name to register) must not repeat.
        let seed = seed.unwrap_or_else(|| {
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        let target = resolve_target(target.as_deref(), &mock_settings, &loaded, seed)?;
        super::bind_scenario(&mut loaded, &vars, matches!(target, Target::Url(_)))?;
        let timeout = timeout.or(loaded.scenario.defaults.timeout.map(|d| d.0)).unwrap_or(DEFAULT_TIMEOUT);
        let feeders = feeders(&loaded)?;
        Ok(TryConfig { scenario: loaded, target, seed, timeout, insecure, feeders })
    }
}
