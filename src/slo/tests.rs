use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::metrics::{ErrorKind, FlowStats, StepStats};

#[test]
fn k6_forms_parse() {
    let t = parse("latency{step:ask,user:U}", "p(95) < 2s").unwrap();
    assert_eq!((t.agg, t.op, t.value), (Agg::Percentile(95.0), Op::Lt, 2000.0));
    assert_eq!(t.selector.step.as_deref(), Some("ask"));
    assert_eq!(parse("ttft", "p(99.9)<=800ms").unwrap().value, 800.0);
    assert_eq!(parse("latency", "avg < 250").unwrap().value, 250.0, "bare numbers are ms, as in k6");
    assert_eq!(parse("latency", "max < 1.5s").unwrap().value, 1500.0);
    assert_eq!(parse("latency", "min >= 100us").unwrap().value, 0.1);
    assert_eq!(parse("errors", "rate < 0.01").unwrap().agg, Agg::Rate);
    assert_eq!(parse("errors{kind:timeout}", "count == 0").unwrap().op, Op::Eq);
    assert_eq!(parse("rps", "value > 100").unwrap().agg, Agg::Value);
    assert_eq!(parse("cost", "value != 0").unwrap().op, Op::Ne);
}

#[test]
fn bad_forms_are_rejected_with_the_reason() {
    for (key, expr, needle) in [
        ("latncy", "p(95) < 1s", "unknown metric"),
        ("latency", "p95 < 1s", "aggregation"),
        ("latency", "p(101) < 1s", "aggregation"),
        ("latency", "p(95) 1s", "operator"),
        ("latency", "p(95) < soon", "not a number"),
        ("latency", "p(95) < 3 fortnights", "not a number"),
        ("errors", "p(95) < 1", "use rate or count"),
        ("rps", "rate > 1", "use value"),
        ("errors", "rate < 1%", "not a number"),
        ("latency{step:a", "avg < 1", "must end"),
        ("latency{steps:a}", "avg < 1", "unknown selector"),
    ] {
        let e = parse(key, expr).unwrap_err().to_string();
        assert!(e.contains(needle), "{key} {expr}: {e}");
    }
}

proptest! {
    #[test]
    fn the_parser_never_panics(key in "\\PC{0,30}", expr in "\\PC{0,30}") {
        let _ = parse(&key, &expr);
    }

    #[test]
    fn generated_thresholds_round_trip(p in 0.0f64..100.0, v in 0.0f64..100_000.0, op in 0usize..6, unit in 0usize..3) {
        let ops = ["<", "<=", ">", ">=", "==", "!="];
        let (u, scale) = [("ms", 1.0), ("s", 1000.0), ("", 1.0)][unit];
        let t = parse("latency{step:x}", &format!("p({p}) {} {v}{u}", ops[op])).unwrap();
        prop_assert_eq!(t.agg, Agg::Percentile(p));
        prop_assert!((t.value - v * scale).abs() < 1e-6 * (1.0 + v * scale));
    }
}

#[test]
fn evaluation_selects_and_judges() {
    let mut a = StepStats::default();
    for ms in [10, 20, 30, 40, 1000] {
        a.record_ok(Duration::from_millis(ms), Duration::from_millis(1), 0);
    }
    a.record_err(ErrorKind::Timeout, 0, || "t".into());
    let mut b = StepStats::default();
    b.record_ok(Duration::from_millis(5), Duration::from_millis(1), 0);
    let mut flow = FlowStats::default();
    flow.record(true, Duration::from_millis(300), 2, 0.0);
    let m = Measurements {
        steps: vec![("U", "a", &a), ("U", "b", &b)],
        flows: vec![("U", &flow)],
        elapsed: Duration::from_secs(2),
        arrivals: 0,
        dropped: 0,
    };
    let th = |k: &str, e: &str| parse(k, e).unwrap();
    let v = evaluate(
        &[
            th("latency{step:a}", "max < 500ms"),
            th("latency{step:b}", "max < 500ms"),
            th("errors", "rate < 0.1"),
            th("errors{kind:timeout}", "count == 1"),
            th("requests", "rate == 3.5"),
            th("flow_latency", "p(50) < 1s"),
            th("ttft", "p(95) < 1s"),
        ],
        &m,
    );
    let pass: Vec<bool> = v.iter().map(|x| x.pass).collect();
    assert_eq!(pass, vec![false, true, false, true, true, true, false], "{v:#?}");
    assert!((v[0].observed.unwrap() - 1000.0).abs() < 1.0);
    assert!((v[2].observed.unwrap() - 1.0 / 7.0).abs() < 1e-9);
    assert_eq!(v[6].observed, None, "no TTFT was measured: the threshold fails rather than passes on nothing");
}

#[test]
fn stream_tail_is_the_time_after_the_last_token() {
    let mut s = StepStats::default();
    let gaps = [];
    s.record_llm(&crate::metrics::LlmSample {
        latency: Duration::from_millis(100),
        ttft: Some(Duration::from_millis(10)),
        last_token: Some(Duration::from_millis(70)),
        gaps_us: &gaps,
        output_tokens: 4,
        ..Default::default()
    });
    let m = Measurements {
        steps: vec![("U", "chat", &s)],
        flows: vec![],
        elapsed: Duration::from_secs(1),
        arrivals: 0,
        dropped: 0,
    };
    let t = parse("stream_tail{step:chat}", "p(95) < 50ms").unwrap();
    let v = evaluate(&[t, parse("stream_tail", "max < 10ms").unwrap()], &m);
    assert!((v[0].observed.unwrap() - 30.0).abs() < 0.1, "{v:#?}");
    assert_eq!((v[0].pass, v[1].pass, v[0].unit.as_str()), (true, false, "ms"));
}
