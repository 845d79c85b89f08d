//! The gate flags `run` and `merge` share: what the results are compared with, and the CI files the verdict is
//! written to. Declared once, flattened into both, so the two commands cannot drift apart.

use std::path::PathBuf;

use clap::Args;

use super::OnInconclusive;

#[derive(Debug, Clone, Default, Args)]
pub struct GateArgs {
    /// Compare the results with a stored result (exit 1 on a regression beyond tolerance and noise, 4 when the
    /// host may explain it)
    #[arg(long, value_name = "PATH")]
    pub baseline: Option<PathBuf>,
    /// When the only failing comparisons with the baseline are inconclusive (the host may explain them): fail
    /// (exit 1) or pass (exit 0) [default: exit 4]
    #[arg(long, value_name = "fail|pass")]
    pub on_inconclusive: Option<OnInconclusive>,
    /// Store the results as a baseline (default path: baselines/<scenario>.json)
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub save_baseline: Option<Option<PathBuf>>,
    /// Write a JUnit XML report: one test case per threshold and per compared metric
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (fits $GITHUB_STEP_SUMMARY)
    #[arg(long, value_name = "PATH")]
    pub summary_md: Option<PathBuf>,
}
