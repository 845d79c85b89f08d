//! Model routing and what an agent sees: aliases and their fallback, per-model latency, reasoning and tool
//! calls.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::{Alias, MockConfig, ModelLatency};
use super::{chat, chunks, events, fast, hello, start, stats};

fn agent(model: &str, extra: Value) -> Value {
    let mut request = hello(extra);
    request["model"] = json!(model);
    request
}

#[tokio::test]
async fn a_failing_tier_falls_back_to_the_next_one() {
    let server = start(MockConfig { failing_tiers: vec!["coding_tier_3".into()], ..fast() });
    let whole = chat(server.addr(), agent("coding_agent", json!({}))).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.json()["model"], "coding_tier_2");
    assert_eq!(whole.header("x-served-model"), Some("coding_tier_2"));
    let streamed = chat(server.addr(), agent("coding_agent", json!({"stream": true}))).await;
    assert_eq!(streamed.header("x-served-model"), Some("coding_tier_2"));
    assert!(chunks(&streamed.body).iter().all(|c| c["model"] == "coding_tier_2"));
    let plain = chat(server.addr(), agent("mock_agent", json!({}))).await;
    assert_eq!(plain.json()["model"], "mock-model");
    let echo = chat(server.addr(), agent("anything-else", json!({}))).await;
    assert_eq!(echo.header("x-served-model"), Some("anything-else"));
    let s = stats(server.addr()).await;
    assert_eq!((s["chat_requests"].as_u64(), s["fallbacks"].as_u64()), (Some(4), Some(2)));
}

/// The served model of each request index, and the server's fallback count.
async fn served_models(config: &MockConfig) -> (BTreeMap<u64, String>, u64) {
    let server = start(config.clone());
    let mut served = BTreeMap::new();
    for _ in 0..100 {
        let reply = chat(server.addr(), agent("coding_agent", json!({"max_tokens": 1}))).await;
        assert_eq!(reply.status, 200);
        served.insert(reply.request_id(), reply.header("x-served-model").unwrap().to_owned());
    }
    (served, stats(server.addr()).await["fallbacks"].as_u64().unwrap())
}

#[tokio::test]
async fn tier_failures_are_seeded_and_plausible() {
    let config = MockConfig { tier_failure_rate: 0.5, fallback_penalty: Duration::ZERO, seed: 11, ..fast() };
    let (served, fallbacks) = served_models(&config).await;
    assert_eq!(served_models(&config).await, (served.clone(), fallbacks));
    assert!((30..=70).contains(&fallbacks), "{fallbacks} fallbacks");
    assert_eq!(fallbacks, served.values().filter(|m| *m != "coding_tier_3").count() as u64);
    let last = served.values().filter(|m| *m == "coding_fallback").count();
    assert!((10..=40).contains(&last), "{last} served by the last tier");
}

#[tokio::test]
async fn an_alias_with_no_available_tier_is_a_503() {
    let tiers = ["coding_tier_3", "coding_tier_2", "coding_fallback"].map(String::from).to_vec();
    let server = start(MockConfig { failing_tiers: tiers, ..fast() });
    let reply = chat(server.addr(), agent("coding_agent", json!({"stream": true}))).await;
    assert_eq!(reply.status, 503);
    let expected = json!({"message": "all tiers of alias coding_agent are unavailable", "type": "server_error"});
    assert_eq!(reply.json()["error"]["message"], expected["message"]);
    assert_eq!(reply.json()["error"]["type"], expected["type"]);
    assert_eq!(stats(server.addr()).await["all_tiers_failed"], 1);
}

#[tokio::test]
async fn latency_follows_the_served_model_and_fallbacks_cost_their_penalty() {
    let slow = Duration::from_millis(80);
    let server = start(MockConfig {
        aliases: vec![Alias { name: "agent".into(), tiers: vec!["down".into(), "slow".into()] }],
        failing_tiers: vec!["down".into()],
        fallback_penalty: Duration::from_millis(30),
        model_latency: vec![ModelLatency { model: "slow".into(), first_token_delay: slow, token_delay: slow }],
        output_tokens: 2,
        ..fast()
    });
    let reply = chat(server.addr(), agent("slow", json!({"stream": true}))).await;
    assert!(reply.marker_after.unwrap() >= slow);
    let sent = Instant::now();
    let reply = chat(server.addr(), agent("agent", json!({}))).await;
    assert_eq!(reply.json()["model"], "slow");
    // 30ms penalty, 80ms to the first token, 80ms to the second.
    assert!(sent.elapsed() >= Duration::from_millis(190), "{:?}", sent.elapsed());
    let sent = Instant::now();
    chat(server.addr(), agent("quick", json!({}))).await;
    assert!(sent.elapsed() < slow, "{:?}", sent.elapsed());
}

#[tokio::test]
async fn reasoning_precedes_the_answer_and_counts_as_completion_tokens() {
    let server = start(MockConfig { reasoning_tokens: 3, output_tokens: 4, ..fast() });
    let reply = chat(server.addr(), hello(json!({"stream": true, "stream_options": {"include_usage": true}}))).await;
    let chunks = chunks(&reply.body);
    let deltas: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)).map(|c| &c["delta"]).collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    for d in &deltas[1..4] {
        assert!(d["reasoning_content"].is_string() && d.get("content").is_none(), "{d}");
    }
    for d in &deltas[4..8] {
        assert!(d["content"].is_string() && d.get("reasoning_content").is_none(), "{d}");
    }
    assert_eq!(deltas.len(), 9);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 7);
    assert_eq!(usage["completion_tokens_details"], json!({"reasoning_tokens": 3}));

    let whole = chat(server.addr(), hello(json!({}))).await.json();
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["reasoning_content"].as_str().unwrap().split_whitespace().count(), 3);
    assert!(message["content"].is_string());
    assert_eq!(whole["usage"]["completion_tokens"], 7);
    assert_eq!(whole["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
}

fn with_tools(tool_messages: usize, stream: bool) -> Value {
    let mut messages = vec![json!({"role": "user", "content": "find the latency"})];
    for i in 0..tool_messages {
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{i}"),
            "type": "function", "function": {"name": "search", "arguments": "{}"}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_{i}"), "content": "42ms"}));
    }
    json!({
        "model": "coding_agent", "messages": messages, "stream": stream,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
                  {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}]
    })
}

#[tokio::test]
async fn requests_with_tools_get_tool_calls_until_react_steps_tool_results() {
    let server = start(MockConfig { react_steps: 2, ..fast() });
    for tool_messages in [0, 1] {
        let whole = chat(server.addr(), with_tools(tool_messages, false)).await.json();
        let choice = &whole["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!((&call["type"], &call["function"]["name"]), (&json!("function"), &json!("search")));
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["query"].is_string());
        assert_eq!(whole["usage"]["completion_tokens"], 5);

        let reply = chat(server.addr(), with_tools(tool_messages, true)).await;
        assert_eq!(events(&reply.body).last().unwrap(), "[DONE]");
        let chunks = chunks(&reply.body);
        let deltas: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"].get(0)).map(|c| &c["delta"]).collect();
        assert_eq!(deltas[0], &json!({"role": "assistant", "content": null}));
        let opening = &deltas[1]["tool_calls"][0];
        assert_eq!(opening["index"], 0);
        assert!(opening["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(opening["function"], json!({"name": "search", "arguments": ""}));
        let pieces: Vec<&str> =
            deltas[2..].iter().filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str()).collect();
        assert_eq!(pieces.len(), 5);
        let args: Value = serde_json::from_str(&pieces.concat()).unwrap();
        assert!(args["query"].is_string());
        let last_choice = &chunks[chunks.len() - 2]["choices"][0];
        assert_eq!(last_choice["finish_reason"], "tool_calls");
        assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 5);
    }
    let whole = chat(server.addr(), with_tools(2, false)).await.json();
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert!(whole["choices"][0]["message"]["content"].is_string());
    assert!(whole["choices"][0]["message"].get("tool_calls").is_none());
    let reply = chat(server.addr(), with_tools(2, true)).await;
    assert!(chunks(&reply.body).iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()));
    assert_eq!(stats(server.addr()).await["tool_calls"], 4);
}

#[tokio::test]
async fn a_tier_named_directly_fails_with_503_as_often_as_its_alias_falls_back() {
    let config = MockConfig { tier_failure_rate: 0.4, fallback_penalty: Duration::ZERO, seed: 3, ..fast() };
    let server = start(config.clone());
    let mut down = 0u64;
    for _ in 0..60 {
        let reply = chat(server.addr(), agent("coding_tier_3", json!({"max_tokens": 1}))).await;
        match reply.status {
            200 => assert_eq!(reply.header("x-served-model"), Some("coding_tier_3")),
            503 => {
                down += 1;
                assert!(reply.json()["error"]["message"].as_str().unwrap().contains("coding_tier_3"));
            }
            other => panic!("status {other}"),
        }
    }
    // The last tier and a model of no alias are never down by the rate.
    for model in ["coding_fallback", "gpt-x"] {
        assert_eq!(chat(server.addr(), agent(model, json!({"max_tokens": 1}))).await.status, 200);
    }
    let s = stats(server.addr()).await;
    assert!((10..=40).contains(&down), "{down} of 60 down at rate 0.4");
    assert_eq!((s["tier_unavailable"].as_u64(), s["fallbacks"].as_u64()), (Some(down), Some(0)));
    let by_model = &s["tier_unavailable_by_model"];
    assert_eq!((by_model["coding_tier_3"].as_u64(), by_model["coding_fallback"].as_u64()), (Some(down), Some(0)));
    // The same seed routes the alias around exactly the requests that found the tier down.
    let (_, fallbacks) = served_models(&MockConfig { seed: 3, ..config }).await;
    let again = start(MockConfig { tier_failure_rate: 0.4, fallback_penalty: Duration::ZERO, seed: 3, ..fast() });
    let mut direct_down = 0;
    for _ in 0..100 {
        direct_down +=
            u64::from(chat(again.addr(), agent("coding_tier_3", json!({"max_tokens": 1}))).await.status == 503);
    }
    assert_eq!(direct_down, fallbacks);
}
