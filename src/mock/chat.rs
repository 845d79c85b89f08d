//! `POST /v1/chat/completions`: request parsing, fault injection and both response shapes.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::synth::{self, MAX_TOKEN_LEN, Tokens};
use super::{Shared, body_rejection, error_response, json_response};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-mock-request-id");

pub(super) async fn completions(State(shared): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    // Taken before anything can fail, so the fault pattern does not depend on which bodies were valid.
    let index = shared.next_index.fetch_add(1, Ordering::Relaxed);
    let mut response = respond(&shared, index, body).await;
    response.headers_mut().insert(REQUEST_ID, HeaderValue::from(index));
    response
}

/// What a request asks for, once validated.
struct Ask<'a> {
    model: &'a str,
    stream: bool,
    include_usage: bool,
    completion_tokens: u32,
    prompt_tokens: u64,
}

fn parse<'a>(value: &'a Value, output_tokens: u32) -> Result<Ask<'a>, &'static str> {
    let messages =
        value.get("messages").and_then(Value::as_array).ok_or("'messages' is required and must be an array")?;
    let cap = ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|key| value.get(key).and_then(Value::as_u64))
        .map(|cap| u32::try_from(cap).unwrap_or(u32::MAX))
        .min()
        .unwrap_or(u32::MAX);
    Ok(Ask {
        model: value.get("model").and_then(Value::as_str).unwrap_or("mock-model"),
        stream: value.get("stream").and_then(Value::as_bool) == Some(true),
        include_usage: value.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
            == Some(true),
        completion_tokens: output_tokens.max(1).min(cap),
        prompt_tokens: count_prompt_words(messages).max(1),
    })
}

/// A rough prompt size: whitespace-separated words of every message's text, whether the content is a
/// plain string or an array of parts.
fn count_prompt_words(messages: &[Value]) -> u64 {
    let words = |s: &str| s.split_whitespace().count() as u64;
    messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|content| match content {
            Value::String(s) => words(s),
            Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(words).sum(),
            _ => 0,
        })
        .sum()
}

async fn respond(shared: &Shared, index: u64, body: Result<Bytes, BytesRejection>) -> Response {
    let start = Instant::now();
    let config = &shared.config;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            let message = format!("We could not parse the JSON body of your request. ({e})");
            return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    let ask = match parse(&value, config.output_tokens) {
        Ok(ask) => ask,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        }
    };
    let first_token_at = start + config.first_token_delay;

    if synth::should_fail(config.seed, index, config.error_rate) {
        // Failures cost what a real gateway's would: they arrive no sooner than a first token.
        wait_until(first_token_at).await;
        let status = StatusCode::from_u16(config.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = format!("Mock gateway injected a failure (request {index}).");
        return error_response(status, error_kind(status), &message);
    }

    let reply = Reply {
        id: synth::response_id(config.seed, index),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        usage: Usage {
            prompt_tokens: ask.prompt_tokens,
            completion_tokens: u64::from(ask.completion_tokens),
            total_tokens: ask.prompt_tokens + u64::from(ask.completion_tokens),
        },
        tokens: Tokens::new(config.seed, index, ask.completion_tokens),
    };
    if ask.stream {
        stream_response(reply, ask.model, ask.include_usage, first_token_at, config.token_delay)
    } else {
        let done_at = first_token_at + config.token_delay.saturating_mul(ask.completion_tokens.saturating_sub(1));
        wait_until(done_at).await;
        whole_response(reply, ask.model)
    }
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
async fn wait_until(deadline: Instant) {
    if Instant::now() < deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

struct Reply {
    id: String,
    created: u64,
    usage: Usage,
    tokens: Tokens,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
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
    content: &'a str,
}

fn whole_response(reply: Reply, model: &str) -> Response {
    let mut content = String::with_capacity(reply.tokens.len() * MAX_TOKEN_LEN);
    content.extend(reply.tokens);
    let completion = Completion {
        id: &reply.id,
        object: "chat.completion",
        created: reply.created,
        model,
        choices: [Choice {
            index: 0,
            message: Message { role: "assistant", content: &content },
            finish_reason: "stop",
        }],
        usage: reply.usage,
    };
    match serde_json::to_vec(&completion) {
        Ok(body) => json_response(StatusCode::OK, body.into()),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
    }
}

/// Where a stream is in its fixed sequence of chunks.
#[derive(Clone, Copy)]
enum Step {
    Role,
    Token,
    Finish,
    Usage,
    Done,
    End,
}

struct StreamState {
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[`, shared by every chunk.
    prefix: String,
    tokens: Tokens,
    usage: Usage,
    include_usage: bool,
    next_token_at: Instant,
    token_delay: Duration,
    step: Step,
}

const ROLE_CHOICE: &str = r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#;
const TOKEN_OPEN: &str = r#"{"index":0,"delta":{"content":""#;
const TOKEN_CLOSE: &str = r#""},"finish_reason":null}"#;
const FINISH_CHOICE: &str = r#"{"index":0,"delta":{},"finish_reason":"stop"}"#;
const CHUNK_END: &str = "]}\n\n";

fn stream_response(
    reply: Reply,
    model: &str,
    include_usage: bool,
    first_token_at: Instant,
    token_delay: Duration,
) -> Response {
    let model_json = serde_json::to_string(model).unwrap_or_else(|_| "\"mock-model\"".into());
    let mut prefix = String::with_capacity(96 + model_json.len());
    let _ = write!(
        prefix,
        r#"data: {{"id":"{}","object":"chat.completion.chunk","created":{},"model":{model_json},"choices":["#,
        reply.id, reply.created,
    );
    let state = StreamState {
        prefix,
        tokens: reply.tokens,
        usage: reply.usage,
        include_usage,
        next_token_at: first_token_at,
        token_delay,
        step: Step::Role,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let chunk = next_chunk(&mut s).await?;
        Some((Ok::<_, Infallible>(chunk), s))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn next_chunk(s: &mut StreamState) -> Option<Bytes> {
    let chunk = match s.step {
        Step::Role => {
            s.step = Step::Token;
            choice_chunk(&s.prefix, &[ROLE_CHOICE])
        }
        Step::Token => {
            // A zero-token completion still takes a first-token delay before it finishes.
            wait_until(s.next_token_at).await;
            match s.tokens.next() {
                Some(token) => {
                    s.next_token_at += s.token_delay;
                    if s.tokens.len() == 0 {
                        s.step = Step::Finish;
                    }
                    choice_chunk(&s.prefix, &[TOKEN_OPEN, token, TOKEN_CLOSE])
                }
                None => {
                    s.step = after_finish(s.include_usage);
                    choice_chunk(&s.prefix, &[FINISH_CHOICE])
                }
            }
        }
        Step::Finish => {
            s.step = after_finish(s.include_usage);
            choice_chunk(&s.prefix, &[FINISH_CHOICE])
        }
        Step::Usage => {
            s.step = Step::Done;
            usage_chunk(&s.prefix, s.usage)
        }
        Step::Done => {
            s.step = Step::End;
            Bytes::from_static(b"data: [DONE]\n\n")
        }
        Step::End => return None,
    };
    Some(chunk)
}

fn after_finish(include_usage: bool) -> Step {
    if include_usage { Step::Usage } else { Step::Done }
}

fn choice_chunk(prefix: &str, parts: &[&str]) -> Bytes {
    let len = prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>() + CHUNK_END.len();
    let mut chunk = String::with_capacity(len);
    chunk.push_str(prefix);
    parts.iter().for_each(|p| chunk.push_str(p));
    chunk.push_str(CHUNK_END);
    Bytes::from(chunk)
}

fn usage_chunk(prefix: &str, usage: Usage) -> Bytes {
    let mut chunk = String::with_capacity(prefix.len() + 96);
    chunk.push_str(prefix);
    let _ = write!(
        chunk,
        r#"],"usage":{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}}}}"#,
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
    );
    chunk.push_str("\n\n");
    Bytes::from(chunk)
}
