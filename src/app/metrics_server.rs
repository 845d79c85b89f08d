//! Prometheus outputs of a run. `--metrics-addr` serves the exposition on its own thread and runtime, as the
//! embedded mock does, so the generator's threads measure only themselves; `--pushgateway` receives the final
//! values once the run is over. Both read the `LiveMetrics` that `PromSink` updates once a second from the
//! run's observer: nothing here touches the request path.
//!
//! A failed push is reported (`error: --pushgateway: …`) but changes neither the report nor the exit code: the
//! gate's verdict is the run's contract, and a monitoring side channel must not hide or flip it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use bytes::Bytes;

use super::live::IntervalSink;
use crate::background;
use crate::client::{ClientFactory, Reading};
use crate::config::PrometheusOutputs;
use crate::engine::{Plan, Progress};
use crate::metrics::Recorder;
use crate::report::prometheus::{CONTENT_TYPE, Exposition, LiveMetrics};
use crate::report::{self};

/// The job label of pushed metrics (Prometheus keeps it apart from the scrape job's).
pub const PUSH_JOB: &str = "run_load_test";

/// Connecting and pushing together: a Pushgateway answers in milliseconds, an unreachable one must not hold
/// the report back for long.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// After a stop, how long a scrape in progress may take before the server thread is left to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

pub struct PromSink {
    live: Arc<Mutex<LiveMetrics>>,
    exposition: Arc<Exposition>,
    /// Held for its `Drop`: serving stops when the sink is dropped, after the report is written, so a scrape
    /// in the run's last second still works.
    _server: Option<background::Server>,
    push: Option<Push>,
    quiet: bool,
}

struct Push {
    client: ClientFactory,
    /// The URL as given, for messages.
    url: String,
    /// Path and grouping key after the base URL's own path.
    path: String,
}

impl PromSink {
    /// `None` when neither output is asked for. Binds the endpoint now, so a port in use is an error before any
    /// load is sent.
    pub fn start(
        scenario: &str,
        plan: &Plan,
        cfg: &PrometheusOutputs,
        insecure: bool,
        quiet: bool,
    ) -> Result<Option<Self>> {
        let PrometheusOutputs { metrics_addr, pushgateway } = cfg;
        if metrics_addr.is_none() && pushgateway.is_none() {
            return Ok(None);
        }
        let live =
            Arc::new(Mutex::new(LiveMetrics::new(plan.steps.iter().map(|s| (s.user.as_str(), s.name.as_str())))));
        let exposition = Arc::new(Exposition::new(scenario, live.clone()));
        let server = match metrics_addr {
            Some(addr) => {
                let server = spawn(*addr, exposition.clone())
                    .with_context(|| format!("--metrics-addr: cannot listen on {addr}"))?;
                if !quiet {
                    let reach = if addr.ip().is_loopback() {
                        ""
                    } else {
                        " (beyond loopback: anyone who can reach this host can read it)"
                    };
                    report::print_note(&format!("Prometheus metrics: http://{}/metrics{reach}", server.addr()));
                }
                Some(server)
            }
            None => None,
        };
        let push = pushgateway.as_deref().map(|url| Push::new(url, scenario, insecure)).transpose()?;
        Ok(Some(PromSink { live, exposition, _server: server, push, quiet }))
    }
}

impl Push {
    /// A URL that names its own grouping key (`…/metrics/job/…`) keeps it; otherwise the scenario's is added.
    fn new(url: &str, scenario: &str, insecure: bool) -> Result<Push> {
        let client = ClientFactory::new(url, insecure, PUSH_TIMEOUT).context("--pushgateway")?;
        let path = if client.prefix().contains("/metrics/job/") { String::new() } else { grouping_path(scenario) };
        Ok(Push { client, url: url.to_string(), path })
    }
}

/// `/metrics/job/run_load_test/scenario/<name>`; a name that is not a plain path segment is sent in the
/// Pushgateway's `@base64` form (URL-safe alphabet), so slashes or spaces cannot change the grouping key.
fn grouping_path(scenario: &str) -> String {
    let plain = !scenario.is_empty()
        && scenario != "."
        && scenario != ".."
        && scenario.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        format!("/metrics/job/{PUSH_JOB}/scenario/{scenario}")
    } else {
        let b64 = base64::engine::general_purpose::URL_SAFE.encode(scenario.as_bytes());
        // An empty value is written `=` in the Pushgateway's base64 form.
        let b64 = if b64.is_empty() { "=".to_string() } else { b64 };
        format!("/metrics/job/{PUSH_JOB}/scenario@base64/{b64}")
    }
}

impl IntervalSink for PromSink {
    fn interval(&mut self, _plan: &Plan, progress: &Progress, interval: &Recorder, _totals: &Recorder) {
        // The handler holds this lock only while encoding; a poisoned lock still holds sound counters.
        let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        live.absorb(progress.users, progress.in_flight, interval);
    }

    fn environment(&mut self, env: &crate::result::Environment) {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).set_disturbed(env.disturbed);
    }

    fn finish(&mut self) -> Result<()> {
        let Some(push) = &self.push else { return Ok(()) };
        let fail = || format!("--pushgateway: cannot push to {}", push.url);
        let body = self.exposition.render().with_context(fail)?;
        push_text(push, body).with_context(fail)?;
        if !self.quiet {
            report::print_note(&format!("pushed the final metrics to {}{}", push.url, push.path));
        }
        Ok(())
    }
}

/// Pushes the final values of a finished whole (the merge of a sharded run) once, under the same grouping key
/// and names a run's push uses, so a dashboard reads a merged run as it reads one process's.
pub fn push_final(
    scenario: &str,
    steps: &[(String, String)],
    total: &Recorder,
    disturbed: Option<bool>,
    url: &str,
    quiet: bool,
) -> Result<()> {
    let mut live = LiveMetrics::new(steps.iter().map(|(u, s)| (u.as_str(), s.as_str())));
    live.absorb(0, 0, total);
    if let Some(d) = disturbed {
        live.set_disturbed(d);
    }
    let exposition = Exposition::new(scenario, Arc::new(Mutex::new(live)));
    let push = Push::new(url, scenario, false)?;
    let fail = || format!("--pushgateway: cannot push to {}", push.url);
    let body = exposition.render().with_context(fail)?;
    push_text(&push, body).with_context(fail)?;
    if !quiet {
        report::print_note(&format!("pushed the merged final metrics to {}{}", push.url, push.path));
    }
    Ok(())
}

/// PUT replaces the whole group, so the Pushgateway holds exactly this run's final values.
fn push_text(push: &Push, body: String) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let mut c = push.client.build();
        let req = http::Request::put(format!("{}{}", push.client.prefix(), push.path))
            .header(http::header::HOST, push.client.host_header().clone())
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Bytes::from(body))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut answer = Vec::new();
        let reading = Reading { buf: Some(&mut answer), keep: true, ..Default::default() };
        let ex = c.exchange(&req, PUSH_TIMEOUT, reading).await.map_err(|f| anyhow::anyhow!("{}", f.message))?;
        if !(200..300).contains(&ex.status) {
            let text = String::from_utf8_lossy(&answer);
            let text: String = text.trim().chars().take(300).collect();
            anyhow::bail!("HTTP {}: {text}", ex.status);
        }
        Ok(())
    })
}

/// The `/metrics` endpoint on its own OS thread with a one-thread runtime; dropping it stops serving.
fn spawn(addr: SocketAddr, exposition: Arc<Exposition>) -> std::io::Result<background::Server> {
    let options = background::Options {
        thread: "metrics-server",
        workers: None,
        grace: SHUTDOWN_GRACE,
        what: "the metrics server",
    };
    background::spawn(addr, options, move |listener, stop| {
        let app = Router::new().route("/metrics", get(metrics)).with_state(exposition);
        axum::serve(listener, app).with_graceful_shutdown(stop).into_future()
    })
}

async fn metrics(State(exposition): State<Arc<Exposition>>) -> Response {
    match exposition.render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_keys_are_plain_or_base64() {
        assert_eq!(grouping_path("react"), "/metrics/job/run_load_test/scenario/react");
        assert_eq!(grouping_path("breaking-point_2.x"), "/metrics/job/run_load_test/scenario/breaking-point_2.x");
        assert_eq!(grouping_path("a/b c"), "/metrics/job/run_load_test/scenario@base64/YS9iIGM=");
        assert_eq!(grouping_path(""), "/metrics/job/run_load_test/scenario@base64/=");
        assert_eq!(grouping_path(".."), "/metrics/job/run_load_test/scenario@base64/Li4=");
    }
}
