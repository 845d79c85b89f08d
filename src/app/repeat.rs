//! `run --repeat N`: the engine run N times with a short pause between, each run with its own report and its
//! own environment (the host's health and the embedded mock's hiccups are taken per run), and all runs
//! together as one result, appended as a sweep appends its levels.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::host::{self, HostReading};
use crate::engine::{EngineResult, StopReason, signals};
use crate::metrics::Hist;
use crate::mock::MockServer;
use crate::result::{Environment, RunReport};

/// Between runs: connections the last run left behind close and the target's queues drain, so a run does not
/// start on the previous run's tail. Short enough not to matter beside a run's length.
pub const PAUSE: Duration = Duration::from_secs(2);

/// All runs together, each run's own report, and the environment over all of them.
pub struct Repeated {
    pub result: EngineResult,
    pub runs: Vec<RunReport>,
    pub environment: Environment,
}

/// Runs `one` up to `n` times. A run stopped by a signal or aborted ends the repeats, as does a signal during
/// a pause; what was measured is still returned (the stop says why it ended). `report` builds a run's own
/// report from its result and environment.
pub fn run(
    n: u32,
    mock: Option<&MockServer>,
    mut one: impl FnMut() -> Result<EngineResult>,
    report: impl Fn(&EngineResult, Environment) -> RunReport,
) -> Result<Repeated> {
    let start = HostReading::now();
    let mut merged: Option<EngineResult> = None;
    let mut mock_all: Option<Hist> = None;
    let mut runs = Vec::new();
    for i in 0..n {
        if i > 0 {
            if let Some(signal) = pause() {
                if let Some(m) = merged.as_mut() {
                    m.stop = StopReason::Interrupted(signal);
                }
                break;
            }
        }
        if let Some(m) = mock {
            // What the mock's probe saw before this run (the set-up, the pause) is not this run's.
            let _ = m.take_hiccups();
        }
        let host = HostReading::now();
        let r = one()?;
        let mock_hiccups = mock.map(MockServer::take_hiccups);
        let env = host::environment(&host, &r.total.hiccup, &r.hiccup_max, mock_hiccups.as_ref());
        if let Some(h) = mock_hiccups {
            match mock_all.as_mut() {
                // Same bounds on both (the mock's one probe): adding cannot fail; if it did, the run's own
                // environment still has its hiccups, only the summary over all runs would lack them.
                Some(all) => drop(all.add(&h)),
                None => mock_all = Some(h),
            }
        }
        runs.push(report(&r, env));
        let last = matches!(r.stop, StopReason::Interrupted(_) | StopReason::Aborted);
        merged = Some(match merged {
            None => r,
            Some(mut m) => {
                m.append(r);
                m
            }
        });
        if last {
            break;
        }
    }
    let Some(result) = merged else { anyhow::bail!("--repeat: no run was made") };
    let environment = host::environment(&start, &result.total.hiccup, &result.hiccup_max, mock_all.as_ref());
    Ok(Repeated { result, runs, environment })
}

/// Waits [`PAUSE`]; the signal that ended it early, if one came.
fn pause() -> Option<crate::engine::Signal> {
    let until = Instant::now() + PAUSE;
    loop {
        if let Some(s) = signals::received().0 {
            return Some(s);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
