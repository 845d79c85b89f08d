//! `POST /v1/chat/completions`: auth, rate limiting, alias routing, fault injection and the non-streamed
//! response shape (the request is read in `ask`, the streamed response is in `stream`).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use super::ask::{self, Ask};
use super::faults::{self, Fault, Route};
use super::limits::Verdict;
use super::stats::bump;
use super::synth::{self, MAX_TOKEN_LEN, REASONING_DOMAIN, Tokens};
use super::tools::ToolCall;
use super::{Shared, error_response, error_with_code, json_response, stream};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-mock-request-id");
const SERVED_MODEL: HeaderName = HeaderName::from_static("x-served-model");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// Reached through `front` or `wire`, not the router. `authorization` is the request's first `Authorization`
/// header, the only one the mock reads here; `body` is the request's whole body or the answer to a body that
/// could not be read.
pub(super) async fn completions(
    shared: &Shared,
    authorization: Option<&[u8]>,
    body: Result<&[u8], Response>,
) -> Response {
    // Taken before anything can fail, so the fault pattern does not depend on which bodies were valid.
    let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
    bump(&shared.stats.chat_requests);
    let _slot = match Busy::enter(shared) {
        Some(slot) => slot,
        None => {
            bump(&shared.stats.over_capacity);
            let mut response = rate_limited(Duration::from_secs(1));
            response.headers_mut().insert(REQUEST_ID, HeaderValue::from(index));
            return response;
        }
    };
    let mut response = respond(shared, index, authorization, body).await;
    response.headers_mut().insert(REQUEST_ID, HeaderValue::from(index));
    response
}

async fn respond(shared: &Shared, index: u64, authorization: Option<&[u8]>, body: Result<&[u8], Response>) -> Response {
    let config = &shared.config;
    if !config.outage.is_zero() {
        let since = shared.started.elapsed();
        let end = config.outage_after + config.outage;
        if since >= config.outage_after && since < end {
            tokio::time::sleep(end - since).await;
        }
    }
    let start = Instant::now();
    // Gate checks answer at once, as a gateway rejects before it calls any model.
    if config.auth_required && !shared.accounts.authorized(authorization) {
        bump(&shared.stats.unauthorized);
        let message = "invalid or missing bearer token";
        return error_with_code(StatusCode::UNAUTHORIZED, "invalid_request_error", message, "invalid_api_key");
    }
    let key = authorization.unwrap_or(b"anonymous");
    match shared.limiter.check(key) {
        Verdict::Allowed => {}
        Verdict::Limited(wait) => {
            bump(&shared.stats.rate_limited);
            return rate_limited(wait);
        }
        Verdict::Full => {
            let message = "the mock's rate limiter tracks too many keys";
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "server_error", message);
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(rejected) => return rejected,
    };
    let ask = match ask::read(body, config.output_tokens, config.react_steps) {
        Ok(ask) => ask,
        Err(bad) => return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", &bad.to_string()),
    };

    let (model, hops) = match faults::route(config, &ask.model, index) {
        Route::Served { model, hops, fallback } => {
            if fallback {
                bump(&shared.stats.fallbacks);
            }
            (model, hops)
        }
        Route::AllFailed { hops } => {
            bump(&shared.stats.all_tiers_failed);
            wait_until(later(start, config.fallback_penalty.saturating_mul(hops))).await;
            let message = format!("all tiers of alias {} are unavailable", ask.model);
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "server_error", &message);
        }
        Route::TierDown { tier } => {
            shared.stats.tier_down(tier);
            // Finding the tier down costs what one hop of the alias's own fallback costs.
            wait_until(later(start, config.fallback_penalty)).await;
            let message = format!("model {tier} is unavailable (request {index})");
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "server_error", &message);
        }
    };
    let mut response =
        answer(shared, index, &ask, model, later(start, config.fallback_penalty.saturating_mul(hops))).await;
    if let Ok(served) = HeaderValue::from_str(model) {
        response.headers_mut().insert(SERVED_MODEL, served);
    }
    response
}

/// The served model's answer (or injected failure), its tier having been reached at `routed_at`.
async fn answer(shared: &Shared, index: u64, ask: &Ask<'_>, model: &str, routed_at: Instant) -> Response {
    let config = &shared.config;
    let (first_token_delay, token_delay) = config.latency_of(model);
    if synth::should_fail(config.seed, index, config.error_rate) {
        bump(&shared.stats.injected_errors);
        // Failures cost what a real gateway's would: they arrive no sooner than a first token.
        wait_until(later(routed_at, first_token_delay)).await;
        let status = StatusCode::from_u16(config.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = format!("Mock gateway injected a failure (request {index}).");
        let mut response = error_response(status, error_kind(status), &message);
        if !config.retry_after.is_zero() {
            retry_after(&mut response, config.retry_after);
        }
        return response;
    }
    let fault = faults::fault(config, index, ask.stream);
    let stats = &shared.stats;
    let ready_at = match fault {
        Some(Fault::Stall) => {
            bump(&stats.stalls);
            later(routed_at, config.stall)
        }
        Some(Fault::Reset) => {
            bump(&stats.resets);
            routed_at
        }
        Some(Fault::Malformed) => {
            bump(&stats.malformed);
            routed_at
        }
        Some(Fault::MidstreamError) => {
            bump(&stats.midstream_errors);
            routed_at
        }
        Some(Fault::NoDone) => {
            bump(&stats.no_done);
            routed_at
        }
        None => routed_at,
    };
    // Nothing, headers included, leaves before the serving tier is reached (and a stall is over).
    wait_until(ready_at).await;
    let first_token_at = later(ready_at, first_token_delay);

    let answer = match ask.tool.clone() {
        Some(name) => {
            bump(&stats.tool_calls);
            Answer::Tool(ToolCall::new(config.seed, index, name))
        }
        None => Answer::Text(Tokens::new(config.seed, index, ask.completion_tokens)),
    };
    let answer_tokens = match &answer {
        Answer::Text(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
        Answer::Tool(call) => call.tokens(),
    };
    let reasoning = config.reasoning_tokens;
    let completion_tokens = u64::from(reasoning) + u64::from(answer_tokens);
    let reply = Reply {
        id: synth::response_id(config.seed, index),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: model.to_owned(),
        usage: Usage {
            prompt_tokens: ask.prompt_tokens,
            completion_tokens,
            total_tokens: ask.prompt_tokens.saturating_add(completion_tokens),
            completion_tokens_details: (reasoning > 0).then_some(Details { reasoning_tokens: reasoning }),
        },
        reasoning: Tokens::in_domain(config.seed, REASONING_DOMAIN, index, reasoning),
        answer,
    };
    if ask.stream {
        stream::response(reply, ask.include_usage, first_token_at, token_delay, fault)
    } else {
        let slots = u32::try_from(completion_tokens).unwrap_or(u32::MAX);
        wait_until(later(first_token_at, token_delay.saturating_mul(slots.saturating_sub(1)))).await;
        whole_response(reply, fault == Some(Fault::Reset))
    }
}

/// 429 saying the wait (`retry_after`).
fn rate_limited(wait: Duration) -> Response {
    let message = format!("Rate limit reached for requests on this API key. Please try again in {}ms.", whole_ms(wait));
    let mut response =
        error_with_code(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", &message, "rate_limit_exceeded");
    retry_after(&mut response, wait);
    response
}

/// Says `wait` in the standard header (whole seconds, rounded up, at least 1) and OpenAI's `retry-after-ms`.
fn retry_after(response: &mut Response, wait: Duration) {
    let ms = whole_ms(wait);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(ms.div_ceil(1000).max(1)));
    response.headers_mut().insert(RETRY_AFTER_MS, HeaderValue::from(ms));
}

fn whole_ms(wait: Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64
}

/// The OpenAI error `type` for a status, so clients that branch on it see familiar values.
fn error_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Skips the timer entirely when the moment has passed, which is the common case with zero delays.
pub(super) async fn wait_until(deadline: Instant) {
    if Instant::now() < deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// `t + d` that cannot panic: a delay too large for the clock means "practically never".
pub(super) fn later(t: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

/// Everything a response carries, whichever shape it is sent in.
pub(super) struct Reply {
    pub id: String,
    pub created: u64,
    /// The served model (an alias's tier, or the requested model).
    pub model: String,
    pub usage: Usage,
    pub reasoning: Tokens,
    pub answer: Answer,
}

pub(super) enum Answer {
    Text(Tokens),
    Tool(ToolCall),
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Only with reasoning, so that plain responses keep OpenAI's minimal usage object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Details>,
}

impl Usage {
    /// Appends what `serde_json` writes, without serde's machinery (a streamed answer's usage chunk), in
    /// place: a `String` of its own was an allocation per streamed request.
    pub(super) fn write_json(self, out: &mut Vec<u8>) {
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(br#"{"prompt_tokens":"#);
        out.extend_from_slice(n.format(self.prompt_tokens).as_bytes());
        out.extend_from_slice(br#","completion_tokens":"#);
        out.extend_from_slice(n.format(self.completion_tokens).as_bytes());
        out.extend_from_slice(br#","total_tokens":"#);
        out.extend_from_slice(n.format(self.total_tokens).as_bytes());
        if let Some(details) = self.completion_tokens_details {
            out.extend_from_slice(br#","completion_tokens_details":{"reasoning_tokens":"#);
            out.extend_from_slice(n.format(details.reasoning_tokens).as_bytes());
            out.push(b'}');
        }
        out.push(b'}');
    }
}

#[derive(Serialize, Clone, Copy)]
pub(super) struct Details {
    pub reasoning_tokens: u32,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    /// `null` when the answer is a tool call, as OpenAI sends it.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallJson<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallJson<'a> {
    id: &'a str,
    r#type: &'static str,
    function: FunctionJson<'a>,
}

#[derive(Serialize)]
struct FunctionJson<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn whole_response(reply: Reply, reset: bool) -> Response {
    let reasoning: Option<String> = (reply.reasoning.len() > 0).then(|| reply.reasoning.collect());
    let (content, arguments, call) = match reply.answer {
        Answer::Text(tokens) => {
            let mut content = String::with_capacity(tokens.len() * MAX_TOKEN_LEN);
            content.extend(tokens);
            (Some(content), String::new(), None)
        }
        Answer::Tool(call) => (None, call.arguments(), Some(call)),
    };
    let completion = Completion {
        id: &reply.id,
        object: "chat.completion",
        created: reply.created,
        model: &reply.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: content.as_deref(),
                reasoning_content: reasoning.as_deref(),
                tool_calls: call.as_ref().map(|c| {
                    [ToolCallJson {
                        id: &c.id,
                        r#type: "function",
                        function: FunctionJson { name: &c.name, arguments: &arguments },
                    }]
                }),
            },
            finish_reason: if call.is_some() { "tool_calls" } else { "stop" },
        }],
        usage: reply.usage,
    };
    match serde_json::to_vec(&completion) {
        Ok(body) if reset => cut_short(body),
        Ok(body) => json_response(StatusCode::OK, body.into()),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
    }
}

/// Announces the whole body's length, sends half of it, then fails the body stream so that hyper drops the
/// connection: the client sees a truncated body, as when a gateway's upstream connection is reset.
fn cut_short(body: Vec<u8>) -> Response {
    let len = body.len();
    let half = Bytes::from(body).slice(..len / 2);
    let parts = futures_util::stream::iter([Ok(half)]).chain(futures_util::stream::once(reset()));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::CONTENT_LENGTH, len.into())],
        Body::from_stream(parts),
    )
        .into_response()
}

/// The body-stream error of a reset, after giving hyper one chance to flush what came before: an error
/// while data still sits in its write buffer would drop that data, and the client would see no headers.
pub(super) async fn reset() -> std::io::Result<Bytes> {
    tokio::task::yield_now().await;
    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock reset fault"))
}

/// One of `max_concurrency` slots, released when the handler returns.
struct Busy<'a>(&'a Shared);

impl<'a> Busy<'a> {
    fn enter(shared: &'a Shared) -> Option<Busy<'a>> {
        let max = shared.config.max_concurrency;
        let taken = shared.busy.fetch_add(1, Ordering::AcqRel);
        if max > 0 && taken >= max {
            shared.busy.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Busy(shared))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}
