//! The `run` command in four steps: prepare (outputs tried, baseline read, target and plan ready), execute (the
//! engine with its live sinks), judge (report, thresholds, comparison) and publish (files, summary, outcome).
//! Each step's side effects come in the order the user sees them: nothing is sent before every input and
//! output path has been checked, and nothing a run measured is lost to a failed write.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::assemble;
use super::live::IntervalSink;
use super::{
    Outcome, fetch_mock_stats, gate, handle_signals, host, journal, live, metrics_server, outputs, repeat, verdict,
};
use crate::baseline;
use crate::client::ClientFactory;
use crate::config::{RunConfig, Target};
use crate::engine::{self, Endpoint, EngineResult, EngineSpec, ExchangeLog, LevelOutcome, LoadModel, Plan, StopReason};
use crate::mock::{self, MockServer};
use crate::redact;
use crate::report::{self, ProgressDisplay, ReportFormat};
use crate::result::assemble::RunDescription;
use crate::result::{HdrSettings, RunReport, ShardInfo};
use crate::scenario;

/// Runs a resolved configuration end to end and returns the report with the outcome.
pub fn run(cfg: RunConfig) -> Result<(RunReport, Outcome)> {
    // First (if the caller did not already), so a signal during setup stops the run instead of the process.
    handle_signals()?;
    let mut run = prepare(cfg)?;
    let executed = execute(&run)?;
    let rep = judge(&mut run, &executed)?;
    let outcome = publish(&run.cfg, &rep, executed.result.stop, executed.http_debug.as_deref());
    // The live sinks (the `/metrics` endpoint) stop only now, after the report.
    drop(executed);
    Ok((rep, outcome))
}

/// Everything a run needs before its first request.
struct Prepared {
    cfg: RunConfig,
    baseline: Option<RunReport>,
    mock: Option<MockServer>,
    client: ClientFactory,
    plan: Arc<Plan>,
    secrets: Vec<String>,
    description: RunDescription,
    /// `http://host:port` of the target, put before the paths in `http-debug.log`.
    origin: String,
}

/// What the engine measured, and what stopped it early.
struct Executed {
    result: EngineResult,
    /// One per level of a sweep or a breaking-point search.
    outcomes: Option<Vec<LevelOutcome>>,
    /// The `abort_on_fail` threshold that stopped the run, as written.
    aborted_by: Option<String>,
    /// The abort file's line, when another shard's threshold stopped this one.
    aborted_by_shard: Option<String>,
    /// The line of a run stopped because its first requests all failed the same way.
    fail_fast: Option<String>,
    /// `http-debug.log`, rendered (`--http-debug`).
    http_debug: Option<String>,
    /// The host's health over the run.
    environment: crate::result::Environment,
    /// `--repeat`: each run's own report (none for a single run).
    runs: Vec<RunReport>,
    /// Finished, but held until the report is written: the `/metrics` endpoint serves until then, so a scrape
    /// in the run's last second still works.
    _sinks: Vec<Box<dyn IntervalSink>>,
}

/// Checks every input and output, starts the embedded mock when there is no target, compiles the plan.
fn prepare(mut cfg: RunConfig) -> Result<Prepared> {
    if let Some(at) = cfg.start_at {
        // A stale time is refused before anything else; it is checked again when the wait begins.
        super::shard::check_start(at, std::time::SystemTime::now())?;
    }
    let urls = [
        Some(&cfg.target).and_then(|t| if let Target::Url(u) = t { Some(u) } else { None }),
        cfg.prometheus.pushgateway.as_ref(),
    ];
    redact::install(urls.into_iter().flatten().flat_map(|u| redact::url_secrets(u)).collect());
    report::prepare_dir(&cfg.out_dir)?;
    // Every output path is tried now: an unwritable one is exit 2 in the first second, not after the run.
    gate::check_paths(&cfg.outputs)?;
    // Read before any load is sent: a missing or corrupt baseline is exit 2 in the first second.
    let baseline = cfg.outputs.baseline.as_deref().map(baseline::load).transpose()?;
    let (mock, client, base_url) = connect(&cfg.target, cfg.insecure, cfg.timeout)?;
    let endpoint = Endpoint::of(&client);
    let feeders = std::mem::take(&mut cfg.feeders);
    let s = &cfg.scenario;
    let plan = engine::compile(&s.scenario, &s.name, endpoint, cfg.timeout, &cfg.tags, feeders)
        .with_context(|| s.path.display().to_string())?;
    let plan = Arc::new(plan);
    let secrets = scenario::secret_values([s.source.as_str()]);
    // Before any load is sent: what a server may echo is masked from its first answer on.
    redact::install(secrets.iter().cloned().chain(plan_secrets(&plan)).collect());
    let description = assemble::describe(&cfg, &plan, &base_url);
    if !cfg.quiet {
        print_start(&cfg, mock.is_some(), &base_url);
    }
    let origin = origin(&base_url);
    Ok(Prepared { cfg, baseline, mock, client, plan, secrets, description, origin })
}

/// The embedded mock when there is no `--target` (started on a loopback port), the client factory for the
/// target, and its base URL.
pub(super) fn connect(
    target: &Target,
    insecure: bool,
    timeout: Duration,
) -> Result<(Option<MockServer>, ClientFactory, String)> {
    let mock = match target {
        Target::EmbeddedMock(m) => Some(
            mock::spawn((**m).clone(), ([127, 0, 0, 1], 0).into()).context("cannot start the embedded mock gateway")?,
        ),
        Target::Url(_) => None,
    };
    let base_url = match (target, &mock) {
        (Target::Url(u), _) => u.clone(),
        (_, Some(m)) => m.base_url(),
        (Target::EmbeddedMock(_), None) => anyhow::bail!("the embedded mock did not start"),
    };
    let client = ClientFactory::new(&base_url, insecure, timeout.min(Duration::from_secs(10))).context("--target")?;
    Ok((mock, client, base_url))
}

/// `http://host:port` of a base URL (its user and password left out), before the request paths it is shown with.
pub(super) fn origin(base_url: &str) -> String {
    url::Url::parse(base_url).map_or_else(|_| base_url.to_string(), |u| u.origin().ascii_serialization())
}

/// `running `stress` against ...: closed model, 10 users, 30s`.
fn print_start(cfg: &RunConfig, mock: bool, base_url: &str) {
    let target =
        if mock { format!("embedded mock gateway at {base_url}") } else { crate::config::display_target(base_url) };
    let shape = match &cfg.load {
        LoadModel::Closed(c) => format!("closed model, {} users", c.users),
        LoadModel::Open(o) => format!("open model, {}/s arrivals (at most {} in flight)", o.rate, o.max_in_flight),
    };
    let length = match (cfg.load.duration(), cfg.load.iterations()) {
        (Some(d), Some(i)) => format!("{} or {i} iterations", humantime::format_duration(d)),
        (Some(d), None) => humantime::format_duration(d).to_string(),
        (None, Some(i)) => format!("{i} iterations"),
        (None, None) => "until stopped".into(),
    };
    let runs = match cfg.repeat {
        1 => String::new(),
        n => format!(", {n} runs {}s apart", repeat::PAUSE.as_secs()),
    };
    report::print_note(&format!("running `{}` against {target}: {shape}, {length}{runs}", cfg.scenario.name));
    if let Some(s) = &cfg.shard {
        let (per, period) = s.stripe.share();
        let name = s.number.map_or(String::new(), |(i, n)| format!("shard {i}/{n}, "));
        report::print_note(&format!(
            "{name}segment {} ({}): this process sends {per} of every {period} users, iterations and arrivals; \
             `merge` judges the thresholds on all shards",
            s.segment,
            s.source.name()
        ));
    }
    if !mock && cfg.scenario.scenario.mock_only {
        report::print_note(&format!(
            "`{}` is marked mock_only: it shows a behaviour of the embedded mock, which --target replaces",
            cfg.scenario.name
        ));
    }
}

/// The values of the plan's credential headers (templated ones are added once rendered, by the engine).
pub(super) fn plan_secrets(plan: &Plan) -> Vec<String> {
    let steps = plan.classes.iter().flat_map(|c| c.steps.iter().chain(&c.on_start).chain(&c.on_stop));
    let headers = steps.filter_map(|s| s.http()).flat_map(|h| h.headers.iter());
    headers.filter_map(|(k, v)| Some(redact::header_secrets(k.as_str(), v.to_str().ok()?))).flatten().collect()
}

/// Opens the live sinks and runs the engine (once, or level by level).
fn execute(run: &Prepared) -> Result<Executed> {
    let Prepared { cfg, plan, client, secrets, description, origin, .. } = run;
    // Shared by every level of a sweep: the first exchanges of each step, whichever level sent them.
    let debug_log = cfg.http_debug.map(|n| Arc::new(ExchangeLog::new(plan.steps.len(), Some(n))));
    let spec = |load: LoadModel| EngineSpec {
        plan: plan.clone(),
        load,
        seed: cfg.seed,
        workers: cfg.workers,
        graceful_stop: cfg.graceful_stop,
        // The open model's connection pool size travels with the transports it pools.
        client: engine::WithConnections { factory: client.clone(), connections: cfg.connections },
        secrets: secrets.clone(),
        capture: debug_log.clone(),
        stripe: cfg.shard.as_ref().map_or_else(engine::segment::Stripe::whole, |s| s.stripe.clone()),
    };
    let planned = match &cfg.levels {
        Some(l) => Some(l.hold * l.values.len() as u32),
        None => cfg.load.duration().map(|d| (d + repeat::PAUSE) * cfg.repeat - repeat::PAUSE),
    };
    let mut gate = live::LiveGate {
        display: (!cfg.quiet).then(|| ProgressDisplay::new(planned)),
        plan,
        thresholds: &cfg.thresholds,
        aborted_by: None,
        fail_fast: verdict::FailFast::new(cfg.fail_fast),
        sinks: Vec::new(),
        abort_file: match &cfg.abort_file {
            Some(path) => Some(super::abort::AbortFile::open(path, super::shard::who(cfg))?),
            None => None,
        },
        aborted_by_shard: None,
    };
    // Live files are opened now, so a bad path is an error before any load is sent.
    if let Some(path) = &cfg.files.ndjson {
        gate.sinks.push(Box::new(outputs::NdjsonSink::create(path)?));
    }
    if cfg.files.hlog {
        let dir = cfg.out_dir.join("hlog");
        gate.sinks.push(Box::new(outputs::HlogSink::create(&dir, plan, std::time::SystemTime::now())?));
    }
    let name = &cfg.scenario.name;
    if let Some(p) = metrics_server::PromSink::start(name, plan, &cfg.prometheus, cfg.insecure, cfg.quiet)? {
        gate.sinks.push(Box::new(p));
    }
    // Last, so a bad path of another live file leaves no journal of a run that never started.
    let identity =
        super::shard::info(cfg, std::time::SystemTime::now()).map(|s| ShardInfo { start_skew_ms: None, ..s });
    gate.sinks.push(Box::new(journal::JournalSink::create(&cfg.out_dir, description, identity)?));
    // A breaking-point search breaks a level on a failed threshold as on its own limits.
    let slo = |r: &EngineResult| {
        let verdicts = crate::slo::evaluate(&cfg.thresholds, &live::measurements(plan, &r.total, r.elapsed));
        let failed = verdicts.into_iter().find(|v| v.observed.is_some() && !v.pass)?;
        Some(format!("threshold `{}`: observed {}", failed.threshold, report::fmt_observed(&failed)))
    };
    // Last before the load: every input and output was checked, so shards that start together fail together.
    if let Some(at) = cfg.start_at {
        super::shard::wait_for_start(at, cfg.quiet)?;
    }
    let (result, outcomes, environment, runs) = if cfg.repeat > 1 {
        // Every run with the same seed: the same workload each time, so what differs between runs is the
        // system's doing, which is what the spread between runs is meant to measure.
        let one = || Ok(engine::run(spec(cfg.load.clone()), &mut gate)?);
        let r = repeat::run(cfg.repeat, run.mock.as_ref(), one, |r, env| {
            let mut rep = assemble::build(description, r);
            verdict::mark(&mut rep, &plan.steps, r, None);
            rep.environment = Some(env);
            rep
        })?;
        (r.result, None, r.environment, r.runs)
    } else {
        if let Some(m) = &run.mock {
            // What the mock's probe saw while the run was being prepared is not the run's.
            let _ = m.take_hiccups();
        }
        let host = host::HostReading::now();
        let (result, outcomes) = match &cfg.levels {
            Some(levels) => {
                let (r, o) = engine::run_levels(levels, spec, &mut gate, &slo)?;
                (r, Some(o))
            }
            None => (engine::run(spec(cfg.load.clone()), &mut gate)?, None),
        };
        let mock_hiccups = run.mock.as_ref().map(MockServer::take_hiccups);
        let environment = host::environment(&host, &result.total.hiccup, &result.hiccup_max, mock_hiccups.as_ref());
        (result, outcomes, environment, Vec::new())
    };
    if let Some(d) = &gate.display {
        d.finish();
    }
    for s in gate.sinks.iter_mut() {
        s.environment(&environment);
    }
    for s in gate.sinks.iter_mut() {
        if let Err(e) = s.finish() {
            report::print_error(&format!("{e:#}"));
        }
    }
    // Only what actually stopped the run counts: the last ticks come after it ended.
    let aborted_by = gate.aborted_by.take().filter(|_| result.stop == StopReason::Aborted);
    let aborted_by_shard = gate.aborted_by_shard.take().filter(|_| result.stop == StopReason::Aborted);
    let fail_fast = gate
        .fail_fast
        .stopped
        .take()
        .filter(|_| result.stop == StopReason::Aborted && aborted_by.is_none() && aborted_by_shard.is_none());
    let http_debug = cfg.http_debug.zip(debug_log).map(|(n, log)| report::render_http_debug(log.take(), origin, n));
    Ok(Executed {
        result,
        outcomes,
        aborted_by,
        aborted_by_shard,
        fail_fast,
        http_debug,
        environment,
        runs,
        _sinks: std::mem::take(&mut gate.sinks),
    })
}

/// The report with its verdicts: thresholds, levels, the embedded mock's counters, the baseline comparison.
/// Stops the embedded mock.
fn judge(run: &mut Prepared, x: &Executed) -> Result<RunReport> {
    let Prepared { cfg, plan, .. } = run;
    let mut rep = assemble::build(&run.description, &x.result);
    verdict::mark(&mut rep, &plan.steps, &x.result, x.fail_fast.clone());
    // A shard sees its part of the load: its thresholds would judge a part as if it were the whole (the verdict
    // per runner k6-operator users get), and a failed shard fails its Indexed Job before `merge` can judge all
    // of them. So `merge` judges them once; a shard only reports the threshold that aborted it.
    let judges = cfg.shard.is_none() || x.aborted_by.is_some();
    if !cfg.thresholds.is_empty() && judges {
        // A breaking-point search is meant to break: its thresholds are judged at the last level that held
        // (the first level when none did), not over the broken ones.
        let judged = match (&cfg.levels, &x.outcomes) {
            (Some(l), Some(o)) if l.limits.is_some() && !o.is_empty() => {
                let at = o.iter().take_while(|x| x.broken.is_none()).last().unwrap_or(&o[0]);
                live::measurements(plan, &at.total, at.elapsed)
            }
            _ => live::measurements(plan, &x.result.total, x.result.elapsed),
        };
        rep.thresholds = crate::slo::evaluate(&cfg.thresholds, &judged);
        for v in rep.thresholds.iter_mut() {
            v.aborted_run = x.aborted_by.as_deref() == Some(v.threshold.as_str());
        }
    }
    if let (Some(levels), Some(outcomes)) = (&cfg.levels, &x.outcomes) {
        rep.levels = Some(assemble::levels_report(levels, outcomes));
    }
    rep.environment = Some(x.environment.clone());
    if !x.runs.is_empty() {
        rep.repeats = Some(crate::result::Repeats::of(x.runs.clone()));
    }
    rep.shard = super::shard::info(cfg, x.result.started_at);
    if let (Some(s), Some(line)) = (rep.shard.as_mut(), &x.aborted_by_shard) {
        s.aborted_by = Some(line.clone());
    }
    if rep.shard.is_some() {
        // A merge adds shards' histograms only when they were built alike.
        rep.hdr = Some(HdrSettings::CURRENT);
    }
    if let Some(m) = run.mock.take() {
        rep.mock_stats = fetch_mock_stats(&run.client);
        m.shutdown();
    }
    if let (Some(b), Some(path)) = (&run.baseline, &cfg.outputs.baseline) {
        let c = baseline::compare(b, &path.display().to_string(), &rep, &cfg.regression)?;
        rep.comparison = Some(c);
    }
    Ok(rep)
}

/// Writes the report files, the CI files and the baseline, prints the summary and the reasons, and decides the
/// outcome. A report that cannot be written (a full disk) must not hide the verdict: the CI files and the
/// baseline are still tried, the summary and the verdict printed, then what failed, and the exit code says so.
fn publish(cfg: &RunConfig, rep: &RunReport, stop: StopReason, http_debug: Option<&str>) -> Outcome {
    let mut failed_writes = Vec::new();
    if let Some(text) = http_debug {
        let path = cfg.out_dir.join(report::HTTP_DEBUG_LOG);
        match report::write_file(&path, text) {
            Ok(()) if !cfg.quiet => report::print_note(&format!("http debug log: {}", path.display())),
            Ok(()) => {}
            Err(e) => failed_writes.push(e.to_string()),
        }
    }
    let path = match report::write_outputs(rep, &cfg.out_dir, &cfg.files.formats) {
        Ok(p) => {
            // The report holds everything the journal did; it was only there in case the process died. A shard
            // keeps its seconds: `merge` adds shards second by second on one wall clock.
            if rep.shard.is_some() {
                super::shard::keep_seconds(&cfg.out_dir);
            } else {
                report::remove_journal(&cfg.out_dir);
            }
            Some(p)
        }
        Err(e) => {
            failed_writes.push(e.to_string());
            None
        }
    };
    if let Err(e) = gate::write_ci_outputs(rep, &cfg.outputs) {
        failed_writes.push(format!("{e:#}"));
    }
    if cfg.quiet {
        gate::print_warnings(rep);
    } else {
        report::print_out(&ReportFormat::Table.render(rep));
        if let Some(p) = &path {
            report::print_note(&format!("report: {}", p.display()));
        }
    }
    if let Some(to) = &cfg.outputs.save_baseline {
        if let Err(e) = gate::save_baseline(rep, to, cfg.quiet) {
            failed_writes.push(format!("{e:#}"));
        }
    }
    let below_floor = rep
        .levels
        .as_ref()
        .and_then(|l| l.min_sustainable.map(|min| l.last_ok.is_none_or(|ok| ok < min)))
        .unwrap_or(false);
    // Stopped by another shard's threshold: the run as a whole failed its gate.
    let by_shard = rep.shard.as_ref().is_some_and(|s| s.aborted_by.is_some());
    let gate_failed = below_floor || by_shard || gate::failed(rep);
    let interrupted = matches!(stop, StopReason::Interrupted(_));
    if !interrupted && rep.failure.is_none() {
        gate::print_inconclusive(rep, &cfg.outputs);
        if gate_failed {
            gate::print_failures(rep, below_floor);
        }
    }
    // Printed even with --quiet, and whatever the exit code: a red CI job says why it measured nothing.
    if let Some(f) = &rep.failure {
        report::print_note(&f.message);
    }
    for e in &failed_writes {
        report::print_error(e);
    }
    // Precedence: a signal, then nothing valid measured or the report not written (3), then a failed gate (1),
    // then inconclusive comparisons (4, or what --on-inconclusive chose).
    match stop {
        StopReason::Interrupted(s) => Outcome::Interrupted(s),
        _ if rep.failure.is_some() || !failed_writes.is_empty() => Outcome::NothingValid,
        _ if gate_failed => Outcome::GateFailed,
        _ => gate::unfailed_outcome(rep, &cfg.outputs),
    }
}
