//! Agent-gateway workloads against the embedded mock: streaming metrics, ReAct flows, fallback, 429 retries,
//! on_start auth, cost, and stream malformations. Settings are known, so numbers are asserted within bounds.

use serde_json::Value;

use crate::common::*;

fn step<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

const CHAT: &str = "post = \"/v1/chat/completions\"\n";

#[test]
fn streaming_metrics_match_the_mocks_timing() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[load]\nusers = 2\niterations = 20\n[mock]\noutput_tokens = 10\nfirst_token_delay = \"50ms\"\ntoken_delay = \"10ms\"\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"s\"\n{CHAT}stream = true\n\
         json = {{ model = \"m\", messages = [{{ role = \"user\", content = \"hi\" }}] }}\n"
    );
    let p = write(dir.path(), "s.toml", &body);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "1"]);
    let l = &step(&r, "s")["stats"]["llm"];
    assert_eq!(u(&l["responses"]), 20, "{l}");
    assert_eq!(u(&l["streamed"]), 20);
    assert_eq!(u(&l["output_tokens"]), 200, "10 tokens x 20 responses, as the mock sent");
    assert_eq!(u(&l["tokens_from_usage"]), 20, "include_usage is requested for streams");
    // The mock sends token k at `first token + k x 10 ms` or, when it runs late, as soon as it can (a late token
    // is followed by a shorter gap), so a busy machine moves single gaps both ways. The bounds are therefore on
    // means, which add up exactly per request, and the only slack is the run's own measured lateness:
    // - no token before its deadline: TTFT >= 50 ms and TTFT + 9 gaps (the last token) >= 50 + 9 x 10 ms;
    // - no token after the response ended: TTFT + 9 gaps <= latency;
    // - so the mean gap is 10 ms, give or take the first token's lateness (TTFT - 50) and the response's
    //   (latency - 140) spread over the 9 gaps: on an idle machine within a few tenths of a millisecond.
    // EPS covers the histograms' 3 significant digits.
    const EPS: f64 = 0.5;
    let latency = f(&step(&r, "s")["stats"]["latency"]["mean_ms"]);
    let ttft_p50 = f(&l["ttft"]["p50_ms"]);
    assert!(f(&l["ttft"]["min_ms"]) >= 50.0 - EPS, "TTFT {} ms vs configured 50 ms", l["ttft"]);
    assert_eq!(u(&l["icl"]["count"]), 180, "9 gaps between 10 tokens x 20 responses: {}", l["icl"]);
    let (ttft, icl, tpot) = (f(&l["ttft"]["mean_ms"]), f(&l["icl"]["mean_ms"]), f(&l["tpot"]["mean_ms"]));
    let last_token = ttft + 9.0 * icl;
    assert!(
        last_token >= 140.0 - EPS && last_token <= latency + EPS,
        "TTFT {ttft} + 9 x ICL {icl} = {last_token} ms: after the last deadline (140 ms), before the end ({latency} ms)"
    );
    let (low, high) = (10.0 - (ttft - 50.0) / 9.0, 10.0 + (latency - 140.0) / 9.0);
    for (name, v) in [("ICL", icl), ("TPOT", tpot)] {
        assert!(
            v >= low - EPS && v <= high + EPS,
            "{name} mean {v} ms vs configured 10 ms, within this run's lateness: {low}..{high}"
        );
    }
    // TPOT ends at the last token: (last − first) / 9 is the mean of a response's 9 gaps, so over responses
    // that all have 9 gaps the means agree; what follows the last token is stream_tail, latency's remainder.
    assert!((tpot - icl).abs() < EPS, "TPOT is (last token - first token) / 9, the mean gap: {tpot} vs ICL {icl}");
    let tail = f(&l["stream_tail"]["mean_ms"]);
    assert!((ttft + 9.0 * tpot + tail - latency).abs() < 3.0 * EPS, "TTFT + 9 TPOT + tail = latency ({latency} ms)");
    let ttfo = f(&l["ttfo"]["p50_ms"]);
    assert!((ttfo - ttft_p50).abs() < 2.0, "no reasoning: TTFO equals TTFT ({ttfo} vs {ttft_p50})");
}

#[test]
fn react_flows_loop_through_tool_calls_to_a_final_answer() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/react.toml")).unwrap();
    let fast = src
        .replace("react_steps = 2", "react_steps = 2\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"")
        .replace("delay = { min = \"30ms\", max = \"80ms\" }", "delay = \"1ms\"")
        .replace("think_time = { min = \"200ms\", max = \"1s\" }", "");
    assert_ne!(fast, src);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/data/tasks.csv"), dir.path().join("data/tasks.csv"))
        .unwrap();
    let p = write(dir.path(), "react.toml", &fast);
    let r = run_report(&p, &dir.path().join("o"), &["--iterations", "12", "--users", "3", "--seed", "5"]);
    assert_eq!(u(&r["totals"]["failures"]), 0, "{}", r["errors"]);
    let flow = &r["flows"][0];
    assert_eq!(u(&flow["completed"]), 12);
    // react_steps = 2: reason, tool, reason, tool, reason; the tool is a delay, so 3 requests per flow.
    assert_eq!(f(&flow["steps_mean"]), 3.0);
    assert_eq!(u(&flow["steps_max"]), 3);
    assert_eq!(u(&step(&r, "reason")["stats"]["requests"]), 36);
    assert!(r["steps"].as_array().unwrap().iter().all(|s| s["name"] != "tool"), "a delay is not a request");
    assert!(f(&flow["latency"]["p50_ms"]) > 0.0);
    let stats = &r["mock_stats"];
    assert_eq!(u(&stats["tool_calls"]), 24, "the mock answered with 24 tool calls: {stats}");
    let llm = &step(&r, "reason")["stats"]["llm"];
    assert_eq!(u(&llm["streamed"]), 36);
    assert!(llm["ttft"]["p50_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn fallbacks_match_the_injected_tier_failures_and_cost_follows_pricing() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[load]\nusers = 4\niterations = 200\n\
         [aliases]\ncoding_agent = [\"coding_tier_3\", \"coding_tier_2\", \"coding_fallback\"]\n\
         [pricing]\ncoding_tier_3 = {{ input = 3.0, output = 15.0 }}\ncoding_tier_2 = {{ input = 1.0, output = 5.0 }}\ncoding_fallback = {{ input = 0.2, output = 0.8 }}\n\
         [mock]\ntier_failure_rate = 0.3\noutput_tokens = 6\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\nfallback_penalty = \"1ms\"\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"code\"\n{CHAT}\
         json = {{ model = \"coding_agent\", messages = [{{ role = \"user\", content = \"write a retry loop\" }}] }}\n"
    );
    let p = write(dir.path(), "s.toml", &body);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "9"]);
    let l = &step(&r, "code")["stats"]["llm"];
    let fallbacks = u(&l["fallbacks"]);
    assert!(fallbacks > 20 && fallbacks < 120, "about 30% of 200 fall back: {fallbacks}");
    assert_eq!(fallbacks, u(&r["mock_stats"]["fallbacks"]), "measured = injected");
    let models = l["models"].as_array().unwrap();
    let served: u64 = models.iter().map(|m| u(&m["responses"])).sum();
    assert_eq!(served, 200);
    let primary = models.iter().find(|m| m["model"] == "coding_tier_3").unwrap();
    assert_eq!(u(&primary["responses"]) + fallbacks, 200);
    assert_eq!(u(&primary["fallbacks"]), 0);
    // Cost: tokens x price per served model, summed.
    let price = |m: &str| match m {
        "coding_tier_3" => (3.0, 15.0),
        "coding_tier_2" => (1.0, 5.0),
        _ => (0.2, 0.8),
    };
    let mut expected = 0.0;
    for m in models {
        let cost = f(&m["cost_usd"]);
        let out_tokens = u(&m["output_tokens"]) as f64;
        assert_eq!(out_tokens, 6.0 * u(&m["responses"]) as f64);
        assert!(cost > out_tokens * price(m["model"].as_str().unwrap()).1 / 1e6 - 1e-12, "{m}");
        expected += cost;
    }
    let input = u(&l["input_tokens"]) as f64;
    assert!(input > 0.0);
    assert!((f(&l["cost_usd"]) - expected).abs() < 1e-9);
    assert!((f(&r["totals"]["llm"]["cost_usd"]) - expected).abs() < 1e-9);
    let primary_cost = f(&primary["cost_usd"]);
    let p_in = input / 200.0 * u(&primary["responses"]) as f64;
    let p_out = u(&primary["output_tokens"]) as f64;
    assert!((primary_cost - (p_in * 3.0 + p_out * 15.0) / 1e6).abs() < 1e-9, "cost = tokens x price");
}

#[test]
fn rate_limited_requests_are_retried_after_the_advised_wait() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[load]\nusers = 3\niterations = 40\n\
         [mock]\noutput_tokens = 2\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\nrate_limit = {{ requests_per_second = 40.0, burst = 2 }}\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\n{CHAT}retry = {{ max = 100 }}\n\
         json = {{ model = \"m\", messages = [{{ role = \"user\", content = \"hi\" }}] }}\n"
    );
    let p = write(dir.path(), "s.toml", &body);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "2"]);
    let s = &step(&r, "chat")["stats"];
    assert_eq!(u(&s["requests"]), 40);
    assert_eq!(u(&s["failures"]), 0, "every 429 was retried to success: {}", r["errors"]);
    let retries = u(&s["retries"]);
    assert!(retries > 0, "4 users against 40 req/s with burst 2 hit the limit");
    assert_eq!(retries, u(&r["mock_stats"]["rate_limited"]), "each 429 was retried once");
    // Without retries, the same 429s are failures of their own kind.
    let no_retry = body.replace("retry = { max = 100 }\n", "");
    let p = write(dir.path(), "n.toml", &no_retry);
    let r = run_report(&p, &dir.path().join("n"), &["--seed", "2"]);
    let t = &r["totals"];
    assert!(u(&t["failures"]) > 0);
    assert_eq!(u(&t["errors"]["rate_limited"]), u(&t["failures"]), "{}", t["errors"]);
}

#[test]
fn a_token_from_on_start_authorizes_later_requests() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_report(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/auth.toml")),
        &dir.path().join("o"),
        &["--iterations", "15", "--users", "3", "--seed", "4"],
    );
    assert_eq!(u(&step(&r, "register")["stats"]["requests"]), 3, "on_start runs once per user");
    assert_eq!(u(&step(&r, "login")["stats"]["requests"]), 3);
    let chat = &step(&r, "chat")["stats"];
    assert_eq!(u(&chat["requests"]), 15);
    assert_eq!(u(&chat["failures"]), 0, "the captured token was accepted: {}", r["errors"]);
    assert_eq!(u(&r["mock_stats"]["logins"]), 3);
    // Control: the same chat without the token is refused by the mock.
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/auth.toml")).unwrap();
    let p =
        write(dir.path(), "noauth.toml", &src.replace("headers = { authorization = \"Bearer {{ token }}\" }\n", ""));
    let n = dir.path().join("n");
    let o = run(&[
        "run",
        p.to_str().unwrap(),
        "--iterations",
        "6",
        "--users",
        "2",
        "--seed",
        "4",
        "--out",
        n.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1), "the scenario's error-rate threshold fails: {}", text(&o.stderr));
    let r = read_report(&n);
    assert_eq!(u(&step(&r, "chat")["stats"]["errors"]["status:401"]), 6);
}

#[test]
fn every_user_that_set_up_tears_down_in_both_models() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/auth.toml")).unwrap();
    let body = src.replace("think_time = { min = \"500ms\", max = \"1s\" }", "")
        + "\n  [[user.on_stop]]\n  name = \"bye\"\n  get = \"/health\"\n  expect = { status = 200 }\n";
    let p = write(dir.path(), "teardown.toml", &body);
    let r = run_report(&p, &dir.path().join("c"), &["--iterations", "15", "--users", "3", "--seed", "4"]);
    assert_eq!(u(&step(&r, "bye")["stats"]["requests"]), 3, "closed model: on_stop once per user");
    // Open model: users are pooled and reused; each that registered says goodbye once at the end.
    let r = run_report(&p, &dir.path().join("o"), &["--rate", "30", "--duration", "2s", "--seed", "4"]);
    let (set_up, torn_down) = (u(&step(&r, "register")["stats"]["requests"]), u(&step(&r, "bye")["stats"]["requests"]));
    assert!(set_up >= 1 && u(&step(&r, "chat")["stats"]["requests"]) > set_up, "users were reused: {set_up}");
    assert_eq!(torn_down, set_up, "open model: on_stop once per user that ran on_start");
    assert_eq!(u(&r["totals"]["failures"]), 0, "{}", r["errors"]);
}

fn stream_fault(setting: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "[load]\nusers = 1\niterations = 6\n[mock]\noutput_tokens = 6\nfirst_token_delay = \"1ms\"\ntoken_delay = \"1ms\"\n{setting} = 1.0\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"s\"\n{CHAT}stream = true\n\
         json = {{ model = \"m\", messages = [{{ role = \"user\", content = \"hi\" }}] }}\n"
    );
    let p = write(dir.path(), "s.toml", &body);
    let out = dir.path().join("o");
    let o = run(&["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--seed", "3"]);
    // Every request fails: the run measured nothing valid.
    assert_eq!(o.status.code(), Some(3), "{setting}: {}", text(&o.stderr));
    read_report(&out)
}

#[test]
fn every_stream_malformation_is_a_stream_error() {
    for setting in ["malformed_rate", "midstream_error_rate", "no_done_rate", "reset_rate"] {
        let r = stream_fault(setting);
        let t = &r["totals"];
        assert_eq!(u(&t["requests"]), 6, "{setting}");
        assert_eq!(u(&t["failures"]), 6, "{setting}: {}", r["errors"]);
        assert_eq!(u(&t["errors"]["stream"]), 6, "{setting} is classified as a stream error: {}", t["errors"]);
        assert!(r["errors"][0]["message"].as_str().unwrap().len() > 5);
    }
}

#[test]
fn shipped_agent_scenarios_run_against_the_mock() {
    for name in ["react", "switchover", "auth", "gateway"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let o = run(&["run", name, "--duration", "2s", "--quiet", "--seed", "1", "--out", out.to_str().unwrap()]);
        let r = read_report(&out);
        assert!(u(&r["totals"]["requests"]) > 0, "{name}");
        assert_eq!(u(&r["totals"]["failures"]), 0, "{name}: {}", r["errors"]);
        // The shipped SLOs on time (react's TTFT p99 < 800 ms...) are about a real gateway; a loaded machine may
        // miss them against the mock, and then exit 1 is the right answer. Every other threshold must pass.
        let failed: Vec<&str> = r["thresholds"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: thresholds judged: {}", r["thresholds"]))
            .iter()
            .filter(|t| t["pass"] != true)
            .map(|t| t["threshold"].as_str().unwrap_or_default())
            .collect();
        let timing = |t: &str| ["latency", "ttft", "flow_latency"].contains(&t.split(['{', ':']).next().unwrap_or(t));
        assert!(failed.iter().all(|t| timing(t)), "{name}: only a time SLO may fail: {failed:?}");
        let code = if failed.is_empty() { 0 } else { 1 };
        assert_eq!(o.status.code(), Some(code), "{name}: {failed:?}: {}", text(&o.stderr));
    }
}

#[test]
fn feeder_rows_reach_request_bodies() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "q.csv", "id,question\n1,question-one\n2,\"question-two, with a comma\"\n3,question-three\n");
    let body = "[load]\nusers = 2\niterations = 9\n\
        [[feeder]]\nname = \"qs\"\nfile = \"q.csv\"\norder = \"sequential\"\n\
        [[feeder]]\nname = \"synth\"\nsynthetic = { mean_tokens = 30, min_tokens = 30, max_tokens = 30 }\n\
        [[user]]\nname = \"U\"\n[[user.step]]\nname = \"echo\"\npost = \"/v1/echo\"\n\
        json = { q = \"{{ qs.question }}\", id = \"{{ qs.id }}\", prompt = \"{{ synth.prompt }}\", n = \"{{ synth.tokens }}\" }\n\
        expect = { body_contains = '\"q\":\"question-', json_path = [\"$.id\"] }\n\
        capture = { n = \"$.n\" }\n\
        [[user.step]]\nname = \"missing_column\"\npost = \"/v1/echo\"\njson = { x = \"{{ qs.nope }}\" }\n";
    let p = write(dir.path(), "feed.toml", body);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "8"]);
    let echo = &step(&r, "echo")["stats"];
    assert_eq!((u(&echo["requests"]), u(&echo["failures"])), (9, 0), "{}", r["errors"]);
    let missing = &step(&r, "missing_column")["stats"];
    assert_eq!(u(&missing["errors"]["check"]), 9, "an unknown column fails the request, it does not send a blank");
    // A broken feeder file is a load-time error with file and line.
    write(dir.path(), "q.csv", "id,question\n1,a,b\n");
    let o = run(&["run", p.to_str().unwrap(), "--quiet", "--out", dir.path().join("x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("q.csv:2") && e.contains("feed.toml"), "{e}");
}
