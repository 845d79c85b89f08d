//! Gateway attribution end to end: a loopback gateway answering with LiteLLM's headers (a fallback with retries
//! every fourth request, its own cost and overhead) and an unknown one answering without any; the run reports
//! fallbacks, retries and cost per step and per served model, says which step had no price, and a threshold
//! on `fallback_rate` or `gateway_retries` fails the gate.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::{HttpRequest, bin, read_report, read_request, text, u, untimed, write};
use serde_json::Value;

const BODY: &str = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#;

/// Answers one connection's requests until the client closes it.
fn serve(stream: TcpStream, litellm_count: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    while let Ok(Some(HttpRequest { path, .. })) = read_request(&mut reader) {
        let headers = if path.ends_with("/litellm/chat/completions") {
            let n = litellm_count.fetch_add(1, Ordering::SeqCst);
            if n % 4 == 3 {
                "x-litellm-model-group: gpt-4o-fallback\r\nx-litellm-model-id: dep-b\r\nx-litellm-attempted-fallbacks: 1\r\n\
                 x-litellm-attempted-retries: 2\r\nx-litellm-response-cost: 0.003\r\n\
                 x-litellm-overhead-duration-ms: 40\r\n"
            } else {
                "x-litellm-model-group: gpt-4o-mini\r\nx-litellm-model-id: dep-a\r\nx-litellm-attempted-fallbacks: 0\r\n\
                 x-litellm-attempted-retries: 0\r\nx-litellm-response-cost: 0.001\r\n\
                 x-litellm-overhead-duration-ms: 4\r\n"
            }
        } else {
            "x-served-model: tier-b\r\n"
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}\r\n",
            BODY.len()
        );
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(BODY.as_bytes())).is_err() {
            return;
        }
    }
}

/// A gateway on 127.0.0.1 serving until the test process ends.
fn gateway() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let c = c.clone();
            std::thread::spawn(move || serve(stream, &c));
        }
    });
    (url, count)
}

const SCENARIO: &str = r#"
name = "gw"

[load]
users = 1
iterations = 20

[gateway]
kind = "auto"

[aliases]
# The gateway's headers, not this table, decide: the body's dated name is no fallback.
"gpt-4o-mini" = ["gpt-4o-mini", "gpt-4o"]

[[user]]
name = "U"

  [[user.step]]
  name = "litellm"
  post = "/litellm/chat/completions"
  json = { model = "gpt-4o-mini", messages = [{ role = "user", content = "hi" }] }

  [[user.step]]
  name = "unknown"
  post = "/plain/chat/completions"
  json = { model = "gpt-4o-mini", messages = [{ role = "user", content = "hi" }] }
"#;

fn run(thresholds: &[&str]) -> (std::process::Output, Value, String) {
    run_scenario(SCENARIO, thresholds)
}

fn run_scenario(scenario: &str, thresholds: &[&str]) -> (std::process::Output, Value, String) {
    let (url, _) = gateway();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "gw.toml", scenario);
    let out = dir.path().join("out");
    let md = dir.path().join("summary.md");
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--target",
        &url,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--summary-md",
        md.to_str().unwrap(),
    ];
    for t in thresholds {
        args.extend(["--threshold", t]);
    }
    let _shared = untimed();
    let o = bin().args(&args).output().expect("spawn run-load-test");
    let md = std::fs::read_to_string(&md).unwrap_or_default();
    (o, read_report(&out), md)
}

fn step<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("step {name}"))
}

#[test]
fn fallbacks_retries_and_cost_come_from_the_gateway_per_step_and_per_model() {
    let (o, r, md) = run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        md.contains("#### Gateway")
            && md.contains("| U › litellm | 5 (25.0%) | #0: 15, #1: 5 | dep-a: 15, dep-b: 5 | 10 |"),
        "{md}"
    );
    assert!(md.contains("20 of 20 LLM responses had tokens but no price"), "{md}");
    let l = &step(&r, "litellm")["stats"]["llm"];
    assert_eq!(u(&l["responses"]), 20, "{l}");
    assert_eq!(u(&l["fallbacks"]), 5, "every fourth response fell back: {l}");
    assert_eq!(u(&l["gateway_retries"]), 10, "two retries per fallback: {l}");
    assert_eq!(u(&l["cost_reported_responses"]), 20);
    assert!((l["cost_usd"].as_f64().unwrap() - (15.0 * 0.001 + 5.0 * 0.003)).abs() < 1e-9, "{l}");
    assert_eq!((u(&l["targets"][0]), u(&l["targets"][1])), (15, 5), "{l}");
    let deployments = &l["deployments"];
    assert_eq!((&deployments[0]["deployment"], u(&deployments[0]["responses"])), (&"dep-a".into(), 15), "{l}");
    assert_eq!((&deployments[1]["deployment"], u(&deployments[1]["responses"])), (&"dep-b".into(), 5), "{l}");
    let overhead = &l["gateway_overhead"];
    assert!(overhead["max_ms"].as_f64().unwrap() >= 39.0 && overhead["p50_ms"].as_f64().unwrap() < 5.0, "{l}");
    let models = l["models"].as_array().unwrap();
    let model = |name: &str| models.iter().find(|m| m["model"] == name).unwrap_or_else(|| panic!("{name}: {l}"));
    assert_eq!((u(&model("gpt-4o-mini")["responses"]), u(&model("gpt-4o-mini")["fallbacks"])), (15, 0));
    let fb = model("gpt-4o-fallback");
    assert_eq!((u(&fb["responses"]), u(&fb["fallbacks"]), u(&fb["gateway_retries"])), (5, 5, 10));
    assert!(step(&r, "litellm")["histograms"]["gateway_overhead"].as_str().is_some_and(|h| !h.is_empty()));

    // No gateway header and no price: the dated served name is not a fallback, and the cost is not "$0".
    let s = step(&r, "unknown");
    let p = &s["stats"]["llm"];
    assert_eq!((u(&p["fallbacks"]), u(&p["unpriced_responses"])), (0, 20), "{p}");
    let warnings = s["stats"]["warnings"].to_string();
    assert!(warnings.contains("20 of 20 LLM responses had tokens but no price"), "{warnings}");
}

#[test]
fn thresholds_on_fallback_rate_and_gateway_retries_fail_the_gate() {
    let (o, r, _) = run(&[
        "fallback_rate{step:litellm}: rate < 0.1",
        "gateway_retries: count < 5",
        "fallback_rate: rate < 0.5",
        "gateway_retries{model:gpt-4o-fallback}: rate <= 2",
        "fallback_rate{model:gpt-4o-mini}: count == 0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let v = r["thresholds"].as_array().unwrap();
    let observed = |i: usize| v[i]["observed"].as_f64().unwrap();
    assert_eq!((v[0]["pass"].as_bool(), observed(0)), (Some(false), 0.25), "{v:?}");
    assert_eq!((v[1]["pass"].as_bool(), observed(1)), (Some(false), 10.0), "{v:?}");
    // Over both steps: 5 fallbacks of 40 responses.
    assert_eq!((v[2]["pass"].as_bool(), observed(2)), (Some(true), 0.125), "{v:?}");
    // Per served model: the fallback model's 5 responses had 10 retries; the primary never fell back.
    assert_eq!((v[3]["pass"].as_bool(), observed(3)), (Some(true), 2.0), "{v:?}");
    assert_eq!((v[4]["pass"].as_bool(), observed(4)), (Some(true), 0.0), "{v:?}");
}

#[test]
fn the_older_served_model_header_key_still_names_the_served_model() {
    let scenario =
        SCENARIO.replace("[gateway]\nkind = \"auto\"\n", "[defaults]\nserved_model_header = \"x-served-model\"\n");
    let (o, r, _) = run_scenario(&scenario, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let models = step(&r, "unknown")["stats"]["llm"]["models"].to_string();
    assert!(models.contains("\"tier-b\""), "{models}");
}

#[test]
fn a_bad_gateway_table_is_exit_2_naming_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (table, needle) in [
        ("[gateway]\nkind = \"kong\"\n", "kong"),
        ("[gateway]\nmodel_heder = \"x-m\"\n", "model_heder"),
        ("[gateway]\ncost_header = \"x cost\"\n", "cost_header"),
        ("[gateway]\nmodel_header = \"x-a\"\n[defaults]\nserved_model_header = \"x-b\"\n", "served_model_header"),
    ] {
        let body = SCENARIO.replace("[gateway]\nkind = \"auto\"\n", table);
        let p = write(dir.path(), "bad.toml", &body);
        let _shared = untimed();
        let o = bin().args(["run", p.to_str().unwrap(), "--quiet"]).output().expect("spawn");
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{table}: {err}");
        assert!(err.contains(needle) && err.contains("bad.toml:"), "{table}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn a_named_gateway_whose_headers_never_come_is_a_warning() {
    let scenario = SCENARIO.replace("kind = \"auto\"", "kind = \"portkey\"");
    let (o, r, md) = run_scenario(&scenario, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let warnings = step(&r, "litellm")["stats"]["warnings"].to_string();
    assert!(
        warnings.contains("kind = \\\"portkey\\\", but none of the 20 LLM responses carried its headers"),
        "{warnings}"
    );
    assert!(md.contains("none of the 20 LLM responses carried its headers"), "the Markdown summary says it too: {md}");
    assert_eq!(u(&step(&r, "litellm")["stats"]["llm"]["fallbacks"]), 0, "LiteLLM's headers are not read as Portkey's");
}
