//! One step of one user: render the request, exchange it, judge the response (status, checks, stream),
//! capture variables, measure LLM responses, retry on a retryable status, and record the outcome into the
//! worker's recorder. Every outcome is recorded; nothing here can fail the run.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use minijinja::Value;

use super::capture::{self, Captured, CheckLine};
use super::error::EngineError;
use super::json_body::render_json;
use super::plan::{BodyPlan, CaptureSource, HttpAction, StepPlan, UrlPlan, origin_form, request};
use super::session::{Session, pause, pick};
use crate::client::{Exchange, Reading, Request, Transport, excerpt, is_success, status_kind};
use crate::llm::usage::read_completion;
use crate::metrics::{ErrorKind, GatewaySample, LlmSample};
use crate::scenario::{Ctx, Text};

struct Fail {
    kind: ErrorKind,
    message: String,
    bytes: u64,
}

fn check(message: String) -> Fail {
    Fail { kind: ErrorKind::Check, message, bytes: 0 }
}

enum Attempt {
    Done {
        latency: Duration,
        ttfb: Duration,
        bytes: u64,
        cost: f64,
    },
    Failed(Fail),
    /// A retryable status, with the server's advised wait.
    Retry(Fail, Option<Duration>),
}

/// Runs the step (with its retries) and records it; returns whether it succeeded and what it cost. The step is
/// marked as running, and each attempt as in flight, for as long as they last: a hard stop drops this future
/// mid-way and leaves them counted.
pub(super) async fn run_step<T: Transport>(
    u: &mut Session<T>,
    step: &StepPlan,
    http: &HttpAction,
    lag: Option<Duration>,
) -> (bool, f64) {
    let local = u.local.clone();
    let running = local.running.get(step.id);
    if let Some(c) = running {
        c.set(c.get() + 1);
    }
    let mut retries = 0;
    // One loop in this one function: a step is awaited through as few nested futures as possible.
    let r = loop {
        local.in_flight.set(local.in_flight.get() + 1);
        let attempt = if u.shared.capture.as_ref().is_some_and(|log| log.claim(step.id)) {
            captured(u, step, http, retries + 1).await
        } else {
            exchange(u, step, http, None).await
        };
        local.in_flight.set(local.in_flight.get() - 1);
        let fail = match attempt {
            Attempt::Done { latency, ttfb, bytes, cost } => {
                let mut rec = local.rec.borrow_mut();
                match lag {
                    Some(lag) => rec.steps[step.id].record_ok_from_schedule(latency, ttfb, bytes, lag),
                    None => rec.steps[step.id].record_ok(latency, ttfb, bytes),
                }
                break (true, cost);
            }
            Attempt::Failed(f) => f,
            Attempt::Retry(f, advised) => match &step.flow.retry {
                Some(r) if retries < r.max => {
                    let wait = retry_wait(&mut u.vars.rng, advised.unwrap_or(r.backoff), r.max_wait);
                    retries += 1;
                    local.rec.borrow_mut().steps[step.id].retries += 1;
                    if pause(&u.shared.stop.graceful, wait).await {
                        continue;
                    }
                    f
                }
                _ => f,
            },
        };
        let shared = &u.shared;
        local.rec.borrow_mut().steps[step.id].record_err(fail.kind, fail.bytes, || shared.redact(fail.message));
        break (false, 0.0);
    };
    if let Some(c) = running {
        c.set(c.get() - 1);
    }
    r
}

/// The wait before a retry: the advice (or backoff) plus up to 10% jitter, since users told the same
/// retry-after would otherwise collide again; never beyond `max_wait`, however absurd the advice. An advice at
/// or beyond `max_wait` waits `max_wait` less up to 10%, keeping the jitter.
fn retry_wait(rng: &mut rand::rngs::SmallRng, advised: Duration, max_wait: Duration) -> Duration {
    if advised >= max_wait {
        return max_wait - pick(rng, (Duration::ZERO, max_wait / 10));
    }
    advised.saturating_add(pick(rng, (Duration::ZERO, advised / 10))).min(max_wait)
}

/// One attempt recorded in full, for a run that captures exchanges (`try`, `--http-debug`) when this one has a
/// slot.
async fn captured<T: Transport>(u: &mut Session<T>, step: &StepPlan, http: &HttpAction, attempt: u32) -> Attempt {
    let user = u.shared.plan.classes.get(u.class).map(|c| c.name.clone()).unwrap_or_default();
    let mut c = Box::new(Captured { user, step: step.name.clone(), step_id: step.id, attempt, ..Default::default() });
    let outcome = exchange(u, step, http, Some(&mut c)).await;
    c.failure = match &outcome {
        Attempt::Done { .. } => None,
        Attempt::Failed(f) | Attempt::Retry(f, _) => Some((f.kind, f.message.clone())),
    };
    if let Some(log) = &u.shared.capture {
        log.push(*c);
    }
    outcome
}

async fn exchange<T: Transport>(
    u: &mut Session<T>,
    step: &StepPlan,
    http: &HttpAction,
    mut tap: Option<&mut Captured>,
) -> Attempt {
    let plan = &u.shared.plan;
    let ctx = http.templated.then(|| u.vars.ctx(plan));
    let built;
    let (req, requested) = match &http.fixed {
        Some(req) => (req, None),
        None => match build_request(u, http, step.llm.chat, ctx.as_ref()) {
            Ok((req, requested)) => {
                built = req;
                (&built, requested)
            }
            Err(e) => return Attempt::Failed(check(e.to_string())),
        },
    };
    if let Some(c) = tap.as_deref_mut() {
        capture::request(c, req);
    }
    u.buf.clear();
    let assemble = step.checks.read_body();
    if step.llm.stream {
        u.sse.reset(assemble);
    }
    let reading = Reading {
        buf: Some(&mut u.buf),
        keep: http.keep_body,
        sink: step.llm.stream.then_some(&mut u.sse),
        capture: if step.llm.chat { plan.gateway.names() } else { &[] },
        expect: step.checks.expect_status.as_deref(),
        max_body: http.max_body,
        tap: tap.as_deref_mut().map(|c| &mut c.response),
    };
    let ex = match u.client.exchange(req, http.timeout, reading).await {
        Ok(ex) => ex,
        Err(f) => {
            if let Some(c) = tap.filter(|c| c.response.responded && step.llm.stream) {
                c.stream = Some(u.sse.summary().clone());
            }
            return Attempt::Failed(Fail { kind: f.kind, message: f.message, bytes: f.bytes });
        }
    };
    if ex.retry_after.invalid {
        u.local.rec.borrow_mut().steps[step.id].retry_after_invalid += 1;
    }
    let status_ok = match &step.checks.expect_status {
        Some(codes) => codes.contains(&ex.status),
        None => is_success(ex.status),
    };
    if let Some(c) = tap.as_deref_mut() {
        (c.status, c.ttfb, c.latency, c.response_len) = (Some(ex.status), Some(ex.ttfb), Some(ex.latency), ex.bytes);
        c.checks.push(status_check(step.checks.expect_status.as_deref(), ex.status, status_ok));
        if step.llm.stream && status_ok {
            c.stream = Some(u.sse.summary().clone());
        }
    }
    if !status_ok {
        let not_followed = if (300..400).contains(&ex.status) { " (redirects are not followed)" } else { "" };
        let fail = Fail {
            kind: status_kind(ex.status),
            message: format!("unexpected status {}{not_followed}{}", ex.status, excerpt(&u.buf)),
            bytes: ex.bytes,
        };
        let retryable = step.flow.retry.as_ref().is_some_and(|r| r.on.contains(&ex.status));
        return if retryable { Attempt::Retry(fail, ex.retry_after.wait) } else { Attempt::Failed(fail) };
    }
    if step.llm.stream && assemble {
        u.json_buf.clear();
        u.sse.assembled_json(&mut u.json_buf);
        std::mem::swap(&mut u.buf, &mut u.json_buf);
    }
    if let Err(e) = judge(u, step, ctx.as_ref(), tap) {
        // The body that failed the check, quoted: what a failure message says first is what the user needs.
        let message = format!("{e}{}", excerpt(&u.buf));
        return Attempt::Failed(Fail { kind: ErrorKind::Check, message, bytes: ex.bytes });
    }
    let cost = if step.llm.chat { measure_llm(u, step, &ex, requested.as_deref()) } else { 0.0 };
    Attempt::Done { latency: ex.latency, ttfb: ex.ttfb, bytes: ex.bytes, cost }
}

/// `expect` checks and captures on the body (for streams: the assembled message). With a capture, each check
/// and each variable set is noted in it.
fn judge<T>(
    u: &mut Session<T>,
    step: &StepPlan,
    ctx: Option<&Ctx>,
    mut tap: Option<&mut Captured>,
) -> Result<(), EngineError> {
    let plan = &u.shared.plan;
    if let Some(needle) = &step.checks.body_contains {
        let empty;
        let c = match ctx {
            Some(c) => c,
            None => {
                empty = Ctx::new(Vec::<(String, Value)>::new());
                &empty
            }
        };
        let needle = plan.templates.render(needle, c).map_err(|e| EngineError::Step(format!("template: {e}")))?;
        let what = || format!("body contains `{needle}`");
        if !contains(&u.buf, needle.as_bytes()) {
            note(&mut tap, || CheckLine::fail(what(), "not found in the body".into()));
            return Err(EngineError::Step(format!("body does not contain `{needle}`")));
        }
        note(&mut tap, || CheckLine::pass(what()));
    }
    if step.checks.json_paths.is_empty() && step.checks.captures.is_empty() {
        return Ok(());
    }
    let json: serde_json::Value = serde_json::from_slice(&u.buf).map_err(|e| {
        note(&mut tap, || CheckLine::fail("body is JSON".into(), e.to_string()));
        EngineError::Step(format!("response is not JSON ({e}), so JSON paths cannot be checked"))
    })?;
    for (src, path) in &step.checks.json_paths {
        let what = || format!("JSON path `{src}` matches");
        if path.query(&json).is_empty() {
            note(&mut tap, || CheckLine::fail(what(), "matched nothing".into()));
            return Err(EngineError::Step(format!("JSON path `{src}` matched nothing")));
        }
        note(&mut tap, || CheckLine::pass(what()));
    }
    for cap in &step.checks.captures {
        let value = match &cap.source {
            CaptureSource::Path(src, path) => match path.query(&json).first() {
                Some(serde_json::Value::String(s)) => Value::from(s.as_str()),
                Some(v) => Value::from(minijinja::value::Serde(v)),
                None => {
                    let what = || format!("capture `{}` from `{src}`", cap.name);
                    note(&mut tap, || CheckLine::fail(what(), "matched nothing".into()));
                    return Err(EngineError::Step(format!(
                        "capture `{}`: JSON path `{src}` matched nothing",
                        cap.name
                    )));
                }
            },
            CaptureSource::Value(node) => value_capture(u, &cap.name, node)?,
        };
        if let Some(c) = tap.as_deref_mut() {
            c.captures.push((cap.name.clone(), value.to_string()));
        }
        u.vars.set(&cap.name, value, cap.append);
    }
    Ok(())
}

/// A check's outcome, into the capture if there is one; the line is only built then (a load run pays nothing).
fn note(tap: &mut Option<&mut Captured>, line: impl FnOnce() -> CheckLine) {
    if let Some(c) = tap.as_deref_mut() {
        c.checks.push(line());
    }
}

/// The status check as `try` shows it: `status 200`, `status 200|201`, or `status 2xx` without `expect.status`.
fn status_check(expect: Option<&[u16]>, got: u16, passed: bool) -> CheckLine {
    let what = match expect {
        Some(codes) => {
            let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
            format!("status {}", codes.join("|"))
        }
        None => "status 2xx".into(),
    };
    if passed { CheckLine::pass(what) } else { CheckLine::fail(what, format!("got {got}")) }
}

fn value_capture<T>(u: &mut Session<T>, name: &str, node: &super::plan::JsonNode) -> Result<Value, EngineError> {
    let plan = &u.shared.plan;
    let c = u.vars.ctx(plan);
    let render =
        |t: &Text| plan.templates.render(t, &c).map(|s| s.into_owned()).map_err(|e| EngineError::Step(e.to_string()));
    let v = render_json(node, &render).map_err(|e| EngineError::Step(format!("capture `{name}`: {e}")))?;
    Ok(Value::from(minijinja::value::Serde(&v)))
}

/// A `delay` step: wait (unless the run stops), then set its value captures. Returns false on a stop.
pub(super) async fn run_delay<T>(u: &mut Session<T>, step: &StepPlan, bounds: (Duration, Duration)) -> bool {
    let d = pick(&mut u.vars.rng, bounds);
    if !pause(&u.shared.stop.graceful, d).await {
        return false;
    }
    for cap in &step.checks.captures {
        if let CaptureSource::Value(node) = &cap.source {
            // Validation allows only templates over known variables here; one that still fails (a variable
            // undefined at run time) leaves the capture unset, as a failed path capture would.
            if let Ok(v) = value_capture(u, &cap.name, node) {
                u.vars.set(&cap.name, v, cap.append);
            }
        }
    }
    true
}

/// Tokens, served model, fallback and cost of an LLM response; records them and returns the cost.
fn measure_llm<T>(u: &mut Session<T>, step: &StepPlan, ex: &Exchange, requested: Option<&str>) -> f64 {
    let plan = &u.shared.plan;
    let requested = requested.or(step.llm.model.as_deref()).unwrap_or("");
    let mut sample;
    let body_model: Option<Cow<'_, str>>;
    let body_cost;
    let mut body_provider: Option<Cow<'_, str>> = None;
    if step.llm.stream {
        sample = u.sse.llm_sample(ex.latency);
        let model = &u.sse.summary().model;
        body_cost = u.sse.summary().usage_cost;
        body_model = (!model.is_empty()).then_some(Cow::Borrowed(model.as_str()));
    } else {
        let Some(completion) = read_completion(&u.buf) else { return 0.0 };
        sample = LlmSample { latency: ex.latency, ..LlmSample::default() };
        sample.output_tokens = completion.usage.completion_tokens;
        sample.input_tokens = completion.usage.prompt_tokens;
        sample.reasoning_tokens = completion.usage.reasoning_tokens;
        sample.from_usage = true;
        body_cost = completion.cost;
        body_provider = completion.provider;
        body_model = completion.model;
    }
    let gw = plan.gateway.parse(&ex.captured, body_cost);
    let served = gw.model.or(body_model.as_deref()).unwrap_or("");
    sample.model = served;
    sample.deployment = gw.deployment.or(body_provider.as_deref()).unwrap_or("");
    // The gateway's word wins; the alias table speaks only when the gateway said nothing about it.
    sample.fallback = gw.fallback.unwrap_or_else(|| plan.attribution.is_fallback(requested, served));
    let priced = if served.is_empty() { requested } else { served };
    let tokens = sample.input_tokens + sample.output_tokens;
    let (cost, reported, unpriced) = match gw.cost {
        Some(c) => (c, true, false),
        None => match plan.attribution.cost(priced, sample.input_tokens, sample.output_tokens) {
            Some(c) => (c, false, false),
            None => (0.0, false, tokens > 0),
        },
    };
    sample.cost = cost;
    sample.gateway = GatewaySample {
        retries: gw.retries.map_or(0, u64::from),
        cache_hit: gw.cache_hit == Some(true),
        target: gw.target,
        overhead: gw.overhead,
        cost_reported: reported,
        unpriced,
        attributed: gw.attributed,
        expected: plan.gateway.expected(),
    };
    u.local.rec.borrow_mut().steps[step.id].record_llm(&sample);
    sample.cost
}

/// A request with rendered parts (a step whose request is all fixed sends `http.fixed`), and the model a
/// rendered chat body asks for.
fn build_request<T>(
    u: &Session<T>,
    http: &HttpAction,
    chat: bool,
    ctx: Option<&Ctx>,
) -> Result<(Request, Option<String>), EngineError> {
    let plan = &u.shared.plan;
    let render = |t: &Text| -> Result<String, EngineError> {
        match ctx {
            Some(c) => plan
                .templates
                .render(t, c)
                .map(|s| s.into_owned())
                .map_err(|e| EngineError::Step(format!("template: {e}"))),
            None => Err(EngineError::Step("template without context".to_string())),
        }
    };
    let text = |t: &Text| match t {
        Text::Static(s) => Ok(s.clone()),
        t => render(t),
    };
    let uri = match &http.url {
        UrlPlan::Static(u) => u.clone(),
        UrlPlan::Dynamic { prefix, path } => {
            let query =
                http.query.iter().map(|(k, v)| Ok((k.clone(), text(v)?))).collect::<Result<Vec<_>, EngineError>>()?;
            origin_form(prefix, &text(path)?, query).map_err(|e| EngineError::Step(e.to_string()))?
        }
    };
    let mut requested = None;
    let body = match &http.body {
        BodyPlan::Empty => Bytes::new(),
        BodyPlan::Fixed(b) => b.clone(),
        BodyPlan::Text(t) => Bytes::from(render(t)?),
        BodyPlan::Json(node) => {
            let v = render_json(node, &render)?;
            if chat {
                requested = v.get("model").and_then(|m| m.as_str()).map(String::from);
            }
            Bytes::from(serde_json::to_vec(&v).map_err(|e| EngineError::Step(e.to_string()))?)
        }
    };
    let mut req = request(&http.method, uri, &http.headers, body);
    for (name, t) in &http.dyn_headers {
        let rendered = render(t)?;
        crate::redact::remember_header(name.as_str(), &rendered);
        let mut v = HeaderValue::from_str(&rendered)
            .map_err(|_| EngineError::Step(format!("header `{name}` rendered to an invalid value")))?;
        v.set_sensitive(true);
        req.headers_mut().insert(name.clone(), v);
    }
    Ok((req, requested))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_retry_waits_at_most_max_wait_whatever_the_advice() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let max = Duration::from_secs(60);
        for advised in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::from_secs(61), max] {
            let w = retry_wait(&mut rng, advised, max);
            assert!(w <= max && w >= max - max / 10, "{advised:?} -> {w:?}");
        }
        for _ in 0..100 {
            let w = retry_wait(&mut rng, Duration::from_secs(2), max);
            assert!(w >= Duration::from_secs(2) && w <= Duration::from_millis(2200), "{w:?}");
        }
        assert_eq!(retry_wait(&mut rng, Duration::ZERO, max), Duration::ZERO);
        assert_eq!(retry_wait(&mut rng, Duration::MAX, Duration::ZERO), Duration::ZERO);
    }
}
