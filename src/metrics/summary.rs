//! Plain summary types computed from recorders; these are what reports serialize (units in field names).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ErrorKind, Hist, LlmStats, MAX_MODELS, MAX_STATUS_KINDS, OTHER_MODEL, StepStats};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub stdev_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `None` when the histogram is empty: a percentile of nothing is not zero.
pub fn latency_summary(h: &Hist) -> Option<LatencySummary> {
    if h.is_empty() {
        return None;
    }
    let q = |p: f64| ms(h.value_at_quantile(p));
    Some(LatencySummary {
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        stdev_ms: h.stdev() / 1000.0,
        min_ms: ms(h.min_nz()),
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: ms(h.max()),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestSummary {
    /// Every completed request, successful or failed.
    pub requests: u64,
    pub failures: u64,
    /// failures / requests (0 when no request completed).
    pub failure_rate: f64,
    /// requests per second over the run's duration.
    pub rps: f64,
    pub failures_per_s: f64,
    pub bytes_received: u64,
    /// Send → last byte of the body, successful requests only. Open model: from the scheduled send.
    pub latency: Option<LatencySummary>,
    /// Open model only: from the actual send (what a closed-loop tool would report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected: Option<LatencySummary>,
    /// Send → response headers, successful requests only.
    pub ttfb: Option<LatencySummary>,
    /// Failures by kind (`connect`, `protocol`, `timeout`, `status:503`, `rate_limited`, `check`, `stream`,
    /// `body`).
    pub errors: BTreeMap<String, u64>,
    /// Attempts that got a retryable status and were sent again (not counted in `requests`).
    pub retries: u64,
    /// Retry-After / retry-after-ms values that were negative, not a number or not a date, so were ignored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_invalid: u64,
    /// What the server did that the numbers alone do not say (labels capped, advice ignored), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// LLM metrics, for steps that produced chat completions.
    pub llm: Option<LlmSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LlmSummary {
    /// Successful responses parsed as chat completions.
    pub responses: u64,
    /// Of which streamed (SSE).
    pub streamed: u64,
    /// Send → first generated token (content, reasoning or tool call); streams only.
    pub ttft: Option<LatencySummary>,
    /// Send → first visible answer content; streams only.
    pub ttfo: Option<LatencySummary>,
    /// Gaps between token-carrying chunks (inter-chunk latency; vLLM's ITL, AIPerf's ICL); streams only.
    pub icl: Option<LatencySummary>,
    /// (last token − first token) / (output_tokens − 1); streams with at least 2 output tokens in at least 2
    /// chunks (vLLM's TPOT, AIPerf's ITL).
    pub tpot: Option<LatencySummary>,
    /// latency / output_tokens; every response with output tokens.
    pub ntpot: Option<LatencySummary>,
    /// Last token → end of the stream (the `usage` chunk, `[DONE]`, a gateway's buffering); streams only.
    #[serde(default)]
    pub stream_tail: Option<LatencySummary>,
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Output tokens per second of run time.
    pub output_tokens_per_s: f64,
    /// Responses whose token counts came from `usage`; the others were counted as chunks.
    pub tokens_from_usage: u64,
    pub tokens_from_chunks: u64,
    /// Responses the gateway (or the scenario's `[aliases]`) reported as a fallback.
    pub fallbacks: u64,
    pub fallback_rate: f64,
    /// USD: the gateway's figure where it reported one, else `[pricing]` × usage.
    pub cost_usd: f64,
    /// Responses that carried any of the gateway's headers (or a body `usage.cost`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gateway_responses: u64,
    /// Retries the gateway reported making (LiteLLM `x-litellm-attempted-retries`, Portkey
    /// `x-portkey-retry-attempt-count`, or the scenario's `retries_header`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gateway_retries: u64,
    /// Responses the gateway served from its cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_hits: u64,
    /// Responses whose cost the gateway reported, and its USD sum.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost_reported_responses: u64,
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub reported_cost_usd: f64,
    /// Responses priced from `[pricing]`, and their USD sum.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priced_responses: u64,
    #[serde(default, skip_serializing_if = "is_zero_f")]
    pub priced_cost_usd: f64,
    /// Responses with tokens that neither the gateway nor `[pricing]` priced: `cost_usd` leaves them out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unpriced_responses: u64,
    /// The gateway's own overhead per response, as it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_overhead: Option<LatencySummary>,
    /// Responses by the index of the gateway target that served them (0 = primary; the last entry also counts
    /// any higher index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<u64>,
    /// Responses by the deployment the gateway named (LiteLLM `x-litellm-model-id`, Portkey `x-portkey-provider`,
    /// OpenRouter's `provider`), most first: at most 64 names, then `other`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentSummary>,
    /// Served-model distribution: at most 64 names per step, then `other`.
    pub models: Vec<ModelSummary>,
    /// Responses counted under `other` because 64 distinct served models had been seen already.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub models_other: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentSummary {
    pub deployment: String,
    pub responses: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelSummary {
    pub model: String,
    pub responses: u64,
    /// Share of this step's (or the run's) LLM responses.
    pub share: f64,
    pub fallbacks: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub latency: Option<LatencySummary>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gateway_retries: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_hits: u64,
    /// Responses with tokens that nothing priced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unpriced_responses: u64,
}

pub fn llm_summary(l: &LlmStats, elapsed: Duration) -> LlmSummary {
    let secs = elapsed.as_secs_f64();
    let n = l.responses.max(1) as f64;
    let mut models: Vec<ModelSummary> = l
        .models
        .iter()
        .map(|m| ModelSummary {
            model: m.model.clone(),
            responses: m.requests,
            share: m.requests as f64 / n,
            fallbacks: m.fallbacks,
            output_tokens: m.output_tokens,
            cost_usd: m.cost,
            latency: latency_summary(&m.latency),
            gateway_retries: m.gateway_retries,
            cache_hits: m.cache_hits,
            unpriced_responses: m.unpriced,
        })
        .collect();
    models.sort_by(|a, b| b.responses.cmp(&a.responses).then_with(|| a.model.cmp(&b.model)));
    LlmSummary {
        responses: l.responses,
        streamed: l.streamed,
        ttft: latency_summary(&l.ttft),
        ttfo: latency_summary(&l.ttfo),
        icl: latency_summary(&l.icl),
        tpot: latency_summary(&l.tpot),
        ntpot: latency_summary(&l.ntpot),
        stream_tail: latency_summary(&l.stream_tail),
        output_tokens: l.output_tokens,
        input_tokens: l.input_tokens,
        reasoning_tokens: l.reasoning_tokens,
        output_tokens_per_s: if secs > 0.0 { l.output_tokens as f64 / secs } else { 0.0 },
        tokens_from_usage: l.from_usage,
        tokens_from_chunks: l.responses - l.from_usage,
        fallbacks: l.fallbacks,
        fallback_rate: l.fallbacks as f64 / n,
        cost_usd: l.cost,
        gateway_responses: l.gateway.attributed,
        gateway_retries: l.gateway.retries,
        cache_hits: l.gateway.cache_hits,
        cost_reported_responses: l.gateway.cost_reported,
        reported_cost_usd: l.gateway.reported_cost,
        priced_responses: l.gateway.priced,
        priced_cost_usd: l.gateway.priced_cost,
        unpriced_responses: l.gateway.unpriced,
        gateway_overhead: latency_summary(&l.gateway.overhead),
        targets: l.gateway.targets.clone(),
        deployments: {
            let mut d: Vec<DeploymentSummary> = l
                .gateway
                .deployments
                .iter()
                .map(|(deployment, responses)| DeploymentSummary {
                    deployment: deployment.clone(),
                    responses: *responses,
                })
                .collect();
            d.sort_by(|a, b| b.responses.cmp(&a.responses).then_with(|| a.deployment.cmp(&b.deployment)));
            d
        },
        models,
        models_other: l.models_other,
    }
}

pub fn request_summary(s: &StepStats, elapsed: Duration) -> RequestSummary {
    let secs = elapsed.as_secs_f64();
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    RequestSummary {
        requests: s.requests,
        failures: s.failures,
        failure_rate: if s.requests > 0 { s.failures as f64 / s.requests as f64 } else { 0.0 },
        rps: per_s(s.requests),
        failures_per_s: per_s(s.failures),
        bytes_received: s.bytes,
        latency: latency_summary(&s.latency),
        latency_uncorrected: latency_summary(&s.uncorrected),
        ttfb: latency_summary(&s.ttfb),
        errors: s.errors.iter().map(|e| (e.kind.to_string(), e.count)).collect(),
        retries: s.retries,
        retry_after_invalid: s.retry_after_invalid,
        warnings: warnings(s),
        llm: s.llm.as_ref().map(|l| llm_summary(l, elapsed)),
    }
}

fn warnings(s: &StepStats) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = s.llm.as_ref().filter(|l| l.models_other > 0) {
        out.push(format!(
            "the server named more than {MAX_MODELS} distinct served models: {} responses are counted as `{OTHER_MODEL}`",
            l.models_other
        ));
    }
    if let Some(l) = s.llm.as_ref().filter(|l| l.responses > 0 && l.gateway.attributed == 0) {
        if let Some(kind) = &l.gateway.expected {
            out.push(format!(
                "[gateway] kind = \"{kind}\", but none of the {} LLM responses carried its headers: fallbacks, retries and the gateway's cost are unknown (is the request going through it?)",
                l.responses
            ));
        }
    }
    if let Some(l) = s.llm.as_ref().filter(|l| l.gateway.unpriced > 0) {
        out.push(format!(
            "{} of {} LLM responses had tokens but no price (the gateway reported no cost and [pricing] has no entry for the served model): the cost shown leaves them out",
            l.gateway.unpriced, l.responses
        ));
    }
    if let Some(e) = s.errors.iter().find(|e| e.kind == ErrorKind::STATUS_OTHER) {
        out.push(format!(
            "the server answered with more than {MAX_STATUS_KINDS} distinct unexpected statuses: {} failures are counted as `status:other`",
            e.count
        ));
    }
    if s.retry_after_invalid > 0 {
        out.push(format!(
            "{} Retry-After values were negative, not a number or not a date, and were ignored",
            s.retry_after_invalid
        ));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorSummary {
    pub user: String,
    pub step: String,
    pub kind: String,
    pub count: u64,
    /// The first message seen, with secrets redacted.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlowSummary {
    pub user: String,
    /// Iterations in which every step ran and succeeded.
    pub completed: u64,
    /// Iterations stopped by a failed step.
    pub failed: u64,
    pub flows_per_s: f64,
    /// First step start → last step end of completed iterations.
    pub latency: Option<LatencySummary>,
    /// Requests per completed flow (ReAct loops make it vary).
    pub steps_mean: f64,
    pub steps_max: u64,
    /// USD per completed flow (mean), from `[pricing]`.
    pub cost_per_flow_usd: f64,
    /// Flow latency of completed flows, µs (HdrHistogram V2 deflate, base64); empty when none completed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latency_histogram: String,
    /// Requests per completed flow.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub steps_histogram: String,
}

/// One second of the run (the last one may be shorter: see `duration_s`). Latencies are of this interval's
/// successful requests; `cumulative` is everything up to its end (Locust's "Total ..." columns).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SeriesPoint {
    /// Seconds from the start of the run to the start of this interval.
    pub t_s: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Users running at the end of the interval.
    pub users: u64,
    /// Requests in flight at the end of the interval.
    pub in_flight: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p66_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p75_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p80_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p98_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p9999_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// Bytes received in the interval.
    #[serde(default)]
    pub bytes: u64,
    /// Streaming steps: time to first token of the interval's responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cumulative: Option<Cumulative>,
}

/// Everything measured from the start of the run to the end of an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cumulative {
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Mean bytes received per request.
    pub avg_bytes: f64,
}

/// One interval of the run as a series point: `interval` is what was recorded in it (all steps merged), `all`
/// everything up to its end. Shared by the run's series and the live outputs, so both report the same numbers.
pub fn series_point(
    t_s: f64,
    duration_s: f64,
    interval: &StepStats,
    all: &StepStats,
    users: u64,
    in_flight: u64,
) -> SeriesPoint {
    let q = |h: &Hist, x: f64| (!h.is_empty()).then(|| ms(h.value_at_quantile(x)));
    let min = |h: &Hist| (!h.is_empty()).then(|| ms(h.min_nz()));
    let mean = |h: &Hist| (!h.is_empty()).then(|| h.mean() / 1000.0);
    let max = |h: &Hist| (!h.is_empty()).then(|| ms(h.max()));
    let l = &interval.latency;
    let ttft = interval.llm.as_ref().map(|x| &x.ttft);
    SeriesPoint {
        t_s,
        duration_s,
        requests: interval.requests,
        failures: interval.failures,
        rps: if duration_s > 0.0 { interval.requests as f64 / duration_s } else { 0.0 },
        p50_ms: q(l, 0.5),
        p95_ms: q(l, 0.95),
        p99_ms: q(l, 0.99),
        users,
        in_flight,
        min_ms: min(l),
        mean_ms: mean(l),
        p66_ms: q(l, 0.66),
        p75_ms: q(l, 0.75),
        p80_ms: q(l, 0.80),
        p90_ms: q(l, 0.90),
        p98_ms: q(l, 0.98),
        p999_ms: q(l, 0.999),
        p9999_ms: q(l, 0.9999),
        max_ms: max(l),
        bytes: interval.bytes,
        ttft_p50_ms: ttft.and_then(|h| q(h, 0.5)),
        ttft_p95_ms: ttft.and_then(|h| q(h, 0.95)),
        cumulative: Some(Cumulative {
            requests: all.requests,
            failures: all.failures,
            p50_ms: q(&all.latency, 0.5),
            mean_ms: mean(&all.latency),
            min_ms: min(&all.latency),
            max_ms: max(&all.latency),
            avg_bytes: if all.requests > 0 { all.bytes as f64 / all.requests as f64 } else { 0.0 },
        }),
    }
}

/// HdrHistogram V2 + deflate, base64: any percentile can be recomputed from a report.
pub fn encode_histogram(h: &Hist) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// As [`encode_histogram`], but nothing for an empty histogram (optional fields of a report stay absent).
pub fn encode_nonempty(h: &Hist) -> String {
    if h.is_empty() { String::new() } else { encode_histogram(h) }
}

/// Why a stored histogram does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not base64: {0}")]
    NotBase64(String),
    #[error("not an HdrHistogram: {0}")]
    NotHistogram(String),
}

pub fn decode_histogram(s: &str) -> Result<Hist, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| DecodeError::NotBase64(e.to_string()))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| DecodeError::NotHistogram(format!("{e:?}")))
}
