//! Compiles a validated scenario into request plans: everything that does not change between requests (URL,
//! headers, fixed bodies, JSON paths) is built once here, so the hot path only clones and sends.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json_path::JsonPath;

use crate::client::{DEFAULT_MAX_BODY, Request, TransportFactory, prepared};
use crate::llm::gateway::GatewaySpec;
use crate::llm::pricing::Attribution;
use crate::scenario::feeder::Feeder;
use crate::scenario::{Capture, OnFailure, Scenario, Step, TemplateSet, Text, condition_template, expand_env};

use super::error::EngineError;
pub use super::json_body::JsonNode;
use super::json_body::{fixed_model, json_node, request_usage_in_stream};

/// Where a step was declared, for reports. `path` is the unexpanded text, so secrets never reach a report.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub user: String,
    pub name: String,
    /// The request's method, or `DELAY` for a step that sends none.
    pub method: String,
    /// The request's route, or `-` for a step that sends none.
    pub path: String,
    /// Whether the step sends a request.
    pub request: bool,
}

impl StepInfo {
    /// Whether the step sends a request (a `delay` step does not, and is left out of request statistics).
    pub fn is_request(&self) -> bool {
        self.request
    }
}

pub struct Plan {
    pub scenario: String,
    pub templates: TemplateSet,
    pub classes: Vec<ClassPlan>,
    /// Indexed by `StepPlan::id`.
    pub steps: Vec<StepInfo>,
    /// `[vars]`, env-expanded.
    pub vars: Vec<(String, String)>,
    /// Aliases and prices: fallback detection and cost.
    pub attribution: Attribution,
    /// Which response headers (and body fields) say what the gateway did.
    pub gateway: GatewaySpec,
    /// One row of each is drawn per iteration, as `{{ feeder_name.column }}`.
    pub feeders: Vec<Feeder>,
}

pub struct ClassPlan {
    pub name: String,
    pub weight: u32,
    pub think: Option<(Duration, Duration)>,
    pub steps: Vec<StepPlan>,
    pub on_start: Vec<StepPlan>,
    pub on_stop: Vec<StepPlan>,
    /// Captures with `append = true`: lists that start empty in every iteration.
    pub appended: Vec<String>,
}

pub enum UrlPlan {
    /// Origin-form path and query, built once.
    Static(http::Uri),
    /// The base URL's path prefix + the rendered path, then the query.
    Dynamic { prefix: String, path: Text },
}

/// Where the plan's requests go: the base URL's path prefix and the `Host` header.
pub struct Endpoint<'a> {
    pub prefix: &'a str,
    pub host: &'a HeaderValue,
}

impl<'a> Endpoint<'a> {
    /// Where the transports `factory` builds send their requests: the plan is compiled for that target.
    pub fn of<F: TransportFactory>(factory: &'a F) -> Endpoint<'a> {
        Endpoint { prefix: factory.prefix(), host: factory.host_header() }
    }
}

pub enum BodyPlan {
    Empty,
    Fixed(Bytes),
    Json(JsonNode),
    Text(Text),
}

/// One step, compiled: what it does (`action`), how its response is judged (`checks`), how it moves the user
/// through the flow (`flow`) and how an LLM response is read (`llm`).
pub struct StepPlan {
    pub id: usize,
    pub name: String,
    pub action: Action,
    pub checks: Checks,
    pub flow: Flow,
    pub llm: LlmPlan,
}

impl StepPlan {
    /// Whether the step sends a request (a `delay` step does not, and is left out of request statistics).
    pub fn is_request(&self) -> bool {
        matches!(self.action, Action::Http(_))
    }

    /// The request the step sends, if it sends one.
    pub fn http(&self) -> Option<&HttpAction> {
        match &self.action {
            Action::Http(h) => Some(h),
            Action::Delay(_) => None,
        }
    }
}

/// What a step does when its turn comes.
// A plan holds a handful of steps, built once: their size does not matter, one indirection per request would.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    Http(HttpAction),
    Delay(DelayAction),
}

pub struct HttpAction {
    pub method: http::Method,
    pub url: UrlPlan,
    /// Query pairs that need rendering (fixed ones are already in a static URL).
    pub query: Vec<(String, Text)>,
    pub headers: HeaderMap,
    pub dyn_headers: Vec<(HeaderName, Text)>,
    pub body: BodyPlan,
    pub timeout: Duration,
    /// Most body bytes held in memory (`[defaults]` or step `max_body`).
    pub max_body: usize,
    /// Checks or captures read the body, so it is kept in memory.
    pub keep_body: bool,
    /// Some part is a template, so a render context is built per request.
    pub templated: bool,
    /// The whole request when nothing in it is rendered: built once here, sent by reference every time.
    pub fixed: Option<Request>,
}

/// A `delay` step: wait between these bounds instead of sending a request.
pub struct DelayAction {
    pub bounds: (Duration, Duration),
}

/// What a response must satisfy, and what is taken from it.
#[derive(Default)]
pub struct Checks {
    pub expect_status: Option<Vec<u16>>,
    pub body_contains: Option<Text>,
    pub json_paths: Vec<(String, JsonPath)>,
    pub captures: Vec<CapturePlan>,
}

impl Checks {
    /// Whether judging needs the body assembled (for a stream: the message rebuilt from its chunks).
    pub fn read_body(&self) -> bool {
        !self.captures.is_empty() || !self.json_paths.is_empty() || self.body_contains.is_some()
    }
}

/// How the step moves its user through the flow.
pub struct Flow {
    pub think: Option<(Duration, Duration)>,
    pub abort_on_failure: bool,
    pub when: Option<Text>,
    pub repeat: Option<LoopPlan>,
    pub retry: Option<RetryPlan>,
}

/// How the response is read as an LLM answer.
#[derive(Default)]
pub struct LlmPlan {
    /// Parse the response as a chat completion (tokens, served model, cost).
    pub chat: bool,
    /// Read the response as a server-sent event stream.
    pub stream: bool,
    /// The `model` of a fixed JSON body (templated bodies are read at send time).
    pub model: Option<String>,
}

pub struct CapturePlan {
    pub name: String,
    pub source: CaptureSource,
    pub append: bool,
}

pub enum CaptureSource {
    /// JSON path (its text for messages, compiled).
    Path(String, JsonPath),
    /// A value built from templates after the path captures of the same step.
    Value(JsonNode),
}

pub struct LoopPlan {
    /// Index in the class's `steps`.
    pub to: usize,
    pub condition: Text,
    pub max: u32,
}

pub struct RetryPlan {
    pub max: u32,
    pub on: Vec<u16>,
    pub backoff: Duration,
    pub max_wait: Duration,
}

/// Which user classes and steps run, by tag (Locust `--tags` / `--exclude-tags`).
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl TagFilter {
    fn keeps(&self, tags: &[&String]) -> bool {
        let any = |set: &[String]| tags.iter().any(|t| set.contains(t));
        (self.include.is_empty() || any(&self.include)) && !any(&self.exclude)
    }
}

pub fn compile(
    s: &Scenario,
    name: &str,
    endpoint: Endpoint<'_>,
    default_timeout: Duration,
    filter: &TagFilter,
    feeders: Vec<Feeder>,
) -> Result<Plan, EngineError> {
    let vars = s.vars.iter().map(|(k, v)| Ok((k.clone(), expand(v)?))).collect::<Result<Vec<_>, EngineError>>()?;
    let mut templates = TemplateSet::new();
    templates.set_constants(constant_vars(s, &vars));
    let mut classes = Vec::new();
    let mut steps = Vec::new();
    let base = endpoint.prefix.trim_end_matches('/').to_string();
    let mut default_headers = HeaderMap::new();
    default_headers.insert(HOST, endpoint.host.clone());
    default_headers.insert(USER_AGENT, HeaderValue::from_static(concat!("run-load-test/", env!("CARGO_PKG_VERSION"))));
    let mut default_dyn = Vec::new();
    for (k, v) in &s.defaults.headers {
        header(&mut templates, k, v, &mut default_headers, &mut default_dyn)?;
    }
    let class_think =
        |t: &Option<crate::scenario::ThinkTime>| t.as_ref().or(s.defaults.think_time.as_ref()).map(|t| t.bounds());
    for user in &s.users {
        let uname = user.name.get_ref().clone();
        let class_tags: Vec<&String> = s.tags.iter().chain(&user.tags).collect();
        let mut build = |list: &[Step], filter_tags: bool, t: &mut TemplateSet| -> Result<Vec<StepPlan>, EngineError> {
            let mut out = Vec::new();
            for step in list {
                let tags: Vec<&String> = class_tags.iter().copied().chain(&step.tags).collect();
                if filter_tags && !filter.keeps(&tags) {
                    continue;
                }
                let id = steps.len();
                // Labels of a step that sends nothing, as reports and the journal name it.
                let (method, route) = match (&step.delay, step.route()) {
                    (Some(_), _) => ("DELAY", "-"),
                    (None, Some(r)) => r,
                    (None, None) => return Err(format!("step `{}` has no route", step.name.get_ref()).into()),
                };
                steps.push(StepInfo {
                    user: uname.clone(),
                    name: step.name.get_ref().clone(),
                    method: method.to_ascii_uppercase(),
                    path: route.to_string(),
                    request: step.delay.is_none(),
                });
                let ctx = StepCtx {
                    id,
                    base: &base,
                    timeout: default_timeout,
                    max_body: s.defaults.max_body.map_or(DEFAULT_MAX_BODY, |b| b.0),
                    headers: &default_headers,
                    dyn_headers: &default_dyn,
                };
                out.push(compile_step(step, t, ctx, &vars)?);
            }
            Ok(out)
        };
        // Setup and teardown always run: a tag filter selects the load, not the login it needs.
        let on_start = build(&user.on_start, false, &mut templates)?;
        let plans = build(&user.steps, true, &mut templates)?;
        let on_stop = build(&user.on_stop, false, &mut templates)?;
        if plans.is_empty() {
            continue;
        }
        let mut plans = plans;
        resolve_loops(&mut plans, &user.steps, &mut templates)?;
        classes.push(ClassPlan {
            name: uname,
            weight: user.weight.as_ref().map_or(1, |w| u32::try_from(*w.get_ref()).unwrap_or(u32::MAX)),
            think: class_think(&user.think_time),
            appended: plans
                .iter()
                .flat_map(|s| s.checks.captures.iter().filter(|c| c.append).map(|c| c.name.clone()))
                .collect(),
            steps: plans,
            on_start,
            on_stop,
        });
    }
    if classes.is_empty() {
        return Err(EngineError::Plan(format!(
            "no step is left to run after --tags {:?} / --exclude-tags {:?}; check the tags in the scenario",
            filter.include, filter.exclude
        )));
    }
    let mut gateway = s.gateway.clone();
    gateway.model_header = gateway.model_header.or_else(|| s.defaults.served_model_header.clone());
    let gateway = GatewaySpec::new(&gateway).map_err(|e| EngineError::Plan(e.to_string()))?;
    Ok(Plan {
        scenario: name.to_string(),
        templates,
        classes,
        steps,
        vars,
        attribution: Attribution { aliases: s.aliases.clone(), pricing: s.pricing.clone() },
        gateway,
        feeders,
    })
}

/// `[vars]` no capture or feeder of the scenario shadows: fixed for the whole run.
fn constant_vars<'a>(s: &Scenario, vars: &'a [(String, String)]) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut shadowed: std::collections::HashSet<&str> = s.feeders.iter().map(|f| f.name.as_str()).collect();
    for u in &s.users {
        for step in u.on_start.iter().chain(&u.steps).chain(&u.on_stop) {
            shadowed.extend(step.capture.keys().map(String::as_str));
        }
    }
    let shadowed: Vec<String> = shadowed.into_iter().map(String::from).collect();
    vars.iter().filter(move |(k, _)| !shadowed.contains(k)).map(|(k, v)| (k.as_str(), v.as_str()))
}

/// A JSON path or JSON key that may name `[vars]`, rendered with the run's values.
fn with_vars(text: &str, vars: &[(String, String)], what: &str) -> Result<String, EngineError> {
    crate::scenario::render_with_vars(text, vars)
        .map_err(|e| EngineError::Plan(format!("{what} `{text}`: only [vars] can fill it here ({e})")))
}

/// Loop targets are names in the scenario; after tag filtering they become indexes of the kept steps.
fn resolve_loops(plans: &mut [StepPlan], steps: &[Step], t: &mut TemplateSet) -> Result<(), EngineError> {
    let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let mut resolved = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let Some(l) = steps.iter().find(|s| s.name.get_ref() == &p.name).and_then(|s| s.repeat.as_ref()) else {
            continue;
        };
        let to = names[..=i]
            .iter()
            .position(|n| *n == l.to)
            .ok_or_else(|| format!("step `{}` loops to `{}`, which --tags/--exclude-tags left out", p.name, l.to))?;
        let condition = t.compile(&condition_template(&l.condition)).map_err(|e| format!("loop condition: {e}"))?;
        resolved.push((i, LoopPlan { to, condition, max: l.max }));
    }
    for (i, lp) in resolved {
        plans[i].flow.repeat = Some(lp);
    }
    Ok(())
}

struct StepCtx<'a> {
    id: usize,
    base: &'a str,
    timeout: Duration,
    max_body: usize,
    headers: &'a HeaderMap,
    dyn_headers: &'a [(HeaderName, Text)],
}

fn expand(s: &str) -> Result<String, EngineError> {
    expand_env(s).map(|c| c.into_owned()).map_err(|e| EngineError::Plan(e.to_string()))
}

fn compile_text(t: &mut TemplateSet, s: &str) -> Result<Text, EngineError> {
    Ok(t.compile(&expand(s)?).map_err(|e| format!("template `{s}`: {e}"))?)
}

fn header(
    t: &mut TemplateSet,
    k: &str,
    v: &str,
    fixed: &mut HeaderMap,
    dynamic: &mut Vec<(HeaderName, Text)>,
) -> Result<(), EngineError> {
    let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name `{k}`"))?;
    match compile_text(t, v)? {
        Text::Static(s) => {
            let mut value =
                HeaderValue::from_str(&s).map_err(|_| format!("header `{k}` has a value that is not valid in HTTP"))?;
            // Keeps credentials out of any Debug output.
            value.set_sensitive(true);
            fixed.insert(name, value);
        }
        tmpl => dynamic.push((name, tmpl)),
    }
    Ok(())
}

fn compile_step(
    step: &Step,
    t: &mut TemplateSet,
    c: StepCtx<'_>,
    vars: &[(String, String)],
) -> Result<StepPlan, EngineError> {
    let sname = step.name.get_ref();
    let mut llm = LlmPlan::default();
    let mut action = match &step.delay {
        Some(d) => Action::Delay(DelayAction { bounds: d.bounds() }),
        None => Action::Http(compile_http(step, t, &c, &mut llm, vars)?),
    };
    let checks = compile_checks(step, t, vars)?;
    let when = step
        .when
        .as_deref()
        .map(|w| t.compile(&condition_template(w)))
        .transpose()
        .map_err(|e| format!("step `{sname}`: when: {e}"))?;
    if let Action::Http(h) = &mut action {
        h.keep_body |= checks.read_body() || (llm.chat && !llm.stream);
        h.templated |= checks.body_contains.as_ref().is_some_and(|b| !b.is_static())
            || checks.captures.iter().any(|c| matches!(c.source, CaptureSource::Value(_)))
            || when.is_some();
    }
    let retry = step.retry.as_ref().map(|r| RetryPlan {
        max: r.max,
        on: r.on.clone().unwrap_or_else(|| vec![429]),
        backoff: r.backoff.map_or(Duration::from_secs(1), |d| d.0),
        max_wait: r.max_wait.map_or(Duration::from_secs(60), |d| d.0),
    });
    let flow = Flow {
        think: step.think_time.as_ref().map(|t| t.bounds()),
        abort_on_failure: step.on_failure != Some(OnFailure::Continue),
        when,
        repeat: None,
        retry,
    };
    Ok(StepPlan { id: c.id, name: sname.clone(), action, checks, flow, llm })
}

/// The request of a step that sends one; `keep_body` and `templated` cover the request only (the checks add
/// theirs). Fills in how the response is read as an LLM answer.
fn compile_http(
    step: &Step,
    t: &mut TemplateSet,
    c: &StepCtx<'_>,
    llm: &mut LlmPlan,
    vars: &[(String, String)],
) -> Result<HttpAction, EngineError> {
    let sname = step.name.get_ref();
    let Some((method, route)) = step.route() else {
        return Err(format!("step `{sname}` has no route").into());
    };
    let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("step `{sname}`: invalid method"))?;
    let mut headers = c.headers.clone();
    let mut dyn_headers = c.dyn_headers.to_vec();
    for (k, v) in &step.headers {
        dyn_headers.retain(|(n, _)| !n.as_str().eq_ignore_ascii_case(k));
        header(t, k, v, &mut headers, &mut dyn_headers)?;
    }
    let path = compile_text(t, route)?;
    let path_static = path.is_static();
    let mut query = Vec::new();
    for (k, v) in &step.query {
        query.push((k.clone(), compile_text(t, v)?));
    }
    let url = match (&path, query.iter().all(|(_, v)| v.is_static())) {
        (Text::Static(p), true) => {
            let pairs = query.drain(..).filter_map(|(k, v)| match v {
                Text::Static(v) => Some((k, v)),
                Text::Template(_) => None,
            });
            UrlPlan::Static(origin_form(c.base, p, pairs).map_err(|e| format!("step `{sname}`: {e}"))?)
        }
        _ => UrlPlan::Dynamic { prefix: c.base.to_string(), path },
    };
    llm.chat = step.llm.unwrap_or_else(|| route.contains("/chat/completions"));
    llm.stream = step.stream;
    let body = match (&step.json, &step.body) {
        (Some(j), _) => {
            let mut value = serde_json::to_value(j).map_err(|e| format!("step `{sname}`: json body: {e}"))?;
            if step.stream {
                request_usage_in_stream(&mut value);
            }
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            let keys = |k: &str| with_vars(k, vars, &format!("step `{sname}`: JSON key"));
            let node = json_node(t, &value, &expand, &keys)?;
            llm.model = fixed_model(&node);
            match node {
                JsonNode::Fixed(v) => BodyPlan::Fixed(Bytes::from(serde_json::to_vec(&v).map_err(|e| e.to_string())?)),
                node => BodyPlan::Json(node),
            }
        }
        (None, Some(b)) => match compile_text(t, b)? {
            Text::Static(s) => BodyPlan::Fixed(Bytes::from(s)),
            tmpl => BodyPlan::Text(tmpl),
        },
        (None, None) => BodyPlan::Empty,
    };
    let templated = !path_static
        || !query.is_empty()
        || !dyn_headers.is_empty()
        || matches!(body, BodyPlan::Json(_) | BodyPlan::Text(_));
    let fixed = match (&url, &body, templated) {
        (UrlPlan::Static(uri), BodyPlan::Empty, false) => Some(request(&method, uri.clone(), &headers, Bytes::new())),
        (UrlPlan::Static(uri), BodyPlan::Fixed(b), false) => Some(request(&method, uri.clone(), &headers, b.clone())),
        _ => None,
    }
    .map(prepared);
    Ok(HttpAction {
        method,
        url,
        query,
        headers,
        dyn_headers,
        body,
        timeout: step.timeout.map_or(c.timeout, |d| d.0),
        max_body: step.max_body.map_or(c.max_body, |b| b.0),
        keep_body: false,
        templated,
        fixed,
    })
}

fn compile_checks(step: &Step, t: &mut TemplateSet, vars: &[(String, String)]) -> Result<Checks, EngineError> {
    let sname = step.name.get_ref();
    let body_contains = step.expect.body_contains.as_deref().map(|s| compile_text(t, s)).transpose()?;
    let parse = |p: &str| -> Result<(String, JsonPath), EngineError> {
        let p = with_vars(p, vars, &format!("step `{sname}`: JSON path"))?;
        let parsed = JsonPath::parse(&p).map_err(|e| format!("step `{sname}`: JSON path `{p}`: {e}"))?;
        Ok((p, parsed))
    };
    let json_paths = step.expect.json_path.iter().map(|p| parse(p)).collect::<Result<Vec<_>, EngineError>>()?;
    let mut captures = Vec::new();
    // Path captures first, then values built from them (a tool message made from the tool's answer).
    for (name, cap) in &step.capture {
        if let Some(p) = cap.path() {
            let append = matches!(cap, Capture::Spec(s) if s.append);
            let (p, parsed) = parse(p)?;
            captures.push(CapturePlan { name: name.clone(), source: CaptureSource::Path(p, parsed), append });
        }
    }
    for (name, cap) in &step.capture {
        if let Capture::Spec(spec) = cap {
            if let Some(v) = &spec.value {
                let v = serde_json::to_value(v).map_err(|e| format!("step `{sname}`: capture `{name}`: {e}"))?;
                let keys = |k: &str| with_vars(k, vars, &format!("step `{sname}`: capture `{name}` key"));
                let source = CaptureSource::Value(json_node(t, &v, &expand, &keys)?);
                captures.push(CapturePlan { name: name.clone(), source, append: spec.append });
            }
        }
    }
    Ok(Checks {
        expect_status: step.expect.status.as_ref().map(|s| s.codes().to_vec()),
        body_contains,
        json_paths,
        captures,
    })
}

/// A request of these parts; the caller adds any rendered header.
pub fn request(method: &http::Method, uri: http::Uri, headers: &HeaderMap, body: Bytes) -> Request {
    let mut req = Request::new(body);
    (*req.method_mut(), *req.uri_mut(), *req.headers_mut()) = (method.clone(), uri, headers.clone());
    req
}

/// `prefix + path`, then `?k=v&...` (form-encoded, appended to any query already in the path), as an origin-form
/// URI for an HTTP/1.1 request line.
pub fn origin_form(
    prefix: &str,
    path: &str,
    query: impl IntoIterator<Item = (String, String)>,
) -> Result<http::Uri, EngineError> {
    let mut target = format!("{prefix}{path}");
    let mut pairs = query.into_iter().peekable();
    if pairs.peek().is_some() {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(&k, &v);
        }
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&ser.finish());
    }
    target.parse::<http::Uri>().map_err(|e| EngineError::Plan(format!("invalid request path `{target}`: {e}")))
}
