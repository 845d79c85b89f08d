//! The adding itself: each shard's seconds placed on one wall clock (merged second k holds every shard second
//! that started in [k, k+1) s after the earliest shard's engine start), recorders added exactly, the report
//! assembled as a run's is, the host's health and the thresholds judged on the whole.

use std::time::{Duration, SystemTime};

use super::check::start_ms;
use super::{SecondsError, ShardInput};
use crate::metrics::{Recorder, Timeline};
use crate::result::assemble::{self, RunOutput, Stop};
use crate::result::journal::Second;
use crate::result::{Environment, HdrSettings, HiccupSummary, MergedShard, RunReport, RunStatus, Verdict};
use crate::slo::{self, Measurements};

/// One merged second: the shards' recorders of it added, its length and the users and iterations in flight.
struct Slot {
    rec: Recorder,
    d: f64,
    users: u64,
    in_flight: u64,
}

/// A shard's seconds as they are read, with the merged second the next one falls in.
struct Cursor<'a> {
    file: &'a str,
    offset_s: f64,
    seconds: super::Seconds<'a>,
    next: Option<(usize, Second<Recorder>)>,
}

impl Cursor<'_> {
    fn advance(&mut self, shape: (usize, usize)) -> Result<(), SecondsError> {
        self.next = match self.seconds.next() {
            None => None,
            Some(Err(e)) => return Err(SecondsError(format!("{}: {e}", self.file))),
            Some(Ok(sec)) => {
                if (sec.rec.steps.len(), sec.rec.flows.len()) != shape {
                    return Err(SecondsError(format!("{}: a second does not match the run's steps", self.file)));
                }
                // The shard second's start on the merged clock; the epsilon keeps 2.9999999 in second 2.
                Some(((self.offset_s + sec.t + 1e-9).floor().max(0.0) as usize, sec))
            }
        };
        Ok(())
    }
}

/// The merged report of `shards` (checked: same shape, each with its start). The seconds are read once, in
/// step: merged second k is complete once every shard has moved past it, so one second per shard is held.
pub(super) fn report(shards: &[&ShardInput]) -> Result<(RunReport, Recorder), SecondsError> {
    let first = shards.first().ok_or("no shard to merge")?;
    let d = &first.header.run;
    let shape = (d.steps.len(), d.flows.len());
    let starts: Vec<u64> = shards.iter().map(|s| start_ms(s).unwrap_or(0)).collect();
    let origin = starts.iter().copied().min().unwrap_or(0);
    let mut cursors = Vec::with_capacity(shards.len());
    for (s, start) in shards.iter().zip(&starts) {
        let seconds = s.seconds.open().map_err(|e| SecondsError(format!("{}: {e}", s.file)))?;
        let mut c = Cursor { file: &s.file, offset_s: (start - origin) as f64 / 1000.0, seconds, next: None };
        c.advance(shape)?;
        cursors.push(c);
    }
    let mut timeline = Timeline::new(shape.0, shape.1);
    let empty = Recorder::new(shape.0, shape.1);
    let mut k = 0usize;
    while let Some(upto) = cursors.iter().filter_map(|c| c.next.as_ref().map(|n| n.0)).min() {
        // Seconds no shard recorded (a gap between shards' runs) are empty, not skipped: the series keeps time.
        for gap in k..upto {
            timeline.push(gap as f64, 1.0, &empty, 0, 0);
        }
        let mut slot = Slot { rec: Recorder::new(shape.0, shape.1), d: 0.0, users: 0, in_flight: 0 };
        for c in cursors.iter_mut() {
            while let Some((_, sec)) = c.next.take_if(|n| n.0 == upto) {
                slot.rec.add(&sec.rec);
                slot.d = slot.d.max(sec.d);
                slot.users += sec.users;
                slot.in_flight += sec.in_flight;
                c.advance(shape)?;
            }
        }
        let dur = if slot.d > 0.0 { slot.d } else { 1.0 };
        timeline.push(upto as f64, dur, &slot.rec, slot.users, slot.in_flight);
        k = upto + 1;
    }
    let (total, series, hiccup_max, windows) = timeline.finish();
    let requests: u64 = shards.iter().map(|s| s.report.totals.requests).sum();
    if total.total().requests != requests {
        return Err(SecondsError(format!(
            "the merged seconds hold {} requests but the shards' result.json files {requests}: a shard's seconds \
             were cut; run the shards again",
            total.total().requests
        )));
    }
    let elapsed = shards
        .iter()
        .zip(&starts)
        .map(|(s, start)| (start - origin) as f64 / 1000.0 + s.report.duration_s)
        .fold(0.0f64, f64::max);
    let stop = if first.report.stop_reason == "iterations_done" { Stop::IterationsDone } else { Stop::DurationElapsed };
    let output = RunOutput {
        total: &total,
        series: &series,
        windows: &windows,
        started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(origin),
        elapsed: Duration::try_from_secs_f64(elapsed).unwrap_or(Duration::ZERO),
        stop,
        cpu: Duration::try_from_secs_f64(shards.iter().map(|s| s.report.generator.cpu_s).sum()).unwrap_or_default(),
        workers: shards.iter().map(|s| s.report.generator.workers).sum(),
    };
    let mut rep = assemble::build(d, &output);
    rep.machine = first.report.machine.clone();
    rep.hdr = Some(first.report.hdr.or(first.header.hdr).unwrap_or(HdrSettings::CURRENT));
    rep.environment = environment(shards, &total, &hiccup_max);
    rep.thresholds = thresholds(shards, &total, output.elapsed);
    rep.shards = shards
        .iter()
        .zip(&starts)
        .map(|(s, start)| MergedShard {
            index: super::identity(s).map_or(0, |i| i.0),
            host: s.report.shard.as_ref().map_or_else(String::new, |i| i.host.clone()),
            file: s.file.clone(),
            start_skew_ms: (start - origin) as f64,
            late_ms: s.report.shard.as_ref().and_then(|i| i.start_skew_ms),
            requests: s.report.totals.requests,
            status: status_name(s.report.status).into(),
            stop_reason: s.report.stop_reason.clone(),
        })
        .collect();
    Ok((rep, total))
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Completed => "completed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Aborted => "aborted",
        RunStatus::Failed => "failed",
    }
}

/// The hosts' health together: hiccups of all shards in one histogram, each merged second's worst, the worst OS
/// figures, and `disturbed` when any shard was, its reasons prefixed by the shard.
fn environment(shards: &[&ShardInput], total: &Recorder, hiccup_max: &[f64]) -> Option<Environment> {
    let envs: Vec<(u64, &Environment)> = shards
        .iter()
        .filter_map(|s| Some((super::identity(s).map_or(0, |i| i.0), s.report.environment.as_ref()?)))
        .collect();
    let (_, e0) = envs.first()?;
    let worst = |f: fn(&Environment) -> Option<f64>| envs.iter().filter_map(|(_, e)| f(e)).reduce(f64::max);
    Some(Environment {
        hiccup: HiccupSummary::of(e0.hiccup.interval_ms, &total.hiccup),
        hiccup_per_second: hiccup_max.to_vec(),
        cpu_pressure_pct: worst(|e| e.cpu_pressure_pct),
        steal_pct: worst(|e| e.steal_pct),
        load_per_core: worst(|e| e.load_per_core),
        cores: envs.iter().map(|(_, e)| e.cores).min().unwrap_or(e0.cores),
        disturbed: envs.iter().any(|(_, e)| e.disturbed),
        reasons: envs.iter().flat_map(|(n, e)| e.reasons.iter().map(move |r| format!("shard {n}: {r}"))).collect(),
        mock_hiccup: None,
    })
}

/// The scenario's thresholds judged once on the merged totals; a threshold that aborted a shard says so.
fn thresholds(shards: &[&ShardInput], total: &Recorder, elapsed: Duration) -> Vec<Verdict> {
    let d = &shards[0].header.run;
    // Written by a run that parsed them, so they parse; one that does not (a hand-edited file) is left out.
    let parsed: Vec<slo::Threshold> = d
        .thresholds
        .iter()
        .filter_map(|t| {
            let mut p = slo::parse(&t.key, &t.expr).ok()?;
            p.abort_on_fail = t.abort_on_fail;
            Some(p)
        })
        .collect();
    let m = Measurements {
        steps: d.steps.iter().zip(&total.steps).map(|(l, s)| (l.user.as_str(), l.name.as_str(), s)).collect(),
        flows: d.flows.iter().zip(&total.flows).map(|(n, f)| (n.as_str(), f)).collect(),
        elapsed,
        arrivals: total.arrivals,
        dropped: total.dropped,
    };
    let mut verdicts = slo::evaluate(&parsed, &m);
    for v in verdicts.iter_mut() {
        let shard_verdicts = shards.iter().flat_map(|s| &s.report.thresholds);
        v.aborted_run = shard_verdicts.filter(|x| x.threshold == v.threshold).any(|x| x.aborted_run);
    }
    verdicts
}
