//! The commands, orchestrated: prepare outputs, start the embedded mock when there is no target, run the
//! engine, assemble and write the report, decide the outcome. Printing is delegated to `report`.

mod abort;
mod assemble;
mod gate;
mod host;
mod journal;
mod live;
mod merge;
mod metrics_server;
mod outputs;
mod render;
mod repeat;
mod run;
mod shard;
mod trial;
mod verdict;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::client::ClientFactory;
use crate::engine::{self, Signal};
use crate::mock::{self, MockConfig};
use crate::report::{self, ListRow};
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
    /// No threshold failed and no comparison regressed, but some comparisons are inconclusive: worse, and the
    /// generating host may explain it (exit 4, unless `--on-inconclusive` says fail or pass).
    Inconclusive,
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
            Outcome::Inconclusive => 4,
            Outcome::Interrupted(s) => u8::try_from(128 + s.number()).unwrap_or(u8::MAX),
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP stop a run from now on instead of killing the process (see `engine::signals`).
pub fn handle_signals() -> Result<()> {
    Ok(engine::signals::install()?)
}

pub use gate::compare;
pub use merge::merge_shards;
pub use outputs::rerender;
pub use render::render;
pub use run::run;
pub use trial::try_scenario;

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
                    mock_only: l.scenario.mock_only,
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
                mock_only: false,
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
            .body(bytes::Bytes::new())
            .ok()?;
        let mut buf = Vec::new();
        let reading = crate::client::Reading { buf: Some(&mut buf), keep: true, ..Default::default() };
        let ex = c.exchange(&req, Duration::from_secs(5), reading).await.ok()?;
        if ex.status != 200 {
            return None;
        }
        serde_json::from_slice(&buf).ok()
    })
}
