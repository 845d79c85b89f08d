//! The embedded mock gateway: an OpenAI-compatible HTTP server that `run` targets when no `--target` is
//! given and that the `mock` subcommand serves in the foreground. It models an AI agent gateway in front of
//! model providers: chat completions (streamed or not) with configurable token timing, reasoning tokens and
//! tool calls for ReAct agents; model aliases routed to tiers with fallback; per-key rate limiting;
//! register/login with bearer tokens; a simulated tool endpoint; deterministic fault injection; and
//! `GET /mock/stats`, counters a load test can check its own counts against.
//!
//! It owns its HTTP routes and its response synthesis; its thread and runtime come from the leaf
//! `background`. It must not depend on the engine (or any other part of the crate but that leaf): it stands
//! in for an external service and is only ever reached over HTTP. Every decision is a pure function of the seed and a request index, so two runs with
//! the same seed fail the same requests the same way.

mod ask;
mod auth;
mod chat;
mod config;
mod faults;
mod front;
mod limits;
mod settings;
mod stats;
mod stream;
mod synth;
#[cfg(test)]
mod tests;
mod tools;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hdrhistogram::Histogram;

use crate::background;

pub use config::{Alias, MockConfig, MockConfigError, ModelLatency, RateLimit};
pub use settings::{LatencySettings, MockSettings};

/// A mock running on its own OS thread with its own multi-thread tokio runtime (2 worker threads), so the
/// load generator's threads measure only themselves. Dropping it (or calling shutdown) stops it gracefully.
#[derive(Debug)]
pub struct MockServer {
    server: background::Server,
    /// Wake-up lateness of the hiccup probe on the mock's runtime, µs: its latencies are timers, so a stalled
    /// runtime answers late and the load test would blame the service.
    hiccups: Arc<Mutex<Histogram<u64>>>,
}

impl MockServer {
    /// The bound address (with the real port when `spawn` was given port 0).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The probe's lateness (µs) since the last call, which starts a fresh histogram: a run takes it once before
    /// its load and once after, so it sees its own span only.
    pub fn take_hiccups(&self) -> Histogram<u64> {
        let mut h = self.hiccups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = h.clone();
        h.reset();
        taken
    }

    /// Stop serving and join the thread. In-flight responses get up to [`SHUTDOWN_GRACE`] to finish.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// After a stop request, how long in-flight responses (a long stream, say) may run before being cut, so
/// that dropping a `MockServer` cannot hang its owner.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// µs, 3 significant digits, growing as needed (the crate's histograms are alike; the mock imports none of it).
fn hiccup_histogram() -> Histogram<u64> {
    // Invariant: 3 significant figures is within hdrhistogram's accepted 0..=5.
    let mut h = Histogram::new(3).expect("sigfig 3 is valid");
    h.auto(true);
    h
}

/// Bind `addr` (e.g. 127.0.0.1:0 for a free port) and serve on a background thread. Binds before returning, so
/// the address is usable at once; a bind failure is returned as an io::Error.
pub fn spawn(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
    let options =
        background::Options { thread: "mock-gateway", workers: Some(2), grace: SHUTDOWN_GRACE, what: "mock gateway" };
    let hiccups = Arc::new(Mutex::new(hiccup_histogram()));
    let probe = hiccups.clone();
    let server = background::spawn(addr, options, move |listener, stop| serve_probed(listener, config, stop, probe))?;
    Ok(MockServer { server, hiccups })
}

/// Serve on an existing listener until `shutdown` resolves (used by the `run-load-test mock` subcommand, which
/// runs it in the foreground until Ctrl-C). In-flight responses are allowed to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_probed(listener, config, shutdown, Arc::new(Mutex::new(hiccup_histogram()))).await
}

/// Serves with a hiccup probe on the serving runtime recording into `hiccups` (shown by `GET /mock/stats`).
async fn serve_probed(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hiccups: Arc<Mutex<Histogram<u64>>>,
) -> std::io::Result<()> {
    let into = hiccups.clone();
    let probe = tokio::spawn(background::hiccup_probe(background::HICCUP_INTERVAL, move |late| {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let mut h = into.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }));
    // The foreground mock's runtime outlives serving; the probe must not.
    let _probe = AbortOnDrop(probe);
    let shared = shared(config, hiccups);
    front::serve(listener, front::Front::new(router(shared.clone()), shared), shutdown).await;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Shared by all requests of one server.
struct Shared {
    config: MockConfig,
    /// Next chat-completion request index; it keys ids, text and fault injection.
    next_index: AtomicU64,
    /// Next tool invocation index; it keys the tool results' text.
    next_tool_index: AtomicU64,
    stats: stats::Stats,
    accounts: auth::Accounts,
    limiter: limits::Limiter,
    started: std::time::Instant,
    /// Chat completions being served, for `max_concurrency`.
    busy: std::sync::atomic::AtomicU32,
    /// The hiccup probe's lateness on this server's runtime, µs.
    hiccups: Arc<Mutex<Histogram<u64>>>,
}

/// Most users, tokens or rate-limit keys the mock tracks, so that a hostile or runaway client cannot make
/// it grow without bound; beyond it the mock answers 503.
const MAX_ENTRIES: usize = 1_000_000;

/// Large prompts are a legitimate load-test input; axum's 2 MB default would reject them.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

fn shared(config: MockConfig, hiccups: Arc<Mutex<Histogram<u64>>>) -> Arc<Shared> {
    Arc::new(Shared {
        limiter: limits::Limiter::new(config.rate_limit),
        stats: stats::Stats::new(&config.aliases),
        config,
        next_index: AtomicU64::new(0),
        next_tool_index: AtomicU64::new(0),
        accounts: auth::Accounts::default(),
        started: std::time::Instant::now(),
        busy: std::sync::atomic::AtomicU32::new(0),
        hiccups,
    })
}

/// Every route but `POST /v1/chat/completions`, which `front` serves before the router is asked.
fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/auth/register", post(auth::register))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/tools/{name}", post(tools::invoke))
        .route("/mock/stats", get(stats::handler))
        .route("/v1/echo", post(echo))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .fallback(not_found)
        // Like OpenAI, a known path with the wrong method is an unknown URL.
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// An OpenAI-style error response: `{"error":{"message":..,"type":..,"param":null,"code":null}}`.
fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    error_body(status, kind, message, None)
}

/// An OpenAI-style error response with a machine-readable `code`.
fn error_with_code(status: StatusCode, kind: &str, message: &str, code: &str) -> Response {
    error_body(status, kind, message, Some(code))
}

fn error_body(status: StatusCode, kind: &str, message: &str, code: Option<&str>) -> Response {
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    json_response(status, body.to_string().into())
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Body-read failures (too large, client gone) reported the OpenAI way rather than as axum's plain text.
fn body_rejection(rejection: BytesRejection) -> Response {
    error_response(rejection.status(), "invalid_request_error", &rejection.body_text())
}

async fn echo(headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection),
    };
    let content_type =
        headers.get(header::CONTENT_TYPE).cloned().unwrap_or_else(|| HeaderValue::from_static("application/json"));
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response()
}

async fn health() -> Response {
    json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
}

/// `mock-model`, then every alias, which is what a client may ask for by name.
async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let model = |id: &str| serde_json::json!({ "id": id, "object": "model", "owned_by": "run-load-test" });
    let aliases = shared.config.aliases.iter().map(|a| a.name.as_str()).filter(|id| *id != "mock-model");
    let data: Vec<_> = std::iter::once("mock-model").chain(aliases).map(model).collect();
    json_response(StatusCode::OK, serde_json::json!({ "object": "list", "data": data }).to_string().into())
}

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error_response(StatusCode::NOT_FOUND, "invalid_request_error", &format!("Invalid URL ({method} {})", uri.path()))
}
