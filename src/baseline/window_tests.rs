//! Noise from the result's windows: the same requests arranged in bursts of slow seconds or spread evenly give
//! the same per-request error, but not the same verdict.

use std::time::{Duration, UNIX_EPOCH};

use super::compare;
use crate::metrics::{LlmSample, Recorder, WindowBuilder};
use crate::result::assemble::{RunDescription, RunOutput, StepLabel, Stop, build};
use crate::result::{Change, Comparison, Delta, RuleSet, RunReport};

const SECONDS: u64 = 60;

/// A two-step run (`plan`, then `x`) of class `U`, one window a second, assembled as `run` assembles it.
fn report(seconds: &[Recorder]) -> RunReport {
    let fixture = crate::report::fixture::one_step("s", "U", "plan", &Default::default(), SECONDS as f64);
    let label = |name: &str| StepLabel {
        user: "U".into(),
        name: name.into(),
        method: "POST".into(),
        path: "/".into(),
        is_request: true,
    };
    let d = RunDescription {
        thresholds: Vec::new(),
        scenario: fixture.scenario,
        target: fixture.target,
        load: fixture.load,
        steps: vec![label("plan"), label("x")],
        flows: vec!["U".into()],
        regression: None,
    };
    let mut total = Recorder::new(2, 1);
    let mut windows = WindowBuilder::default();
    for (i, rec) in seconds.iter().enumerate() {
        total.add(rec);
        windows.push(i as f64, 1.0, rec);
    }
    let windows = windows.finish();
    let out = RunOutput {
        total: &total,
        series: &[],
        windows: &windows,
        started_at: UNIX_EPOCH,
        elapsed: Duration::from_secs(SECONDS),
        stop: Stop::DurationElapsed,
        cpu: Duration::ZERO,
        workers: 1,
    };
    build(&d, &out)
}

/// `k` values spread evenly over `ms` × (0.9 … 1.1).
fn spread(ms: f64, k: u64) -> impl Iterator<Item = Duration> {
    (0..k).map(move |j| Duration::from_secs_f64(ms * (0.9 + 0.2 * j as f64 / k as f64) / 1000.0))
}

/// One second: 50 `plan` requests at 20 ms, then `fast` requests of `x` at 50 ms and `slow` at `slow_ms`.
fn second(fast: u64, slow: u64, slow_ms: f64) -> Recorder {
    let mut r = Recorder::new(2, 1);
    for lat in spread(20.0, 50) {
        r.steps[0].record_ok(lat, Duration::from_millis(1), 10);
    }
    for lat in spread(50.0, fast).chain(spread(slow_ms, slow)) {
        r.steps[1].record_ok(lat, Duration::from_millis(1), 10);
    }
    r
}

/// Four slow seconds in a row every twenty (a neighbour's cron job): a fifth of the requests of `x`.
fn bursty(slow_ms: f64) -> RunReport {
    let seconds: Vec<Recorder> =
        (0..SECONDS).map(|i| if i % 20 < 4 { second(0, 100, slow_ms) } else { second(100, 0, slow_ms) }).collect();
    report(&seconds)
}

/// The same share of slow requests of `x`, a fifth of every second.
fn steady(slow_ms: f64) -> RunReport {
    report(&(0..SECONDS).map(|_| second(80, 20, slow_ms)).collect::<Vec<_>>())
}

fn row<'a>(c: &'a Comparison, metric: &str, stat: &str) -> &'a Delta {
    c.rows.iter().find(|d| d.metric == metric && d.stat == stat).unwrap_or_else(|| panic!("no {metric} {stat}"))
}

#[test]
fn a_steps_p95_over_bursty_baseline_seconds_is_noise_and_over_steady_ones_a_regression() {
    let (calm, spiky, cur) = (steady(200.0), bursty(200.0), steady(225.0));
    assert_eq!(calm.windows.len(), SECONDS as usize, "one window a second");
    assert_eq!(calm.windows[0].steps.len(), 2, "a window per step of the report");
    // Both baselines hold the same requests of `x` (up to rounding): per request, they are equally precise.
    let p95 = |r: &RunReport| r.steps[1].stats.latency.as_ref().unwrap().p95_ms;
    assert!((p95(&calm) - p95(&spiky)).abs() < 2.0, "{} vs {}", p95(&calm), p95(&spiky));
    let key = "latency{step:x}";
    let steady_cmp = compare(&calm, "b", &cur, &RuleSet::default()).unwrap();
    let bursty_cmp = compare(&spiky, "b", &cur, &RuleSet::default()).unwrap();
    let (s, b) = (row(&steady_cmp, key, "p(95)"), row(&bursty_cmp, key, "p(95)"));
    assert!(s.delta.unwrap() > s.allowed, "beyond the 10 % tolerance: {s:?}");
    assert_eq!(s.verdict, Change::Regression, "{s:?}");
    assert_eq!(b.verdict, Change::Noise, "slow seconds in bursts are fewer samples than slow requests: {b:?}");
    assert!(b.noise.unwrap() > 3.0 * s.noise.unwrap(), "bursty {:?}, steady {:?}", b.noise, s.noise);
    // The step that was not disturbed keeps its narrow band either way.
    let plan = |c: &Comparison| row(c, "latency{step:plan}", "p(95)").noise.unwrap();
    assert!((plan(&steady_cmp) - plan(&bursty_cmp)).abs() < 0.5, "{} {}", plan(&steady_cmp), plan(&bursty_cmp));
}

/// One second of a streamed step `x` (and a `plan` step): `n` responses whose time per output token is `ms`.
fn streamed(n: u64, ms: f64) -> Recorder {
    let mut r = second(0, 0, 0.0);
    for per_token in spread(ms, n) {
        let (ttft, tokens) = (Duration::from_millis(100), 11u32);
        let last = ttft + per_token * (tokens - 1);
        r.steps[1].record_ok(last, Duration::from_millis(1), 10);
        r.steps[1].record_llm(&LlmSample {
            latency: last,
            ttft: Some(ttft),
            ttfo: Some(ttft),
            last_token: Some(last),
            token_chunks: u64::from(tokens),
            output_tokens: u64::from(tokens),
            ..LlmSample::default()
        });
    }
    r
}

#[test]
fn tpot_gets_a_block_error_too() {
    let base = report(&(0..SECONDS).map(|_| streamed(50, 20.0)).collect::<Vec<_>>());
    // About the same median and spread, but ten seconds at a time the tokens come at 18 ms, then at 22 ms.
    let burst = |i: u64| if i % 20 < 10 { streamed(50, 18.0) } else { streamed(50, 22.0) };
    let swinging = report(&(0..SECONDS).map(burst).collect::<Vec<_>>());
    assert!(base.windows[1].steps[1].histograms.contains_key("tpot"), "tpot is kept per window");
    let noise = |r: &RunReport| row(&compare(r, "b", r, &RuleSet::default()).unwrap(), "tpot", "p(50)").noise.unwrap();
    let (flat, swing) = (noise(&base), noise(&swinging));
    assert!(swing > 5.0 * flat, "tpot p50 noise: swinging {swing}, steady {flat}");
}

#[test]
fn error_rates_and_throughput_of_a_step_come_from_its_windows() {
    let failing = |i: u64| {
        let mut r = second(100, 0, 0.0);
        let n = if i % 20 < 3 { 30 } else { 0 };
        (0..n).for_each(|_| r.steps[1].record_err(crate::metrics::ErrorKind::Timeout, 0, || "t".into()));
        r
    };
    let spiky = report(&(0..SECONDS).map(failing).collect::<Vec<_>>());
    let set = |key: &str| {
        #[derive(serde::Deserialize)]
        struct Doc {
            regression: super::RegressionTable,
        }
        let d: Doc = toml::from_str(&format!("[regression]\n\"{key}\" = {{}}\n")).unwrap();
        super::rule_set(&d.regression).unwrap()
    };
    let errors = row(&compare(&spiky, "b", &spiky, &set("errors{step:x}")).unwrap(), "errors{step:x}", "rate").noise;
    let binomial = {
        let (x, n) = (spiky.steps[1].stats.failures, spiky.steps[1].stats.requests);
        super::stats::proportion_se(x, n) * super::stats::z_for(RuleSet::default().confidence) * 2f64.sqrt()
    };
    assert!(errors.unwrap() > 3.0 * binomial, "bursts of failures widen the band: {errors:?} vs {binomial}");
    let rps = row(&compare(&spiky, "b", &spiky, &set("rps{step:x}")).unwrap(), "rps{step:x}", "value").clone();
    assert!((rps.baseline.unwrap() - (100.0 + 9.0 * 30.0 / 58.0)).abs() < 1.0, "steady windows' rate: {rps:?}");
}
