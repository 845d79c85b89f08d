//! How the runs of `run --repeat` read, in every renderer: one row per run, then the median and coefficient of
//! variation of each headline statistic (computed in `result`, only worded here), and a one-line warning when
//! the runs disagree more than a gate on repeated runs should accept.

use super::format::{fmt_ms, fmt_rate, fmt_side, fmt_value};
use super::rows::Grid;
use crate::result::{CV_WARN_PCT, Delta, RepeatStat, Repeats, RunReport};

/// The runs table: one row per run, then the `median` and `CV` rows. `None` for a run that was not repeated.
pub fn runs_grid(r: &RunReport) -> Option<Grid> {
    let rep = r.repeats.as_ref()?;
    let streaming = rep.runs.iter().any(|x| x.totals.llm.as_ref().is_some_and(|l| l.ttft.is_some()));
    let mut head = vec!["Run", "Started", "# reqs", "req/s", "p50", "p95", "p99"];
    if streaming {
        head.push("TTFT p95");
    }
    head.extend(["Errors", "Hiccup p99", "Disturbed"]);
    let mut rows = Vec::new();
    for (i, x) in rep.runs.iter().enumerate() {
        let t = &x.totals;
        let lat =
            |f: fn(&crate::metrics::LatencySummary) -> f64| t.latency.as_ref().map_or("-".into(), |l| fmt_ms(f(l)));
        let mut row = vec![(i + 1).to_string(), x.started_at.clone(), t.requests.to_string(), fmt_rate(t.rps)];
        row.extend([lat(|l| l.p50_ms), lat(|l| l.p95_ms), lat(|l| l.p99_ms)]);
        if streaming {
            let ttft = t.llm.as_ref().and_then(|l| l.ttft.as_ref());
            row.push(ttft.map_or("-".into(), |l| fmt_ms(l.p95_ms)));
        }
        let env = x.environment.as_ref();
        row.push(fmt_value(t.failure_rate, "%"));
        row.push(env.map_or("-".into(), |e| fmt_ms(e.hiccup.p99_ms)));
        row.push(env.map_or("-".into(), |e| if e.disturbed { "yes".into() } else { "no".into() }));
        rows.push(row);
    }
    let stat = |metric: &str, s: &str| rep.summary.iter().find(|x| x.metric == metric && x.stat == s);
    for (label, cell) in [("median", median_cell as fn(Option<&RepeatStat>) -> String), ("CV", cv_cell)] {
        let mut row = vec![label.to_string(), String::new(), String::new(), cell(stat("rps", "value"))];
        row.extend([cell(stat("latency", "p(50)")), cell(stat("latency", "p(95)")), cell(stat("latency", "p(99)"))]);
        if streaming {
            row.push(cell(stat("ttft", "p(95)")));
        }
        row.extend([cell(stat("errors", "rate")), String::new(), String::new()]);
        rows.push(row);
    }
    Some(Grid { head, rows })
}

fn median_cell(s: Option<&RepeatStat>) -> String {
    match s {
        Some(s) if s.unit == "ms" => fmt_ms(s.median),
        Some(s) if s.unit == "/s" => fmt_rate(s.median),
        Some(s) => fmt_value(s.median, "%"),
        None => "-".into(),
    }
}

fn cv_cell(s: Option<&RepeatStat>) -> String {
    s.and_then(|s| s.cv_pct).map_or("-".into(), |c| format!("{c:.1}%"))
}

/// The line above the runs table: what the rest of the report is, and what a comparison judges.
pub fn runs_title(rep: &Repeats) -> String {
    format!(
        "{} runs (the totals above are all runs together; a baseline comparison judges their median)",
        rep.runs.len()
    )
}

/// The warning when a headline statistic varies between runs by more than [`CV_WARN_PCT`].
pub fn unsteady_line(r: &RunReport) -> Option<String> {
    let rep = r.repeats.as_ref()?;
    let over: Vec<String> =
        rep.unsteady().map(|s| format!("{} {} CV {:.1}%", s.metric, s.stat, s.cv_pct.unwrap_or(0.0))).collect();
    (!over.is_empty()).then(|| {
        format!(
            "warning: the runs disagree ({}): above {CV_WARN_PCT:.0}%, the bar for gating on repeated runs; \
             more or longer runs, or a quieter machine",
            over.join(", ")
        )
    })
}

/// A comparison row's current runs: `181.5 ms · 183.0 ms · 362.0 ms (CV 57.3%)`; empty for one run.
pub fn spread_cell(d: &Delta) -> String {
    let Some(s) = &d.current_runs else { return String::new() };
    let each: Vec<String> = s.values.iter().map(|v| fmt_side(d, Some(*v))).collect();
    let cv = s.cv_pct.map_or(String::new(), |c| format!(" (CV {c:.1}%)"));
    format!("{}{cv}", each.join(" · "))
}
