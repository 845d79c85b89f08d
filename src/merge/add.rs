//! The adding itself: each shard's seconds placed on one wall clock (merged second k holds every shard second
//! that started in [k, k+1) s after the earliest shard's engine start), recorders added exactly, the report
//! assembled as a run's is, the host's health and the thresholds judged on the whole.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::ShardInput;
use super::check::start_ms;
use crate::metrics::{Recorder, WindowBuilder, series_point};
use crate::result::assemble::{self, RunOutput, Stop};
use crate::result::{Environment, HdrSettings, HiccupSummary, MergedShard, RunReport, RunStatus, Verdict};
use crate::slo::{self, Measurements};

/// One merged second: the shards' recorders of it added, its length and the users and iterations in flight.
struct Slot {
    rec: Recorder,
    d: f64,
    users: u64,
    in_flight: u64,
}

/// The merged report of `shards` (checked: same shape, each with its start). Errors only if the merged totals
/// are not the sum of the shards' (which the checks exclude).
pub(super) fn report(shards: &[&ShardInput]) -> Result<RunReport, String> {
    let first = shards.first().ok_or("no shard to merge")?;
    let d = &first.header.run;
    let shape = (d.steps.len(), d.flows.len());
    let starts: Vec<u64> = shards.iter().map(|s| start_ms(s).unwrap_or(0)).collect();
    let origin = starts.iter().copied().min().unwrap_or(0);
    let mut slots: BTreeMap<usize, Slot> = BTreeMap::new();
    for (s, start) in shards.iter().zip(&starts) {
        let offset_s = (start - origin) as f64 / 1000.0;
        for sec in &s.seconds {
            if (sec.rec.steps.len(), sec.rec.flows.len()) != shape {
                return Err(format!("{}: a second does not match the run's steps", s.file));
            }
            // The shard second's start on the merged clock; the epsilon keeps 2.9999999 in second 2.
            let k = (offset_s + sec.t + 1e-9).floor().max(0.0) as usize;
            let slot = slots.entry(k).or_insert_with(|| Slot {
                rec: Recorder::new(shape.0, shape.1),
                d: 0.0,
                users: 0,
                in_flight: 0,
            });
            slot.rec.add(&sec.rec);
            slot.d = slot.d.max(sec.d);
            slot.users += sec.users;
            slot.in_flight += sec.in_flight;
        }
    }
    let mut total = Recorder::new(shape.0, shape.1);
    let mut series = Vec::with_capacity(slots.len());
    let mut windows = WindowBuilder::default();
    let mut hiccup_max = Vec::with_capacity(slots.len());
    let last = slots.keys().next_back().copied().unwrap_or(0);
    let empty = Recorder::new(shape.0, shape.1);
    for k in 0..=last {
        if slots.is_empty() {
            break;
        }
        let (rec, dur, users, in_flight) = match slots.get(&k) {
            Some(s) => (&s.rec, if s.d > 0.0 { s.d } else { 1.0 }, s.users, s.in_flight),
            None => (&empty, 1.0, 0, 0),
        };
        total.add(rec);
        series.push(series_point(k as f64, dur, &rec.total(), &total.total(), users, in_flight));
        windows.push(k as f64, dur, rec);
        hiccup_max.push(if rec.hiccup.is_empty() { 0.0 } else { rec.hiccup.max() as f64 / 1000.0 });
    }
    let requests: u64 = shards.iter().map(|s| s.report.totals.requests).sum();
    if total.total().requests != requests {
        return Err(format!(
            "the merged seconds hold {} requests but the shards' result.json files {requests}: a shard's seconds \
             were cut; run the shards again",
            total.total().requests
        ));
    }
    let elapsed = shards
        .iter()
        .zip(&starts)
        .map(|(s, start)| (start - origin) as f64 / 1000.0 + s.report.duration_s)
        .fold(0.0f64, f64::max);
    let stop = if first.report.stop_reason == "iterations_done" { Stop::IterationsDone } else { Stop::DurationElapsed };
    let windows = windows.finish();
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
            requests: s.report.totals.requests,
            status: status_name(s.report.status).into(),
            stop_reason: s.report.stop_reason.clone(),
        })
        .collect();
    Ok(rep)
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
