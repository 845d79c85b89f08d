//! Everything that shows a `RunReport` (which lives in `result`): renderers (pure functions of the report), the
//! writer (the only code that writes report files) and the progress display. The only module that prints; it
//! computes no statistics.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod csv;
#[cfg(test)]
mod escape_tests;
mod exchange;
#[cfg(test)]
pub(crate) mod fixture;
mod format;
mod gate;
mod html;
mod journal;
mod junit;
mod live;
mod markdown;
mod progress;
pub mod prometheus;
mod repeats;
mod rows;
#[cfg(test)]
mod snapshot_tests;
mod table;
mod writer;

pub use exchange::{HTTP_DEBUG_LOG, render_exchange, render_http_debug, render_try_summary};
pub use format::fmt_observed;
pub use gate::{describe_inconclusive, describe_regression, render_comparison};
pub use journal::{JOURNAL, JournalError, JournalWriter, read_journal, remove_journal};
pub use live::{HlogWriter, LivePoint, LiveStep, NdjsonWriter};
pub use progress::ProgressDisplay;
pub use rows::host_disturbed_text;
pub use table::{ListRow, render_list, render_summary};
pub use writer::{WriteError, check_writable, prepare_dir, write_file, write_formats, write_outputs};

// Everything printed goes through `printable`: secrets masked, and control characters from a server made
// visible text, so an echoed escape sequence cannot drive the terminal.
use crate::redact::printable;
use crate::result::RunReport;

/// Closed set of output formats; each is a pure function of the report. Adding one (HTML) is a variant, its
/// name in `NAMES`, and an arm in `render` and `files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Table,
    Junit,
    Markdown,
    /// Locust's three CSV files.
    Csv,
    /// `report.html`: one self-contained page with SVG plots.
    Html,
}

impl ReportFormat {
    /// What `--format` accepts, by name (`table` is what the terminal shows, not a file format).
    pub const NAMES: &[(&str, ReportFormat)] = &[
        ("json", ReportFormat::Json),
        ("csv", ReportFormat::Csv),
        ("html", ReportFormat::Html),
        ("md", ReportFormat::Markdown),
        ("markdown", ReportFormat::Markdown),
        ("junit", ReportFormat::Junit),
    ];

    /// What `run` writes without `--format` (`result.json` is always written).
    pub const DEFAULT: &[ReportFormat] = &[ReportFormat::Json, ReportFormat::Html, ReportFormat::Csv];

    pub fn from_name(name: &str) -> Option<ReportFormat> {
        Self::NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.trim())).map(|(_, f)| *f)
    }

    /// `json, csv, md, junit`: for messages.
    pub fn names() -> String {
        let mut seen: Vec<ReportFormat> = Vec::new();
        let mut names = Vec::new();
        for (n, f) in Self::NAMES {
            if !seen.contains(f) {
                seen.push(*f);
                names.push(*n);
            }
        }
        names.join(", ")
    }

    /// The format as one text (for stdout); CSV gives `stats.csv`, the file Locust users open first.
    pub fn render(self, r: &RunReport) -> String {
        match self {
            ReportFormat::Json => {
                reuse(serde_json::to_string_pretty(r).unwrap_or_default() + "\n", crate::redact::escape_json_controls)
            }
            // Server text (error messages, served models) may hold escape sequences; in these plain-text
            // formats every control character but newline and tab is shown as text. CSV and HTML escape per
            // field (`csv`, `html::esc`), JSON by its own rules.
            ReportFormat::Table => visible(render_summary(r)),
            ReportFormat::Junit => visible(junit::render(r)),
            ReportFormat::Markdown => visible(markdown::render(r)),
            ReportFormat::Csv => csv::render(r).stats,
            ReportFormat::Html => html::render(r),
        }
    }

    /// The files this format makes in a report directory: (file name, contents).
    pub fn files(self, r: &RunReport) -> Vec<(&'static str, String)> {
        match self {
            ReportFormat::Csv => {
                let c = csv::render(r);
                vec![("stats.csv", c.stats), ("stats_history.csv", c.stats_history), ("failures.csv", c.failures)]
            }
            ReportFormat::Json => vec![("result.json", self.render(r))],
            ReportFormat::Table => vec![("summary.txt", self.render(r))],
            ReportFormat::Junit => vec![("junit.xml", self.render(r))],
            ReportFormat::Markdown => vec![("summary.md", self.render(r))],
            ReportFormat::Html => vec![("report.html", self.render(r))],
        }
    }
}

/// Each step's warnings as `warning: user › step: text`, for the summary table and the HTML footer.
fn step_warnings(r: &RunReport) -> impl Iterator<Item = String> + '_ {
    r.steps.iter().flat_map(|s| s.stats.warnings.iter().map(move |w| format!("warning: {} › {}: {w}", s.user, s.name)))
}

/// `text` through `f`, keeping `text` itself when `f` changed nothing (no copy).
fn reuse(text: String, f: impl for<'a> FnOnce(&'a str) -> std::borrow::Cow<'a, str>) -> String {
    match f(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(changed) => changed,
    }
}

/// Control characters as visible text (`redact::escape_control`), without a copy when there is none.
fn visible(text: String) -> String {
    reuse(text, crate::redact::escape_control)
}

/// `redact::escape_line` (one line per cell), without a copy when nothing changes.
fn one_line(text: String) -> String {
    reuse(text, crate::redact::escape_line)
}

/// Prints an error line for a failed command, the way every command reports failure. A stderr gone away (the
/// terminal closed: SIGHUP) must not turn a stopped run into a panic.
pub fn print_error(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "error: {}", printable(message));
}

/// Writes to stdout, ignoring a closed pipe (`run-load-test list | head` must not panic).
pub fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(printable(text).as_bytes());
}

pub fn print_note(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", printable(text));
}
