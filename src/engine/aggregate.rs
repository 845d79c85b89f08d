//! Merges worker snapshots: a second is final once every running worker has reported it, then it is added to
//! the totals and becomes one point of the time series. Totals are the sum of the series by construction.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::worker::Snapshot;
use crate::metrics::{Recorder, SeriesPoint, Window, WindowBuilder, series_point, worst_hiccup_ms};

/// What the progress display shows, once per second.
#[derive(Debug, Clone)]
pub struct Progress {
    pub elapsed: Duration,
    pub planned: Option<Duration>,
    pub users: u64,
    pub in_flight: u64,
    pub requests: u64,
    pub failures: u64,
    /// Requests per second over the last interval.
    pub rps: f64,
    /// p95 latency of all successful requests so far.
    pub p95_ms: Option<f64>,
    /// Length of the interval this tick closes: 1 s, except the last one of a run.
    pub interval_s: f64,
    /// The wall-clock instant the engine started (after any `--start-at` wait): what shards are aligned by.
    pub started_at: SystemTime,
}

struct Pending {
    rec: Recorder,
    users: u64,
    in_flight: u64,
}

pub(super) struct Aggregator {
    planned: Option<Duration>,
    start: Instant,
    started_at: SystemTime,
    shape: (usize, usize),
    pending: BTreeMap<u64, Pending>,
    reported: Vec<Option<u64>>,
    done: Vec<bool>,
    total: Recorder,
    series: Vec<SeriesPoint>,
    /// The worst hiccup of each point of `series`, ms (0 when no probe woke in it).
    hiccup_max: Vec<f64>,
    /// Per-window histograms, fed each finalized second here on the merging thread (never on a worker's).
    windows: WindowBuilder,
    cpu: Duration,
    panics: Vec<String>,
}

impl Aggregator {
    pub fn new(
        workers: usize,
        (steps, flows): (usize, usize),
        (start, started_at): (Instant, SystemTime),
        planned: Option<Duration>,
    ) -> Self {
        Aggregator {
            planned,
            start,
            started_at,
            shape: (steps, flows),
            pending: BTreeMap::new(),
            reported: vec![None; workers],
            done: vec![false; workers],
            total: Recorder::new(steps, flows),
            series: Vec::new(),
            hiccup_max: Vec::new(),
            windows: WindowBuilder::default(),
            cpu: Duration::ZERO,
            panics: Vec::new(),
        }
    }

    /// Adds a worker's snapshot; returns the seconds it completed, each with what was recorded in it.
    pub fn absorb(&mut self, mut snap: Snapshot) -> Vec<(Progress, Recorder)> {
        self.panics.append(&mut snap.panics);
        let (steps, flows) = self.shape;
        let p = self.pending.entry(snap.second).or_insert_with(|| Pending {
            rec: Recorder::new(steps, flows),
            users: 0,
            in_flight: 0,
        });
        p.rec.add(&snap.rec);
        p.users += snap.users;
        p.in_flight += snap.in_flight;
        if let Some(r) = self.reported.get_mut(snap.worker) {
            *r = Some(r.map_or(snap.second, |old| old.max(snap.second)));
        }
        if snap.done {
            if let Some(d) = self.done.get_mut(snap.worker) {
                *d = true;
            }
            self.cpu += snap.cpu;
        }
        let frontier = self.reported.iter().zip(&self.done).filter(|(_, done)| !**done).map(|(r, _)| *r).min();
        let mut out = Vec::new();
        // With every worker done, the rest waits for `finish`, which knows the true end of the run.
        let Some(Some(frontier)) = frontier else { return out };
        while let Some((&second, _)) = self.pending.first_key_value() {
            if second > frontier {
                break;
            }
            if let Some((second, p)) = self.pending.pop_first() {
                out.push(self.finalize(second, p, 1.0));
            }
        }
        out
    }

    fn finalize(&mut self, second: u64, p: Pending, duration_s: f64) -> (Progress, Recorder) {
        let t = p.rec.total();
        self.total.add(&p.rec);
        let all = self.total.total();
        self.series.push(series_point(second as f64, duration_s, &t, &all, p.users, p.in_flight));
        self.hiccup_max.push(worst_hiccup_ms(&p.rec));
        self.windows.push(second as f64, duration_s, &p.rec);
        let p95 = (!all.latency.is_empty()).then(|| all.latency.value_at_quantile(0.95) as f64 / 1000.0);
        let progress = Progress {
            elapsed: self.start.elapsed(),
            planned: self.planned,
            users: p.users,
            in_flight: p.in_flight,
            requests: all.requests,
            failures: all.failures,
            rps: t.requests as f64 / duration_s.max(1e-9),
            p95_ms: p95,
            interval_s: duration_s,
            started_at: self.started_at,
        };
        (progress, p.rec)
    }

    /// Everything finalized so far.
    pub fn total(&self) -> &Recorder {
        &self.total
    }

    /// Finalizes what is left; the last interval's duration is what remained of the run, and a sliver of under
    /// a quarter second is folded into the interval before it so its rate is not noise. Returns the totals, the
    /// series, the workers' CPU time and the intervals finalized here (for the observer).
    pub fn finish(mut self, elapsed: Duration) -> Finished {
        let end = elapsed.as_secs_f64();
        let mut tail = Vec::new();
        while let Some((second, p)) = self.pending.pop_first() {
            let dur = (end - second as f64).clamp(0.0, 1.0);
            let sliver = dur < 0.25 && self.series.last().is_some_and(|l| l.t_s + 1.0 >= second as f64);
            tail.push(self.finalize(second, p, dur.max(1e-3)));
            if sliver {
                if let (Some(last), Some(prev)) = (self.hiccup_max.pop(), self.hiccup_max.last_mut()) {
                    *prev = prev.max(last);
                }
                if let (Some(last), Some(prev)) = (self.series.pop(), self.series.last_mut()) {
                    prev.requests += last.requests;
                    prev.failures += last.failures;
                    prev.bytes += last.bytes;
                    prev.duration_s += dur;
                    prev.rps = prev.requests as f64 / prev.duration_s;
                    prev.cumulative = last.cumulative;
                }
            }
        }
        Finished {
            total: self.total,
            series: self.series,
            hiccup_max: self.hiccup_max,
            windows: self.windows.finish(),
            cpu: self.cpu,
            tail,
            panics: self.panics,
        }
    }
}

pub(super) struct Finished {
    pub total: Recorder,
    pub series: Vec<SeriesPoint>,
    pub hiccup_max: Vec<f64>,
    pub windows: Vec<Window>,
    pub cpu: Duration,
    pub tail: Vec<(Progress, Recorder)>,
    pub panics: Vec<String>,
}
