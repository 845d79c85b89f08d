//! The run journal, `journal.ndjson` in the report directory: a header line describing the run, then one line
//! per second with what was recorded in it. Each line is written as its second ends, with one `write` call, so
//! a process killed outright (kill -9, the OOM killer) loses at most the last second: `report DIR` rebuilds the
//! report from what is there. Removed once `result.json` is written, which holds everything it did.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::WriteError;

pub const JOURNAL: &str = "journal.ndjson";

/// A journal that cannot be read back: unreadable, empty, or a bad line other than a torn last one. The cause
/// is part of the message, not a `source()`, so `{:#}` does not print it twice.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read `{}`: {error}", .path.display())]
    Unreadable { path: PathBuf, error: std::io::Error },
    #[error("`{}` is empty: the run died before it started", .path.display())]
    Empty { path: PathBuf },
    #[error("{}:1: not a run journal: {error}", .path.display())]
    NotAJournal { path: PathBuf, error: serde_json::Error },
    /// `line` counts from 1.
    #[error("{}:{line}: {error}", .path.display())]
    BadLine { path: PathBuf, line: usize, error: serde_json::Error },
}

pub struct JournalWriter {
    path: PathBuf,
    file: File,
    error: Option<WriteError>,
}

impl JournalWriter {
    /// Creates (truncates) `dir/journal.ndjson` with its header line.
    pub fn create(dir: &Path, header: &impl Serialize) -> Result<Self, WriteError> {
        let path = dir.join(JOURNAL);
        let file = File::create(&path).map_err(|error| WriteError::Write {
            flag: Some("--out"),
            path: path.clone(),
            error,
        })?;
        let mut w = JournalWriter { path, file, error: None };
        w.append(header);
        match w.error.take() {
            Some(e) => Err(e),
            None => Ok(w),
        }
    }

    /// Appends one line. A write error is kept and returned by `finish`; later lines are skipped (the run
    /// goes on, its report is written at the end as usual).
    pub fn append(&mut self, line: &impl Serialize) {
        if self.error.is_some() {
            return;
        }
        // Masked like every other report file: the journal is kept when the report cannot be written.
        let written = serde_json::to_string(line).map_err(std::io::Error::from).and_then(|json| {
            let mut buf = crate::redact::json(&json).into_owned().into_bytes();
            buf.push(b'\n');
            // Unbuffered: once this returns the line is the kernel's, and survives the process.
            self.file.write_all(&buf)
        });
        if let Err(error) = written {
            self.error = Some(WriteError::Write { flag: None, path: self.path.clone(), error });
        }
    }

    pub fn finish(&mut self) -> Result<(), WriteError> {
        self.error.take().map_or(Ok(()), Err)
    }
}

/// Removes the journal of `dir`, if any.
pub fn remove_journal(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(JOURNAL));
}

/// Reads a journal: its header and every complete line after it. A last line cut short by the kill is left
/// out; any other bad line is an error naming it.
pub fn read_journal<H: DeserializeOwned, L: DeserializeOwned>(path: &Path) -> Result<(H, Vec<L>), JournalError> {
    let unreadable = |error| JournalError::Unreadable { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(unreadable)?;
    let mut lines = BufReader::new(file).lines().enumerate().peekable();
    let header = match lines.next() {
        Some((_, l)) => serde_json::from_str(&l.map_err(unreadable)?)
            .map_err(|error| JournalError::NotAJournal { path: path.to_path_buf(), error })?,
        None => return Err(JournalError::Empty { path: path.to_path_buf() }),
    };
    let mut out = Vec::new();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(unreadable)?;
        match serde_json::from_str(&line) {
            Ok(l) => out.push(l),
            Err(_) if lines.peek().is_none() => break,
            Err(error) => return Err(JournalError::BadLine { path: path.to_path_buf(), line: i + 1, error }),
        }
    }
    Ok((header, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::create(dir.path(), &"head").unwrap();
        w.append(&1u32);
        w.append(&2u32);
        w.finish().unwrap();
        let path = dir.path().join(JOURNAL);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"cut").unwrap();
        let (h, l): (String, Vec<u32>) = read_journal(&path).unwrap();
        assert_eq!((h.as_str(), l), ("head", vec![1, 2]));
        f.write_all(b"\n3\n").unwrap();
        let e = read_journal::<String, u32>(&path).unwrap_err().to_string();
        assert!(e.ends_with(":4: expected value at line 1 column 2") || e.contains(":4:"), "{e}");
        remove_journal(dir.path());
        assert!(!path.exists());
    }
}
