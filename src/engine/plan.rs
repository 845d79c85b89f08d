//! Compiles a validated scenario into request plans: everything that does not change between requests (URL,
//! headers, fixed bodies, JSON paths) is built once here, so the hot path only clones and sends.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json_path::JsonPath;

use crate::scenario::{OnFailure, Scenario, Step, TemplateSet, Text, expand_env};

/// Where a step was declared, for reports. `path` is the unexpanded text, so secrets never reach a report.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub user: String,
    pub name: String,
    pub method: String,
    pub path: String,
}

pub struct Plan {
    pub scenario: String,
    pub templates: TemplateSet,
    pub classes: Vec<ClassPlan>,
    /// Indexed by `StepPlan::id`.
    pub steps: Vec<StepInfo>,
    /// `[vars]`, env-expanded.
    pub vars: Vec<(String, String)>,
}

pub struct ClassPlan {
    pub name: String,
    pub weight: u32,
    pub think: Option<(Duration, Duration)>,
    pub steps: Vec<StepPlan>,
}

pub enum UrlPlan {
    /// Origin-form path and query, built once.
    Static(http::Uri),
    /// The base URL's path prefix + the rendered path, then the query.
    Dynamic { prefix: String, path: Text },
}

/// Where the plan's requests go: the base URL's path prefix and the `Host` header (from `ClientFactory`).
pub struct Endpoint<'a> {
    pub prefix: &'a str,
    pub host: &'a HeaderValue,
}

pub enum JsonNode {
    Fixed(serde_json::Value),
    Str(Text),
    Array(Vec<JsonNode>),
    Object(Vec<(String, JsonNode)>),
}

pub enum BodyPlan {
    Empty,
    Fixed(Bytes),
    Json(JsonNode),
    Text(Text),
}

pub struct StepPlan {
    pub id: usize,
    pub method: http::Method,
    pub url: UrlPlan,
    /// Query pairs that need rendering (fixed ones are already in a static URL).
    pub query: Vec<(String, Text)>,
    pub headers: HeaderMap,
    pub dyn_headers: Vec<(HeaderName, Text)>,
    pub body: BodyPlan,
    pub expect_status: Option<Vec<u16>>,
    pub body_contains: Option<Text>,
    pub json_paths: Vec<(String, JsonPath)>,
    pub captures: Vec<(String, String, JsonPath)>,
    pub timeout: Duration,
    pub think: Option<(Duration, Duration)>,
    pub abort_on_failure: bool,
    /// Checks or captures read the body, so it is kept in memory.
    pub keep_body: bool,
    /// Some part is a template, so a render context is built per request.
    pub templated: bool,
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
) -> Result<Plan, String> {
    let mut templates = TemplateSet::new();
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
        let mut plans = Vec::new();
        for step in &user.steps {
            let tags: Vec<&String> = class_tags.iter().copied().chain(&step.tags).collect();
            if !filter.keeps(&tags) {
                continue;
            }
            let id = steps.len();
            let (method, route) = step.route().ok_or_else(|| format!("step `{}` has no route", step.name.get_ref()))?;
            steps.push(StepInfo {
                user: uname.clone(),
                name: step.name.get_ref().clone(),
                method: method.to_ascii_uppercase(),
                path: route.to_string(),
            });
            let ctx = StepCtx {
                id,
                base: &base,
                timeout: default_timeout,
                headers: &default_headers,
                dyn_headers: &default_dyn,
            };
            plans.push(compile_step(step, &mut templates, ctx)?);
        }
        if plans.is_empty() {
            continue;
        }
        classes.push(ClassPlan {
            name: uname,
            weight: user.weight.as_ref().map_or(1, |w| u32::try_from(*w.get_ref()).unwrap_or(u32::MAX)),
            think: class_think(&user.think_time),
            steps: plans,
        });
    }
    if classes.is_empty() {
        return Err(format!(
            "no step is left to run after --tags {:?} / --exclude-tags {:?}; check the tags in the scenario",
            filter.include, filter.exclude
        ));
    }
    let vars = s.vars.iter().map(|(k, v)| Ok((k.clone(), expand(v)?))).collect::<Result<Vec<_>, String>>()?;
    Ok(Plan { scenario: name.to_string(), templates, classes, steps, vars })
}

struct StepCtx<'a> {
    id: usize,
    base: &'a str,
    timeout: Duration,
    headers: &'a HeaderMap,
    dyn_headers: &'a [(HeaderName, Text)],
}

fn expand(s: &str) -> Result<String, String> {
    expand_env(s).map(|c| c.into_owned()).map_err(|e| e.to_string())
}

fn compile_text(t: &mut TemplateSet, s: &str) -> Result<Text, String> {
    t.compile(&expand(s)?).map_err(|e| format!("template `{s}`: {e}"))
}

fn header(
    t: &mut TemplateSet,
    k: &str,
    v: &str,
    fixed: &mut HeaderMap,
    dynamic: &mut Vec<(HeaderName, Text)>,
) -> Result<(), String> {
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

fn compile_step(step: &Step, t: &mut TemplateSet, c: StepCtx<'_>) -> Result<StepPlan, String> {
    let sname = step.name.get_ref();
    let (method, route) = step.route().ok_or_else(|| format!("step `{sname}` has no route"))?;
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
    let body = match (&step.json, &step.body) {
        (Some(j), _) => {
            let value = serde_json::to_value(j).map_err(|e| format!("step `{sname}`: json body: {e}"))?;
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            match json_node(t, &value)? {
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
    let body_contains = step.expect.body_contains.as_deref().map(|s| compile_text(t, s)).transpose()?;
    let parse = |p: &String| JsonPath::parse(p).map_err(|e| format!("step `{sname}`: JSON path `{p}`: {e}"));
    let json_paths =
        step.expect.json_path.iter().map(|p| Ok((p.clone(), parse(p)?))).collect::<Result<Vec<_>, String>>()?;
    let captures =
        step.capture.iter().map(|(k, p)| Ok((k.clone(), p.clone(), parse(p)?))).collect::<Result<Vec<_>, String>>()?;
    let templated = !path_static
        || !query.is_empty()
        || !dyn_headers.is_empty()
        || matches!(body, BodyPlan::Json(_) | BodyPlan::Text(_))
        || body_contains.as_ref().is_some_and(|b| !b.is_static());
    Ok(StepPlan {
        id: c.id,
        method,
        url,
        query,
        headers,
        dyn_headers,
        keep_body: body_contains.is_some() || !json_paths.is_empty() || !captures.is_empty(),
        body,
        expect_status: step.expect.status.as_ref().map(|s| s.codes().to_vec()),
        body_contains,
        json_paths,
        captures,
        timeout: step.timeout.map_or(c.timeout, |d| d.0),
        think: step.think_time.as_ref().map(|t| t.bounds()),
        abort_on_failure: step.on_failure != Some(OnFailure::Continue),
        templated,
    })
}

fn json_node(t: &mut TemplateSet, v: &serde_json::Value) -> Result<JsonNode, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) => match compile_text(t, s)? {
            Text::Static(s) => JsonNode::Fixed(Value::String(s)),
            tmpl => JsonNode::Str(tmpl),
        },
        Value::Array(a) => {
            let items = a.iter().map(|x| json_node(t, x)).collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|n| matches!(n, JsonNode::Fixed(_))) {
                JsonNode::Fixed(Value::Array(items.into_iter().filter_map(fixed).collect()))
            } else {
                JsonNode::Array(items)
            }
        }
        Value::Object(o) => {
            let items = o.iter().map(|(k, x)| Ok((k.clone(), json_node(t, x)?))).collect::<Result<Vec<_>, String>>()?;
            if items.iter().all(|(_, n)| matches!(n, JsonNode::Fixed(_))) {
                JsonNode::Fixed(Value::Object(
                    items.into_iter().filter_map(|(k, n)| fixed(n).map(|v| (k, v))).collect(),
                ))
            } else {
                JsonNode::Object(items)
            }
        }
        other => JsonNode::Fixed(other.clone()),
    })
}

fn fixed(n: JsonNode) -> Option<serde_json::Value> {
    match n {
        JsonNode::Fixed(v) => Some(v),
        _ => None,
    }
}

/// `prefix + path`, then `?k=v&...` (form-encoded, appended to any query already in the path), as an origin-form
/// URI for an HTTP/1.1 request line.
pub fn origin_form(
    prefix: &str,
    path: &str,
    query: impl IntoIterator<Item = (String, String)>,
) -> Result<http::Uri, String> {
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
    target.parse::<http::Uri>().map_err(|e| format!("invalid request path `{target}`: {e}"))
}
