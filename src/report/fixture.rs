//! A minimal `RunReport` of one step, for the unit tests of the renderers and of the baseline comparison: the
//! fields no test looks at get fixed values here once.

use std::time::Duration;

use crate::metrics::{ErrorKind, GatewaySample, LlmSample, LlmStats, SeriesPoint, StepStats, request_summary};
use crate::result::{
    GeneratorInfo, Histograms, LoadInfo, RunReport, RunStatus, SCHEMA_VERSION, ScenarioInfo, StepReport, TargetInfo,
    ToolInfo,
};

/// A closed-model run of 10 users against the embedded mock, `secs` long, whose one step (`user` › `step`)
/// measured `stats`; totals and histograms are that step's.
pub(crate) fn one_step(scenario: &str, user: &str, step: &str, stats: &StepStats, secs: f64) -> RunReport {
    let summary = request_summary(stats, Duration::from_secs_f64(secs));
    let hist = Histograms::of(stats);
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo { name: "run-load-test".into(), version: "0.1.0".into() },
        scenario: ScenarioInfo {
            name: scenario.into(),
            description: String::new(),
            file: "s.toml".into(),
            hash: "sha256:1".into(),
            tags: vec![],
            vars: Default::default(),
        },
        target: TargetInfo { url: "http://127.0.0.1:1".into(), embedded_mock: true, mock_overrides: vec![] },
        load: LoadInfo {
            model: "closed".into(),
            users: Some(10),
            spawn_rate: None,
            rate: None,
            arrival: None,
            max_in_flight: None,
            connections: None,
            stages: vec![],
            duration_s: Some(secs),
            iterations: None,
            seed: 1,
            timeout_s: 10.0,
            graceful_stop_s: 1.0,
            tags: vec![],
            exclude_tags: vec![],
        },
        started_at: "2026-11-30T00:00:00Z".into(),
        ended_at: humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(1_795_996_800) + Duration::from_secs_f64(secs),
        )
        .to_string(),
        duration_s: secs,
        status: RunStatus::Completed,
        stop_reason: "duration_elapsed".into(),
        failure: None,
        totals: summary.clone(),
        steps: vec![StepReport {
            user: user.into(),
            name: step.into(),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            stats: summary,
            histograms: hist.clone(),
        }],
        flows: vec![],
        errors: vec![],
        series: Vec::<SeriesPoint>::new(),
        windows: Vec::new(),
        generator: GeneratorInfo {
            workers: 1,
            cpu_s: 0.1,
            requests_per_cpu_s: 1.0,
            cpu_utilization: 0.01,
            interrupted_requests: 0,
            bottleneck: None,
        },
        machine: None,
        open: None,
        thresholds: vec![],
        comparison: None,
        regression: None,
        levels: None,
        histograms: hist,
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

/// A streamed chat step of `n` requests, latencies over `base_ms` × (1 … 2), every fifth served by `fallback`,
/// and three 503 failures saying `error` (the HTML tests pass markup here to check it is escaped).
pub(crate) fn llm_step(base_ms: f64, n: u64, fallback: &'static str, error: &str) -> StepStats {
    let mut s = StepStats::default();
    let mut llm = LlmStats::default();
    for i in 0..n {
        let ms = base_ms * (1.0 + ((i * 7919) % n) as f64 / n as f64);
        let lat = Duration::from_secs_f64(ms / 1000.0);
        s.record_ok(lat, Duration::from_millis(2), 500);
        llm.record(&LlmSample {
            latency: lat,
            ttft: Some(lat / 4),
            ttfo: Some(lat / 3),
            // The last tenth of each stream is its tail (usage chunk, [DONE]).
            last_token: Some(lat * 9 / 10),
            gaps_us: &[900, 1100, 1000 + i % 400],
            token_chunks: 4,
            output_tokens: 16,
            input_tokens: 20,
            model: if i % 5 == 0 { fallback } else { "tier-1" },
            fallback: i % 5 == 0,
            cost: 0.0001,
            // The gateway served every fifth from its second target after a retry, and priced those itself.
            gateway: GatewaySample {
                retries: u64::from(i % 5 == 0),
                cache_hit: i % 10 == 1,
                target: Some(u32::from(i % 5 == 0)),
                overhead: Some(Duration::from_micros(2000 + (i % 3) * 500)),
                cost_reported: i % 5 == 0,
                unpriced: false,
                attributed: true,
                expected: None,
            },
            ..LlmSample::default()
        });
    }
    for _ in 0..3 {
        s.record_err(ErrorKind::Status(503), 0, || error.into());
    }
    s.llm = Some(Box::new(llm));
    s
}

/// A host disturbed by CPU hogs, as `run smoke` on the shared 2-core machine with three `yes > /dev/null` measured it.
pub(crate) fn disturbed_environment() -> crate::result::Environment {
    use crate::result::{Environment, HiccupSummary};
    let hiccup = |p99_ms, max_ms| HiccupSummary {
        interval_ms: 1.0,
        samples: 11_800,
        p50_ms: 0.12,
        p99_ms,
        p999_ms: max_ms * 0.8,
        max_ms,
        histogram: String::new(),
    };
    let mut e = Environment {
        hiccup: hiccup(11.1, 51.9),
        hiccup_per_second: vec![9.2, 51.9, 14.0],
        cpu_pressure_pct: Some(99.7),
        steal_pct: Some(0.3),
        load_per_core: Some(3.31),
        cores: 2,
        mock_hiccup: Some(hiccup(12.8, 37.7)),
        ..Environment::default()
    };
    e.judge();
    e
}
