//! Range checks of the numbers given on the command line (the same table as the scenario's, `crate::limits`;
//! clap only keeps their text), and the conversion of range-checked scenario numbers to the engine's types,
//! which never clamps.

use std::time::Duration;

use toml::Spanned;

use super::{ConfigError, flag};
use crate::cli::{self, NumberArg};
use crate::engine::{Arrival, LevelKind, Levels, Stage};
use crate::limits::{self, Count, RangeError};
use crate::scenario::{LoadedScenario, ScenarioError, TemplateSet};

/// A number flag read against its range; the error names the flag as clap does (`'--users <N>'`).
pub(super) fn number<T>(
    id: &str,
    v: Option<NumberArg>,
    parse: impl Fn(&str) -> Result<T, RangeError>,
) -> Result<Option<T>, ConfigError> {
    let Some(NumberArg(text)) = v else { return Ok(None) };
    match parse(&text) {
        Ok(n) => Ok(Some(n)),
        Err(range) => Err(ConfigError::Value { flag: cli::run_flag(id), value: text, range }),
    }
}

/// The duration flags within their ranges (clap's parser reads any duration up to 30 days, zero included).
pub(super) fn check_durations(
    duration: Option<Duration>,
    hold: Option<Duration>,
    timeout: Option<Duration>,
    graceful_stop: Option<Duration>,
) -> Result<(), ConfigError> {
    let named = |name: &'static str| move |e: RangeError| flag(name, e.to_string());
    for (name, d) in [("--duration", duration), ("--hold", hold), ("--timeout", timeout)] {
        if let Some(d) = d {
            limits::positive_duration(d).map_err(named(name))?;
        }
    }
    if let Some(d) = graceful_stop {
        limits::duration(d).map_err(named("--graceful-stop"))?;
    }
    Ok(())
}

/// A whole-number scenario key, checked when the file loaded, as the engine's type; an error (never a
/// fallback) names the line should the check ever be missed.
pub(super) fn scenario_count(
    loaded: &LoadedScenario,
    v: &Option<Spanned<i64>>,
    range: Count,
) -> Result<Option<u64>, ScenarioError> {
    let Some(v) = v else { return Ok(None) };
    range
        .check_i64(*v.get_ref())
        .map(Some)
        .map_err(|e| ScenarioError::at(&loaded.path, &loaded.source, Some(v.span().start), e.to_string()))
}

/// The scenario's `stages` as user targets (whole numbers, checked when the file loaded).
pub(super) fn user_stages(loaded: &LoadedScenario) -> Result<Vec<Stage>, ScenarioError> {
    loaded
        .scenario
        .load
        .stages
        .iter()
        .map(|st| {
            let target =
                limits::STAGE_USERS.check_f64(*st.target.get_ref()).and_then(|t| limits::STAGE_USERS.narrow(t));
            let at = |e: RangeError| {
                let msg = format!("`stages.target` {e}");
                ScenarioError::at(&loaded.path, &loaded.source, Some(st.target.span().start), msg)
            };
            Ok(Stage { target: target.map_err(at)?, duration: st.duration.0 })
        })
        .collect()
}

/// `--header 'NAME: VALUE'`: each replaces the scenario's `[defaults]` header of that name (in any case) or adds
/// one, so a gateway's routing headers reach every request without editing the scenario. A step's own header
/// of the same name still wins, as it does over `[defaults]`. Errors name the header, never its value (a key).
pub(super) fn add_headers(loaded: &mut LoadedScenario, headers: &[String]) -> Result<(), ConfigError> {
    for given in headers {
        let Some((name, value)) = given.split_once(':') else {
            return Err(flag("--header", "expected NAME: VALUE, e.g. -H 'x-portkey-provider: openai' (no `:` found)"));
        };
        let (name, value) = (name.trim(), value.trim());
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(flag("--header", format!("`{name}` is not a valid header name")));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(flag("--header", format!("the value of `{name}` is not valid in an HTTP header")));
        }
        // The scenario's headers are templates; a flag's value is sent as given.
        if TemplateSet::is_template(value) {
            let message = format!("the value of `{name}` contains `{{{{` or `{{%`, which would be read as a template");
            return Err(flag("--header", message));
        }
        let defaults = &mut loaded.scenario.defaults.headers;
        defaults.retain(|k, _| !k.eq_ignore_ascii_case(name));
        defaults.insert(name.to_ascii_lowercase(), value.to_string());
    }
    Ok(())
}

/// `users=5,10,20` or `rate=10,50`: increasing levels, each within the range of its kind.
pub(super) fn parse_sweep(
    spec: &str,
    hold: Duration,
    arrival: Arrival,
    max_in_flight: u32,
) -> Result<Levels, ConfigError> {
    let bad = || flag("--sweep", format!("`{spec}` is not `users=5,10,20` or `rate=10,50,100` (increasing levels)"));
    let (kind, list) = spec.split_once('=').ok_or_else(bad)?;
    type Level = fn(&str) -> Result<f64, RangeError>;
    let (kind, level): (_, Level) = match kind.trim() {
        "users" => (LevelKind::Users, |v| limits::USERS.parse(v).map(|u| u as f64)),
        "rate" => (LevelKind::Rate, |v| limits::RATE.parse(v)),
        _ => return Err(bad()),
    };
    let values = list
        .split(',')
        .map(|v| level(v).map_err(|e| flag("--sweep", format!("level {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if values.windows(2).any(|w| w[1] <= w[0]) {
        return Err(bad());
    }
    limits::positive_duration(hold).map_err(|e| flag("--hold", e.to_string()))?;
    Ok(Levels { kind, values, hold, limits: None, arrival, max_in_flight, min_sustainable: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(spec: &str) -> Result<Levels, String> {
        parse_sweep(spec, Duration::from_secs(1), Arrival::Constant, 10).map_err(|e| e.to_string())
    }

    #[test]
    fn sweep_levels_are_in_range() {
        assert_eq!(sweep("users=1,5,100000").unwrap().values, vec![1.0, 5.0, 100_000.0]);
        assert_eq!(sweep("rate=0.5,1e6").unwrap().values, vec![0.5, 1e6]);
        assert_eq!(
            sweep("users=4294967296").unwrap_err(),
            "--sweep: level must be a whole number from 1 to 100000, got 4294967296"
        );
        assert!(sweep("users=0.5").unwrap_err().contains("whole number"));
        assert!(sweep("users=0").unwrap_err().contains("from 1 to 100000"));
        assert!(sweep("rate=1e-300").unwrap_err().contains("from 0.001 to 1000000"));
        assert!(sweep("rate=nan").unwrap_err().starts_with("--sweep: level must be"));
        assert!(sweep("users=5,2").unwrap_err().contains("increasing"));
        assert!(sweep("cpu=5").is_err());
        let e = parse_sweep("users=1", Duration::ZERO, Arrival::Constant, 1).unwrap_err().to_string();
        assert!(e.starts_with("--hold: must be longer than zero"), "{e}");
    }
}
