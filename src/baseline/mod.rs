//! Baselines: the `[regression]` grammar and its TOML types, and the comparison of a run with a stored result
//! under those rules, noise statistics included. Runs no load and renders nothing.

mod compare;
mod error;
mod host;
mod rules;
mod stats;
mod table;
mod windows;

use std::path::Path;

pub use compare::{compare, runs_of, stored_histogram};
pub use error::{CompareError, RuleError};
pub use rules::{Entry, parse_entry, rule_set};
pub use table::{Amount, Percent, RegressionEntry, RegressionTable, RuleSpec};

use crate::result::{ReadError, RunReport, read_result};

/// Where `run --save-baseline` writes without a path: `baselines/<scenario>.json`.
pub fn default_path(scenario: &str) -> std::path::PathBuf {
    let safe: String =
        scenario.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Path::new("baselines").join(format!("{safe}.json"))
}

/// Reads a stored baseline: [`crate::result::read_result`] named `baseline` in its messages.
pub fn load(path: &Path) -> Result<RunReport, ReadError> {
    read_result(path, "baseline")
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
