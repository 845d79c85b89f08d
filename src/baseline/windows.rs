//! A statistic per window of a stored result (`RunReport.windows`): the values whose spread between windows,
//! in blocks (`stats::block_se`), is the noise a comparison allows for any metric and selector. Requests are
//! not independent samples: a few slow seconds (a neighbour's cron job) move every request in them together.

use crate::metrics::catalog::{Metric, Source};
use crate::metrics::{CorruptHistogram, Hist, Window, WindowStep, merged_encoded};
use crate::result::RunReport;
use crate::slo::{Agg, Selector};

/// Whether a step (`user` › `step`) is one the selector names.
pub(super) fn selects(sel: &Selector, user: &str, step: &str) -> bool {
    sel.user.as_deref().is_none_or(|u| u == user) && sel.step.as_deref().is_none_or(|s| s == step)
}

/// `f` of each steady window: the first and last windows (ramp-up, drain) are left out once there are five, and
/// so is a window less than half as long as the longest (a shorter remainder). `None` for a result without
/// windows, or whose windows do not match its steps and user classes (hand-edited): the caller then falls back
/// to the per-second series, as for results written before windows existed.
pub(super) fn per_window(
    r: &RunReport,
    mut f: impl FnMut(&Window) -> Result<Option<f64>, CorruptHistogram>,
) -> Result<Option<Vec<f64>>, CorruptHistogram> {
    let w = &r.windows;
    let aligned = w.iter().all(|w| w.steps.len() == r.steps.len() && w.flows.len() == r.flows.len());
    if w.is_empty() || !aligned {
        return Ok(None);
    }
    let n = w.len();
    let inner = if n >= 5 { &w[1..n - 1] } else { &w[..] };
    let longest = inner.iter().map(|w| w.duration_s).fold(0.0, f64::max);
    let mut values = Vec::with_capacity(inner.len());
    for w in inner.iter().filter(|w| w.duration_s >= 0.5 * longest) {
        values.extend(f(w)?);
    }
    Ok(Some(values))
}

/// The selected steps of a window, aligned with the report's `steps`.
pub(super) fn steps<'a>(r: &'a RunReport, w: &'a Window, sel: &'a Selector) -> impl Iterator<Item = &'a WindowStep> {
    w.steps.iter().zip(&r.steps).filter(|(_, s)| selects(sel, &s.user, &s.name)).map(|(ws, _)| ws)
}

/// Failures (of `kind`, or all) out of requests of the selected steps in a window; `None` without a request.
pub(super) fn failure_rate(r: &RunReport, w: &Window, sel: &Selector, kind: Option<&str>) -> Option<f64> {
    let (n, x) = steps(r, w, sel).fold((0, 0), |(n, x), s| {
        let hits = kind.map_or(s.failures, |k| s.errors.get(k).copied().unwrap_or(0));
        (n + s.requests, x + hits)
    });
    (n > 0).then(|| x as f64 / n as f64)
}

/// Requests per second of the selected steps in a window.
pub(super) fn rps(r: &RunReport, w: &Window, sel: &Selector) -> f64 {
    steps(r, w, sel).map(|s| s.requests).sum::<u64>() as f64 / w.duration_s.max(1e-9)
}

/// Names a window's histogram in messages (formatted only when it is corrupt): window at 4 s, step `chat` ttft.
struct Named<'a> {
    t_s: f64,
    kind: &'static str,
    who: &'a str,
    metric: Metric,
}

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "window at {} s, {} `{}` {}", self.t_s, self.kind, self.who, self.metric)
    }
}

/// The metric's histogram over the selected steps or user classes in one window.
fn histogram<'a>(r: &'a RunReport, w: &Window, metric: Metric, sel: &Selector) -> Result<Hist, CorruptHistogram> {
    let name = metric.name();
    let what = |kind: &'static str, who: &'a str| Named { t_s: w.t_s, kind, who, metric };
    match metric.source() {
        Source::FlowHistogram => merged_encoded(
            w.flows
                .iter()
                .zip(&r.flows)
                .filter(|(_, f)| sel.user.as_deref().is_none_or(|u| u == f.user))
                .filter_map(|(wf, f)| Some((what("flow", &f.user), wf.histograms.get(name)?.as_str()))),
        ),
        _ => merged_encoded(
            w.steps
                .iter()
                .zip(&r.steps)
                .filter(|(_, s)| selects(sel, &s.user, &s.name))
                .filter_map(|(ws, s)| Some((what("step", &s.name), ws.histograms.get(name)?.as_str()))),
        ),
    }
}

/// The statistic `agg` of the metric over the selected steps or user classes in one window, in the metric's
/// display unit; `None` when the window measured nothing there, or for min and max (extremes have no block
/// error worth the name).
pub(super) fn statistic(
    r: &RunReport,
    w: &Window,
    metric: Metric,
    sel: &Selector,
    agg: Agg,
) -> Result<Option<f64>, CorruptHistogram> {
    let q = match agg {
        Agg::Percentile(p) => Some(p / 100.0),
        Agg::Med => Some(0.5),
        Agg::Avg => None,
        _ => return Ok(None),
    };
    let h = histogram(r, w, metric, sel)?;
    if h.is_empty() {
        return Ok(None);
    }
    let scale = metric.display_scale();
    Ok(Some(q.map_or_else(|| h.mean(), |q| h.value_at_quantile(q) as f64) / scale))
}
