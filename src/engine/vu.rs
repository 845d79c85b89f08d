//! The one virtual-user loop: start on schedule, run the class's steps in order, record into the worker's own
//! recorder, think, repeat until told to stop. Every outcome of a request is recorded; nothing here can fail.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use minijinja::Value;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;

use super::plan::{BodyPlan, ClassPlan, JsonNode, Plan, StepPlan, UrlPlan, origin_form};
use crate::client::{ClientFactory, HttpClient, Request, status_kind};
use crate::metrics::{ErrorKind, Recorder};
use crate::scenario::{Ctx, Text};

/// Stop in two stages: `graceful` ends iterations at the next step boundary, `hard` aborts the users (each
/// worker watches it once, so requests never race it).
#[derive(Clone, Default)]
pub struct Stop {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}

/// What every worker thread shares, read-only except the iteration budget (one atomic per iteration).
pub struct Shared {
    pub plan: Arc<Plan>,
    pub factory: ClientFactory,
    pub stop: Stop,
    pub iterations_left: Option<AtomicU64>,
    pub seed: u64,
    pub start: Instant,
    pub secrets: Vec<String>,
}

impl Shared {
    fn claim_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
        }
    }

    fn redact(&self, msg: String) -> String {
        self.secrets.iter().fold(msg, |m, s| if m.contains(s.as_str()) { m.replace(s.as_str(), "***") } else { m })
    }
}

/// One worker thread's state: its recorder and gauges. Single-threaded, so no locks.
pub struct Local {
    pub rec: RefCell<Recorder>,
    pub users: Cell<u64>,
    pub in_flight: Cell<u64>,
}

pub struct UserSlot {
    pub id: u64,
    pub class: usize,
    pub start_after: Duration,
}

struct Vars {
    user_id: u64,
    iteration: u64,
    captures: HashMap<String, String>,
    rng: SmallRng,
}

impl Vars {
    fn ctx(&mut self, plan: &Plan) -> Ctx {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        let uuid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        );
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let builtins = [
            ("user_id", Value::from(self.user_id)),
            ("iteration", Value::from(self.iteration)),
            ("random_id", Value::from(format!("{a:016x}"))),
            ("uuid", Value::from(uuid)),
            ("timestamp_ms", Value::from(now_ms)),
            ("scenario", Value::from(plan.scenario.as_str())),
        ];
        let vars = plan.vars.iter().map(|(k, v)| (k.as_str(), Value::from(v.as_str())));
        let caps = self.captures.iter().map(|(k, v)| (k.as_str(), Value::from(v.as_str())));
        Ctx::new(builtins.into_iter().chain(vars).chain(caps))
    }
}

fn user_rng(seed: u64, user: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ user.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn pick(rng: &mut SmallRng, bounds: (Duration, Duration)) -> Duration {
    let (lo, hi) = bounds;
    if hi <= lo { lo } else { rng.random_range(lo..=hi) }
}

/// Sleeps unless a graceful stop comes first; false means stop.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    if d.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

pub async fn run_user(shared: Arc<Shared>, local: Rc<Local>, slot: UserSlot) {
    if !pause(&shared.stop.graceful, slot.start_after).await {
        return;
    }
    let plan = &shared.plan;
    let class = &plan.classes[slot.class];
    let mut client = shared.factory.build();
    local.users.set(local.users.get() + 1);
    let mut vars =
        Vars { user_id: slot.id, iteration: 0, captures: HashMap::new(), rng: user_rng(shared.seed, slot.id) };
    let mut buf = Vec::new();
    while !shared.stop.graceful.is_cancelled() && shared.claim_iteration() {
        if !run_iteration(&shared, &local, class, slot.class, &mut client, &mut vars, &mut buf).await {
            break;
        }
        vars.iteration += 1;
        if let Some(think) = class.think {
            let d = pick(&mut vars.rng, think);
            if !pause(&shared.stop.graceful, d).await {
                break;
            }
        }
    }
    local.users.set(local.users.get() - 1);
}

/// Runs one flow; false when a stop cut it short.
async fn run_iteration(
    shared: &Shared,
    local: &Local,
    class: &ClassPlan,
    class_idx: usize,
    client: &mut HttpClient,
    vars: &mut Vars,
    buf: &mut Vec<u8>,
) -> bool {
    let flow_start = Instant::now();
    let mut ok = true;
    for step in &class.steps {
        if shared.stop.graceful.is_cancelled() {
            return false;
        }
        local.in_flight.set(local.in_flight.get() + 1);
        let outcome = exec_step(shared, step, client, vars, buf).await;
        local.in_flight.set(local.in_flight.get() - 1);
        {
            let mut rec = local.rec.borrow_mut();
            let stats = &mut rec.steps[step.id];
            match outcome {
                Ok(o) => stats.record_ok(o.latency, o.ttfb, o.bytes),
                Err(f) => {
                    stats.record_err(f.kind, f.bytes, || shared.redact(f.message));
                    ok = false;
                }
            }
        }
        if !ok && step.abort_on_failure {
            break;
        }
        if let Some(think) = step.think {
            let d = pick(&mut vars.rng, think);
            if !pause(&shared.stop.graceful, d).await {
                return false;
            }
        }
    }
    local.rec.borrow_mut().flows[class_idx].record(ok, flow_start.elapsed());
    true
}

struct Done {
    latency: Duration,
    ttfb: Duration,
    bytes: u64,
}

struct Fail {
    kind: ErrorKind,
    message: String,
    bytes: u64,
}

fn check(message: String) -> Fail {
    Fail { kind: ErrorKind::Check, message, bytes: 0 }
}

async fn exec_step(
    shared: &Shared,
    step: &StepPlan,
    client: &mut HttpClient,
    vars: &mut Vars,
    buf: &mut Vec<u8>,
) -> Result<Done, Fail> {
    let plan = &shared.plan;
    let ctx = step.templated.then(|| vars.ctx(plan));
    let req = build_request(plan, step, ctx.as_ref()).map_err(check)?;
    buf.clear();
    let keep = step.keep_body.then_some(&mut *buf);
    let ex = client.exchange(req, step.timeout, keep).await.map_err(|f| Fail {
        kind: f.kind,
        message: f.message,
        bytes: f.bytes,
    })?;
    let fail = |kind, message| Err(Fail { kind, message, bytes: ex.bytes });
    let status_ok = match &step.expect_status {
        Some(codes) => codes.contains(&ex.status),
        None => ex.status < 400,
    };
    if !status_ok {
        return fail(status_kind(ex.status), format!("unexpected status {}{}", ex.status, excerpt(buf)));
    }
    if let Some(needle) = &step.body_contains {
        let needle = match &ctx {
            Some(c) => plan.templates.render(needle, c).map_err(|e| check(format!("template: {e}")))?,
            None => plan
                .templates
                .render(needle, &Ctx::new(Vec::<(String, Value)>::new()))
                .map_err(|e| check(e.to_string()))?,
        };
        if !contains(buf, needle.as_bytes()) {
            return fail(ErrorKind::Check, format!("body does not contain `{needle}`"));
        }
    }
    if !step.json_paths.is_empty() || !step.captures.is_empty() {
        let json: serde_json::Value = match serde_json::from_slice(buf) {
            Ok(v) => v,
            Err(e) => {
                return fail(ErrorKind::Check, format!("response is not JSON ({e}), so JSON paths cannot be checked"));
            }
        };
        for (src, path) in &step.json_paths {
            if path.query(&json).is_empty() {
                return fail(ErrorKind::Check, format!("JSON path `{src}` matched nothing"));
            }
        }
        for (name, src, path) in &step.captures {
            match path.query(&json).first() {
                Some(serde_json::Value::String(s)) => vars.captures.insert(name.clone(), s.clone()),
                Some(v) => vars.captures.insert(name.clone(), v.to_string()),
                None => return fail(ErrorKind::Check, format!("capture `{name}`: JSON path `{src}` matched nothing")),
            };
        }
    }
    Ok(Done { latency: ex.latency, ttfb: ex.ttfb, bytes: ex.bytes })
}

fn build_request(plan: &Plan, step: &StepPlan, ctx: Option<&Ctx>) -> Result<Request, String> {
    let render = |t: &Text| -> Result<String, String> {
        match ctx {
            Some(c) => plan.templates.render(t, c).map(|s| s.into_owned()).map_err(|e| format!("template: {e}")),
            None => Err("template without context".to_string()),
        }
    };
    let text = |t: &Text| match t {
        Text::Static(s) => Ok(s.clone()),
        t => render(t),
    };
    let uri = match &step.url {
        UrlPlan::Static(u) => u.clone(),
        UrlPlan::Dynamic { prefix, path } => {
            let query =
                step.query.iter().map(|(k, v)| Ok((k.clone(), text(v)?))).collect::<Result<Vec<_>, String>>()?;
            origin_form(prefix, &text(path)?, query)?
        }
    };
    let body = match &step.body {
        BodyPlan::Empty => Bytes::new(),
        BodyPlan::Fixed(b) => b.clone(),
        BodyPlan::Text(t) => Bytes::from(render(t)?),
        BodyPlan::Json(node) => {
            Bytes::from(serde_json::to_vec(&render_json(node, &render)?).map_err(|e| e.to_string())?)
        }
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = step.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = step.headers.clone();
    for (name, t) in &step.dyn_headers {
        let mut v =
            HeaderValue::from_str(&render(t)?).map_err(|_| format!("header `{name}` rendered to an invalid value"))?;
        v.set_sensitive(true);
        req.headers_mut().insert(name.clone(), v);
    }
    Ok(req)
}

fn render_json(node: &JsonNode, render: &dyn Fn(&Text) -> Result<String, String>) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match node {
        JsonNode::Fixed(v) => v.clone(),
        JsonNode::Str(t) => Value::String(render(t)?),
        JsonNode::Array(items) => Value::Array(items.iter().map(|n| render_json(n, render)).collect::<Result<_, _>>()?),
        JsonNode::Object(items) => Value::Object(
            items.iter().map(|(k, n)| Ok((k.clone(), render_json(n, render)?))).collect::<Result<_, String>>()?,
        ),
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!(": {}", text.replace(['\n', '\r'], " "))
}
