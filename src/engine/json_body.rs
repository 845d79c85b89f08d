//! JSON bodies with templates in their string leaves. A leaf that is one whole `{{ expression }}` inserts the
//! expression's value as JSON (a list of messages stays a list), any other template renders to a string.

use serde_json::Value;

use super::error::EngineError;
use crate::scenario::{TemplateSet, Text};

pub enum JsonNode {
    Fixed(Value),
    Str(Text),
    /// A whole-leaf expression, rendered through `strict_json` and parsed back.
    Raw(Text),
    Array(Vec<JsonNode>),
    Object(Vec<(String, JsonNode)>),
}

/// A streamed chat request asks for `usage` in the last chunk unless the scenario says otherwise, so output
/// tokens come from the server's count rather than from counting chunks.
pub fn request_usage_in_stream(body: &mut Value) {
    if let Some(obj) = body.as_object_mut() {
        obj.entry("stream").or_insert(Value::Bool(true));
        let opts = obj.entry("stream_options").or_insert_with(|| serde_json::json!({}));
        if let Some(o) = opts.as_object_mut() {
            o.entry("include_usage").or_insert(Value::Bool(true));
        }
    }
}

/// The expression of a leaf that is exactly one `{{ ... }}`.
fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.trim().is_empty()).then_some(inner.trim())
}

/// `expand` reads `${env:...}`; `key` renders an object key that names `[vars]` (keys are fixed per run).
pub fn json_node(
    t: &mut TemplateSet,
    v: &Value,
    expand: &dyn Fn(&str) -> Result<String, EngineError>,
    key: &dyn Fn(&str) -> Result<String, EngineError>,
) -> Result<JsonNode, EngineError> {
    Ok(match v {
        Value::String(s) => {
            let s = expand(s)?;
            match whole_expression(&s) {
                Some(expr) => match t
                    .compile(&format!("{{{{ ({expr}) | strict_json }}}}"))
                    .map_err(|e| format!("template `{s}`: {e}"))?
                {
                    // Folded from [vars]: JSON already, fixed for the run.
                    Text::Static(json) => JsonNode::Fixed(
                        serde_json::from_str(&json)
                            .map_err(|e| format!("template `{s}` did not produce JSON ({e})"))?,
                    ),
                    tmpl => JsonNode::Raw(tmpl),
                },
                None => match t.compile(&s).map_err(|e| format!("template `{s}`: {e}"))? {
                    Text::Static(s) => JsonNode::Fixed(Value::String(s)),
                    tmpl => JsonNode::Str(tmpl),
                },
            }
        }
        Value::Array(a) => {
            let items = a.iter().map(|x| json_node(t, x, expand, key)).collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|n| matches!(n, JsonNode::Fixed(_))) {
                JsonNode::Fixed(Value::Array(items.into_iter().filter_map(fixed).collect()))
            } else {
                JsonNode::Array(items)
            }
        }
        Value::Object(o) => {
            let items = o
                .iter()
                .map(|(k, x)| Ok((key(k)?, json_node(t, x, expand, key)?)))
                .collect::<Result<Vec<_>, EngineError>>()?;
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

/// The `model` of a body when it is fixed for the run (literal, or folded from `[vars]`); a templated one is
/// read at send time.
pub fn fixed_model(node: &JsonNode) -> Option<String> {
    let model = match node {
        JsonNode::Fixed(v) => v.get("model"),
        JsonNode::Object(items) => items.iter().find(|(k, _)| k == "model").and_then(|(_, n)| match n {
            JsonNode::Fixed(m) => Some(m),
            _ => None,
        }),
        _ => None,
    };
    model.and_then(Value::as_str).map(String::from)
}

fn fixed(n: JsonNode) -> Option<Value> {
    match n {
        JsonNode::Fixed(v) => Some(v),
        _ => None,
    }
}

pub fn render_json(
    node: &JsonNode,
    render: &dyn Fn(&Text) -> Result<String, EngineError>,
) -> Result<Value, EngineError> {
    Ok(match node {
        JsonNode::Fixed(v) => v.clone(),
        JsonNode::Str(t) => Value::String(render(t)?),
        JsonNode::Raw(t) => {
            let text = render(t)?;
            serde_json::from_str(&text)
                .map_err(|e| EngineError::Step(format!("template did not produce JSON ({e})")))?
        }
        JsonNode::Array(items) => Value::Array(items.iter().map(|n| render_json(n, render)).collect::<Result<_, _>>()?),
        JsonNode::Object(items) => Value::Object(
            items.iter().map(|(k, n)| Ok((k.clone(), render_json(n, render)?))).collect::<Result<_, EngineError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Ctx;

    #[test]
    fn vars_fold_into_a_fixed_body_and_name_its_model() {
        let mut t = TemplateSet::new();
        t.set_constants([("model", "gpt-4o-mini"), ("field", "email")]);
        let body = serde_json::json!({"model": "{{ model }}", "{{ field }}": "x-{{ model }}", "n": 1});
        let keys = |k: &str| {
            crate::scenario::render_with_vars(k, &[("field".into(), "email".into())])
                .map_err(|e| EngineError::Plan(e.to_string()))
        };
        let node = json_node(&mut t, &body, &|s| Ok(s.to_string()), &keys).unwrap();
        let JsonNode::Fixed(v) = &node else { panic!("not folded") };
        assert_eq!(v, &serde_json::json!({"model": "gpt-4o-mini", "email": "x-gpt-4o-mini", "n": 1}));
        assert_eq!(fixed_model(&node).as_deref(), Some("gpt-4o-mini"));
        // A per-request value keeps the body templated; the model stays known.
        let node = json_node(
            &mut t,
            &serde_json::json!({"model": "{{ model }}", "u": "{{ user_id }}"}),
            &|s| Ok(s.to_string()),
            &keys,
        )
        .unwrap();
        assert!(matches!(node, JsonNode::Object(_)));
        assert_eq!(fixed_model(&node).as_deref(), Some("gpt-4o-mini"));
    }

    #[test]
    fn whole_leaf_expressions_keep_their_json_type() {
        let mut t = TemplateSet::new();
        let body = serde_json::json!({"messages": "{{ history }}", "n": "{{ count }}", "s": "id-{{ count }}", "k": 1});
        let node = json_node(&mut t, &body, &|s| Ok(s.to_string()), &|s| Ok(s.to_string())).unwrap();
        let ctx = Ctx::new([
            (
                "history",
                minijinja::Value::from(minijinja::value::Serde(serde_json::json!([{"role": "user", "content": "hi"}]))),
            ),
            ("count", minijinja::Value::from(3)),
        ]);
        let out = render_json(&node, &|x| {
            t.render(x, &ctx).map(|c| c.into_owned()).map_err(|e| EngineError::Step(e.to_string()))
        })
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "n": 3, "s": "id-3", "k": 1})
        );
    }

    #[test]
    fn whole_expression_detection() {
        assert_eq!(whole_expression("{{ a }}"), Some("a"));
        assert_eq!(whole_expression("x{{ a }}"), None);
        assert_eq!(whole_expression("{{ a }}{{ b }}"), None);
    }
}
