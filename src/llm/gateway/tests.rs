use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::llm::usage::read_completion;

/// The headers of a recorded response head (`tests/fixtures/gateways/*.http`).
fn head(recorded: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in recorded.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (name, value) = line.split_once(':').expect("name: value");
        h.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name"),
            HeaderValue::from_str(value.trim()).expect("a header value"),
        );
    }
    h
}

fn pairs(list: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in list {
        h.insert(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn spec(kind: GatewayKind) -> GatewaySpec {
    GatewaySpec::new(&GatewayConfig { kind, ..GatewayConfig::default() }).unwrap()
}

fn captured(spec: &GatewaySpec, h: &HeaderMap) -> Captured {
    Captured::from_headers(h, spec.names())
}

#[test]
fn litellm_fallback_retries_cost_and_overhead_from_a_recorded_response() {
    let h = head(include_str!("../../../tests/fixtures/gateways/litellm_fallback.http"));
    for kind in [GatewayKind::Litellm, GatewayKind::Auto] {
        let s = spec(kind);
        let c = captured(&s, &h);
        let g = s.parse(&c, None);
        assert_eq!(g.family, Some(Family::Litellm), "{kind:?}");
        assert_eq!(g.model, Some("gpt-4o-fallback"));
        assert_eq!(g.deployment, Some("7d9f2a6c1b3e4f5a8c0d9e2f1a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b"));
        assert_eq!((g.fallback, g.target), (Some(true), Some(1)));
        assert_eq!(g.retries, Some(2));
        assert_eq!(g.cost, Some(0.000213));
        assert_eq!(g.overhead, Some(Duration::from_micros(12_437)));
        assert_eq!(g.cache_hit, None, "no cache key: the cache was not used");
    }
}

#[test]
fn litellm_primary_is_no_fallback_and_a_cache_key_is_a_hit() {
    let h = head(include_str!("../../../tests/fixtures/gateways/litellm_primary_cache_hit.http"));
    let s = spec(GatewayKind::Auto);
    let c = captured(&s, &h);
    let g = s.parse(&c, None);
    assert_eq!((g.fallback, g.target, g.retries, g.cache_hit), (Some(false), Some(0), Some(0), Some(true)));
    assert_eq!(g.cost, Some(0.0), "a cached answer the gateway says cost nothing is $0, not unpriced");
    assert_eq!(g.model, Some("gpt-4o"));
    let body = read_completion(include_bytes!("../../../tests/fixtures/gateways/litellm_completion.json")).unwrap();
    assert_eq!(body.model.as_deref(), Some("gpt-4o-2024-08-06"), "the provider's name is in the body");
}

#[test]
fn portkey_target_index_retries_and_cache_status() {
    let s = spec(GatewayKind::Auto);
    // As observed on the open-source gateway 1.15.2 (issue 12's portkey-facts).
    for (index, target, fallback) in [
        ("config.targets[1]", 1, true),
        ("config.targets[0]", 0, false),
        ("1", 1, true),
        ("0", 0, false),
        ("config.targets[1].targets[0]", 1, true),
        ("config.targets[0].targets[2]", 0, true),
    ] {
        let h = pairs(&[
            ("x-portkey-last-used-option-index", index),
            ("x-portkey-retry-attempt-count", "3"),
            ("x-portkey-cache-status", "DISABLED"),
            ("x-portkey-trace-id", ""),
            ("x-portkey-provider", "openai"),
        ]);
        let c = captured(&s, &h);
        let g = s.parse(&c, None);
        assert_eq!(g.family, Some(Family::Portkey), "{index}");
        assert_eq!(g.target, Some(target), "{index}");
        assert_eq!(g.fallback, Some(fallback), "{index}: a target after the first is a fallback");
        assert_eq!((g.retries, g.cache_hit, g.deployment), (Some(3), Some(false), Some("openai")));
    }
    // A plain request (no strategy) names no target; retries ran out reads as unsaid, not as a huge count.
    let h = pairs(&[("x-portkey-last-used-option-index", "config"), ("x-portkey-retry-attempt-count", "-1")]);
    let c = captured(&s, &h);
    let g = s.parse(&c, None);
    assert_eq!((g.family, g.target, g.fallback, g.retries), (Some(Family::Portkey), None, None, None));
    for (status, hit) in
        [("HIT", true), ("SEMANTIC HIT", true), ("MISS", false), ("DISABLED", false), ("REFRESH", false)]
    {
        let h = pairs(&[("x-portkey-cache-status", status)]);
        let s = spec(GatewayKind::Portkey);
        let c = captured(&s, &h);
        assert_eq!(s.parse(&c, None).cache_hit, Some(hit), "{status}");
    }
    let bare = HeaderMap::new();
    let c = captured(&s, &bare);
    assert_eq!(s.parse(&c, None), GatewayInfo::default(), "no header, nothing said");
}

#[test]
fn openrouter_cost_comes_from_the_body_and_only_kinds_that_read_it_take_it() {
    let body = read_completion(include_bytes!("../../../tests/fixtures/gateways/openrouter_completion.json")).unwrap();
    let none = HeaderMap::new();
    for (kind, expect) in [
        (GatewayKind::Openrouter, Some(0.0000957)),
        (GatewayKind::Auto, Some(0.0000957)),
        (GatewayKind::Litellm, None),
        (GatewayKind::Generic, None),
    ] {
        let s = spec(kind);
        let c = captured(&s, &none);
        let g = s.parse(&c, body.cost);
        assert_eq!(g.cost, expect, "{kind:?}");
        assert_eq!(g.fallback, None, "{kind:?}: OpenRouter says nothing of fallbacks");
    }
    // A header's cost wins over the body's.
    let s = spec(GatewayKind::Auto);
    let h = pairs(&[("x-litellm-response-cost", "0.5")]);
    let c = captured(&s, &h);
    assert_eq!(s.parse(&c, Some(0.25)).cost, Some(0.5));
}

#[test]
fn generic_reads_the_scenarios_own_header_names() {
    let cfg = GatewayConfig {
        kind: GatewayKind::Generic,
        model_header: Some("X-Served-Model".into()),
        deployment_header: Some("x-upstream".into()),
        fallback_header: Some("x-fallback".into()),
        retries_header: Some("x-retries".into()),
        cache_header: Some("x-cache".into()),
        cost_header: Some("x-cost-usd".into()),
        overhead_header: Some("x-gw-ms".into()),
        target_header: None,
    };
    let s = GatewaySpec::new(&cfg).unwrap();
    let h = pairs(&[
        ("x-served-model", "gpt-4o-mini"),
        ("x-upstream", "eu-1"),
        ("x-fallback", "true"),
        ("x-retries", "1"),
        ("x-cache", "hit"),
        ("x-cost-usd", "0.0042"),
        ("x-gw-ms", "7.5"),
        // A generic gateway ignores the families' headers.
        ("x-litellm-attempted-retries", "9"),
    ]);
    let c = captured(&s, &h);
    let g = s.parse(&c, Some(1.0));
    assert_eq!(g.family, Some(Family::Generic));
    assert_eq!((g.model, g.deployment), (Some("gpt-4o-mini"), Some("eu-1")));
    assert_eq!((g.fallback, g.retries, g.cache_hit), (Some(true), Some(1), Some(true)));
    assert_eq!(g.cost, Some(0.0042));
    assert_eq!(g.overhead, Some(Duration::from_micros(7500)));
    let bad = GatewayConfig { cost_header: Some("x cost".into()), ..GatewayConfig::default() };
    let e = GatewaySpec::new(&bad).unwrap_err();
    assert!(e.to_string().contains("cost_header"), "{e}");
}

#[test]
fn a_scenario_header_wins_over_a_family_header_under_auto() {
    let cfg = GatewayConfig { model_header: Some("x-served-model".into()), ..GatewayConfig::default() };
    let s = GatewaySpec::new(&cfg).unwrap();
    let h = pairs(&[
        ("x-served-model", "tier_2"),
        ("x-litellm-model-group", "gpt-4o"),
        ("x-litellm-attempted-retries", "1"),
    ]);
    let c = captured(&s, &h);
    let g = s.parse(&c, None);
    assert_eq!(g.model, Some("tier_2"));
    assert_eq!(g.retries, Some(1), "the family is still read for what the scenario did not name");
}

#[test]
fn absurd_values_are_not_believed() {
    let s = spec(GatewayKind::Auto);
    for (name, value) in [
        ("x-litellm-attempted-retries", "99999999999999999999"),
        ("x-litellm-attempted-retries", "-1"),
        ("x-litellm-attempted-retries", "1001"),
        ("x-litellm-response-cost", "NaN"),
        ("x-litellm-response-cost", "inf"),
        ("x-litellm-response-cost", "-0.1"),
        ("x-litellm-response-cost", "1e300"),
        ("x-litellm-overhead-duration-ms", "1e308"),
        ("x-litellm-overhead-duration-ms", "-5"),
        ("x-portkey-last-used-option-index", "config.targets[99999999999]"),
        ("x-portkey-last-used-option-index", "config.targets["),
        ("x-litellm-attempted-fallbacks", "maybe"),
    ] {
        let h = pairs(&[(name, value)]);
        let c = captured(&s, &h);
        let g = s.parse(&c, Some(f64::NAN));
        assert_eq!(
            (g.retries, g.cost, g.overhead, g.target, g.fallback),
            (None, None, None, None, None),
            "{name}: {value}"
        );
    }
    let mut h = HeaderMap::new();
    h.insert("x-litellm-model-group", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    let c = captured(&s, &h);
    assert_eq!(s.parse(&c, None).model, None, "a non-ASCII value is not read as a name");
}

#[test]
fn the_capture_list_is_bounded_and_has_no_duplicates() {
    let cfg = GatewayConfig {
        model_header: Some("x-litellm-model-group".into()),
        retries_header: Some("x-portkey-retry-attempt-count".into()),
        ..GatewayConfig::default()
    };
    let s = GatewaySpec::new(&cfg).unwrap();
    let n = s.names().len();
    assert!(n <= MAX_CAPTURED && n == LITELLM.len() + PORTKEY.len(), "{n}");
    assert!(spec(GatewayKind::Openrouter).names().is_empty(), "OpenRouter's attribution is in the body");
}

#[test]
fn openrouters_streamed_usage_cost_reaches_the_gateway_info() {
    use crate::llm::sse::SseParser;
    let body = include_bytes!("../../../tests/fixtures/gateways/openrouter_stream.sse");
    let mut p = SseParser::new();
    p.reset(false);
    p.feed(body, Duration::from_millis(5)).expect("a valid stream");
    p.finish().expect("it ends with [DONE]");
    let s = p.summary();
    assert_eq!((s.usage_cost, s.model.as_str()), (Some(0.0000025), "openai/gpt-4o-mini"));
    let spec = spec(GatewayKind::Openrouter);
    let c = captured(&spec, &HeaderMap::new());
    assert_eq!(spec.parse(&c, s.usage_cost).cost, Some(0.0000025));
    let mut odd = SseParser::new();
    odd.reset(false);
    let chunk = b"data: {\"choices\":[],\"usage\":{\"completion_tokens\":2,\"cost\":\"n/a\"}}\n\ndata: [DONE]\n\n";
    odd.feed(chunk, Duration::from_millis(1)).expect("a cost that is not a number does not break the stream");
    assert_eq!(odd.summary().usage_cost, None);
}

/// As the open-source Portkey gateway 1.15.2 answered a `strategy: fallback` config whose first target failed and
/// whose second served after one retry (issue 12's observed facts).
#[test]
fn portkey_fallback_from_its_observed_headers() {
    let h = head(include_str!("../../../tests/fixtures/gateways/portkey_fallback.http"));
    let s = spec(GatewayKind::Auto);
    let c = captured(&s, &h);
    let g = s.parse(&c, None);
    assert_eq!((g.family, g.target, g.fallback, g.retries), (Some(Family::Portkey), Some(1), Some(true), Some(1)));
    assert_eq!((g.cache_hit, g.deployment, g.model, g.cost), (Some(false), Some("openai"), None, None));
    // The mock's own served-model header, passed through, is read when the scenario names it.
    let named = GatewaySpec::new(&GatewayConfig { model_header: Some("x-served-model".into()), ..Default::default() });
    let named = named.unwrap();
    let c = captured(&named, &h);
    assert_eq!(named.parse(&c, None).model, Some("tier_b"));
}
