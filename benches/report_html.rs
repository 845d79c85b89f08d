//! How long `report.html` takes to render for a long run, and how big it is: a synthetic 1-hour result (3,600
//! per-second points, 10 streamed steps with realistic histograms, a baseline comparison, a sweep of levels).
//! The bars: under 2 s and under 5 MB. Run it with `cargo bench --bench report_html`; with `REPORT_HTML_OUT=path`
//! it also writes the page there, to look at.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use run_load_test::baseline::compare;
use run_load_test::metrics::{
    Cumulative, ErrorKind, ErrorSummary, FlowSummary, LlmSample, LlmStats, SeriesPoint, StepStats, latency_summary,
    request_summary,
};
use run_load_test::report::ReportFormat;
use run_load_test::result::{
    GeneratorInfo, Histograms, LevelReport, LevelsReport, LoadInfo, MachineInfo, RuleSet, RunReport, RunStatus,
    SCHEMA_VERSION, ScenarioInfo, StepReport, TargetInfo, ToolInfo,
};

const SECONDS: usize = 3600;
const STEPS: usize = 10;
/// Requests per step: 10 steps × 60,000 = 600,000 requests, about 170/s over the hour.
const PER_STEP: u64 = 60_000;

/// One streamed step: latencies log-normal around `median_ms` with a long tail, 16 chunk gaps per response.
fn step(rng: &mut StdRng, median_ms: f64) -> (StepStats, Histograms) {
    let lat = LogNormal::new(median_ms.ln(), 0.5).unwrap();
    let mut s = StepStats::default();
    let mut llm = LlmStats::default();
    let mut gaps = [0u64; 16];
    for n in 0..PER_STEP {
        let ms: f64 = lat.sample(rng) * if rng.random_bool(0.001) { 20.0 } else { 1.0 };
        let d = Duration::from_secs_f64(ms / 1000.0);
        if rng.random_bool(0.005) {
            s.record_err(ErrorKind::Status(503), 0, || "503 Service Unavailable".into());
            continue;
        }
        s.record_ok(d, d / 5, 2_000);
        for g in gaps.iter_mut() {
            *g = (rng.random_range(2_000.0..9_000.0) * if rng.random_bool(0.002) { 30.0 } else { 1.0 }) as u64;
        }
        llm.record(&LlmSample {
            latency: d,
            ttft: Some(d / 4),
            ttfo: Some(d / 3),
            gaps_us: &gaps,
            output_tokens: 17,
            input_tokens: 40,
            from_usage: true,
            model: if n % 10 == 0 { "coding_fallback" } else { "coding_tier_3" },
            fallback: n % 10 == 0,
            cost: 0.0003,
            ..LlmSample::default()
        });
    }
    s.llm = Some(Box::new(llm));
    let h = Histograms::of(&s);
    (s, h)
}

fn synthetic(median_ms: f64, seed: u64) -> RunReport {
    let mut rng = StdRng::seed_from_u64(seed);
    let elapsed = Duration::from_secs(SECONDS as u64);
    let mut total = StepStats::default();
    let mut steps = Vec::new();
    for i in 0..STEPS {
        let (s, h) = step(&mut rng, median_ms * (1.0 + i as f64 / 3.0));
        total.latency.add(&s.latency).unwrap();
        total.ttfb.add(&s.ttfb).unwrap();
        total.requests += s.requests;
        total.failures += s.failures;
        steps.push(StepReport {
            user: format!("User{}", i % 3),
            name: format!("step-{i}"),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            stats: request_summary(&s, elapsed),
            histograms: h,
        });
    }
    let rps = (total.requests as f64) / SECONDS as f64;
    let series: Vec<SeriesPoint> = (0..SECONDS)
        .map(|t| {
            let wobble = 1.0 + 0.1 * ((t as f64) / 60.0).sin() + if t % 900 == 450 { 3.0 } else { 0.0 };
            let p = |q: f64| Some(median_ms * wobble * q);
            SeriesPoint {
                t_s: t as f64,
                duration_s: 1.0,
                requests: rps as u64,
                failures: u64::from(t % 97 == 0),
                rps: rps * (1.0 + 0.05 * rng.random_range(-1.0..1.0)),
                p50_ms: p(1.0),
                p95_ms: p(2.2),
                p99_ms: p(3.1),
                users: 100,
                in_flight: rng.random_range(20..60),
                min_ms: p(0.3),
                mean_ms: p(1.2),
                p66_ms: p(1.2),
                p75_ms: p(1.4),
                p80_ms: p(1.5),
                p90_ms: p(1.9),
                p98_ms: p(2.7),
                p999_ms: p(5.0),
                p9999_ms: p(8.0),
                max_ms: p(9.0),
                bytes: 340_000,
                ttft_p50_ms: p(0.25),
                ttft_p95_ms: p(0.5),
                cumulative: Some(Cumulative {
                    requests: rps as u64 * t as u64,
                    failures: t as u64 / 97,
                    p50_ms: p(1.0),
                    mean_ms: p(1.2),
                    min_ms: p(0.3),
                    max_ms: p(9.0),
                    avg_bytes: 2000.0,
                }),
            }
        })
        .collect();
    let totals = request_summary(&total, elapsed);
    let levels = (1..=10)
        .map(|i| LevelReport {
            level: f64::from(i * 10),
            duration_s: 30.0,
            stats: totals.clone(),
            success_rate: 1.0 - 0.001 * f64::from(i * i),
            broken: (i == 10).then(|| "errors rate 0.1 > 0.01".to_string()),
        })
        .collect();
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo { name: "run-load-test".into(), version: "0.1.0".into() },
        scenario: ScenarioInfo {
            name: "soak".into(),
            description: "synthetic 1-hour soak".into(),
            file: "scenarios/soak.toml".into(),
            hash: "sha256:0".into(),
            tags: vec![],
            vars: Default::default(),
        },
        target: TargetInfo { url: "http://127.0.0.1:8000".into(), embedded_mock: false, mock_overrides: vec![] },
        load: LoadInfo {
            model: "closed".into(),
            users: Some(100),
            spawn_rate: Some(10.0),
            rate: None,
            arrival: None,
            max_in_flight: None,
            connections: None,
            stages: vec![],
            duration_s: Some(SECONDS as f64),
            iterations: None,
            seed,
            timeout_s: 60.0,
            graceful_stop_s: 5.0,
            tags: vec![],
            exclude_tags: vec![],
        },
        started_at: "2026-11-30T00:00:00Z".into(),
        ended_at: "2026-11-30T01:00:00Z".into(),
        duration_s: SECONDS as f64,
        status: RunStatus::Completed,
        stop_reason: "duration_elapsed".into(),
        failure: None,
        totals,
        errors: steps
            .iter()
            .map(|s| ErrorSummary {
                user: s.user.clone(),
                step: s.name.clone(),
                kind: "status:503".into(),
                count: s.stats.failures,
                message: "503 Service Unavailable".into(),
            })
            .collect(),
        flows: (0..3)
            .map(|i| FlowSummary {
                user: format!("User{i}"),
                completed: 10_000,
                failed: 10,
                flows_per_s: 2.8,
                latency: latency_summary(&total.latency),
                steps_mean: 3.3,
                steps_max: 4,
                cost_per_flow_usd: 0.001,
                latency_histogram: String::new(),
                steps_histogram: String::new(),
            })
            .collect(),
        steps,
        series,
        windows: Vec::new(),
        generator: GeneratorInfo {
            workers: 8,
            cpu_s: 300.0,
            requests_per_cpu_s: 2000.0,
            cpu_utilization: 0.01,
            interrupted_requests: 3,
            bottleneck: None,
        },
        machine: Some(MachineInfo::this()),
        open: None,
        thresholds: vec![],
        comparison: None,
        regression: None,
        levels: Some(LevelsReport {
            kind: "users".into(),
            hold_s: 30.0,
            mode: "sweep".into(),
            levels,
            last_ok: Some(90.0),
            first_broken: Some(100.0),
            min_sustainable: None,
        }),
        histograms: Histograms::of(&total),
        mock_stats: None,
        rebuilt: None,
        environment: None,
        repeats: None,
        shard: None,
        hdr: None,
        shards: Vec::new(),
        partial: None,
    }
}

fn main() {
    let t = Instant::now();
    let base = synthetic(40.0, 1);
    let mut report = synthetic(44.0, 2);
    report.comparison = Some(compare(&base, "baselines/soak.json", &report, &RuleSet::default()).unwrap());
    println!(
        "synthetic 1-hour result: {} series points, {} steps, {} requests, result.json {:.1} MB (built in {:.1} s)",
        report.series.len(),
        report.steps.len(),
        report.totals.requests,
        ReportFormat::Json.render(&report).len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let html = ReportFormat::Html.render(&report);
        times.push(t.elapsed());
        size = html.len();
        std::hint::black_box(html);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "report.html: render median {:.1} ms (min {:.1} ms, max {:.1} ms over {} runs), size {:.0} KB",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len(),
        size as f64 / 1024.0
    );
    if let Some(path) = std::env::var_os("REPORT_HTML_OUT") {
        std::fs::write(&path, ReportFormat::Html.render(&report)).expect("write REPORT_HTML_OUT");
        println!("written to {}", path.to_string_lossy());
    }
    let ok = median < Duration::from_secs(2) && size < 5_000_000;
    println!("bars (< 2 s, < 5 MB): {}", if ok { "met" } else { "MISSED" });
}
