//! The commands, orchestrated: prepare outputs, start the embedded mock when there is no target, run the
//! engine, assemble and write the report, decide the outcome. Printing is delegated to `report`.

mod assemble;
mod gate;
mod journal;
mod live;
mod metrics_server;
mod outputs;
mod verdict;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::baseline;
use crate::client::ClientFactory;
use crate::config::{RunConfig, Target};
use crate::engine::{self, Endpoint, EngineSpec, LoadModel, Signal, StopReason};
use crate::mock::{self, MockConfig};
use crate::redact;
use crate::report::{self, ListRow, ProgressDisplay, ReportFormat, RunReport};
use crate::scenario;

/// How a command ended; `main` maps it to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every gate passed (exit 0).
    Passed,
    /// An SLO threshold or a baseline comparison failed (exit 1).
    GateFailed,
    /// The run measured nothing valid, or the tool failed (its report could not be written) (exit 3).
    NothingValid,
    /// Stopped by a signal: the partial report was written (exit 128 + the signal's number: SIGINT 130,
    /// SIGTERM 143, SIGHUP 129).
    Interrupted(Signal),
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::GateFailed => 1,
            Outcome::NothingValid => 3,
            Outcome::Interrupted(s) => u8::try_from(128 + s.number()).unwrap_or(u8::MAX),
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP stop a run from now on instead of killing the process (see `engine::signals`).
pub fn handle_signals() -> Result<()> {
    engine::signals::install().map_err(anyhow::Error::msg)
}

/// Runs a resolved configuration end to end and returns the report with the outcome.
pub fn run(mut cfg: RunConfig) -> Result<(RunReport, Outcome)> {
    // First (if the caller did not already), so a signal during setup stops the run instead of the process.
    handle_signals()?;
    let urls = [
        Some(&cfg.target).and_then(|t| if let Target::Url(u) = t { Some(u) } else { None }),
        cfg.prometheus.pushgateway.as_ref(),
    ];
    redact::install(urls.into_iter().flatten().flat_map(|u| redact::url_secrets(u)).collect());
    report::prepare_dir(&cfg.out_dir).map_err(anyhow::Error::msg)?;
    // Every output path is tried now: an unwritable one is exit 2 in the first second, not after the run.
    gate::check_paths(&cfg.outputs)?;
    // Read before any load is sent: a missing or corrupt baseline is exit 2 in the first second.
    let baseline = cfg.outputs.baseline.as_deref().map(baseline::load).transpose().map_err(anyhow::Error::msg)?;
    let mock = match &cfg.target {
        Target::EmbeddedMock(m) => Some(
            mock::spawn((**m).clone(), ([127, 0, 0, 1], 0).into()).context("cannot start the embedded mock gateway")?,
        ),
        Target::Url(_) => None,
    };
    let base_url = match (&cfg.target, &mock) {
        (Target::Url(u), _) => u.clone(),
        (_, Some(m)) => m.base_url(),
        (Target::EmbeddedMock(_), None) => anyhow::bail!("the embedded mock did not start"),
    };
    let client = ClientFactory::new(&base_url, cfg.insecure, cfg.timeout.min(Duration::from_secs(10)))
        .map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    let endpoint = Endpoint { prefix: client.prefix(), host: client.host_header() };
    let feeders = std::mem::take(&mut cfg.feeders);
    let s = &cfg.scenario;
    let plan = engine::compile(&s.scenario, &s.name, endpoint, cfg.timeout, &cfg.tags, feeders)
        .map_err(|e| anyhow::anyhow!("{}: {e}", s.path.display()))?;
    let plan = Arc::new(plan);
    let secrets = scenario::secret_values([s.source.as_str()]);
    // Before any load is sent: what a server may echo is masked from its first answer on.
    redact::install(secrets.iter().cloned().chain(plan_secrets(&plan)).collect());
    let description = assemble::describe(&cfg, &plan, &base_url);
    if !cfg.quiet {
        let target = match mock {
            Some(_) => format!("embedded mock gateway at {base_url}"),
            None => crate::config::display_target(&base_url),
        };
        let shape = match &cfg.load {
            LoadModel::Closed(c) => format!("closed model, {} users", c.users),
            LoadModel::Open(o) => format!("open model, {}/s arrivals (at most {} in flight)", o.rate, o.max_in_flight),
        };
        report::print_note(&format!(
            "running `{}` against {target}: {shape}, {}",
            s.name,
            match (cfg.load.duration(), cfg.load.iterations()) {
                (Some(d), Some(i)) => format!("{} or {i} iterations", humantime::format_duration(d)),
                (Some(d), None) => humantime::format_duration(d).to_string(),
                (None, Some(i)) => format!("{i} iterations"),
                (None, None) => "until stopped".into(),
            }
        ));
    }
    let spec = |load: LoadModel| EngineSpec {
        plan: plan.clone(),
        load,
        seed: cfg.seed,
        workers: cfg.workers,
        graceful_stop: cfg.graceful_stop,
        client: client.clone(),
        secrets: secrets.clone(),
    };
    let planned = match &cfg.levels {
        Some(l) => Some(l.hold * l.values.len() as u32),
        None => cfg.load.duration(),
    };
    let mut gate = live::LiveGate {
        display: (!cfg.quiet).then(|| ProgressDisplay::new(planned)),
        plan: &plan,
        thresholds: &cfg.thresholds,
        aborted_by: None,
        fail_fast: verdict::FailFast::new(cfg.fail_fast),
        sinks: Vec::new(),
    };
    // Live files are opened now, so a bad path is an error before any load is sent.
    if let Some(path) = &cfg.files.ndjson {
        gate.sinks.push(Box::new(outputs::NdjsonSink::create(path)?));
    }
    if cfg.files.hlog {
        let dir = cfg.out_dir.join("hlog");
        let sink = outputs::HlogSink::create(&dir, &plan, std::time::SystemTime::now())?;
        gate.sinks.push(Box::new(sink));
    }
    if let Some(p) = metrics_server::PromSink::start(&s.name, &plan, &cfg.prometheus, cfg.insecure, cfg.quiet)? {
        gate.sinks.push(Box::new(p));
    }
    // Last, so a bad path of another live file leaves no journal of a run that never started.
    gate.sinks.push(Box::new(journal::JournalSink::create(&cfg.out_dir, &description)?));
    // A breaking-point search breaks a level on a failed threshold as on its own limits.
    let slo = |r: &engine::EngineResult| {
        let verdicts = crate::slo::evaluate(&cfg.thresholds, &live::measurements(&plan, &r.total, r.elapsed));
        let failed = verdicts.into_iter().find(|v| v.observed.is_some() && !v.pass)?;
        Some(format!("threshold `{}`: observed {}", failed.threshold, report::fmt_observed(&failed)))
    };
    let (result, outcomes) = match &cfg.levels {
        Some(levels) => {
            let (r, o) = engine::run_levels(levels, spec, &mut gate, &slo).map_err(anyhow::Error::msg)?;
            (r, Some(o))
        }
        None => (engine::run(spec(cfg.load.clone()), &mut gate).map_err(anyhow::Error::msg)?, None),
    };
    if let Some(d) = &gate.display {
        d.finish();
    }
    for s in gate.sinks.iter_mut() {
        if let Err(e) = s.finish() {
            report::print_error(&format!("{e:#}"));
        }
    }
    // Only what actually stopped the run counts: the last ticks come after it ended.
    let aborted_by = gate.aborted_by.take().filter(|_| result.stop == StopReason::Aborted);
    let fail_fast =
        gate.fail_fast.stopped.take().filter(|_| result.stop == StopReason::Aborted && aborted_by.is_none());
    let mut rep = assemble::build(&description, &result);
    verdict::mark(&mut rep, &plan.steps, &result, fail_fast);
    if !cfg.thresholds.is_empty() {
        // A breaking-point search is meant to break: its thresholds are judged at the last level that held
        // (the first level when none did), not over the broken ones.
        let judged = match (&cfg.levels, &outcomes) {
            (Some(l), Some(o)) if l.limits.is_some() && !o.is_empty() => {
                let at = o.iter().take_while(|x| x.broken.is_none()).last().unwrap_or(&o[0]);
                live::measurements(&plan, &at.total, at.elapsed)
            }
            _ => live::measurements(&plan, &result.total, result.elapsed),
        };
        rep.thresholds = crate::slo::evaluate(&cfg.thresholds, &judged);
        for v in rep.thresholds.iter_mut() {
            v.aborted_run = aborted_by.as_deref() == Some(v.threshold.as_str());
        }
    }
    if let (Some(levels), Some(outcomes)) = (&cfg.levels, &outcomes) {
        rep.levels = Some(assemble::levels_report(levels, outcomes));
    }
    if let Some(m) = mock {
        rep.mock_stats = fetch_mock_stats(&client);
        m.shutdown();
    }
    if let (Some(b), Some(path)) = (&baseline, &cfg.outputs.baseline) {
        let c = baseline::compare(b, &path.display().to_string(), &rep, &cfg.regression).map_err(anyhow::Error::msg)?;
        rep.comparison = Some(c);
    }
    // A report that cannot be written (a full disk) must not hide the verdict: the CI files and the baseline
    // are still tried, the summary and the verdict printed, then what failed, and the exit code says so.
    let mut failed_writes = Vec::new();
    let path = match report::write_outputs(&rep, &cfg.out_dir, &cfg.files.formats) {
        Ok(p) => {
            // The report holds everything the journal did; it was only there in case the process died.
            report::remove_journal(&cfg.out_dir);
            Some(p)
        }
        Err(e) => {
            failed_writes.push(e);
            None
        }
    };
    if let Err(e) = gate::write_ci_outputs(&rep, &cfg.outputs) {
        failed_writes.push(format!("{e:#}"));
    }
    if cfg.quiet {
        gate::print_warnings(&rep);
    } else {
        report::print_out(&ReportFormat::Table.render(&rep));
        if let Some(p) = &path {
            report::print_note(&format!("report: {}", p.display()));
        }
    }
    if let Some(to) = &cfg.outputs.save_baseline {
        if let Err(e) = gate::save_baseline(&rep, to, cfg.quiet) {
            failed_writes.push(format!("{e:#}"));
        }
    }
    let below_floor = rep
        .levels
        .as_ref()
        .and_then(|l| l.min_sustainable.map(|min| l.last_ok.is_none_or(|ok| ok < min)))
        .unwrap_or(false);
    let gate_failed = below_floor || gate::failed(&rep);
    let interrupted = matches!(result.stop, StopReason::Interrupted(_));
    if gate_failed && !interrupted && rep.failure.is_none() {
        gate::print_failures(&rep, below_floor);
    }
    // Printed even with --quiet, and whatever the exit code: a red CI job says why it measured nothing.
    if let Some(f) = &rep.failure {
        report::print_note(&f.message);
    }
    for e in &failed_writes {
        report::print_error(e);
    }
    // Precedence: a signal, then nothing valid measured or the report not written (3), then a failed gate (1).
    let outcome = match result.stop {
        StopReason::Interrupted(s) => Outcome::Interrupted(s),
        _ if rep.failure.is_some() || !failed_writes.is_empty() => Outcome::NothingValid,
        _ if gate_failed => Outcome::GateFailed,
        _ => Outcome::Passed,
    };
    Ok((rep, outcome))
}

/// The values of the plan's credential headers (templated ones are added once rendered, by the engine).
fn plan_secrets(plan: &engine::Plan) -> Vec<String> {
    let steps = plan.classes.iter().flat_map(|c| c.steps.iter().chain(&c.on_start).chain(&c.on_stop));
    let headers = steps.flat_map(|s| s.headers.iter());
    headers.filter_map(|(k, v)| Some(redact::header_secrets(k.as_str(), v.to_str().ok()?))).flatten().collect()
}

pub use gate::compare;
pub use outputs::rerender;

/// The rows of `run-load-test list`: every scenario file, or its one-line error.
pub fn list(dir: &Path) -> Result<Vec<ListRow>> {
    let entries =
        scenario::list_dir(dir).with_context(|| format!("cannot read the scenarios directory `{}`", dir.display()))?;
    Ok(entries
        .into_iter()
        .map(|(path, loaded)| match loaded {
            Ok(l) => {
                let ld = &l.scenario.load;
                let users = ld.users.as_ref().map_or(1, |u| *u.get_ref());
                let load = match &ld.spawn_rate {
                    Some(r) => format!("closed: {users} users, +{}/s", r.get_ref()),
                    None => format!("closed: {users} users"),
                };
                let duration = match (&ld.duration, &ld.iterations) {
                    (Some(d), _) => humantime::format_duration(d.get_ref().0).to_string(),
                    (None, Some(i)) => format!("{} iterations", i.get_ref()),
                    (None, None) => {
                        format!("{} (default)", humantime::format_duration(crate::config::DEFAULT_DURATION))
                    }
                };
                ListRow {
                    name: l.name,
                    description: l.scenario.description,
                    load,
                    duration,
                    tags: l.scenario.tags.join(", "),
                    thresholds: l.scenario.thresholds.values().map(Vec::len).sum(),
                    error: None,
                }
            }
            Err(e) => ListRow {
                name: path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                description: String::new(),
                load: String::new(),
                duration: String::new(),
                tags: String::new(),
                thresholds: 0,
                error: Some(e.to_string()),
            },
        })
        .collect())
}

/// Serves the mock gateway in the foreground until Ctrl-C.
pub fn serve_mock(config: MockConfig, addr: std::net::SocketAddr) -> Result<()> {
    crate::client::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--port: cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        report::print_note(&format!(
            "mock gateway listening on http://{local} (POST /v1/chat/completions, GET /health); Ctrl-C stops it"
        ));
        mock::serve(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("mock gateway failed")
    })
}

/// The embedded mock's counters, read over HTTP like any client would; `None` if they cannot be had.
fn fetch_mock_stats(client: &ClientFactory) -> Option<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(async {
        let mut c = client.build();
        let req = http::Request::get(format!("{}/mock/stats", client.prefix()))
            .header(http::header::HOST, client.host_header().clone())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .ok()?;
        let mut buf = Vec::new();
        let reading = crate::client::Reading { buf: Some(&mut buf), keep: true, ..Default::default() };
        let ex = c.exchange(req, Duration::from_secs(5), reading).await.ok()?;
        if ex.status != 200 {
            return None;
        }
        serde_json::from_slice(&buf).ok()
    })
}
