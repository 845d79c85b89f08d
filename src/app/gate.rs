//! The CI end of a run: baseline files written and read, the `compare` command, JUnit and Markdown outputs, and
//! the one-line reasons a gate failed (printed even with `--quiet`, so a red CI job says why).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Outcome;
use crate::baseline;
use crate::config::GateOutputs;
use crate::report::{self, ReportFormat};
use crate::result::{self, RuleSet, RunReport, RunStatus};
use crate::scenario;

/// Whether a finished report fails the gate: a threshold or a regression.
pub fn failed(r: &RunReport) -> bool {
    r.thresholds.iter().any(|v| !v.pass) || r.comparison.as_ref().is_some_and(|c| c.failed())
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

/// `run-load-test compare BASE CURRENT`: judges a stored run against a stored baseline with the rules of
/// `scenario` (else those stored in CURRENT, else the built-in ones). CURRENT's own threshold verdicts count
/// too: the exit code says whether that run should pass a CI gate.
pub fn compare(current: &Path, scenario_file: Option<&Path>, o: &GateOutputs, quiet: bool) -> Result<Outcome> {
    let base_path = o.baseline.as_deref().map(result_path).unwrap_or_default();
    let cur_path = result_path(current);
    let base = baseline::load(&base_path)?;
    let mut cur = result::read_result(&cur_path, "result")?;
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
    if failed(&cur) {
        print_failures(&cur, false);
        return Ok(Outcome::GateFailed);
    }
    Ok(Outcome::Passed)
}
