//! Baselines: a stored `result.json` (versioned, with serialized histograms) read back and checked, and the
//! comparison of a run with it under the scenario's regression rules. Runs no load and renders nothing.

mod compare;
mod error;
mod rules;
mod stats;

use std::path::Path;

pub use compare::{BaselineRef, Change, Comparison, Delta, compare, stored_histogram};
pub use error::{CompareError, RuleError};
pub use rules::{DEFAULT_CONFIDENCE, Entry, Rule, RuleSet, parse_entry, rule_set};

use crate::metrics::catalog::{Metric, StoredStepHistograms};
use crate::metrics::decode_histogram;
use crate::report::{RunReport, SCHEMA_VERSION};

/// Where `run --save-baseline` writes without a path: `baselines/<scenario>.json`.
pub fn default_path(scenario: &str) -> std::path::PathBuf {
    let safe: String =
        scenario.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Path::new("baselines").join(format!("{safe}.json"))
}

/// Reads a stored result (a baseline, or any `result.json`) and checks every histogram decodes, so a corrupt
/// file is one clear error before any load is sent, never a wrong verdict after it.
pub fn load(path: &Path) -> Result<RunReport, String> {
    read_result(path, "baseline")
}

/// [`load`] for any stored result; `role` names it in messages ("baseline", "result").
pub fn read_result(path: &Path, role: &str) -> Result<RunReport, String> {
    let shown = format!("{role} {}", path.display());
    let fix = fix_for(role);
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read it ({e}); {fix}"))?;
    parse_result(path, role, &text)
}

/// [`read_result`] of text already read; `path` and `role` only name it in messages. Pure, so it can be fuzzed.
pub fn parse_result(path: &Path, role: &str, text: &str) -> Result<RunReport, String> {
    let shown = format!("{role} {}", path.display());
    let fix = fix_for(role);
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{shown}:{}:{}: not valid JSON ({e}); {fix}", e.line(), e.column().max(1)))?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("{shown}: not a run-load-test result (no `schema_version`); {fix}"))?;
    if version != u64::from(SCHEMA_VERSION) {
        let who = if version > u64::from(SCHEMA_VERSION) { "a newer" } else { "an older" };
        return Err(format!(
            "{shown}: written by {who} run-load-test (result schema {version}; this one reads {SCHEMA_VERSION}); {fix}"
        ));
    }
    let report: RunReport = serde_json::from_value(value)
        .map_err(|e| format!("{shown}: not a result this version can read ({e}); {fix}"))?;
    check_histograms(&report).map_err(|e| format!("{shown}: {e}; {fix}"))?;
    Ok(report)
}

fn fix_for(role: &str) -> &'static str {
    if role == "baseline" {
        "record a new one with `run-load-test run <scenario> --save-baseline`"
    } else {
        "give the result.json of a run (or its report directory)"
    }
}

fn check_histograms(r: &RunReport) -> Result<(), String> {
    let mut all: Vec<(String, &str)> = vec![
        ("the total latency histogram".into(), r.histograms.latency.as_str()),
        ("the total ttfb histogram".into(), r.histograms.ttfb.as_str()),
    ];
    for s in &r.steps {
        for m in Metric::step_histograms() {
            let e = s.histograms.encoded(m).unwrap_or_default();
            all.push((format!("step `{}` {m} histogram", s.name), e));
        }
    }
    for f in &r.flows {
        all.push((format!("flow `{}` latency histogram", f.user), f.latency_histogram.as_str()));
        all.push((format!("flow `{}` steps histogram", f.user), f.steps_histogram.as_str()));
    }
    for (what, e) in all {
        if !e.is_empty() {
            decode_histogram(e).map_err(|err| format!("{what} is corrupt ({err})"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
