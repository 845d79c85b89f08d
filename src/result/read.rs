//! Reading a stored result (a baseline, or any `result.json`) back: the schema version checked first and every
//! histogram decoded, so a corrupt file is one clear error before any load is sent, never a wrong verdict after.

use std::fmt;
use std::path::{Path, PathBuf};

use super::report::{OLDEST_SCHEMA, RunReport, SCHEMA_VERSION};
use crate::metrics::catalog::{Metric, StoredStepHistograms};
use crate::metrics::decode_histogram;

/// Which file failed to read, as messages name it: `baseline baselines/chat.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// `baseline` or `result`: names the file and picks the fix a message suggests.
    pub role: String,
    pub path: PathBuf,
}

impl StoredFile {
    fn new(path: &Path, role: &str) -> Self {
        StoredFile { role: role.to_string(), path: path.to_path_buf() }
    }

    /// What to do about a file that cannot be used.
    pub fn fix(&self) -> &'static str {
        if self.role == "baseline" {
            "record a new one with `run-load-test run <scenario> --save-baseline`"
        } else {
            "give the result.json of a run (or its report directory)"
        }
    }
}

impl fmt::Display for StoredFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.path.display())
    }
}

/// Why a stored result cannot be used. The variants separate a file that is not there (or not readable) from one
/// that is corrupt and from one of another schema version; each message is one line naming the file and the fix.
/// The cause is part of the message, not a `source()`, so `{:#}` does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist.
    #[error("{file}: cannot read it ({error}); {}", .file.fix())]
    Missing { file: StoredFile, error: std::io::Error },
    /// The file exists but could not be read (permissions, a directory, not UTF-8...).
    #[error("{file}: cannot read it ({error}); {}", .file.fix())]
    Unreadable { file: StoredFile, error: std::io::Error },
    #[error("{file}:{line}:{column}: not valid JSON ({error}); {}", .file.fix())]
    NotJson { file: StoredFile, line: usize, column: usize, error: serde_json::Error },
    /// Valid JSON without a `schema_version`: some other file.
    #[error("{file}: not a run-load-test result (no `schema_version`); {}", .file.fix())]
    NotAResult { file: StoredFile },
    /// Written by another version of the tool, with another result schema.
    #[error(
        "{file}: written by {} run-load-test (result schema {found}; this one reads {OLDEST_SCHEMA} to {SCHEMA_VERSION}); {}",
        newer_or_older(.found),
        .file.fix()
    )]
    Version { file: StoredFile, found: u64 },
    /// The right schema version, but the content does not fit it.
    #[error("{file}: not a result this version can read ({error}); {}", .file.fix())]
    Invalid { file: StoredFile, error: serde_json::Error },
    /// A histogram does not decode.
    #[error("{file}: {what} is corrupt ({detail}); {}", .file.fix())]
    CorruptHistogram { file: StoredFile, what: String, detail: String },
}

impl ReadError {
    /// The file is there and readable, but not a result this version can use (any variant but the I/O ones).
    pub fn is_corrupt(&self) -> bool {
        !matches!(self, ReadError::Missing { .. } | ReadError::Unreadable { .. })
    }

    pub fn file(&self) -> &StoredFile {
        match self {
            ReadError::Missing { file, .. }
            | ReadError::Unreadable { file, .. }
            | ReadError::NotJson { file, .. }
            | ReadError::NotAResult { file }
            | ReadError::Version { file, .. }
            | ReadError::Invalid { file, .. }
            | ReadError::CorruptHistogram { file, .. } => file,
        }
    }
}

fn newer_or_older(found: &u64) -> &'static str {
    if *found > u64::from(SCHEMA_VERSION) { "a newer" } else { "an older" }
}

/// Reads a stored result; `role` names it in messages ("baseline", "result").
pub fn read_result(path: &Path, role: &str) -> Result<RunReport, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        let file = StoredFile::new(path, role);
        match error.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing { file, error },
            _ => ReadError::Unreadable { file, error },
        }
    })?;
    parse_result(path, role, &text)
}

/// [`read_result`] of text already read; `path` and `role` only name it in messages. Pure, so it can be fuzzed.
pub fn parse_result(path: &Path, role: &str, text: &str) -> Result<RunReport, ReadError> {
    let file = || StoredFile::new(path, role);
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| ReadError::NotJson {
        file: file(),
        line: error.line(),
        column: error.column().max(1),
        error,
    })?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ReadError::NotAResult { file: file() })?;
    if !(u64::from(OLDEST_SCHEMA)..=u64::from(SCHEMA_VERSION)).contains(&found) {
        return Err(ReadError::Version { file: file(), found });
    }
    let report: RunReport =
        serde_json::from_value(value).map_err(|error| ReadError::Invalid { file: file(), error })?;
    check_histograms(&report).map_err(|(what, detail)| ReadError::CorruptHistogram { file: file(), what, detail })?;
    Ok(report)
}

/// The first histogram that does not decode: (what it is, why).
fn check_histograms(r: &RunReport) -> Result<(), (String, String)> {
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
            decode_histogram(e).map_err(|err| (what, err.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_told_from_a_corrupt_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_result(&dir.path().join("gone.json"), "baseline").unwrap_err();
        assert!(matches!(e, ReadError::Missing { .. }) && !e.is_corrupt(), "{e:?}");
        assert_eq!(e.file().role, "baseline");
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "{").unwrap();
        let e = read_result(&p, "result").unwrap_err();
        assert!(matches!(e, ReadError::NotJson { .. }) && e.is_corrupt(), "{e:?}");
        let e = parse_result(&p, "result", "{\"schema_version\": 7}").unwrap_err();
        assert!(matches!(e, ReadError::Version { found: 7, .. }), "{e:?}");
        assert!(
            e.to_string().contains("written by a newer run-load-test (result schema 7; this one reads 1 to 5)"),
            "{e}"
        );
    }

    #[test]
    fn a_schema_1_baseline_still_reads_and_schema_0_does_not() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema1-smoke.json"));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.contains("\"schema_version\": 1"),
            "a baseline written with schema 1 (the one committed until 2026-12-03)"
        );
        let r = parse_result(path, "baseline", &text).unwrap();
        assert!(r.steps.iter().all(|s| s.histograms.stream_tail.is_empty()));
        assert!(r.windows.is_empty(), "a result written before windows has none: its comparison uses the series");
        let e = parse_result(path, "baseline", &text.replacen("\"schema_version\": 1", "\"schema_version\": 0", 1));
        let e = e.unwrap_err().to_string();
        assert!(e.contains("written by an older run-load-test (result schema 0; this one reads 1 to 5)"), "{e}");
    }
}
