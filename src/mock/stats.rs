//! `GET /mock/stats`: what the mock did since it started, so a load test can check its own counts against
//! the server's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Shared, json_response};

/// Counters, each bumped when the mock decides the outcome (before the response leaves), so that a client
/// reading them after its last response has completed sees every decision it was subject to.
#[derive(Default)]
pub(super) struct Stats {
    /// Answered 503 because the tier asked for by name was down (`Route::TierDown`), in total and per tier:
    /// what a gateway doing its own fallback over the tiers saw fail.
    pub tier_unavailable: AtomicU64,
    /// One counter per tier of the configured aliases (a bounded set), in the aliases' order.
    pub tier_unavailable_by_model: Vec<(String, AtomicU64)>,
    /// Every `POST /v1/chat/completions`, rejected ones included.
    pub chat_requests: AtomicU64,
    /// Answered with `error_status` by `error_rate`.
    pub injected_errors: AtomicU64,
    /// Routed to a tier other than its alias's first (one per request, however many hops).
    pub fallbacks: AtomicU64,
    /// Answered 503 because no tier of the alias was available.
    pub all_tiers_failed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unauthorized: AtomicU64,
    pub stalls: AtomicU64,
    pub resets: AtomicU64,
    pub malformed: AtomicU64,
    pub midstream_errors: AtomicU64,
    pub no_done: AtomicU64,
    /// Answers that were a tool call rather than text.
    pub tool_calls: AtomicU64,
    /// Successful registrations and logins.
    pub registrations: AtomicU64,
    pub logins: AtomicU64,
    /// Calls of `POST /v1/tools/{name}`.
    pub tool_invocations: AtomicU64,
    /// Refused with 429 because `max_concurrency` requests were being served.
    pub over_capacity: AtomicU64,
}

impl Stats {
    /// Zeroed counters, with one per tier of `aliases` for the tiers named directly.
    pub(super) fn new(aliases: &[super::Alias]) -> Self {
        let mut tiers: Vec<(String, AtomicU64)> = Vec::new();
        for tier in aliases.iter().flat_map(|a| &a.tiers) {
            if !tiers.iter().any(|(t, _)| t == tier) {
                tiers.push((tier.clone(), AtomicU64::new(0)));
            }
        }
        Self { tier_unavailable_by_model: tiers, ..Self::default() }
    }

    /// Counts a directly named tier found down (a model in `failing_tiers` that is no alias's tier counts
    /// in the total only).
    pub(super) fn tier_down(&self, tier: &str) {
        bump(&self.tier_unavailable);
        if let Some((_, counter)) = self.tier_unavailable_by_model.iter().find(|(t, _)| t == tier) {
            bump(counter);
        }
    }
}

/// Counting needs no ordering with other memory: each counter is read on its own.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The hiccup probe on the mock's runtime, ms: since the server started, or since the embedded run last took it.
fn hiccups(shared: &Shared) -> serde_json::Value {
    let h = shared.hiccups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |x: f64| if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(x)) };
    serde_json::json!({
        "interval_ms": super::background::HICCUP_INTERVAL.as_secs_f64() * 1000.0,
        "samples": h.len(),
        "p50_ms": q(0.5),
        "p99_ms": q(0.99),
        "max_ms": if h.is_empty() { 0.0 } else { ms(h.max()) },
    })
}

pub(super) async fn handler(State(shared): State<Arc<Shared>>) -> Response {
    let s = &shared.stats;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "chat_requests": get(&s.chat_requests),
        "injected_errors": get(&s.injected_errors),
        "fallbacks": get(&s.fallbacks),
        "all_tiers_failed": get(&s.all_tiers_failed),
        "tier_unavailable": get(&s.tier_unavailable),
        "tier_unavailable_by_model": s
            .tier_unavailable_by_model
            .iter()
            .map(|(tier, c)| (tier.clone(), serde_json::Value::from(get(c))))
            .collect::<serde_json::Map<_, _>>(),
        "rate_limited": get(&s.rate_limited),
        "unauthorized": get(&s.unauthorized),
        "stalls": get(&s.stalls),
        "resets": get(&s.resets),
        "malformed": get(&s.malformed),
        "midstream_errors": get(&s.midstream_errors),
        "no_done": get(&s.no_done),
        "over_capacity": get(&s.over_capacity),
        "tool_calls": get(&s.tool_calls),
        "registrations": get(&s.registrations),
        "logins": get(&s.logins),
        "tool_invocations": get(&s.tool_invocations),
        "hiccups": hiccups(&shared),
    });
    json_response(StatusCode::OK, body.to_string().into())
}
