//! The run's observer: feeds the progress display and evaluates thresholds once a second on everything recorded
//! so far, stopping the run when one marked `abort_on_fail` fails (k6's `abortOnFail` / `delayAbortEval`).

use std::time::Duration;

use crate::engine::{Control, Observer, Plan, Progress, Signal};
use crate::metrics::Recorder;
use crate::report::{self, ProgressDisplay};
use crate::slo::{self, Measurements, Threshold};

use super::abort::AbortFile;
use super::verdict::FailFast;

/// What thresholds select from, for any recorder of the plan's shape (the live totals or the final ones).
pub fn measurements<'a>(plan: &'a Plan, rec: &'a Recorder, elapsed: Duration) -> Measurements<'a> {
    Measurements {
        steps: plan.steps.iter().zip(&rec.steps).map(|(i, s)| (i.user.as_str(), i.name.as_str(), s)).collect(),
        flows: plan.classes.iter().zip(&rec.flows).map(|(c, f)| (c.name.as_str(), f)).collect(),
        elapsed,
        arrivals: rec.arrivals,
        dropped: rec.dropped,
    }
}

/// Something fed once a second while the run goes on (a live file, an exposition endpoint). It must be quick:
/// it runs on the thread that merges the workers' snapshots.
pub trait IntervalSink {
    fn interval(&mut self, plan: &Plan, progress: &Progress, interval: &Recorder, totals: &Recorder);
    /// After the last interval: flush, close, push. An error is reported, the run's report is still written.
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    /// The run's host health, judged after the last interval and before `finish`.
    fn environment(&mut self, _env: &crate::result::Environment) {}
}

pub struct LiveGate<'a> {
    pub display: Option<ProgressDisplay>,
    pub plan: &'a Plan,
    pub thresholds: &'a [Threshold],
    /// The threshold that stopped the run, as written.
    pub aborted_by: Option<String>,
    /// Stops a run whose first requests all fail the same non-transient way (its line says why).
    pub fail_fast: FailFast,
    pub sinks: Vec<Box<dyn IntervalSink>>,
    /// `--abort-file`: where shards tell each other to stop.
    pub abort_file: Option<AbortFile>,
    /// The line of the shard whose threshold stopped this one through the abort file.
    pub aborted_by_shard: Option<String>,
}

impl Observer for LiveGate<'_> {
    fn signalled(&mut self, signal: Signal, count: u32) {
        // Even with `--quiet`: whoever sent it should know it was heard, and that a second one cuts short.
        let what = if count > 1 {
            "stopping now, cutting off requests in flight"
        } else {
            "stopping: users finish their current step (a second signal stops at once)"
        };
        report::print_note(&format!("{} received: {what}", signal.name()));
    }

    fn tick(&mut self, p: &Progress, interval: &Recorder, totals: &Recorder) -> Control {
        for s in self.sinks.iter_mut() {
            s.interval(self.plan, p, interval, totals);
        }
        // Told apart from a threshold abort by `fail_fast.stopped`; it takes precedence in the same second.
        let fail_fast = self.fail_fast.check(&self.plan.steps, p, totals);
        if !fail_fast && self.aborted_by.is_none() {
            if let Some(line) = self.aborted_by_shard.clone().or_else(|| self.abort_file.as_ref()?.poll()) {
                if self.aborted_by_shard.is_none() {
                    report::print_note(&format!("stopping: {line} (--abort-file)"));
                }
                self.aborted_by_shard = Some(line);
                return Control::Abort;
            }
        }
        if fail_fast || self.thresholds.is_empty() || self.aborted_by.is_some() {
            if let Some(d) = self.display.as_mut() {
                d.update(p, None);
            }
            return if fail_fast { Control::Abort } else { Control::Continue };
        }
        let verdicts = slo::evaluate(self.thresholds, &measurements(self.plan, totals, p.elapsed));
        // Nothing measured yet is not a failure mid-run: the first TTFT may simply not have arrived.
        let failing = |v: &crate::result::Verdict| v.observed.is_some() && !v.pass;
        if let Some(d) = self.display.as_mut() {
            d.update(p, Some((verdicts.iter().filter(|v| failing(v)).count(), verdicts.len())));
        }
        let abort = self
            .thresholds
            .iter()
            .zip(&verdicts)
            .find(|(t, v)| t.abort_on_fail && p.elapsed >= t.delay_abort_eval && failing(v));
        match abort {
            Some((t, v)) => {
                self.aborted_by = Some(t.text.clone());
                if let Some(f) = self.abort_file.as_mut() {
                    f.trip(&t.text, &report::fmt_observed(v));
                }
                Control::Abort
            }
            None => Control::Continue,
        }
    }
}
