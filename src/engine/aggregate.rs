//! Merges worker snapshots: a second is final once every running worker has reported it, then it is added to
//! the totals and becomes one point of the time series. Totals are the sum of the series by construction.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::worker::Snapshot;
use crate::metrics::{Recorder, SeriesPoint};

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
}

struct Pending {
    rec: Recorder,
    users: u64,
    in_flight: u64,
}

pub(super) struct Aggregator {
    planned: Option<Duration>,
    start: Instant,
    shape: (usize, usize),
    pending: BTreeMap<u64, Pending>,
    reported: Vec<Option<u64>>,
    done: Vec<bool>,
    total: Recorder,
    series: Vec<SeriesPoint>,
    cpu: Duration,
}

impl Aggregator {
    pub fn new(workers: usize, steps: usize, flows: usize, start: Instant, planned: Option<Duration>) -> Self {
        Aggregator {
            planned,
            start,
            shape: (steps, flows),
            pending: BTreeMap::new(),
            reported: vec![None; workers],
            done: vec![false; workers],
            total: Recorder::new(steps, flows),
            series: Vec::new(),
            cpu: Duration::ZERO,
        }
    }

    pub fn absorb(&mut self, snap: Snapshot) -> Vec<Progress> {
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

    fn finalize(&mut self, second: u64, p: Pending, duration_s: f64) -> Progress {
        let t = p.rec.total();
        let q = |x: f64| (!t.latency.is_empty()).then(|| t.latency.value_at_quantile(x) as f64 / 1000.0);
        self.series.push(SeriesPoint {
            t_s: second as f64,
            duration_s,
            requests: t.requests,
            failures: t.failures,
            rps: if duration_s > 0.0 { t.requests as f64 / duration_s } else { 0.0 },
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            users: p.users,
            in_flight: p.in_flight,
        });
        self.total.add(&p.rec);
        let all = self.total.total();
        Progress {
            elapsed: self.start.elapsed(),
            planned: self.planned,
            users: p.users,
            in_flight: p.in_flight,
            requests: all.requests,
            failures: all.failures,
            rps: t.requests as f64 / duration_s.max(1e-9),
            p95_ms: (!all.latency.is_empty()).then(|| all.latency.value_at_quantile(0.95) as f64 / 1000.0),
        }
    }

    /// Everything finalized so far.
    pub fn total(&self) -> &Recorder {
        &self.total
    }

    /// Finalizes what is left; the last interval's duration is what remained of the run, and a sliver of under
    /// a quarter second is folded into the interval before it so its rate is not noise.
    pub fn finish(mut self, elapsed: Duration) -> (Recorder, Vec<SeriesPoint>, Duration) {
        let end = elapsed.as_secs_f64();
        while let Some((second, p)) = self.pending.pop_first() {
            let dur = (end - second as f64).clamp(0.0, 1.0);
            let sliver = dur < 0.25 && self.series.last().is_some_and(|l| l.t_s + 1.0 >= second as f64);
            self.finalize(second, p, dur.max(1e-3));
            if sliver {
                if let (Some(tail), Some(prev)) = (self.series.pop(), self.series.last_mut()) {
                    prev.requests += tail.requests;
                    prev.failures += tail.failures;
                    prev.duration_s += dur;
                    prev.rps = prev.requests as f64 / prev.duration_s;
                }
            }
        }
        (self.total, self.series, self.cpu)
    }
}
