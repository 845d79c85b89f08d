//! What the mock does: [`MockConfig`] and its parts, their defaults, and the validation that keeps every
//! later computation (probabilities, instants, token buckets) within range.

use std::time::Duration;

use serde::Deserialize;

use super::settings::MockSettings;

/// How the mock answers. Token timing emulates a model: the first token after `first_token_delay`, each
/// later one `token_delay` after the previous.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Tokens per completion; a request's `max_tokens` / `max_completion_tokens` can only lower it.
    pub output_tokens: u32,
    /// Time before the first token (and before an injected failure is answered).
    pub first_token_delay: Duration,
    /// Time between later tokens.
    pub token_delay: Duration,
    /// Fraction of chat-completion requests answered with `error_status`.
    pub error_rate: f64,
    /// Status of injected failures.
    pub error_status: u16,
    /// Injected failures carry `retry-after-ms` and `retry-after` saying this wait (zero: no such header), as
    /// a provider's 429 or 503 does; a gateway that honours them retries after it.
    pub retry_after: Duration,
    /// Seeds ids, token text and which requests fail.
    pub seed: u64,
    /// Model aliases the gateway routes, each to its tiers in order of preference. A requested model that
    /// is no alias is served under its own name.
    pub aliases: Vec<Alias>,
    /// Chance that each tier of an alias but the last is unavailable for a given request.
    pub tier_failure_rate: f64,
    /// Tiers that are always unavailable (the last tier of an alias included).
    pub failing_tiers: Vec<String>,
    /// Time the gateway spends on each unavailable tier before trying the next.
    pub fallback_penalty: Duration,
    /// Per served-model timing, overriding `first_token_delay` and `token_delay`.
    pub model_latency: Vec<ModelLatency>,
    /// Reasoning tokens sent before the answer (`reasoning_content`), counted as completion tokens.
    pub reasoning_tokens: u32,
    /// A request with tools is answered with a tool call until it carries this many `tool` messages.
    pub react_steps: u32,
    /// Token bucket per API key (the `Authorization` header value); `None` means unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Chat completions need a bearer token issued by `POST /v1/auth/login`.
    pub auth_required: bool,
    /// Time `POST /v1/tools/{name}` takes to answer.
    pub tool_latency: Duration,
    /// Fraction of chat completions delayed by `stall` before anything is sent.
    pub stall_rate: f64,
    /// The delay of a stalled response.
    pub stall: Duration,
    /// A whole-gateway pause (a GC pause, a failover): chat completions arriving between `outage_after` and
    /// `outage_after + outage` after the mock started are held until the window ends. Zero: none.
    pub outage_after: Duration,
    pub outage: Duration,
    /// A known capacity: chat completions beyond this many at once get 429 (0: unlimited). Counted until the
    /// response headers go out, which for a stream is after its first token.
    pub max_concurrency: u32,
    /// Fraction of chat completions whose connection is cut mid-body.
    pub reset_rate: f64,
    /// Fraction of streamed chat completions with one invalid-JSON chunk mid-stream.
    pub malformed_rate: f64,
    /// Fraction of streamed chat completions that end with an error event mid-stream, without `[DONE]`.
    pub midstream_error_rate: f64,
    /// Fraction of streamed chat completions that end cleanly but without `data: [DONE]`.
    pub no_done_rate: f64,
}

/// A model alias and the tiers that serve it, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: String,
    pub tiers: Vec<String>,
}

/// Token timing of one served model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLatency {
    pub model: String,
    pub first_token_delay: Duration,
    pub token_delay: Duration,
}

/// A token bucket: `burst` requests at once, refilled at `requests_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            output_tokens: 8,
            first_token_delay: Duration::from_millis(20),
            token_delay: Duration::from_millis(10),
            error_rate: 0.0,
            error_status: 500,
            retry_after: Duration::ZERO,
            seed: 0,
            aliases: default_aliases(),
            tier_failure_rate: 0.0,
            failing_tiers: Vec::new(),
            fallback_penalty: Duration::from_millis(5),
            model_latency: Vec::new(),
            reasoning_tokens: 0,
            react_steps: 2,
            rate_limit: None,
            auth_required: false,
            tool_latency: Duration::from_millis(50),
            stall_rate: 0.0,
            stall: Duration::from_secs(2),
            outage_after: Duration::ZERO,
            outage: Duration::ZERO,
            max_concurrency: 0,
            reset_rate: 0.0,
            malformed_rate: 0.0,
            midstream_error_rate: 0.0,
            no_done_rate: 0.0,
        }
    }
}

fn default_aliases() -> Vec<Alias> {
    let alias = |name: &str, tiers: &[&str]| Alias {
        name: name.to_owned(),
        tiers: tiers.iter().map(|t| (*t).to_owned()).collect(),
    };
    vec![
        alias("standard_agent", &["standard_tier_1"]),
        alias("coding_agent", &["coding_tier_3", "coding_tier_2", "coding_fallback"]),
        alias("mock_agent", &["mock-model"]),
    ]
}

/// Longest accepted delay: far beyond any useful test, and small enough that adding a few of them to an
/// `Instant` cannot overflow.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A mock setting the server cannot serve; the message names the `[mock]` key and the accepted range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MockConfigError {
    #[error("[mock] {key} must be between 0 and 1, got {rate}")]
    Rate { key: &'static str, rate: f64 },
    #[error(
        "[mock] stall_rate + reset_rate + malformed_rate + midstream_error_rate + no_done_rate must not exceed 1 \
         (the faults are exclusive), got {0}"
    )]
    FaultSum(f64),
    #[error("[mock] error_status must be an HTTP status in 100..=599, got {0}")]
    ErrorStatus(u16),
    #[error("[mock] {key} must be at most 24h, got {}", humantime::format_duration(*.delay))]
    Delay { key: &'static str, delay: Duration },
    #[error("[mock] rate_limit.requests_per_second must be greater than 0, got {0}")]
    RateLimitRps(f64),
    #[error("[mock] rate_limit.burst must be at least 1, got 0")]
    RateLimitBurst,
    #[error("[mock] aliases.{0} must list at least one tier")]
    EmptyAlias(String),
}

impl MockConfig {
    /// Overlay the fields `s` gives, then check the result as a whole (the fault rates' sum involves fields
    /// that may come from either side). On error `self` is left as it was.
    pub fn apply(&mut self, s: &MockSettings) -> Result<(), MockConfigError> {
        let mut c = self.clone();
        set(&mut c.output_tokens, s.output_tokens);
        set(&mut c.first_token_delay, s.first_token_delay);
        set(&mut c.token_delay, s.token_delay);
        set(&mut c.error_rate, s.error_rate);
        set(&mut c.error_status, s.error_status);
        set(&mut c.retry_after, s.retry_after);
        set(&mut c.reasoning_tokens, s.reasoning_tokens);
        set(&mut c.react_steps, s.react_steps);
        set(&mut c.tier_failure_rate, s.tier_failure_rate);
        set(&mut c.failing_tiers, s.failing_tiers.clone());
        set(&mut c.fallback_penalty, s.fallback_penalty);
        set(&mut c.stall_rate, s.stall_rate);
        set(&mut c.stall, s.stall);
        set(&mut c.outage_after, s.outage_after);
        set(&mut c.outage, s.outage);
        set(&mut c.max_concurrency, s.max_concurrency);
        set(&mut c.reset_rate, s.reset_rate);
        set(&mut c.malformed_rate, s.malformed_rate);
        set(&mut c.midstream_error_rate, s.midstream_error_rate);
        set(&mut c.no_done_rate, s.no_done_rate);
        set(&mut c.auth_required, s.auth_required);
        set(&mut c.tool_latency, s.tool_latency);
        if let Some(limit) = s.rate_limit {
            c.rate_limit = Some(limit);
        }
        if let Some(aliases) = &s.aliases {
            c.aliases =
                aliases.iter().map(|(name, tiers)| Alias { name: name.clone(), tiers: tiers.clone() }).collect();
        }
        if let Some(latencies) = &s.model_latency {
            // A model that gives only one of the two delays keeps the global value for the other.
            c.model_latency = latencies
                .iter()
                .map(|(model, l)| ModelLatency {
                    model: model.clone(),
                    first_token_delay: l.first_token_delay.unwrap_or(c.first_token_delay),
                    token_delay: l.token_delay.unwrap_or(c.token_delay),
                })
                .collect();
        }
        c.validate()?;
        *self = c;
        Ok(())
    }

    /// Checks what the server relies on; `spawn` and `serve` do not call it, so a config built in code is
    /// served as given (out-of-range values are then clamped where they are used).
    pub fn validate(&self) -> Result<(), MockConfigError> {
        let rates = [
            ("error_rate", self.error_rate),
            ("tier_failure_rate", self.tier_failure_rate),
            ("stall_rate", self.stall_rate),
            ("reset_rate", self.reset_rate),
            ("malformed_rate", self.malformed_rate),
            ("midstream_error_rate", self.midstream_error_rate),
            ("no_done_rate", self.no_done_rate),
        ];
        for (key, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(MockConfigError::Rate { key, rate });
            }
        }
        let faults: f64 = rates[2..].iter().map(|(_, r)| r).sum();
        if faults > 1.0 + 1e-9 {
            return Err(MockConfigError::FaultSum(faults));
        }
        if !(100..=599).contains(&self.error_status) {
            return Err(MockConfigError::ErrorStatus(self.error_status));
        }
        let mut delays = vec![
            ("first_token_delay", self.first_token_delay),
            ("token_delay", self.token_delay),
            ("fallback_penalty", self.fallback_penalty),
            ("stall", self.stall),
            ("tool_latency", self.tool_latency),
            ("retry_after", self.retry_after),
        ];
        delays.extend(self.model_latency.iter().flat_map(|m| {
            [("model_latency.first_token_delay", m.first_token_delay), ("model_latency.token_delay", m.token_delay)]
        }));
        if let Some((key, delay)) = delays.into_iter().find(|(_, d)| *d > MAX_DELAY) {
            return Err(MockConfigError::Delay { key, delay });
        }
        if let Some(limit) = self.rate_limit {
            let rps = limit.requests_per_second;
            if !(rps.is_finite() && rps > 0.0) {
                return Err(MockConfigError::RateLimitRps(rps));
            }
            if limit.burst < 1 {
                return Err(MockConfigError::RateLimitBurst);
            }
        }
        if let Some(alias) = self.aliases.iter().find(|a| a.tiers.is_empty()) {
            return Err(MockConfigError::EmptyAlias(alias.name.clone()));
        }
        Ok(())
    }

    /// The timing of a served model: its own entry in `model_latency`, else the global delays.
    pub(super) fn latency_of(&self, model: &str) -> (Duration, Duration) {
        self.model_latency
            .iter()
            .find(|m| m.model == model)
            .map_or((self.first_token_delay, self.token_delay), |m| (m.first_token_delay, m.token_delay))
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}
