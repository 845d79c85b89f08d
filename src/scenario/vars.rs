//! The variables of one run: `[vars]`, then `[mock] vars` when the embedded mock is the target, then `--var`;
//! a `[vars]` value that is a template (`react_model = "{{ model }}"`) follows the plain variables it names.
//! And the key rule: a header's `${env:NAME}` without a fallback is a stand-in key against the embedded mock
//! and a refusal against a real target, so a forgotten key never sends a full load of 401s.

use std::collections::{BTreeMap, HashSet};

use minijinja::Value;

use super::load::{LoadedScenario, ScenarioError};
use super::{Ctx, Scenario, TemplateSet, Text, env};

/// What the embedded mock receives for a key variable that is not set: it accepts any bearer token.
pub const STAND_IN_KEY: &str = "mock-key";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("--var {key}: scenario `{scenario}` has no such variable; {declared}")]
    Unknown { key: String, scenario: String, declared: String },
    #[error("[vars] {key}: {message}")]
    Template { key: String, message: String },
}

/// Whether a `[vars]` value refers to other variables.
pub(crate) fn is_derived(value: &str) -> bool {
    TemplateSet::is_template(value)
}

/// The declared names, for messages.
fn declared(s: &Scenario) -> String {
    if s.vars.is_empty() {
        "it declares no [vars]; add e.g. `[vars] model = \"...\"` and use `{{ model }}`".into()
    } else {
        let names: Vec<&str> = s.vars.keys().map(String::as_str).collect();
        format!("its [vars] are: {}", names.join(", "))
    }
}

/// Settles `[vars]` for a run against the embedded mock (`mock`) or a real target: overrides applied, derived
/// values rendered. Each `--var` must name a declared variable.
pub fn resolve_vars(loaded: &mut LoadedScenario, overrides: &[(String, String)], mock: bool) -> Result<(), VarError> {
    let s = &mut loaded.scenario;
    if let Some((key, _)) = overrides.iter().find(|(k, _)| !s.vars.contains_key(k)) {
        return Err(VarError::Unknown { key: key.clone(), scenario: loaded.name.clone(), declared: declared(s) });
    }
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    if mock {
        given.extend(s.mock.vars.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    }
    given.extend(overrides.iter().cloned());
    for (k, v) in &given {
        s.vars.insert(k.clone(), v.clone());
    }
    let plain: Vec<(String, Value)> = s
        .vars
        .iter()
        .filter(|(k, v)| given.contains_key(*k) || !is_derived(v))
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let ctx = Ctx::new(plain);
    let mut templates = TemplateSet::new();
    for (k, v) in s.vars.iter_mut().filter(|(k, v)| !given.contains_key(*k) && is_derived(v)) {
        let err = |e: minijinja::Error| VarError::Template { key: k.clone(), message: e.to_string() };
        let text = templates.compile(v).map_err(err)?;
        *v = templates.render(&text, &ctx).map_err(err)?.into_owned();
    }
    Ok(())
}

/// The names a derived `[vars]` value may use: the plain ones.
pub(crate) fn plain_names(s: &Scenario) -> HashSet<String> {
    s.vars.iter().filter(|(_, v)| !is_derived(v)).map(|(k, _)| k.clone()).collect()
}

/// Every header value of the scenario: `[defaults] headers`, then each step's.
fn header_values(s: &mut Scenario) -> impl Iterator<Item = (&String, &mut String)> {
    let steps =
        s.users.iter_mut().flat_map(|u| u.on_start.iter_mut().chain(u.steps.iter_mut()).chain(u.on_stop.iter_mut()));
    s.defaults.headers.iter_mut().chain(steps.flat_map(|st| st.headers.iter_mut()))
}

impl LoadedScenario {
    /// Against a real target: refused, naming the variable and the line, when a header reads an unset
    /// `${env:NAME}` that has no fallback. An explicit `${env:NAME:-default}` is the author's choice and stands.
    pub fn check_header_keys(&mut self) -> Result<(), ScenarioError> {
        let missing = header_values(&mut self.scenario)
            .find_map(|(h, v)| env::missing_vars(v).into_iter().next().map(|n| (h.clone(), n)));
        let Some((header, name)) = missing else { return Ok(()) };
        let at = self.source.find(&format!("${{env:{name}"));
        Err(ScenarioError::at(
            &self.path,
            &self.source,
            at,
            format!(
                "environment variable `{name}` (header `{header}`) is not set; export {name}=<your key> before \
                 running against --target (only the embedded mock takes a stand-in)"
            ),
        ))
    }

    /// Against the embedded mock: an unset key variable of a header becomes the stand-in key.
    pub fn stand_in_header_keys(&mut self) {
        for (_, v) in header_values(&mut self.scenario) {
            *v = env::with_stand_in(v, STAND_IN_KEY);
        }
    }
}

/// `{{ var }}` in a text that only `[vars]` can fill, rendered once: used for JSON paths and JSON object keys,
/// which are read before any request.
pub fn render_with_vars(text: &str, vars: &[(String, String)]) -> Result<String, minijinja::Error> {
    if !TemplateSet::is_template(text) {
        return Ok(text.to_string());
    }
    let mut t = TemplateSet::new();
    let compiled = t.compile(text)?;
    let ctx = Ctx::new(vars.iter().map(|(k, v)| (k.as_str(), Value::from(v.as_str()))));
    match &compiled {
        Text::Static(s) => Ok(s.clone()),
        Text::Template(_) => t.render(&compiled, &ctx).map(|c| c.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[defaults]
headers = { authorization = "Bearer ${env:RLT_UNIT_SURELY_UNSET_KEY}", x-team = "${env:RLT_UNIT_SURELY_UNSET_TEAM:-blue}" }
[vars]
model = "mock_agent"
react_model = "{{ model }}"
coding_model = "{{ model }}-x"
[mock]
vars = { coding_model = "coding_agent" }
[[user]]
name = "U"
  [[user.step]]
  name = "a"
  post = "/v1/chat/completions"
  headers = { x-key = "k ${env:RLT_UNIT_SURELY_UNSET_KEY}" }
  json = { model = "{{ react_model }}" }
"#;

    fn loaded() -> LoadedScenario {
        super::super::parse(std::path::Path::new("s.toml"), BASE.to_string()).unwrap()
    }

    fn vars(l: &LoadedScenario) -> Vec<(&str, &str)> {
        l.scenario.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn derived_vars_follow_overrides_and_the_mock_keeps_its_own() {
        let mut l = loaded();
        resolve_vars(&mut l, &[("model".into(), "gpt-4o-mini".into())], false).unwrap();
        assert_eq!(
            vars(&l),
            [("coding_model", "gpt-4o-mini-x"), ("model", "gpt-4o-mini"), ("react_model", "gpt-4o-mini")]
        );
        let mut l = loaded();
        resolve_vars(&mut l, &[], true).unwrap();
        assert_eq!(
            vars(&l),
            [("coding_model", "coding_agent"), ("model", "mock_agent"), ("react_model", "mock_agent")]
        );
        // --var wins over [mock] vars, and its value is taken as written.
        let mut l = loaded();
        resolve_vars(&mut l, &[("coding_model".into(), "{{ model }}".into())], true).unwrap();
        assert_eq!(l.scenario.vars["coding_model"], "{{ model }}");
    }

    #[test]
    fn an_unknown_var_names_itself_and_the_declared_ones() {
        let mut l = loaded();
        let e = resolve_vars(&mut l, &[("modle".into(), "x".into())], false).unwrap_err().to_string();
        assert!(e.contains("--var modle") && e.contains("coding_model, model, react_model"), "{e}");
    }

    #[test]
    fn an_unset_header_key_is_refused_for_a_real_target_and_stood_in_for_the_mock() {
        let mut l = loaded();
        let e = l.check_header_keys().unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("RLT_UNIT_SURELY_UNSET_KEY") && e.message.contains("authorization"), "{e}");
        l.stand_in_header_keys();
        l.check_header_keys().unwrap();
        assert_eq!(l.scenario.defaults.headers["authorization"], "Bearer mock-key");
        // The explicit fallback is left for the expansion to apply.
        assert_eq!(l.scenario.defaults.headers["x-team"], "${env:RLT_UNIT_SURELY_UNSET_TEAM:-blue}");
        assert_eq!(l.scenario.users[0].steps[0].headers["x-key"], "k mock-key");
    }

    #[test]
    fn json_paths_and_keys_render_from_vars_only() {
        let v = [("p".to_string(), "$.data.token".to_string())];
        assert_eq!(render_with_vars("{{ p }}", &v).unwrap(), "$.data.token");
        assert_eq!(render_with_vars("$.plain", &v).unwrap(), "$.plain");
        assert!(render_with_vars("{{ token }}", &v).is_err());
    }
}
