//! Checks a parsed scenario beyond what serde can: ranges, routes, JSON paths, template syntax and that every
//! `{{ var }}` is defined before it is used. Each failure points at the line to fix.

use std::collections::HashSet;
use std::path::Path;

use super::load::ScenarioError;
use super::model::{LoadKeys, ModelConflict};
use super::{BUILTIN_VARS, Load, Scenario, Step, TemplateSet, ThresholdEntry, UserClass, env};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The keys of `[load]` within one model (the rules `--users` and `--rate` follow too), the error at the key
/// that does not belong.
fn check_model(load: &Load, err: &impl Fn(Option<usize>, String) -> ScenarioError) -> Result<(), ScenarioError> {
    let keys = LoadKeys {
        users: load.users.is_some(),
        rate: load.rate.is_some(),
        spawn_rate: load.spawn_rate.is_some(),
        iterations_per_user: load.iterations_per_user.is_some(),
        max_in_flight: load.max_in_flight.is_some(),
    };
    if let (Some(c), None) = (&load.connections, &load.rate) {
        return Err(err(Some(c.span().start), "`connections` goes with `rate` (the open model)".into()));
    }
    let Some(conflict) = keys.conflict() else { return Ok(()) };
    let (at, message) = match conflict {
        ModelConflict::UsersAndRate => (
            load.users.as_ref().map(|u| u.span().start),
            "`users` (closed model) and `rate` (open model) exclude each other; keep one",
        ),
        ModelConflict::SpawnRateWithRate => (
            load.spawn_rate.as_ref().map(|r| r.span().start),
            "`spawn_rate` applies to the closed model (`users`), not to `rate`",
        ),
        ModelConflict::MaxInFlightWithoutRate => {
            (load.max_in_flight.as_ref().map(|m| m.span().start), "`max_in_flight` goes with `rate` (the open model)")
        }
        ModelConflict::IterationsPerUserWithRate => (
            load.iterations_per_user.as_ref().map(|i| i.span().start),
            "`iterations_per_user` goes with `users` (the closed model), not with `rate`",
        ),
    };
    Err(err(at, message.into()))
}

pub(super) fn validate(s: &Scenario, path: &Path, src: &str) -> Result<(), ScenarioError> {
    super::ranges::check(s, path, src)?;
    check_load_model(s, path, src)?;
    check_aliases_and_pricing(s, path, src)?;
    let err = |offset: Option<usize>, msg: String| ScenarioError::at(path, src, offset, msg);
    if s.users.is_empty() {
        return Err(err(None, "no user classes: add a `[[user]]` table with at least one `[[user.step]]`".into()));
    }
    for (key, _) in s.defaults.headers.iter().chain(&s.vars) {
        check_env(key, path, src, None)?;
    }
    // A header's key variable is checked against the target (`LoadedScenario::check_header_keys`).
    for v in s.vars.values() {
        check_env(v, path, src, None)?;
    }
    check_vars(s, path, src)?;
    let mut templates = TemplateSet::new();
    let mut class_names = HashSet::new();
    let mut all_steps = HashSet::new();
    for user in &s.users {
        let uname = user.name.get_ref();
        if uname.trim().is_empty() || !class_names.insert(uname.as_str()) {
            return Err(err(
                Some(user.name.span().start),
                format!("user class name `{uname}` is empty or used twice; give each [[user]] a unique name"),
            ));
        }
        check_user(s, user, &mut all_steps, &mut templates, path, src)?;
    }
    for (key, exprs) in &s.thresholds {
        check_thresholds(key, exprs, &all_steps, &class_names, path, src)?;
    }
    check_regression(s, &all_steps, &class_names, path, src)
}

/// The `[load]` keys that belong to one load model only, and the breaking-point levels.
fn check_load_model(s: &Scenario, path: &Path, src: &str) -> Result<(), ScenarioError> {
    let err = |offset: Option<usize>, msg: String| ScenarioError::at(path, src, offset, msg);
    let load = &s.load;
    check_model(load, &err)?;
    if let Some(bp) = &load.breaking_point {
        let b = bp.get_ref();
        let at = Some(bp.span().start);
        let levels: Vec<f64> = match (&b.users, &b.rate) {
            (Some(u), None) => u.iter().map(|&x| f64::from(x)).collect(),
            (None, Some(r)) => r.clone(),
            _ => return Err(err(at, "breaking_point needs `users = [..]` or `rate = [..]` (one of them)".into())),
        };
        if levels.is_empty() || levels.windows(2).any(|w| w[1] <= w[0]) {
            return Err(err(
                at,
                "breaking_point needs one or more increasing levels, e.g. users = [5, 10, 20, 50]".into(),
            ));
        }
    }
    Ok(())
}

/// Every alias has a tier; every price is a non-negative number.
fn check_aliases_and_pricing(s: &Scenario, path: &Path, src: &str) -> Result<(), ScenarioError> {
    let err = |offset: Option<usize>, msg: String| ScenarioError::at(path, src, offset, msg);
    for (alias, tiers) in &s.aliases {
        if tiers.is_empty() {
            return Err(err(
                src.find(alias.as_str()),
                format!("alias `{alias}` needs at least one tier, e.g. [\"{alias}_tier_1\"]"),
            ));
        }
    }
    for (model, p) in &s.pricing {
        if !(p.input >= 0.0 && p.output >= 0.0 && p.input.is_finite() && p.output.is_finite()) {
            return Err(err(
                src.find(model.as_str()),
                format!("pricing for `{model}` must be non-negative USD per 1M tokens"),
            ));
        }
    }
    if s.defaults.served_model_header.is_some() && s.gateway.model_header.is_some() {
        return Err(err(
            src.find("served_model_header"),
            "[defaults] served_model_header is the older spelling of [gateway] model_header: keep only the latter"
                .to_string(),
        ));
    }
    crate::llm::gateway::GatewaySpec::new(&s.gateway)
        .map_err(|e| err(src.find(e.value.as_str()).or_else(|| src.find("[gateway]")), e.to_string()))?;
    Ok(())
}

/// One user class: weight, steps, unique step names (added to `all_steps`), and every step's templates with the
/// variables known where it runs.
fn check_user(
    s: &Scenario,
    user: &UserClass,
    all_steps: &mut HashSet<String>,
    templates: &mut TemplateSet,
    path: &Path,
    src: &str,
) -> Result<(), ScenarioError> {
    let err = |offset: Option<usize>, msg: String| ScenarioError::at(path, src, offset, msg);
    let uname = user.name.get_ref();
    let uoff = Some(user.name.span().start);
    if let Some(w) = &user.weight {
        if *w.get_ref() < 1 {
            return Err(err(
                Some(w.span().start),
                format!("`weight` of user `{uname}` must be at least 1, got {}", w.get_ref()),
            ));
        }
    }
    if user.steps.is_empty() {
        return Err(err(uoff, format!("user `{uname}` has no steps: add a `[[user.step]]` below it")));
    }
    let mut base: HashSet<String> = BUILTIN_VARS.iter().map(|v| v.to_string()).collect();
    base.extend(s.vars.keys().cloned());
    base.extend(s.feeders.iter().map(|f| f.name.clone()));
    let mut step_names = HashSet::new();
    let all_in_class = user.on_start.iter().chain(&user.steps).chain(&user.on_stop);
    for step in all_in_class {
        let sname = step.name.get_ref();
        if !step_names.insert(sname.as_str()) {
            return Err(err(
                Some(step.name.span().start),
                format!("step name `{sname}` is used twice in user `{uname}`; step names must be unique"),
            ));
        }
        all_steps.insert(sname.clone());
    }
    // on_start captures (a login token) are known to every later step.
    let mut known = base;
    for step in &user.on_start {
        no_loop(step, path, src)?;
        check_step(step, uname, &known, templates, path, src)?;
        known.extend(step.capture.keys().cloned());
    }
    let ranges = loop_ranges(&user.steps, path, src)?;
    let mut so_far = known.clone();
    for (i, step) in user.steps.iter().enumerate() {
        // Inside a loop, what a later step of the loop captured is known on the next pass.
        let mut here = so_far.clone();
        for &(from, to) in ranges.iter().filter(|(f, t)| (*f..=*t).contains(&i)) {
            here.extend(user.steps[from..=to].iter().flat_map(|s| s.capture.keys().cloned()));
        }
        check_step(step, uname, &here, templates, path, src)?;
        so_far.extend(step.capture.keys().cloned());
    }
    for step in &user.on_stop {
        no_loop(step, path, src)?;
        check_step(step, uname, &so_far, templates, path, src)?;
        so_far.extend(step.capture.keys().cloned());
    }
    let known = so_far;
    for t in s.defaults.headers.values() {
        check_template(t, "[defaults] headers", uname, &known, templates, path, src, 0)?;
    }
    Ok(())
}

/// `[regression]` entries parse, and a selector names a step or user class the scenario defines.
fn check_regression(
    s: &Scenario,
    all_steps: &HashSet<String>,
    class_names: &HashSet<&str>,
    path: &Path,
    src: &str,
) -> Result<(), ScenarioError> {
    for (key, entry) in &s.regression {
        let at = key_offset(src, "[regression]", key);
        let rule =
            crate::baseline::parse_entry(key, entry).map_err(|m| ScenarioError::at(path, src, at, m.to_string()))?;
        let crate::baseline::Entry::Rule(rule) = rule else { continue };
        let Ok(sel) = rule.selector() else { continue };
        let unknown = match (&sel.step, &sel.user) {
            (Some(step), _) if !all_steps.contains(step) => Some(format!("step `{step}`")),
            (_, Some(user)) if !class_names.contains(user.as_str()) => Some(format!("user `{user}`")),
            _ => None,
        };
        if let Some(what) = unknown {
            let msg = format!("[regression] `{key}` refers to {what}, which the scenario does not define");
            return Err(ScenarioError::at(path, src, at, msg));
        }
    }
    Ok(())
}

fn check_step(
    step: &Step,
    user: &str,
    known: &HashSet<String>,
    templates: &mut TemplateSet,
    path: &Path,
    src: &str,
) -> Result<(), ScenarioError> {
    let sname = step.name.get_ref();
    let soff = step.name.span().start;
    let err = |msg: String| ScenarioError::at(path, src, Some(soff), msg);
    for cond in step.when.iter().chain(step.repeat.as_ref().map(|l| &l.condition)) {
        check_template(&condition_template(cond), sname, user, known, templates, path, src, soff)?;
    }
    check_value_captures(step, user, known, templates, path, src)?;
    if step.delay.is_some() {
        return delay_sends_nothing(step, path, src);
    }
    let Some((method, route)) = step.route() else {
        return Err(err(format!(
            "step `{sname}` needs exactly one route: `post = \"/path\"` (or get/put/patch/delete), or `method` + `path`"
        )));
    };
    if !METHODS.contains(&method.to_ascii_uppercase().as_str()) {
        return Err(err(format!("step `{sname}`: unknown method `{method}`; use one of {}", METHODS.join(", "))));
    }
    if !(route.starts_with('/') || TemplateSet::is_template(route) && route.trim_start().starts_with("{{")) {
        return Err(err(format!(
            "step `{sname}`: path `{route}` must start with `/` (the target comes from --target)"
        )));
    }
    if step.json.is_some() && step.body.is_some() {
        return Err(err(format!("step `{sname}` has both `json` and `body`; keep one")));
    }
    for (name, c) in &step.capture {
        if let crate::scenario::Capture::Spec(spec) = c {
            if spec.path.is_some() == spec.value.is_some() {
                return Err(err(format!("step `{sname}`: capture `{name}` needs exactly one of `path` or `value`")));
            }
        }
    }
    if let Some(r) = &step.retry {
        if r.max == 0 || r.max > 100 {
            return Err(err(format!("step `{sname}`: retry.max must be between 1 and 100, got {}", r.max)));
        }
    }
    let paths = step.capture.values().filter_map(|c| c.path()).chain(step.expect.json_path.iter().map(String::as_str));
    for p in paths {
        // A path from [vars] (`"{{ token_path }}"`) is parsed once the run's vars are known.
        if TemplateSet::is_template(p) {
            check_template(p, sname, user, known, templates, path, src, soff)?;
            continue;
        }
        if let Err(e) = serde_json_path::JsonPath::parse(p) {
            let off = src.get(soff..).and_then(|s| s.find(p)).map_or(soff, |i| soff + i);
            return Err(ScenarioError::at(
                path,
                src,
                Some(off),
                format!("step `{sname}`: invalid JSON path `{p}`: {e}"),
            ));
        }
    }
    if step.expect.status.as_ref().is_some_and(|s| s.codes().iter().any(|c| !(100..=599).contains(c))) {
        return Err(err(format!("step `{sname}`: expect.status codes must be between 100 and 599")));
    }
    for text in step_texts(step) {
        check_env(text, path, src, Some(soff))?;
        check_template(text, sname, user, known, templates, path, src, soff)?;
    }
    for text in step.headers.values() {
        check_template(text, sname, user, known, templates, path, src, soff)?;
    }
    if let Some(j) = &step.json {
        let mut keys = Vec::new();
        collect_keys(j, &mut keys);
        // Only [vars] can fill a key (the plan renders keys once); that is checked when the plan is built.
        for key in keys.into_iter().filter(|k| TemplateSet::is_template(k)) {
            check_template(key, sname, user, known, templates, path, src, soff)?;
        }
    }
    Ok(())
}

/// Every string of a step that is sent or compared: route, headers, query, body and JSON leaves, expectations.
fn step_texts(step: &Step) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    if let Some((_, route)) = step.route() {
        out.push(route);
    }
    out.extend(step.query.values().map(String::as_str));
    out.extend(step.body.as_deref());
    out.extend(step.expect.body_contains.as_deref());
    if let Some(j) = &step.json {
        collect_strings(j, &mut out);
    }
    out
}

/// A condition as a template that renders `1` when it holds; the engine evaluates it the same way.
pub fn condition_template(expr: &str) -> String {
    format!("{{% if {expr} %}}1{{% endif %}}")
}

fn no_loop(step: &Step, path: &Path, src: &str) -> Result<(), ScenarioError> {
    match &step.repeat {
        Some(_) => Err(ScenarioError::at(
            path,
            src,
            Some(step.name.span().start),
            format!("step `{}`: `loop` is only allowed in [[user.step]], not in on_start/on_stop", step.name.get_ref()),
        )),
        None => Ok(()),
    }
}

/// (target index, loop step index) of every loop; the target must be this step or an earlier one.
fn loop_ranges(steps: &[Step], path: &Path, src: &str) -> Result<Vec<(usize, usize)>, ScenarioError> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(l) = &step.repeat else { continue };
        let err = |m: String| ScenarioError::at(path, src, Some(step.name.span().start), m);
        let Some(target) = steps[..=i].iter().position(|s| s.name.get_ref() == &l.to) else {
            return Err(err(format!(
                "step `{}`: loop.to = `{}` must name this step or an earlier [[user.step]] of the same user",
                step.name.get_ref(),
                l.to
            )));
        };
        if l.max == 0 {
            return Err(err(format!("step `{}`: loop.max must be at least 1", step.name.get_ref())));
        }
        out.push((target, i));
    }
    Ok(out)
}

fn collect_strings<'a>(v: &'a toml::Value, out: &mut Vec<&'a str>) {
    match v {
        toml::Value::String(s) => out.push(s),
        toml::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        toml::Value::Table(t) => t.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// JSON object keys, which may name a `[vars]` variable (a login API's field names).
fn collect_keys<'a>(v: &'a toml::Value, out: &mut Vec<&'a str>) {
    match v {
        toml::Value::Array(a) => a.iter().for_each(|x| collect_keys(x, out)),
        toml::Value::Table(t) => t.iter().for_each(|(k, x)| {
            out.push(k);
            collect_keys(x, out)
        }),
        _ => {}
    }
}

/// Derived `[vars]` name plain ones only; `[mock] vars` set declared ones; both as the line to fix.
fn check_vars(s: &Scenario, path: &Path, src: &str) -> Result<(), ScenarioError> {
    let plain = super::vars::plain_names(s);
    let mut templates = TemplateSet::new();
    for (key, value) in s.vars.iter().filter(|(_, v)| super::vars::is_derived(v)) {
        let at = key_offset(src, "[vars]", key);
        let err = |m: String| ScenarioError::at(path, src, at, format!("[vars] {key}: {m}"));
        let text = templates.compile(value).map_err(|e| err(e.to_string()))?;
        let mut unknown: Vec<String> = templates.variables(&text).into_iter().filter(|v| !plain.contains(v)).collect();
        unknown.sort();
        if let Some(v) = unknown.first() {
            let mut names: Vec<&String> = plain.iter().collect();
            names.sort();
            return Err(err(format!(
                "`{value}` may refer only to [vars] that are not templates themselves ({}); `{v}` is not one",
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    for key in s.mock.vars.iter().flat_map(|m| m.keys()) {
        if !s.vars.contains_key(key) {
            let at = src.find("[mock]");
            let msg = format!(
                "[mock] vars sets `{key}`, which [vars] does not declare; declare it there with the value a real target gets"
            );
            return Err(ScenarioError::at(path, src, at, msg));
        }
    }
    Ok(())
}

fn check_env(text: &str, path: &Path, src: &str, from: Option<usize>) -> Result<(), ScenarioError> {
    if let Some(name) = env::missing_vars(text).into_iter().next() {
        let needle = format!("${{env:{name}");
        let start = from.unwrap_or(0);
        let off = src.get(start..).and_then(|s| s.find(&needle)).map(|i| start + i).or(from);
        return Err(ScenarioError::at(
            path,
            src,
            off,
            format!("environment variable `{name}` is not set; export it, or write `${{env:{name}:-default}}`"),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check_template(
    text: &str,
    step: &str,
    user: &str,
    known: &HashSet<String>,
    templates: &mut TemplateSet,
    path: &Path,
    src: &str,
    from: usize,
) -> Result<(), ScenarioError> {
    let locate = |needle: &str| src.get(from..).and_then(|s| s.find(needle)).map(|i| from + i).or(Some(from));
    let compiled = templates.compile(text).map_err(|e| {
        ScenarioError::at(path, src, locate(text), format!("step `{step}`: template error in `{text}`: {e}"))
    })?;
    if let Some(u) = templates.unknown_callable(&compiled, known) {
        let msg = format!("step `{step}` of user `{user}`: {u} (in `{text}`)");
        return Err(ScenarioError::at(path, src, locate(&u.name), msg));
    }
    let mut unknown: Vec<String> = templates.variables(&compiled).into_iter().filter(|v| !known.contains(v)).collect();
    unknown.sort();
    if let Some(var) = unknown.first() {
        return Err(ScenarioError::at(
            path,
            src,
            locate(var),
            format!(
                "step `{step}` of user `{user}` uses `{{{{ {var} }}}}`, which no earlier step captures and [vars] does not define; \
                 add `capture = {{ {var} = \"$.path\" }}` to an earlier step or fix the name (built-ins: {})",
                BUILTIN_VARS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Each threshold must parse, and its selector must name steps and users the scenario has.
fn check_thresholds(
    key: &str,
    exprs: &[ThresholdEntry],
    steps: &HashSet<String>,
    users: &HashSet<&str>,
    path: &Path,
    src: &str,
) -> Result<(), ScenarioError> {
    let off = key_offset(src, "[thresholds]", key);
    let err = |msg: String| ScenarioError::at(path, src, off, msg);
    if exprs.is_empty() {
        return Err(err(format!("threshold `{key}` has no expression; write e.g. [\"p(95) < 2s\"]")));
    }
    for e in exprs {
        if e.delay_abort_eval.is_some() && !e.abort_on_fail {
            return Err(err(format!("threshold `{key}`: `delay_abort_eval` needs `abort_on_fail = true`")));
        }
        let t = crate::slo::parse(key, &e.expr).map_err(|e| err(e.to_string()))?;
        if let Some(step) = t.selector.step.as_ref().filter(|s| !steps.contains(*s)) {
            return Err(err(format!("threshold `{key}` refers to step `{step}`, which the scenario does not define")));
        }
        if let Some(user) = t.selector.user.as_ref().filter(|u| !users.contains(u.as_str())) {
            return Err(err(format!("threshold `{key}` refers to user `{user}`, which the scenario does not define")));
        }
    }
    Ok(())
}

/// Where `key` is written inside `table` (quoted or bare), for error locations.
fn key_offset(src: &str, table: &str, key: &str) -> Option<usize> {
    let from = src.find(table).unwrap_or(0);
    let rest = src.get(from..)?;
    rest.find(&format!("\"{key}\"")).or_else(|| rest.find(key)).map(|o| o + from)
}

/// A `delay` step sends nothing: no route, body, checks, retries or path captures (its conditions and value
/// captures are checked like any step's).
fn delay_sends_nothing(step: &Step, path: &Path, src: &str) -> Result<(), ScenarioError> {
    let sends = step.route().is_some()
        || step.method.is_some()
        || step.path.is_some()
        || step.json.is_some()
        || step.body.is_some()
        || !step.headers.is_empty()
        || !step.query.is_empty()
        || step.retry.is_some()
        || step.stream
        || step.expect.status.is_some()
        || step.expect.body_contains.is_some()
        || !step.expect.json_path.is_empty()
        || step.capture.values().any(|c| c.path().is_some());
    if sends {
        let sname = step.name.get_ref();
        return Err(ScenarioError::at(
            path,
            src,
            Some(step.name.span().start),
            format!(
                "step `{sname}` has `delay`, so it sends nothing: remove its route, body, expect, retry and path captures (value captures are fine)"
            ),
        ));
    }
    Ok(())
}

/// A value capture is built after the step's path captures, so it may use them as well as `known`.
fn check_value_captures(
    step: &Step,
    user: &str,
    known: &HashSet<String>,
    templates: &mut TemplateSet,
    path: &Path,
    src: &str,
) -> Result<(), ScenarioError> {
    let (sname, soff) = (step.name.get_ref(), step.name.span().start);
    let mut with_own = known.clone();
    with_own.extend(step.capture.iter().filter(|(_, c)| c.path().is_some()).map(|(k, _)| k.clone()));
    for c in step.capture.values() {
        if let crate::scenario::Capture::Spec(crate::scenario::CaptureSpec { value: Some(v), .. }) = c {
            let mut texts = Vec::new();
            collect_strings(v, &mut texts);
            for text in texts {
                check_env(text, path, src, Some(soff))?;
                check_template(text, sname, user, &with_own, templates, path, src, soff)?;
            }
        }
    }
    Ok(())
}
