//! [`MockSettings`]: the `[mock]` table of a scenario file, every key optional, overlaid on a
//! [`MockConfig`](super::MockConfig) by `MockConfig::apply`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::config::RateLimit;

/// The `[mock]` table of a scenario file. Durations are strings such as `"250ms"` or `"2s"`, or numbers of
/// seconds.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    pub output_tokens: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    pub first_token_delay: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub token_delay: Option<Duration>,
    pub error_rate: Option<f64>,
    pub error_status: Option<u16>,
    #[serde(default, deserialize_with = "duration")]
    pub retry_after: Option<Duration>,
    pub reasoning_tokens: Option<u32>,
    pub react_steps: Option<u32>,
    pub tier_failure_rate: Option<f64>,
    pub failing_tiers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub fallback_penalty: Option<Duration>,
    pub stall_rate: Option<f64>,
    #[serde(default, deserialize_with = "duration")]
    pub stall: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub outage_after: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub outage: Option<Duration>,
    pub max_concurrency: Option<u32>,
    pub reset_rate: Option<f64>,
    pub malformed_rate: Option<f64>,
    pub midstream_error_rate: Option<f64>,
    pub no_done_rate: Option<f64>,
    pub auth_required: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    pub tool_latency: Option<Duration>,
    /// `{ requests_per_second = 5.0, burst = 5 }`.
    pub rate_limit: Option<RateLimit>,
    /// `alias = ["tier1", "tier2"]`; when given, it replaces the default aliases.
    pub aliases: Option<BTreeMap<String, Vec<String>>>,
    /// `model = { first_token_delay = "20ms", token_delay = "5ms" }`.
    pub model_latency: Option<BTreeMap<String, LatencySettings>>,
    /// Values of the scenario's `[vars]` when the embedded mock is the target (`coding_model = "coding_agent"`
    /// picks the mock's alias with fallback tiers); read by `config`, the mock itself has no use for them.
    pub vars: Option<BTreeMap<String, String>>,
}

/// One entry of `[mock.model_latency]`; a missing delay keeps the global one.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySettings {
    #[serde(default, deserialize_with = "duration")]
    pub first_token_delay: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub token_delay: Option<Duration>,
}

/// What a duration may be written as; untagged so that both forms share one clear error message.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Text(String),
    Seconds(f64),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let bad = |shown: &str| serde::de::Error::custom(format!("invalid duration `{shown}`: use e.g. \"500ms\""));
    match RawDuration::deserialize(d).map_err(|_| bad("(not a string or number)"))? {
        RawDuration::Text(text) => humantime::parse_duration(text.trim()).map(Some).map_err(|_| bad(&text)),
        RawDuration::Seconds(secs) => Duration::try_from_secs_f64(secs).map(Some).map_err(|_| bad(&secs.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Alias, MockConfig, ModelLatency, RateLimit};
    use super::*;

    const FULL: &str = r#"
        output_tokens = 12
        first_token_delay = "30ms"
        token_delay = 0.005
        error_rate = 0.1
        error_status = 503
        reasoning_tokens = 4
        react_steps = 3
        tier_failure_rate = 0.25
        failing_tiers = ["coding_tier_3"]
        fallback_penalty = "7ms"
        stall_rate = 0.1
        stall = "1s"
        reset_rate = 0.1
        malformed_rate = 0.1
        midstream_error_rate = 0.1
        no_done_rate = 0.1
        auth_required = true
        tool_latency = 2
        rate_limit = { requests_per_second = 5.0, burst = 5 }
        aliases = { fast = ["small"], smart = ["big", "small"] }
        [model_latency]
        big = { first_token_delay = "200ms", token_delay = "20ms" }
        small = { token_delay = "1ms" }
    "#;

    #[test]
    fn a_full_table_parses_and_applies() {
        let s: MockSettings = toml::from_str(FULL).unwrap();
        assert_eq!(s.token_delay, Some(Duration::from_millis(5)));
        assert_eq!(s.tool_latency, Some(Duration::from_secs(2)));
        let mut c = MockConfig::default();
        c.apply(&s).unwrap();
        assert_eq!(c.output_tokens, 12);
        assert_eq!(c.first_token_delay, Duration::from_millis(30));
        assert_eq!((c.error_rate, c.error_status, c.reasoning_tokens, c.react_steps), (0.1, 503, 4, 3));
        assert_eq!(c.failing_tiers, ["coding_tier_3"]);
        assert_eq!(c.fallback_penalty, Duration::from_millis(7));
        assert_eq!(c.stall, Duration::from_secs(1));
        assert!(c.auth_required);
        assert_eq!(c.rate_limit, Some(RateLimit { requests_per_second: 5.0, burst: 5 }));
        let tiers = |v: &[&str]| v.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            c.aliases,
            [
                Alias { name: "fast".into(), tiers: tiers(&["small"]) },
                Alias { name: "smart".into(), tiers: tiers(&["big", "small"]) }
            ]
        );
        assert_eq!(
            c.model_latency,
            [
                ModelLatency {
                    model: "big".into(),
                    first_token_delay: Duration::from_millis(200),
                    token_delay: Duration::from_millis(20)
                },
                ModelLatency {
                    model: "small".into(),
                    first_token_delay: Duration::from_millis(30),
                    token_delay: Duration::from_millis(1)
                },
            ]
        );
        // An empty table changes nothing.
        let mut d = MockConfig::default();
        d.apply(&toml::from_str("").unwrap()).unwrap();
        assert_eq!(d, MockConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_rejected() {
        let err = toml::from_str::<MockSettings>("output_tokenz = 3").unwrap_err().to_string();
        assert!(err.contains("output_tokenz"), "{err}");
        let err = toml::from_str::<MockSettings>("rate_limit = { requests_per_second = 1.0, burst = 1, x = 1 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains('x'), "{err}");
        for bad in [
            r#"stall = "soon""#,
            "stall = -1",
            "stall = true",
            r#"[model_latency.m]
            token_delay = "5 parsecs""#,
        ] {
            let err = toml::from_str::<MockSettings>(bad).unwrap_err().to_string();
            assert!(err.contains("invalid duration `") && err.contains(r#"use e.g. "500ms""#), "{bad}: {err}");
        }
        let err = toml::from_str::<MockSettings>(r#"stall = "soon""#).unwrap_err().to_string();
        assert!(err.contains("`soon`"), "{err}");
    }

    #[test]
    fn apply_rejects_out_of_range_values_and_keeps_the_config() {
        let cases = [
            ("error_rate = 1.5", "error_rate"),
            ("tier_failure_rate = -0.1", "tier_failure_rate"),
            ("no_done_rate = nan", "no_done_rate"),
            ("stall_rate = 0.6\nreset_rate = 0.6", "must not exceed 1"),
            ("error_status = 99", "error_status"),
            ("error_status = 600", "error_status"),
            ("rate_limit = { requests_per_second = 0.0, burst = 1 }", "requests_per_second"),
            ("rate_limit = { requests_per_second = 1.0, burst = 0 }", "burst"),
            ("aliases = { empty = [] }", "aliases.empty"),
            (r#"stall = "2days""#, "stall"),
        ];
        for (toml_text, key) in cases {
            let s: MockSettings = toml::from_str(toml_text).unwrap();
            let mut c = MockConfig::default();
            let err = c.apply(&s).unwrap_err().to_string();
            assert!(err.contains(key) && !err.contains('\n'), "{toml_text}: {err}");
            assert_eq!(c, MockConfig::default());
        }
    }
}
