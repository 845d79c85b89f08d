//! The scenario file format (TOML v1): schema types with `deny_unknown_fields`, loading with file:line:col
//! errors, `${env:NAME}` expansion and `{{ var }}` templates. Owns the schema; runs nothing.

mod bytesize;
mod env;
pub mod feeder;
mod gates;
mod load;
mod model;
mod ranges;
mod template;
mod validate;
mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::baseline::RegressionTable;

pub use bytesize::{ByteSize, MAX_MAX_BODY, MIN_MAX_BODY};
pub use env::{EnvError, expand_env, referenced_names, secret_values};
pub use gates::ThresholdEntry;
pub use load::{LoadedScenario, ScenarioError, list_dir, load, locate_scenario, parse};
pub use model::{LoadKeys, ModelConflict};
pub use template::{Ctx, TemplateSet, Text};
pub use validate::condition_template;
pub use vars::{STAND_IN_KEY, VarError, render_with_vars, resolve_vars};

/// Variables every template may use without a capture or `[vars]` entry.
pub const BUILTIN_VARS: &[&str] = &["user_id", "iteration", "random_id", "uuid", "timestamp_ms", "scenario"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The scenario only makes sense against the embedded mock (its point is a fault the mock injects);
    /// `list` marks it.
    #[serde(default)]
    pub mock_only: bool,
    #[serde(default)]
    pub load: Load,
    #[serde(default)]
    pub defaults: Defaults,
    /// Constants available to every template.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserClass>,
    #[serde(default)]
    /// Settings of the embedded mock gateway when no `--target` is given.
    pub mock: crate::mock::MockSettings,
    /// k6-style thresholds: `"metric{selector}" = ["p(95) < 2s", { threshold = "...", abort_on_fail = true }]`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<ThresholdEntry>>,
    /// How a run is compared with a baseline: per-metric tolerances and the noise test's confidence.
    #[serde(default)]
    pub regression: RegressionTable,
    /// Gateway model aliases in fallback order: `coding_agent = ["coding_tier_3", "coding_tier_2"]`. A response
    /// served by any model but the first tier of the requested alias counts as a fallback. Also configures the
    /// embedded mock's aliases.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// USD per million tokens by served model: `"gpt-4o" = { input = 2.5, output = 10.0 }`.
    #[serde(default)]
    pub pricing: BTreeMap<String, crate::llm::pricing::Price>,
    /// Which gateway's response headers say what it did (served model, fallback, retries, cache, cost, overhead).
    #[serde(default)]
    pub gateway: crate::llm::gateway::GatewayConfig,
    /// Data for templates: rows from CSV/JSONL files or synthetic prompts, one draw per iteration.
    #[serde(default, rename = "feeder")]
    pub feeders: Vec<feeder::FeederSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub users: Option<Spanned<i64>>,
    pub spawn_rate: Option<Spanned<f64>>,
    pub duration: Option<Spanned<DurationValue>>,
    pub iterations: Option<Spanned<i64>>,
    /// Open model: iterations started per second.
    pub rate: Option<Spanned<f64>>,
    pub arrival: Option<ArrivalKind>,
    pub max_in_flight: Option<Spanned<i64>>,
    /// Open model: connections the iterations in flight share (default: one per iteration in flight).
    pub connections: Option<Spanned<i64>>,
    /// Step the load up level by level, each held for `hold`, stopping at the first level that breaks a limit.
    pub breaking_point: Option<Spanned<LevelsSpec>>,
    /// Closed model: each user stops after this many iterations.
    pub iterations_per_user: Option<Spanned<i64>>,
    /// Ramping users (k6 `ramping-vus`): reach `target` by the end of each stage's `duration`.
    #[serde(default)]
    pub stages: Vec<StageSpec>,
    /// Stop early (exit 3) when the first requests all fail the same non-transient way; default true.
    pub fail_fast: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Users (closed model, a whole number) or iterations per second (with `rate`).
    pub target: Spanned<f64>,
    pub duration: DurationValue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelsSpec {
    /// Closed-model levels (users) ...
    pub users: Option<Vec<u32>>,
    /// ... or open-model levels (iterations per second).
    pub rate: Option<Vec<f64>>,
    pub hold: DurationValue,
    /// A level breaks when its failure rate exceeds this (default 0.01) ...
    pub max_error_rate: Option<f64>,
    /// ... or its p95 latency exceeds this.
    pub max_p95: Option<DurationValue>,
    /// Exit 1 when the last level that held is below this.
    pub min_sustainable: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    Constant,
    Poisson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<DurationValue>,
    pub think_time: Option<ThinkTime>,
    /// Older spelling of `[gateway] model_header`, still read (a scenario may not give both).
    pub served_model_header: Option<String>,
    /// Most bytes of a response body held in memory (checks, captures, LLM answers; SSE lines and events):
    /// beyond it the request fails with `body` (`stream` for SSE). Default 1 MiB.
    pub max_body: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserClass {
    pub name: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub think_time: Option<ThinkTime>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
    /// Run once when the user starts (register, login); their captures persist for the user's whole life.
    #[serde(default)]
    pub on_start: Vec<Step>,
    /// Run once when the user stops gracefully (logout, cleanup).
    #[serde(default)]
    pub on_stop: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: Spanned<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub get: Option<String>,
    pub post: Option<String>,
    pub put: Option<String>,
    pub patch: Option<String>,
    pub delete: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    pub json: Option<toml::Value>,
    pub body: Option<String>,
    /// The response is a server-sent event stream; its body is read incrementally.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub expect: Expect,
    /// `variable = "$.json.path"`: the first match becomes `{{ variable }}` for later steps (strings as text,
    /// other JSON as structured values); `{ path = "...", append = true }` appends to a list;
    /// `{ value = <template or table>, append = true }` builds a value from templates.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    pub timeout: Option<DurationValue>,
    /// Overrides `[defaults] max_body` for this step.
    pub max_body: Option<ByteSize>,
    pub think_time: Option<ThinkTime>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub on_failure: Option<OnFailure>,
    /// Parse the response as an OpenAI chat completion (tokens, served model, cost). Default: the path
    /// contains `/chat/completions`.
    pub llm: Option<bool>,
    /// Send again after a retryable status, honouring `retry-after-ms` / `Retry-After`.
    pub retry: Option<Retry>,
    /// A template expression; the step runs only when it is true (e.g. `finish_reason == "tool_calls"`).
    pub when: Option<String>,
    /// After this step, go back to step `to` while `while` holds, at most `max` times per iteration.
    #[serde(rename = "loop")]
    pub repeat: Option<Loop>,
    /// Instead of a request: wait (a simulated tool call, "50ms" or { min, max }); only `value` captures,
    /// `when` and `loop` apply. Works against any gateway, unlike a tool endpoint of the mock.
    pub delay: Option<ThinkTime>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Capture {
    Path(String),
    Spec(CaptureSpec),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    pub path: Option<String>,
    pub value: Option<toml::Value>,
    #[serde(default)]
    pub append: bool,
}

impl Capture {
    pub fn path(&self) -> Option<&str> {
        match self {
            Capture::Path(p) => Some(p),
            Capture::Spec(s) => s.path.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Further attempts after the first.
    pub max: u32,
    /// Statuses that are retried (default: 429).
    pub on: Option<Vec<u16>>,
    /// Wait when the response gives no retry-after (default 1s).
    pub backoff: Option<DurationValue>,
    /// Longest wait (default 60s); a longer advice, however absurd, waits this long.
    pub max_wait: Option<DurationValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loop {
    pub to: String,
    #[serde(rename = "while")]
    pub condition: String,
    pub max: u32,
}

impl Step {
    /// The (method, path) pair, from `method` + `path` or a `get`/`post`/... shorthand.
    pub fn route(&self) -> Option<(&str, &str)> {
        let short = [
            ("GET", &self.get),
            ("POST", &self.post),
            ("PUT", &self.put),
            ("PATCH", &self.patch),
            ("DELETE", &self.delete),
        ];
        let mut found = short.iter().filter_map(|(m, p)| p.as_deref().map(|p| (*m, p)));
        match (found.next(), found.next(), &self.method, &self.path) {
            (Some(route), None, None, None) => Some(route),
            (None, _, Some(m), Some(p)) => Some((m.as_str(), p.as_str())),
            (None, _, None, Some(p)) => Some(("GET", p.as_str())),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: Option<StatusExpect>,
    /// The body must contain this text (a template).
    pub body_contains: Option<String>,
    /// Each JSON path must match at least one node of the JSON body.
    #[serde(default)]
    pub json_path: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusExpect {
    One(u16),
    Any(Vec<u16>),
}

impl StatusExpect {
    pub fn codes(&self) -> &[u16] {
        match self {
            StatusExpect::One(c) => std::slice::from_ref(c),
            StatusExpect::Any(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Skip the rest of this iteration (the flow failed); the default, because later steps usually need the
    /// captures of earlier ones.
    Abort,
    Continue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ThinkTime {
    Fixed(DurationValue),
    Range { min: DurationValue, max: DurationValue },
}

impl ThinkTime {
    pub fn bounds(&self) -> (Duration, Duration) {
        match self {
            ThinkTime::Fixed(d) => (d.0, d.0),
            ThinkTime::Range { min, max } => (min.0, max.0),
        }
    }
}

/// A duration written as "250ms", "30s", "1m30s", or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"30s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DurationValue, E> {
                humantime::parse_duration(s.trim())
                    .map(DurationValue)
                    .map_err(|_| E::custom(format!("invalid duration `{s}`: use e.g. \"500ms\", \"30s\", \"5m\"")))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<DurationValue, E> {
                u64::try_from(n)
                    .map(|s| DurationValue(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("invalid duration {n}: must not be negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<DurationValue, E> {
                Duration::try_from_secs_f64(n)
                    .map(DurationValue)
                    .map_err(|_| E::custom(format!("invalid duration {n}: must be a non-negative number")))
            }
        }
        d.deserialize_any(V)
    }
}
