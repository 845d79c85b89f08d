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

/// The expression of a leaf that is exactly one `{{ ... }}`.
fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.trim().is_empty()).then_some(inner.trim())
}

pub fn json_node(
    t: &mut TemplateSet,
    v: &Value,
    expand: &dyn Fn(&str) -> Result<String, EngineError>,
) -> Result<JsonNode, EngineError> {
    Ok(match v {
        Value::String(s) => {
            let s = expand(s)?;
            match whole_expression(&s) {
                Some(expr) => JsonNode::Raw(
                    t.compile(&format!("{{{{ ({expr}) | strict_json }}}}"))
                        .map_err(|e| format!("template `{s}`: {e}"))?,
                ),
                None => match t.compile(&s).map_err(|e| format!("template `{s}`: {e}"))? {
                    Text::Static(s) => JsonNode::Fixed(Value::String(s)),
                    tmpl => JsonNode::Str(tmpl),
                },
            }
        }
        Value::Array(a) => {
            let items = a.iter().map(|x| json_node(t, x, expand)).collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|n| matches!(n, JsonNode::Fixed(_))) {
                JsonNode::Fixed(Value::Array(items.into_iter().filter_map(fixed).collect()))
            } else {
                JsonNode::Array(items)
            }
        }
        Value::Object(o) => {
            let items = o
                .iter()
                .map(|(k, x)| Ok((k.clone(), json_node(t, x, expand)?)))
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
    fn whole_leaf_expressions_keep_their_json_type() {
        let mut t = TemplateSet::new();
        let body = serde_json::json!({"messages": "{{ history }}", "n": "{{ count }}", "s": "id-{{ count }}", "k": 1});
        let node = json_node(&mut t, &body, &|s| Ok(s.to_string())).unwrap();
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
