//! The `try` command: the target ready as for `run` (the embedded mock when there is none), the plan compiled
//! the same way, each user class sent once through the engine's own user loop, and every exchange printed as
//! it was sent and received, secrets masked. Exit 0 when every exchange passed, 1 when one failed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Outcome;

/// How often the printed exchanges catch up with the trial.
const POLL: Duration = Duration::from_millis(50);
use super::run::{connect, origin, plan_secrets};
use crate::config::{Target, TryConfig};
use crate::engine::{self, Endpoint, ExchangeLog, TagFilter, TrialSpec};
use crate::{redact, report, scenario};

pub fn try_scenario(mut cfg: TryConfig) -> Result<Outcome> {
    if let Target::Url(u) = &cfg.target {
        redact::install(redact::url_secrets(u));
    }
    let (mock, client, base_url) = connect(&cfg.target, cfg.insecure, cfg.timeout)?;
    let s = &cfg.scenario;
    let feeders = std::mem::take(&mut cfg.feeders);
    let plan =
        engine::compile(&s.scenario, &s.name, Endpoint::of(&client), cfg.timeout, &TagFilter::default(), feeders)
            .with_context(|| s.path.display().to_string())?;
    let secrets = scenario::secret_values([s.source.as_str()]);
    // Before the first request: whatever a server echoes is masked from its first answer on.
    redact::install(secrets.iter().cloned().chain(plan_secrets(&plan)).collect());
    let target = match &mock {
        Some(_) => format!("the embedded mock gateway at {base_url}"),
        None => crate::config::display_target(&base_url),
    };
    report::print_note(&format!(
        "trying `{}` against {target}: one iteration of each user class, no think time",
        s.name
    ));
    let log = Arc::new(ExchangeLog::new(plan.steps.len(), None));
    let spec = TrialSpec { plan, client, seed: cfg.seed, secrets, log: log.clone() };
    // The trial runs on its own thread so each exchange is printed as it ends: a slow model's answer is seen
    // when it comes, not after the last class.
    let trial = std::thread::Builder::new()
        .name("rlt-try".into())
        .spawn(move || engine::trial(spec))
        .context("cannot start the trial thread")?;
    let origin = origin(&base_url);
    let mut exchanges = Vec::new();
    loop {
        let finished = trial.is_finished();
        for x in log.take() {
            report::print_out(&report::render_exchange(&x, &origin));
            report::print_out("\n");
            exchanges.push(x);
        }
        if finished {
            break;
        }
        std::thread::sleep(POLL);
    }
    let result = match trial.join() {
        Ok(r) => r?,
        Err(p) => anyhow::bail!("the trial stopped: {}", engine::panic_message(p.as_ref())),
    };
    if let Some(m) = mock {
        m.shutdown();
    }
    report::print_out(&report::render_try_summary(&result.classes, &exchanges));
    let failed = exchanges.iter().any(|x| x.failure.is_some()) || result.classes.iter().any(|c| !c.started);
    Ok(if failed { Outcome::GateFailed } else { Outcome::Passed })
}
