//! A run's seconds added up in order: the totals, the per-second series, the windows and each second's worst
//! hiccup. What the journal rebuild and `merge` make of the seconds they read, built the one way.

use super::{Recorder, SeriesPoint, Window, WindowBuilder, series_point};

/// The worst probe wake-up of an interval, ms (0 when no probe woke in it).
pub fn worst_hiccup_ms(rec: &Recorder) -> f64 {
    if rec.hiccup.is_empty() { 0.0 } else { rec.hiccup.max() as f64 / 1000.0 }
}

pub struct Timeline {
    pub total: Recorder,
    pub series: Vec<SeriesPoint>,
    /// Aligned with `series`.
    pub hiccup_max: Vec<f64>,
    windows: WindowBuilder,
}

impl Timeline {
    pub fn new(steps: usize, flows: usize) -> Self {
        Timeline {
            total: Recorder::new(steps, flows),
            series: Vec::new(),
            hiccup_max: Vec::new(),
            windows: WindowBuilder::default(),
        }
    }

    /// Adds the second (or shorter interval) starting `t` s into the run and lasting `d` s.
    pub fn push(&mut self, t: f64, d: f64, rec: &Recorder, users: u64, in_flight: u64) {
        self.total.add(rec);
        self.series.push(series_point(t, d, &rec.total(), &self.total.total(), users, in_flight));
        self.hiccup_max.push(worst_hiccup_ms(rec));
        self.windows.push(t, d, rec);
    }

    /// The totals, the series, the worst hiccups and the windows of every second pushed.
    pub fn finish(self) -> (Recorder, Vec<SeriesPoint>, Vec<f64>, Vec<Window>) {
        (self.total, self.series, self.hiccup_max, self.windows.finish())
    }
}
