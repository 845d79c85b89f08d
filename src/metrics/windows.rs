//! Per-window histograms of a run: what each stretch of seconds measured, per step and per user class, so a
//! baseline comparison can see how a statistic moves between windows (bursts of slow seconds, drifts) for every
//! metric and selector, not only for the whole-run numbers the per-second series keeps.
//!
//! Bounded whatever the run's length: at most [`MAX_WINDOWS`] windows; when full, neighbours are merged pairwise
//! and the window length doubles (1 s, 2 s, 4 s, ...). Finished windows are kept encoded (HdrHistogram V2
//! deflate, base64, as everywhere in `result.json`), so the memory a run holds is that of one live recorder plus
//! the encoded windows.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::{Metric, Source};
use super::{Hist, Recorder, add_hist, decode_histogram, encode_nonempty, new_hist};

/// The most windows a run keeps.
pub const MAX_WINDOWS: usize = 128;

/// One stretch of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Seconds into the run at the window's start.
    pub t_s: f64,
    pub duration_s: f64,
    /// One per step, in the order of the report's `steps`.
    pub steps: Vec<WindowStep>,
    /// One per user class, in the order of the report's `flows`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<WindowFlow>,
}

/// What one step measured in a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowStep {
    pub requests: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u64,
    /// Failures by kind (as `errors[].kind`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Encoded histograms by metric name (`latency`, `ttft`, ...), of the metrics that measured something.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

/// What one user class measured in a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowFlow {
    /// Encoded histograms by metric name (`flow_latency`, `steps_per_flow`), of those that measured something.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Window {
    /// Encodes what `rec` measured over `duration_s` seconds from `t_s`.
    fn of(t_s: f64, duration_s: f64, rec: &Recorder) -> Window {
        let encode = |h: Option<&Hist>, m: Metric| {
            h.filter(|h| !h.is_empty()).map(|h| (m.name().to_string(), encode_nonempty(h)))
        };
        let steps = rec
            .steps
            .iter()
            .map(|s| WindowStep {
                requests: s.requests,
                failures: s.failures,
                errors: s.errors.iter().map(|e| (e.kind.to_string(), e.count)).collect(),
                histograms: Metric::step_histograms().filter_map(|m| encode(m.step_histogram(s, None), m)).collect(),
            })
            .collect();
        let flow_metrics = || Metric::ALL.iter().copied().filter(|m| m.source() == Source::FlowHistogram);
        let flows = rec
            .flows
            .iter()
            .map(|f| WindowFlow { histograms: flow_metrics().filter_map(|m| encode(m.flow_histogram(f), m)).collect() })
            .collect();
        Window { t_s, duration_s, steps, flows }
    }

    /// This window followed by `next`, as one.
    fn merge(self, next: Window) -> Window {
        let steps = zip_longest(self.steps, next.steps, |a, b| WindowStep {
            requests: a.requests + b.requests,
            failures: a.failures + b.failures,
            errors: add_counts(a.errors, b.errors),
            histograms: add_encoded(a.histograms, b.histograms),
        });
        let flows = zip_longest(self.flows, next.flows, |a, b| WindowFlow {
            histograms: add_encoded(a.histograms, b.histograms),
        });
        Window { t_s: self.t_s, duration_s: self.duration_s + next.duration_s, steps, flows }
    }

    /// The window `offset_s` later in the run (a sweep's next level).
    fn shifted(mut self, offset_s: f64) -> Window {
        self.t_s += offset_s;
        self
    }
}

fn zip_longest<T: Default>(a: Vec<T>, b: Vec<T>, f: impl Fn(T, T) -> T) -> Vec<T> {
    let n = a.len().max(b.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    (0..n).map(|_| f(a.next().unwrap_or_default(), b.next().unwrap_or_default())).collect()
}

fn add_counts(mut a: BTreeMap<String, u64>, b: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for (k, n) in b {
        *a.entry(k).or_default() += n;
    }
    a
}

fn add_encoded(mut a: BTreeMap<String, String>, b: BTreeMap<String, String>) -> BTreeMap<String, String> {
    // Only windows encoded by `Window::of` are merged here, so a histogram that does not decode would be a bug;
    // losing one window's histogram then is better than losing the run.
    let decode = |e: &str| decode_histogram(e).unwrap_or_else(|_| new_hist());
    for (k, eb) in b {
        match a.get_mut(&k) {
            None => {
                a.insert(k, eb);
            }
            Some(ea) => {
                let mut h = new_hist();
                add_hist(&mut h, &decode(ea));
                add_hist(&mut h, &decode(&eb));
                *ea = encode_nonempty(&h);
            }
        }
    }
    a
}

/// Neighbours merged pairwise until at most [`MAX_WINDOWS`] remain.
fn coarsen(mut windows: Vec<Window>) -> Vec<Window> {
    while windows.len() > MAX_WINDOWS {
        let mut out = Vec::with_capacity(windows.len().div_ceil(2));
        let mut it = windows.into_iter();
        while let Some(a) = it.next() {
            out.push(match it.next() {
                Some(b) => a.merge(b),
                None => a,
            });
        }
        windows = out;
    }
    windows
}

/// `first`'s windows followed by `next`'s, which started `offset_s` into the run; merged pairwise as long as
/// there are more than [`MAX_WINDOWS`].
pub fn concat_windows(mut first: Vec<Window>, next: Vec<Window>, offset_s: f64) -> Vec<Window> {
    first.extend(next.into_iter().map(|w| w.shifted(offset_s)));
    coarsen(first)
}

/// Builds the windows of a run from its seconds, one at a time, as the engine finalizes them.
#[derive(Debug)]
pub struct WindowBuilder {
    /// Seconds (intervals) per window: doubles each time the windows are merged pairwise.
    span: u32,
    open: Option<Open>,
    done: Vec<Window>,
}

/// The window being filled: one recorder, whatever its length.
#[derive(Debug)]
struct Open {
    rec: Recorder,
    t_s: f64,
    duration_s: f64,
    seconds: u32,
}

impl Default for WindowBuilder {
    fn default() -> Self {
        WindowBuilder { span: 1, open: None, done: Vec::new() }
    }
}

impl WindowBuilder {
    /// Adds one finalized interval of the run: `rec` measured over `duration_s` from `t_s`.
    pub fn push(&mut self, t_s: f64, duration_s: f64, rec: &Recorder) {
        let o = match &mut self.open {
            Some(o) => {
                o.rec.add(rec);
                o.duration_s += duration_s;
                o.seconds += 1;
                o
            }
            None => self.open.insert(Open { rec: rec.clone(), t_s, duration_s, seconds: 1 }),
        };
        if o.seconds >= self.span {
            self.close();
        }
    }

    fn close(&mut self) {
        let Some(o) = self.open.take() else { return };
        self.done.push(Window::of(o.t_s, o.duration_s, &o.rec));
        if self.done.len() >= MAX_WINDOWS {
            // Full: halve the count so the next windows, twice as long, have room.
            let target = self.done.len() / 2;
            let mut out = Vec::with_capacity(target);
            let mut it = std::mem::take(&mut self.done).into_iter();
            while let Some(a) = it.next() {
                out.push(match it.next() {
                    Some(b) => a.merge(b),
                    None => a,
                });
            }
            self.done = out;
            self.span = self.span.saturating_mul(2);
        }
    }

    /// The windows of the run, the last one possibly shorter.
    pub fn finish(mut self) -> Vec<Window> {
        self.close();
        coarsen(self.done)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::ErrorKind;

    /// Second `i` of a two-step, one-class run: `i % 7 + 1` requests of step 0 at `10 + i` ms, one failure of
    /// step 1 every third second, one flow.
    fn second(i: u64) -> Recorder {
        let mut r = Recorder::new(2, 1);
        for _ in 0..i % 7 + 1 {
            r.steps[0].record_ok(Duration::from_millis(10 + i), Duration::from_millis(1), 1);
        }
        if i % 3 == 0 {
            r.steps[1].record_err(ErrorKind::Timeout, 0, || "t".into());
        }
        r.flows[0].record(true, Duration::from_millis(20 + i), 2, 0.0);
        r
    }

    fn build(seconds: u64) -> (Vec<Window>, Recorder) {
        let mut b = WindowBuilder::default();
        let mut total = Recorder::new(2, 1);
        for i in 0..seconds {
            let rec = second(i);
            total.add(&rec);
            b.push(i as f64, 1.0, &rec);
        }
        (b.finish(), total)
    }

    fn decoded(w: &Window, step: usize, m: Metric) -> Hist {
        w.steps[step].histograms.get(m.name()).map_or_else(new_hist, |e| decode_histogram(e).unwrap())
    }

    /// Windows follow each other without gap or overlap from 0 to the end, and add up to the totals.
    fn check_cover_and_totals(windows: &[Window], total: &Recorder, end: f64) {
        let mut t = 0.0;
        for w in windows {
            assert!((w.t_s - t).abs() < 1e-9, "window at {} after {t}", w.t_s);
            t += w.duration_s;
        }
        assert!((t - end).abs() < 1e-9, "windows end at {t}, not {end}");
        for s in 0..2 {
            let requests: u64 = windows.iter().map(|w| w.steps[s].requests).sum();
            let failures: u64 = windows.iter().map(|w| w.steps[s].failures).sum();
            assert_eq!((requests, failures), (total.steps[s].requests, total.steps[s].failures), "step {s}");
            let mut h = new_hist();
            windows.iter().for_each(|w| add_hist(&mut h, &decoded(w, s, Metric::Latency)));
            assert_eq!(h, total.steps[s].latency, "step {s} latency histogram");
        }
        let timeouts: u64 = windows.iter().filter_map(|w| w.steps[1].errors.get("timeout")).sum();
        assert_eq!(timeouts, total.steps[1].failures);
        let flows: u64 = windows
            .iter()
            .filter_map(|w| w.flows[0].histograms.get("flow_latency"))
            .map(|e| decode_histogram(e).unwrap().len())
            .sum();
        assert_eq!(flows, total.flows[0].completed);
    }

    #[test]
    fn a_short_run_has_one_window_a_second_covering_it_exactly() {
        let (windows, total) = build(10);
        assert_eq!(windows.len(), 10);
        assert!(windows.iter().all(|w| w.duration_s == 1.0));
        check_cover_and_totals(&windows, &total, 10.0);
        assert!(windows[0].steps[1].histograms.is_empty(), "a step that measured nothing stores no histogram");
        assert!(!windows[0].steps[0].histograms.contains_key("ttft"), "no LLM histogram without LLM traffic");
    }

    #[test]
    fn a_long_run_is_coarsened_to_at_most_the_cap_keeping_every_count() {
        for seconds in [127, 128, 129, 300, 1000, 5000] {
            let (windows, total) = build(seconds);
            assert!(windows.len() <= MAX_WINDOWS, "{seconds} s: {} windows", windows.len());
            assert!(windows.len() > MAX_WINDOWS / 4, "{seconds} s: only {} windows", windows.len());
            check_cover_and_totals(&windows, &total, seconds as f64);
            // Every window but the last has the same, power-of-two length.
            let span = windows[0].duration_s;
            assert!(span.log2().fract() == 0.0, "{seconds} s: span {span}");
            assert!(windows[..windows.len() - 1].iter().all(|w| w.duration_s == span), "{seconds} s");
        }
    }

    #[test]
    fn concatenated_runs_shift_in_time_and_stay_under_the_cap() {
        let (a, ta) = build(100);
        let (b, tb) = build(100);
        let mut total = ta.clone();
        total.add(&tb);
        let both = concat_windows(a, b, 100.0);
        assert!(both.len() <= MAX_WINDOWS, "{}", both.len());
        check_cover_and_totals(&both, &total, 200.0);
    }

    #[test]
    fn windows_round_trip_through_json() {
        let (windows, _) = build(3);
        let text = serde_json::to_string(&windows).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Window>>(&text).unwrap(), windows);
    }
}
