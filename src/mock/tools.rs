//! Tool use for ReAct agents: the tool calls the model answers with, and `POST /v1/tools/{name}`, the
//! simulated tool an agent then invokes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::stats::bump;
use super::synth::{ARGS_DOMAIN, CALL_DOMAIN, TOOL_DOMAIN, Tokens, draw};
use super::{Shared, error_response, json_response};

/// Words in a tool call's `query` argument and in a tool's result.
const QUERY_WORDS: u32 = 3;
const RESULT_WORDS: u32 = 6;

/// What the request's `tools` make the model do, if anything: the name of the function to call.
pub(super) fn wanted_call(request: &Value, react_steps: u32) -> Option<String> {
    let first = request.get("tools").and_then(Value::as_array).and_then(|tools| tools.first())?;
    let answered = request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |m| m.iter().filter(|m| m.get("role").and_then(Value::as_str) == Some("tool")).count());
    if answered >= react_steps as usize {
        return None;
    }
    // OpenAI nests the name under `function`; a bare `name` is accepted from looser clients.
    let name = first.get("function").unwrap_or(first).get("name").and_then(Value::as_str).unwrap_or("tool");
    Some(name.to_owned())
}

/// One tool call, with its arguments already split into the fragments a stream sends.
pub(super) struct ToolCall {
    pub id: String,
    pub name: String,
    /// `{"query":"`, one fragment per word, then `"}`; each counts as a completion token.
    pub fragments: Vec<String>,
}

impl ToolCall {
    pub(super) fn new(seed: u64, index: u64, name: String) -> Self {
        let mut fragments = vec![r#"{"query":""#.to_owned()];
        // The vocabulary needs no JSON escaping, so the joined fragments are valid JSON.
        fragments.extend(Tokens::in_domain(seed, ARGS_DOMAIN, index, QUERY_WORDS).map(str::to_owned));
        fragments.push(r#""}"#.to_owned());
        Self { id: format!("call_{:016x}", draw(seed, CALL_DOMAIN, index)), name, fragments }
    }

    pub(super) fn tokens(&self) -> u32 {
        u32::try_from(self.fragments.len()).unwrap_or(u32::MAX)
    }

    pub(super) fn arguments(&self) -> String {
        self.fragments.concat()
    }
}

pub(super) async fn invoke(State(shared): State<Arc<Shared>>, name: Result<Path<String>, PathRejection>) -> Response {
    let Path(name) = match name {
        Ok(name) => name,
        Err(rejection) => {
            return error_response(rejection.status(), "invalid_request_error", &rejection.body_text());
        }
    };
    let index = shared.next_tool_index.fetch_add(1, Ordering::Relaxed);
    bump(&shared.stats.tool_invocations);
    tokio::time::sleep(shared.config.tool_latency).await;
    let result: String = Tokens::in_domain(shared.config.seed, TOOL_DOMAIN, index, RESULT_WORDS).collect();
    json_response(StatusCode::OK, json!({ "tool": name, "result": result }).to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_stop_after_react_steps_tool_messages() {
        let tools = json!([{"type": "function", "function": {"name": "search", "parameters": {}}}]);
        let with = |n: usize| {
            let mut messages = vec![json!({"role": "user", "content": "hi"})];
            messages.extend((0..n).map(|_| json!({"role": "tool", "tool_call_id": "c", "content": "x"})));
            json!({ "messages": messages, "tools": tools })
        };
        assert_eq!(wanted_call(&with(0), 2).as_deref(), Some("search"));
        assert_eq!(wanted_call(&with(1), 2).as_deref(), Some("search"));
        assert_eq!(wanted_call(&with(2), 2), None);
        assert_eq!(wanted_call(&with(0), 0), None);
        assert_eq!(wanted_call(&json!({"messages": [], "tools": []}), 2), None);
        assert_eq!(wanted_call(&json!({"messages": [], "tools": [{}]}), 2).as_deref(), Some("tool"));
        assert_eq!(wanted_call(&json!({"messages": [], "tools": "x"}), 2), None);
    }

    #[test]
    fn arguments_are_json_with_a_query() {
        let call = ToolCall::new(1, 2, "search".into());
        let args: Value = serde_json::from_str(&call.arguments()).unwrap();
        assert!(args["query"].as_str().unwrap().len() > 3);
        assert_eq!(call.tokens(), QUERY_WORDS + 2);
        assert!(call.id.starts_with("call_"));
    }
}
