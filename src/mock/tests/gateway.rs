//! What sits in front of the models: rate limiting, accounts and bearer tokens, the tool endpoint and the
//! counters of `/mock/stats`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::{MockConfig, RateLimit};
use super::{call, fast, hello, start, stats};

async fn chat_as(addr: std::net::SocketAddr, authorization: Option<&str>) -> super::Reply {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(authorization.map(|a| ("Authorization", a)));
    let body = hello(json!({"max_tokens": 1})).to_string();
    call(addr, "POST", "/v1/chat/completions", &headers, body.as_bytes()).await
}

#[tokio::test]
async fn a_key_gets_its_burst_then_429s_until_the_bucket_refills() {
    let limit = RateLimit { requests_per_second: 2.0, burst: 3 };
    let server = start(MockConfig { rate_limit: Some(limit), first_token_delay: Duration::from_millis(200), ..fast() });
    let addr = server.addr();
    // At once, so that the bucket has no time to refill.
    let burst = futures_util::future::join_all((0..3).map(|_| chat_as(addr, Some("Bearer key-a")))).await;
    assert!(burst.iter().all(|r| r.status == 200));
    let sent = Instant::now();
    let limited = chat_as(addr, Some("Bearer key-a")).await;
    // Rejected at once, without the model's 200ms.
    assert!(sent.elapsed() < Duration::from_millis(150), "{:?}", sent.elapsed());
    assert_eq!(limited.status, 429);
    let error = &limited.json()["error"];
    assert_eq!((&error["type"], &error["code"]), (&json!("rate_limit_error"), &json!("rate_limit_exceeded")));
    assert!(error["message"].as_str().unwrap().starts_with("Rate limit reached"));
    assert_eq!(limited.header("retry-after"), Some("1"));
    let wait_ms: u64 = limited.header("retry-after-ms").unwrap().parse().unwrap();
    assert!((1..=500).contains(&wait_ms), "{wait_ms}");
    // Other keys, and anonymous callers, have buckets of their own.
    assert_eq!(chat_as(addr, Some("Bearer key-b")).await.status, 200);
    assert_eq!(chat_as(addr, None).await.status, 200);
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    assert_eq!(chat_as(addr, Some("Bearer key-a")).await.status, 200);
    assert_eq!(stats(addr).await["rate_limited"], 1);
}

async fn post(addr: std::net::SocketAddr, path: &str, body: Value) -> super::Reply {
    call(addr, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes()).await
}

#[tokio::test]
async fn register_login_and_use_the_token() {
    let server = start(MockConfig { auth_required: true, ..fast() });
    let addr = server.addr();
    let credentials = json!({"username": "ada", "password": "s3cret"});
    let registered = post(addr, "/v1/auth/register", credentials.clone()).await;
    assert_eq!(registered.status, 201);
    let user = registered.json();
    assert_eq!(user["username"], "ada");
    let user_id = user["user_id"].as_str().unwrap();
    assert!(user_id.starts_with("u_") && user_id[2..].chars().all(|c| c.is_ascii_hexdigit()), "{user_id}");
    assert_eq!(post(addr, "/v1/auth/register", credentials.clone()).await.status, 409);
    assert_eq!(post(addr, "/v1/auth/register", json!({"username": "bob"})).await.status, 400);
    assert_eq!(call(addr, "POST", "/v1/auth/register", &[], b"{oops").await.status, 400);

    let wrong = post(addr, "/v1/auth/login", json!({"username": "ada", "password": "nope"})).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(post(addr, "/v1/auth/login", json!({"username": "eve", "password": "x"})).await.status, 401);
    let login = post(addr, "/v1/auth/login", credentials).await;
    assert_eq!(login.status, 200);
    let login = login.json();
    assert_eq!((&login["token_type"], &login["expires_in"]), (&json!("bearer"), &json!(3600)));
    let token = login["access_token"].as_str().unwrap();
    assert!(token.starts_with("mk-") && token.len() == 35 && token[3..].chars().all(|c| c.is_ascii_hexdigit()));

    for authorization in [None, Some("Bearer mk-forged"), Some(token)] {
        let denied = chat_as(addr, authorization).await;
        assert_eq!(denied.status, 401, "{authorization:?}");
        let expected = json!({"message": "invalid or missing bearer token", "type": "invalid_request_error",
            "param": null, "code": "invalid_api_key"});
        assert_eq!(denied.json()["error"], expected);
    }
    assert_eq!(chat_as(addr, Some(&format!("Bearer {token}"))).await.status, 200);
    let s = stats(addr).await;
    assert_eq!([&s["registrations"], &s["logins"], &s["unauthorized"]], [&json!(1), &json!(1), &json!(3)]);
    assert_eq!(s["chat_requests"], 4);
}

#[tokio::test]
async fn tokens_work_without_auth_required_too() {
    let server = start(fast());
    assert_eq!(chat_as(server.addr(), None).await.status, 200);
}

#[tokio::test]
async fn the_tool_endpoint_answers_after_its_latency() {
    let server = start(MockConfig { tool_latency: Duration::from_millis(40), ..fast() });
    let sent = Instant::now();
    let reply = post(server.addr(), "/v1/tools/web_search", json!({"query": "x"})).await;
    assert!(sent.elapsed() >= Duration::from_millis(40));
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["tool"], "web_search");
    assert!(body["result"].as_str().unwrap().split_whitespace().count() >= 3);
    assert_eq!(stats(server.addr()).await["tool_invocations"], 1);
}

#[tokio::test]
async fn stats_start_at_zero_and_count_injected_errors() {
    let server = start(MockConfig { error_rate: 1.0, ..fast() });
    let zero = stats(server.addr()).await;
    let zeros = |v: &Value| v.as_object().unwrap().values().all(|v| v == 0);
    // `hiccups` is the runtime's probe, no counter of what the mock decided.
    let decisions = zero.as_object().unwrap().iter().filter(|(k, _)| *k != "hiccups");
    let (counters, per_tier): (Vec<_>, Vec<_>) = decisions.partition(|(_, v)| v.is_number());
    assert!(counters.iter().all(|(_, v)| **v == 0), "{zero}");
    assert_eq!((counters.len(), per_tier.len()), (17, 1));
    assert!(zeros(&zero["tier_unavailable_by_model"]), "{zero}");
    assert_eq!(zero["tier_unavailable_by_model"].as_object().unwrap().len(), 5);
    assert_eq!(chat_as(server.addr(), None).await.status, 500);
    let s = stats(server.addr()).await;
    assert_eq!((&s["chat_requests"], &s["injected_errors"]), (&json!(1), &json!(1)));
    let models = call(server.addr(), "GET", "/v1/models", &[], b"").await.json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["mock-model", "standard_agent", "coding_agent", "mock_agent"]);
}
