//! The CI end of a run: baseline files written and read, the `compare` command, JUnit and Markdown outputs, and
//! the one-line reasons a gate failed (printed even with `--quiet`, so a red CI job says why).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Outcome;
use crate::baseline;
use crate::cli::OnInconclusive;
use crate::config::GateOutputs;
use crate::report::{self, ReportFormat};
use crate::result::{self, RuleSet, RunReport, RunStatus};
use crate::scenario;

/// Whether a finished report fails the gate: a threshold or a regression.
pub fn failed(r: &RunReport) -> bool {
    r.thresholds.iter().any(|v| !v.pass) || r.comparison.as_ref().is_some_and(|c| c.failed())
}

/// Whether the comparison holds inconclusive rows (worse, and the host may explain it).
pub fn inconclusive(r: &RunReport) -> bool {
    r.comparison.as_ref().is_some_and(|c| c.inconclusive().next().is_some())
}

/// The outcome of a run that failed no gate: exit 4 when some comparison is inconclusive, unless
/// `--on-inconclusive` turns that into a failure or a pass. An SLO threshold is a promise about what users saw,
/// whatever the host did, so a breached one is exit 1 before this is asked.
pub fn unfailed_outcome(r: &RunReport, o: &GateOutputs) -> Outcome {
    if !inconclusive(r) {
        return Outcome::Passed;
    }
    match o.on_inconclusive {
        None => Outcome::Inconclusive,
        Some(OnInconclusive::Fail) => Outcome::GateFailed,
        Some(OnInconclusive::Pass) => Outcome::Passed,
    }
}

/// One line per inconclusive comparison, on stderr, and what the exit code makes of them.
pub fn print_inconclusive(r: &RunReport, o: &GateOutputs) {
    let Some(c) = &r.comparison else { return };
    for d in c.inconclusive() {
        report::print_note(&format!("gate: {}", report::describe_inconclusive(d)));
    }
    if inconclusive(r) {
        let then = match o.on_inconclusive {
            None => "exit code 4 (--on-inconclusive fail|pass chooses otherwise)",
            Some(OnInconclusive::Fail) => "counted as failed (--on-inconclusive fail)",
            Some(OnInconclusive::Pass) => "counted as passed (--on-inconclusive pass)",
        };
        report::print_note(&format!("gate: inconclusive against the baseline: {then}"));
    }
}

/// Tries where `--junit`, `--summary-md` and `--save-baseline` will be written, before any load is sent.
pub fn check_paths(o: &GateOutputs) -> Result<()> {
    for (flag, path) in [("--junit", &o.junit), ("--summary-md", &o.summary_md), ("--save-baseline", &o.save_baseline)]
    {
        if let Some(p) = path {
            report::check_writable(p).context(flag)?;
        }
    }
    Ok(())
}

/// `--junit` and `--summary-md`.
pub fn write_ci_outputs(r: &RunReport, o: &GateOutputs) -> Result<()> {
    for (path, format) in [(&o.junit, ReportFormat::Junit), (&o.summary_md, ReportFormat::Markdown)] {
        if let Some(p) = path {
            report::write_file(p, &format.render(r))?;
        }
    }
    Ok(())
}

/// Stores the run as a baseline unless it was cut short: a partial run would make every later run look slow
/// or fast.
pub fn save_baseline(r: &RunReport, to: &Path, quiet: bool) -> Result<()> {
    if r.status != RunStatus::Completed {
        report::print_note(&format!("baseline not saved to {}: the run did not complete", to.display()));
        return Ok(());
    }
    let mut b = r.clone();
    // A baseline is the run itself, not its comparison with an older baseline.
    b.comparison = None;
    report::write_file(to, &ReportFormat::Json.render(&b))?;
    if !quiet {
        report::print_note(&format!("baseline saved: {}", to.display()));
    }
    Ok(())
}

/// One line per failed gate, on stderr.
pub fn print_failures(r: &RunReport, below_floor: bool) {
    for v in r.thresholds.iter().filter(|v| !v.pass) {
        let abort = if v.aborted_run { " (aborted the run)" } else { "" };
        let seen = report::fmt_observed(v);
        report::print_note(&format!("gate: threshold `{}` failed: observed {seen}{abort}", v.threshold));
    }
    if let Some(c) = &r.comparison {
        for d in c.regressions() {
            report::print_note(&format!("gate: {}", report::describe_regression(d)));
        }
    }
    if below_floor {
        if let Some(l) = &r.levels {
            report::print_note(&format!(
                "gate: the last level that held ({}) is below min_sustainable ({})",
                l.last_ok.map_or("none".to_string(), |v| v.to_string()),
                l.min_sustainable.unwrap_or(0.0)
            ));
        }
    }
}

/// Several stored results as one report of repeated runs: the first stands for them all (its set-up, its
/// rules), `repeats` holds every run (a result of `run --repeat` gives its own runs), a threshold counts as
/// failed when it failed in any of them, and a result that measured nothing valid makes the set fail so.
fn together(reports: Vec<RunReport>) -> Option<RunReport> {
    if reports.len() < 2 {
        return reports.into_iter().next();
    }
    let mut runs = Vec::new();
    let mut thresholds: Vec<result::Verdict> = Vec::new();
    for r in &reports {
        for v in &r.thresholds {
            match thresholds.iter_mut().find(|t| t.threshold == v.threshold) {
                Some(t) if t.pass && !v.pass => *t = v.clone(),
                Some(_) => {}
                None => thresholds.push(v.clone()),
            }
        }
        runs.extend(baseline::runs_of(r).into_iter().cloned().map(|mut run| {
            run.repeats = None;
            run.comparison = None;
            run
        }));
    }
    let failure = reports.iter().find_map(|r| r.failure.clone());
    let mut first = reports.into_iter().next()?;
    first.thresholds = thresholds;
    first.failure = failure;
    first.comparison = None;
    first.repeats = Some(result::Repeats::of(runs));
    Some(first)
}

fn result_path(p: &Path) -> PathBuf {
    if p.is_dir() { p.join("result.json") } else { p.to_path_buf() }
}

/// Warnings go to stderr even with `--quiet`: a CI log must say when two runs were not alike.
pub fn print_warnings(r: &RunReport) {
    // The summary carries it otherwise; a quiet CI log must still say why its timings may not be the target's.
    if let Some(d) = r.environment.as_ref().and_then(report::host_disturbed_text) {
        report::print_note(&d);
    }
    for w in r.comparison.iter().flat_map(|c| &c.warnings) {
        report::print_note(&format!("warning: {w}"));
    }
}

/// `run-load-test compare BASE CURRENT...`: judges stored runs against a stored baseline with the rules of
/// `scenario` (else those stored in the first CURRENT, else the built-in ones). Several CURRENTs are judged as
/// one set of runs, exactly as the runs of `run --repeat`. CURRENT's own threshold verdicts count too: the exit
/// code says whether that run should pass a CI gate.
pub fn compare(current: &[PathBuf], scenario_file: Option<&Path>, o: &GateOutputs, quiet: bool) -> Result<Outcome> {
    let base_path = o.baseline.as_deref().map(result_path).unwrap_or_default();
    let base = baseline::load(&base_path)?;
    let mut reports = Vec::new();
    for c in current {
        reports.push(result::read_result(&result_path(c), "result")?);
    }
    let mut cur = together(reports).context("compare needs at least one CURRENT result")?;
    let rules: RuleSet = match scenario_file {
        Some(p) => {
            let s = scenario::load(p)?;
            baseline::rule_set(&s.scenario.regression).with_context(|| p.display().to_string())?
        }
        None => cur.regression.clone().unwrap_or_default(),
    };
    let c = baseline::compare(&base, &base_path.display().to_string(), &cur, &rules)?;
    cur.comparison = Some(c);
    write_ci_outputs(&cur, o)?;
    if quiet {
        print_warnings(&cur);
    } else if let Some(c) = &cur.comparison {
        report::print_out(&report::render_comparison(c));
    }
    // A stored run that measured nothing valid stays exit 3 when it is judged again.
    if let Some(f) = &cur.failure {
        report::print_note(&f.message);
        return Ok(Outcome::NothingValid);
    }
    print_inconclusive(&cur, o);
    if failed(&cur) {
        print_failures(&cur, false);
        return Ok(Outcome::GateFailed);
    }
    Ok(unfailed_outcome(&cur, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::metrics::StepStats;
    use crate::result::{BaselineRef, Change, Comparison, Delta, Verdict};
    use clap::Parser;

    fn row(verdict: Change) -> Delta {
        Delta {
            metric: "latency".into(),
            stat: "p(50)".into(),
            unit: "ms".into(),
            baseline: Some(100.0),
            current: Some(150.0),
            delta: Some(50.0),
            delta_pct: Some(50.0),
            allowed: 10.0,
            noise: Some(1.0),
            higher_is_worse: true,
            verdict,
            reason: (verdict == Change::Inconclusive).then(|| "host disturbed in current run: x".into()),
            current_runs: None,
        }
    }

    fn report(rows: &[Change], threshold_failed: bool) -> RunReport {
        let mut r = crate::report::fixture::one_step("s", "U", "chat", &StepStats::default(), 10.0);
        r.comparison = Some(Comparison {
            baseline: BaselineRef {
                file: "b.json".into(),
                started_at: String::new(),
                tool_version: String::new(),
                scenario_hash: String::new(),
                target: String::new(),
                latency_histogram: String::new(),
            },
            confidence: 0.99,
            rows: rows.iter().map(|v| row(*v)).collect(),
            warnings: Vec::new(),
        });
        if threshold_failed {
            r.thresholds.push(Verdict {
                threshold: "latency: p(95) < 100ms".into(),
                observed: Some(150.0),
                unit: "ms".into(),
                pass: false,
                aborted_run: false,
            });
        }
        r
    }

    /// The outcome as `run` and `compare` decide it: a failed gate first, then the inconclusive rows.
    fn outcome(r: &RunReport, on: Option<OnInconclusive>) -> u8 {
        let o = GateOutputs { on_inconclusive: on, ..GateOutputs::default() };
        if failed(r) { Outcome::GateFailed.exit_code() } else { unfailed_outcome(r, &o).exit_code() }
    }

    #[test]
    fn only_inconclusive_rows_exit_4_unless_the_flag_says_otherwise() {
        use Change::*;
        let unsure = report(&[Ok, Inconclusive, Noise], false);
        assert_eq!(outcome(&unsure, None), 4);
        assert_eq!(outcome(&unsure, Some(OnInconclusive::Fail)), 1);
        assert_eq!(outcome(&unsure, Some(OnInconclusive::Pass)), 0);
        for on in [None, Some(OnInconclusive::Pass)] {
            assert_eq!(outcome(&report(&[Inconclusive, Regression], false), on), 1, "a regression is still 1");
            assert_eq!(outcome(&report(&[Inconclusive], true), on), 1, "a breached threshold is still 1");
        }
        assert_eq!(outcome(&report(&[Ok, Noise, Improved], false), None), 0);
    }

    #[test]
    fn run_and_compare_take_on_inconclusive() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|c| c.command);
        match parse(&["run-load-test", "run", "s", "--on-inconclusive", "pass"]).unwrap() {
            Command::Run(a) => assert_eq!(a.gate.on_inconclusive, Some(OnInconclusive::Pass)),
            _ => unreachable!("run"),
        }
        match parse(&["run-load-test", "compare", "a", "b", "--on-inconclusive", "fail"]).unwrap() {
            Command::Compare(a) => assert_eq!(a.on_inconclusive, Some(OnInconclusive::Fail)),
            _ => unreachable!("compare"),
        }
        assert!(parse(&["run-load-test", "run", "s", "--on-inconclusive", "exit"]).is_err());
    }
}
