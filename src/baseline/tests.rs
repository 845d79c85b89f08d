use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::metrics::{ErrorKind, SeriesPoint, StepStats, decode_histogram, latency_summary};
use crate::result::{Change, Comparison, MachineInfo, RuleSet, RunReport, RunStatus, TargetInfo, parse_result};

/// A one-step run of `n` requests whose latencies spread evenly over `base_ms` ± 10 %, `errors` failed, 10 s.
fn run(base_ms: f64, n: u64, errors: u64) -> RunReport {
    spread_run(base_ms, 0.1, n, errors)
}

/// As [`run`], latencies spread over `base_ms` × (1 ± `spread`).
fn spread_run(base_ms: f64, spread: f64, n: u64, errors: u64) -> RunReport {
    let mut s = StepStats::default();
    for i in 0..n {
        let ms = base_ms * (1.0 - spread + 2.0 * spread * ((i * 7919) % n) as f64 / n as f64);
        s.record_ok(Duration::from_secs_f64(ms / 1000.0), Duration::from_millis(1), 100);
    }
    for _ in 0..errors {
        s.record_err(ErrorKind::Status(500), 0, || "500".into());
    }
    let secs = 10.0;
    let per_s = (n + errors) as f64 / secs;
    let series = (0..10)
        .map(|t| SeriesPoint {
            t_s: t as f64,
            duration_s: 1.0,
            requests: (per_s as u64),
            failures: 0,
            // A little second-to-second wobble, as a real run has.
            rps: per_s * (1.0 + 0.01 * ((t % 3) as f64 - 1.0)),
            p50_ms: Some(base_ms),
            p95_ms: Some(base_ms * 1.09),
            p99_ms: Some(base_ms * 1.1),
            users: 10,
            in_flight: 1,
            ..SeriesPoint::default()
        })
        .collect();
    let mut r = crate::report::fixture::one_step("s", "U", "chat", &s, secs);
    r.series = series;
    r.machine = Some(MachineInfo::this());
    r
}

fn verdict(c: &Comparison, metric: &str, stat: &str) -> Change {
    c.rows
        .iter()
        .find(|d| d.metric == metric && d.stat == stat)
        .unwrap_or_else(|| panic!("no row {metric} {stat} in {:#?}", c.rows))
        .verdict
}

fn rules(toml_text: &str) -> RuleSet {
    #[derive(serde::Deserialize)]
    struct Doc {
        regression: RegressionTable,
    }
    let d: Doc = toml::from_str(toml_text).unwrap();
    rule_set(&d.regression).unwrap()
}

#[test]
fn the_same_run_passes_with_zero_deltas() {
    let r = run(100.0, 2000, 0);
    let c = compare(&r, "b.json", &r, &RuleSet::default()).unwrap();
    assert!(!c.failed());
    assert!(c.rows.iter().all(|d| d.verdict == Change::Ok && d.delta == Some(0.0)), "{:#?}", c.rows);
    let stats: Vec<(&str, &str)> = c.rows.iter().map(|d| (d.metric.as_str(), d.stat.as_str())).collect();
    assert_eq!(
        stats,
        [("latency", "p(50)"), ("latency", "p(95)"), ("latency", "p(99)"), ("errors", "rate"), ("rps", "value")],
        "no LLM rows for a run without LLM traffic"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_slowdown_beyond_tolerance_and_noise_is_a_regression() {
    let (b, c) = (run(100.0, 2000, 0), run(115.0, 2000, 0));
    let cmp = compare(&b, "b.json", &c, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Regression);
    assert_eq!(verdict(&cmp, "latency", "p(95)"), Change::Regression);
    // p(99) tolerates 20 %.
    assert_eq!(verdict(&cmp, "latency", "p(99)"), Change::Ok);
    assert!(cmp.failed());
    let back = compare(&c, "b.json", &b, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&back, "latency", "p(50)"), Change::Improved);
    assert!(!back.failed(), "an improvement never fails the gate");
}

#[test]
fn within_tolerance_is_ok_and_the_absolute_floor_protects_fast_endpoints() {
    let cmp = compare(&run(100.0, 2000, 0), "b", &run(105.0, 2000, 0), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Ok, "+5 % is inside 10 %");
    // 1 ms → 1.3 ms is +30 %, but 0.3 ms is under the 2 ms floor.
    let cmp = compare(&run(1.0, 2000, 0), "b", &run(1.3, 2000, 0), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Ok);
}

#[test]
fn a_large_change_on_few_samples_is_noise() {
    // Twenty requests spread from 10 ms to 190 ms: a median 15 % higher is well within what chance gives.
    let cmp = compare(&spread_run(100.0, 0.9, 20, 0), "b", &spread_run(115.0, 0.9, 20, 0), &RuleSet::default());
    let cmp = cmp.unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Noise);
    assert!(!cmp.failed(), "{:#?}", cmp.rows);
    // The same shift on 20,000 requests is evidence.
    let cmp = compare(&spread_run(100.0, 0.9, 20_000, 0), "b", &spread_run(115.0, 0.9, 20_000, 0), &RuleSet::default());
    assert_eq!(verdict(&cmp.unwrap(), "latency", "p(50)"), Change::Regression);
}

#[test]
fn error_rates_compare_as_proportions() {
    let cmp = compare(&run(100.0, 2000, 0), "b", &run(100.0, 2000, 100), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "errors", "rate"), Change::Regression, "0 % → 4.8 %");
    let cmp = compare(&run(100.0, 2000, 0), "b", &run(100.0, 2000, 5), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "errors", "rate"), Change::Ok, "0.25 % is under the 1-point floor");
    let cmp = compare(&run(100.0, 40, 0), "b", &run(100.0, 40, 1), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "errors", "rate"), Change::Noise, "1 error in 41 requests is not evidence");
}

#[test]
fn throughput_is_worse_when_lower() {
    let cmp = compare(&run(100.0, 2000, 0), "b", &run(100.0, 1500, 0), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "rps", "value"), Change::Regression);
    let row = cmp.rows.iter().find(|d| d.metric == "rps").unwrap();
    assert!(!row.higher_is_worse);
    assert!((row.delta_pct.unwrap() + 25.0).abs() < 0.5, "{row:?}");
}

#[test]
fn scenario_rules_override_switch_off_and_add() {
    let (b, c) = (run(100.0, 2000, 0), run(120.0, 2000, 0));
    let loose = rules("[regression]\nlatency = { relative = \"50%\" }\n");
    let cmp = compare(&b, "b", &c, &loose).unwrap();
    assert!(!cmp.failed(), "{:#?}", cmp.rows);
    assert_eq!(cmp.rows.iter().filter(|d| d.metric == "latency").count(), 2, "the rule's stats replace the defaults");
    let off = rules("[regression]\nlatency = false\n");
    let cmp = compare(&b, "b", &c, &off).unwrap();
    assert!(cmp.rows.iter().all(|d| d.metric != "latency"));
    let extra = rules(
        "[regression]\nconfidence = 0.95\n\"latency{step:chat}\" = { stats = [\"avg\", \"max\"], relative = \"5%\", absolute = \"1ms\" }\n",
    );
    let cmp = compare(&b, "b", &c, &extra).unwrap();
    assert_eq!(cmp.confidence, 0.95);
    assert_eq!(verdict(&cmp, "latency{step:chat}", "avg"), Change::Regression);
    let only = rules("[regression]\ndefaults = false\nerrors = {}\n");
    let cmp = compare(&b, "b", &c, &only).unwrap();
    assert_eq!(cmp.rows.len(), 1);
}

#[test]
fn bad_rules_name_the_key_and_the_fix() {
    #[derive(serde::Deserialize)]
    struct Doc {
        regression: RegressionTable,
    }
    for (text, needle) in [
        ("requests = {}", "cannot be compared"),
        ("latncy = {}", "unknown metric"),
        ("latency = { stats = [\"rate\"] }", "use p(N)"),
        ("errors = { stats = [\"p(95)\"] }", "use rate"),
        ("latency = { absolute = \"fast\" }", "not a duration"),
        ("confidence = 2", "between 0.5 and 1"),
        ("defaults = 1", "true or false"),
        ("\"latency{model:x}\" = {}", "model"),
        ("latency = 3", "must be a rule"),
    ] {
        let d: Doc = toml::from_str(&format!("[regression]\n{text}\n")).unwrap();
        let e = rule_set(&d.regression).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn set_up_differences_are_warnings() {
    let b = run(100.0, 100, 0);
    let mut c = run(100.0, 100, 0);
    c.scenario.hash = "sha256:2".into();
    c.target = TargetInfo { url: "http://gw:8000".into(), embedded_mock: false, mock_overrides: vec![] };
    c.load.users = Some(20);
    let w = compare(&b, "b", &c, &RuleSet::default()).unwrap().warnings;
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].contains("scenario file changed") && w[1].contains("http://gw:8000") && w[2].contains("20 users"));
}

#[test]
fn runs_of_other_length_or_mock_settings_are_flagged() {
    let b = run(100.0, 100, 0);
    let mut c = run(100.0, 100, 0);
    c.duration_s = 3.0;
    c.target.mock_overrides = vec!["token_delay=6ms".into()];
    c.status = RunStatus::Aborted;
    let w = compare(&b, "b", &c, &RuleSet::default()).unwrap().warnings;
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].contains("--mock token_delay=6ms") && w[0].contains("scenario's settings"), "{w:?}");
    assert!(w[1].contains("10.0s") && w[1].contains("3.0s"), "{w:?}");
    assert!(w[2].contains("current run did not complete"), "{w:?}");
}

#[test]
fn runs_with_other_vars_are_flagged_and_old_results_without_vars_are_not() {
    let mut b = run(100.0, 100, 0);
    let mut c = run(100.0, 100, 0);
    c.scenario.vars.insert("model".into(), "gpt-4o-mini".into());
    assert!(compare(&b, "b", &c, &RuleSet::default()).unwrap().warnings.is_empty(), "the baseline recorded none");
    b.scenario.vars.insert("model".into(), "mock_agent".into());
    let w = compare(&b, "b", &c, &RuleSet::default()).unwrap().warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("model=mock_agent") && w[0].contains("model=gpt-4o-mini"), "{w:?}");
}

#[test]
fn a_baseline_round_trips_with_identical_percentiles() {
    let r = run(87.3, 5000, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    crate::report::write_file(&path, &crate::report::ReportFormat::Json.render(&r)).unwrap();
    let back = load(&path).unwrap();
    let (a, b) =
        (decode_histogram(&r.histograms.latency).unwrap(), decode_histogram(&back.histograms.latency).unwrap());
    for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
        assert_eq!(a.value_at_quantile(q), b.value_at_quantile(q), "q {q}");
    }
    assert_eq!(latency_summary(&b), back.totals.latency, "the stored summary is what the histogram says");
    assert_eq!(back.totals, r.totals);
}

#[test]
fn corrupt_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let good = crate::report::ReportFormat::Json.render(&run(10.0, 50, 0));
    let current = format!("\"schema_version\": {}", crate::result::SCHEMA_VERSION);
    let newer = good.replacen(&current, "\"schema_version\": 9", 1);
    let mut bad_hist = run(10.0, 50, 0);
    bad_hist.steps[0].histograms.latency = "bm90IGEgaGlzdG9ncmFt".into();
    let bad_hist = crate::report::ReportFormat::Json.render(&bad_hist);
    for (name, text, needle) in [
        ("trunc.json", &good[..good.len() / 2], "trunc.json:"),
        ("newer.json", newer.as_str(), "newer run-load-test"),
        ("other.json", "{\"hello\": 1}", "not a run-load-test result"),
        ("hist.json", bad_hist.as_str(), "step `chat` latency histogram is corrupt"),
    ] {
        let e = load(&write(name, text)).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("--save-baseline") && !e.contains('\n'), "{name}: {e}");
    }
    let e = load(&dir.path().join("missing.json")).unwrap_err().to_string();
    assert!(e.contains("missing.json") && e.contains("cannot read"), "{e}");
}

proptest! {
    /// Any `[regression]` entry parses or is refused with a message naming its key; never a panic.
    #[test]
    fn regression_entries_never_panic(key in "[a-z_{}:,]{0,24}", rel in "\\PC{0,8}", abs in "\\PC{0,8}", stat in "\\PC{0,8}") {
        let entry = RegressionEntry::Rule(RuleSpec {
            stats: Some(vec![stat]),
            relative: rel.parse().ok().map(Percent),
            absolute: Some(Amount::Text(abs)),
        });
        if let Err(e) = parse_entry(&key, &entry).map_err(|e| e.to_string()) {
            prop_assert!(e.contains("[regression]"));
        }
    }

    /// Comparing a run with a copy of itself scaled by k: the verdict follows the tolerance, never flips sign.
    #[test]
    fn verdicts_follow_the_direction_of_change(k in 0.5f64..2.0) {
        let (b, c) = (run(100.0, 500, 0), run(100.0 * k, 500, 0));
        let cmp = compare(&b, "b", &c, &RuleSet::default()).unwrap();
        let v = verdict(&cmp, "latency", "p(50)");
        if k > 1.12 { prop_assert_eq!(v, Change::Regression); }
        if k < 0.88 { prop_assert_eq!(v, Change::Improved); }
        if (0.95..1.05).contains(&k) { prop_assert_eq!(v, Change::Ok); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The result reader on arbitrary text: a report or one line naming the file, never a panic.
    #[test]
    fn arbitrary_result_text_never_panics(text in "\\PC{0,400}") {
        if let Err(e) = parse_result(std::path::Path::new("r.json"), "result", &text).map_err(|e| e.to_string()) {
            prop_assert!(e.starts_with("result r.json") && !e.contains('\n'), "{}", e);
        }
    }

    /// Any cut and insertion in a real stored result (histograms included): read back or refused, never a panic.
    #[test]
    fn mutated_results_never_panic(at in 0usize..100_000, cut in 0usize..64, insert in "[\\[\\]{}\":,.0-9a-zA-Z+/=-]{0,12}") {
        let text = serde_json::to_string(&run(100.0, 50, 1)).unwrap();
        let at = (0..=at % text.len()).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let end = (at + cut..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        let mutated = format!("{}{}{}", &text[..at], insert, &text[end..]);
        if let Err(e) = parse_result(std::path::Path::new("b.json"), "baseline", &mutated).map_err(|e| e.to_string()) {
            prop_assert!(e.starts_with("baseline b.json") && !e.contains('\n'), "{}", e);
        }
    }

    /// What `run` writes, the reader reads back unchanged.
    #[test]
    fn results_round_trip(base_ms in 1.0f64..5000.0, n in 1u64..300, errors in 0u64..20) {
        let r = run(base_ms, n, errors);
        let text = serde_json::to_string(&r).unwrap();
        let back = parse_result(std::path::Path::new("r.json"), "result", &text).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}

#[test]
fn a_stream_tail_rule_parses_with_its_defaults() {
    let set = rules(
        "[regression]\nstream_tail = {}\n\"stream_tail{step:chat}\" = { stats = [\"p(99)\"], absolute = \"3ms\" }",
    );
    let r = &set.rules;
    assert_eq!(
        (r[0].key.as_str(), r[0].stats.clone(), r[0].relative, r[0].absolute),
        ("stream_tail", vec!["p(50)".to_string(), "p(95)".to_string()], 0.10, 2.0)
    );
    assert_eq!((r[1].stats.clone(), r[1].absolute), (vec!["p(99)".to_string()], 3.0));
}

/// `run` with an LLM step whose gateway fell back `fallbacks` times, retried `retries` times and reported an
/// overhead of `overhead_ms` per response.
fn gateway_run(fallbacks: u64, retries: u64, overhead_ms: u64) -> RunReport {
    use crate::metrics::{GatewaySample, LlmSample, LlmStats, llm_summary};
    let mut r = run(100.0, 2000, 0);
    let mut l = LlmStats::default();
    for i in 0..2000u64 {
        l.record(&LlmSample {
            latency: Duration::from_millis(100),
            output_tokens: 5,
            model: "m",
            fallback: i < fallbacks,
            gateway: GatewaySample {
                retries: u64::from(i < retries),
                overhead: Some(Duration::from_millis(overhead_ms + i % 3)),
                ..GatewaySample::default()
            },
            ..LlmSample::default()
        });
    }
    r.steps[0].stats.llm = Some(llm_summary(&l, Duration::from_secs(10)));
    r.steps[0].histograms.gateway_overhead = crate::metrics::encode_nonempty(&l.gateway.overhead);
    r
}

#[test]
fn fallback_rate_gateway_retries_and_overhead_compare_with_a_baseline() {
    let set = rules("[regression]\nfallback_rate = {}\ngateway_retries = {}\ngateway_overhead = {}");
    let base = gateway_run(20, 20, 5);
    let same = compare(&base, "b", &gateway_run(20, 20, 5), &set).unwrap();
    for (m, stat) in [("fallback_rate", "rate"), ("gateway_retries", "rate"), ("gateway_overhead", "p(50)")] {
        assert_eq!(verdict(&same, m, stat), Change::Ok, "{m}");
    }
    let worse = compare(&base, "b", &gateway_run(400, 600, 20), &set).unwrap();
    for (m, stat) in [("fallback_rate", "rate"), ("gateway_retries", "rate"), ("gateway_overhead", "p(95)")] {
        assert_eq!(verdict(&worse, m, stat), Change::Regression, "{m}: 1 % → 20 %, 1 % → 30 %, 5 → 20 ms");
    }
}

/// A host as the hiccup meter would store it: probe lateness p50 and p99 in ms, disturbed or not.
fn host(p50_ms: f64, p99_ms: f64, disturbed: bool) -> crate::result::Environment {
    use crate::result::{Environment, HiccupSummary};
    Environment {
        hiccup: HiccupSummary {
            interval_ms: 1.0,
            samples: 10_000,
            p50_ms,
            p99_ms,
            p999_ms: p99_ms * 1.5,
            max_ms: p99_ms * 2.0,
            histogram: String::new(),
        },
        cpu_pressure_pct: Some(if disturbed { 61.0 } else { 0.4 }),
        cores: 2,
        disturbed,
        reasons: if disturbed { vec!["hiccup p99 38.0 ms".into(), "cpu pressure 61.0 %".into()] } else { vec![] },
        ..Environment::default()
    }
}

fn row<'a>(c: &'a Comparison, metric: &str, stat: &str) -> &'a crate::result::Delta {
    c.rows.iter().find(|d| d.metric == metric && d.stat == stat).unwrap()
}

#[test]
fn a_disturbed_run_makes_a_timing_regression_inconclusive_but_never_an_error_rate() {
    let quiet = host(0.1, 0.8, false);
    let mut base = run(100.0, 2000, 0);
    base.environment = Some(quiet.clone());
    // +50 % latency, fewer requests per second and 4.8 % errors: every one a regression on a quiet host.
    let mut cur = run(150.0, 1500, 100);
    cur.environment = Some(quiet);
    let cmp = compare(&base, "b", &cur, &RuleSet::default()).unwrap();
    for (m, s) in [("latency", "p(50)"), ("latency", "p(95)"), ("errors", "rate"), ("rps", "value")] {
        assert_eq!(verdict(&cmp, m, s), Change::Regression, "{m} {s} on a quiet host");
        assert_eq!(row(&cmp, m, s).reason, None);
    }

    cur.environment = Some(host(9.0, 38.0, true));
    let cmp = compare(&base, "b", &cur, &RuleSet::default()).unwrap();
    for (m, s) in [("latency", "p(50)"), ("latency", "p(95)"), ("latency", "p(99)"), ("rps", "value")] {
        assert_eq!(verdict(&cmp, m, s), Change::Inconclusive, "{m} {s} on a disturbed host");
        let why = row(&cmp, m, s).reason.clone().unwrap();
        assert_eq!(why, "host disturbed in current run: hiccup p99 38.0 ms, cpu pressure 61.0 %");
    }
    assert_eq!(verdict(&cmp, "errors", "rate"), Change::Regression, "a busy generator does not cause 500s");
    assert!(cmp.failed(), "the error rate still fails the gate");
    assert_eq!(cmp.inconclusive().count(), 4);

    // The baseline's host counts too, and a change within tolerance stays ok whatever the host did.
    let (mut b2, c2) = (base.clone(), run(150.0, 2000, 0));
    b2.environment = Some(host(9.0, 38.0, true));
    let cmp = compare(&b2, "b", &c2, &RuleSet::default()).unwrap();
    let why = row(&cmp, "latency", "p(50)").reason.clone().unwrap();
    assert!(why.starts_with("host disturbed in baseline run: hiccup p99 38.0"), "{why}");
    let cmp = compare(&b2, "b", &run(101.0, 2000, 0), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Ok);
}

#[test]
fn hiccups_as_large_as_the_change_make_it_inconclusive_and_a_larger_change_stays_a_regression() {
    let mut base = run(100.0, 2000, 0);
    base.environment = Some(host(0.1, 0.8, false));
    // Not disturbed, but the probes woke 30 ms late at the median: up to 2 × 29.9 ms of a request's time.
    let busy = host(30.0, 45.0, false);
    let mut cur = run(140.0, 2000, 0);
    cur.environment = Some(busy.clone());
    let cmp = compare(&base, "b", &cur, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Inconclusive);
    let why = row(&cmp, "latency", "p(50)").reason.clone().unwrap();
    assert!(why.contains("30.0 ms in current run, 0.1 ms in the baseline") && why.contains("59.8 ms"), "{why}");
    // +100 ms is beyond anything 30 ms of lateness at two wake-ups explains.
    let mut cur = run(200.0, 2000, 0);
    cur.environment = Some(busy);
    let cmp = compare(&base, "b", &cur, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Regression);
    // rps has no hiccup model: only a disturbed run makes it inconclusive.
    assert_eq!(verdict(&cmp, "rps", "value"), Change::Ok);
    // Old results (no environment on either side) compare as before.
    let cmp = compare(&run(100.0, 2000, 0), "b", &run(140.0, 2000, 0), &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Regression);
}

#[test]
fn slow_drifting_seconds_widen_the_noise_band() {
    let base = run(100.0, 2000, 0);
    let flat = run(112.0, 2000, 0);
    let mut drifting = flat.clone();
    // Same run-level percentiles, but the per-second median climbs through the run: 12 seconds' worth of
    // evidence in 10 is not 2000 independent requests.
    for (i, p) in drifting.series.iter_mut().enumerate() {
        p.p50_ms = Some(70.0 + 9.0 * i as f64);
    }
    let noise = |c: &RunReport| row(&compare(&base, "b", c, &RuleSet::default()).unwrap(), "latency", "p(50)").noise;
    let (flat_noise, drift_noise) = (noise(&flat).unwrap(), noise(&drifting).unwrap());
    assert!(drift_noise > 3.0 * flat_noise, "drift {drift_noise}, flat {flat_noise}");
    let cmp = compare(&base, "b", &drifting, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&cmp, "latency", "p(50)"), Change::Noise, "{:#?}", row(&cmp, "latency", "p(50)"));
    assert_eq!(
        verdict(&compare(&base, "b", &flat, &RuleSet::default()).unwrap(), "latency", "p(50)"),
        Change::Regression
    );
}

mod repeats;
