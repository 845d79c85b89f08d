//! The only code that writes report files. The output directory is created before any load is sent, so a bad
//! `--out` fails in the first second, not after a long run.

use std::io;
use std::path::{Path, PathBuf};

use super::ReportFormat;
use crate::result::RunReport;

/// A report file (or a live output, or the journal) that could not be written. `flag` names the option the path
/// came from, first in the message (`--out: cannot create ...`). The I/O error is part of the message and not a
/// `source()`, so `{:#}` (which prints the chain) does not print it twice.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}cannot create `{}`: {error}", prefix(*.flag), .path.display())]
    CreateDir { flag: Option<&'static str>, path: PathBuf, error: io::Error },
    #[error("{}cannot write `{}`: {error}", prefix(*.flag), .path.display())]
    Write { flag: Option<&'static str>, path: PathBuf, error: io::Error },
    /// A directory that exists but takes no new file (or a file in it that failed part-way).
    #[error("{}cannot write in `{}`: {error}", prefix(*.flag), .path.display())]
    WriteIn { flag: Option<&'static str>, path: PathBuf, error: io::Error },
    #[error("`{}` is a directory; give a file path", .path.display())]
    IsDirectory { path: PathBuf },
}

fn prefix(flag: Option<&'static str>) -> String {
    flag.map_or(String::new(), |f| format!("{f}: "))
}

pub fn prepare_dir(dir: &Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|error| WriteError::CreateDir {
        flag: Some("--out"),
        path: dir.to_path_buf(),
        error,
    })?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|error| WriteError::WriteIn {
        flag: Some("--out"),
        path: dir.to_path_buf(),
        error,
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes `result.json` and the files of `formats`; returns the path of `result.json`.
pub fn write_outputs(report: &RunReport, dir: &Path, formats: &[ReportFormat]) -> Result<PathBuf, WriteError> {
    let mut all = vec![ReportFormat::Json];
    all.extend(formats.iter().filter(|f| **f != ReportFormat::Json));
    write_formats(report, dir, &all)?;
    Ok(dir.join("result.json"))
}

/// Writes the files of each format into `dir`; returns their paths.
pub fn write_formats(report: &RunReport, dir: &Path, formats: &[ReportFormat]) -> Result<Vec<PathBuf>, WriteError> {
    let mut written = Vec::new();
    for f in formats {
        for (name, text) in f.files(report) {
            let path = dir.join(name);
            write_file(&path, &text)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Writes a file through a temporary one beside it, so a reader (or a CI step) never sees half of it; creates
/// the parent directory. On any failure (a full disk) the temporary file is removed. Every report file passes
/// here, so here the run's secrets are masked (in a `.json` file, in string values only: its keys are the
/// schema's).
pub fn write_file(path: &Path, text: &str) -> Result<(), WriteError> {
    let text = if path.extension().is_some_and(|e| e == "json") {
        crate::redact::json(text)
    } else {
        crate::redact::text(text)
    };
    let (dir, tmp) = temporary(path);
    create_parent(dir)?;
    let written = std::fs::write(&tmp, text.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|error| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::Write { flag: None, path: path.to_path_buf(), error }
    })
}

/// Whether `write_file` will be able to write `path`: its directory exists or can be created and takes a new
/// file, and `path` is not a directory. Tried before a run so a bad path fails in its first second.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    if path.is_dir() {
        return Err(WriteError::IsDirectory { path: path.to_path_buf() });
    }
    let (dir, tmp) = temporary(path);
    create_parent(dir)?;
    std::fs::write(&tmp, b"").map_err(|error| WriteError::Write { flag: None, path: path.to_path_buf(), error })?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

fn create_parent(dir: &Path) -> Result<(), WriteError> {
    std::fs::create_dir_all(dir).map_err(|error| WriteError::CreateDir { flag: None, path: dir.to_path_buf(), error })
}

/// The directory of `path` and the temporary file written there first.
fn temporary(path: &Path) -> (&Path, PathBuf) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    (dir, dir.join(format!(".{name}.tmp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|n| n.ends_with(".tmp")).collect()
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the temporary file is written, the rename fails.
        let target = dir.path().join("report.html");
        std::fs::create_dir(&target).unwrap();
        let e = write_file(&target, "x").unwrap_err().to_string();
        assert!(e.starts_with("cannot write") && e.contains("report.html"), "{e}");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The temporary file's name leads to /dev/full: every write fails with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join(".result.json.tmp")).unwrap();
        let e = write_file(&dir.path().join("result.json"), "{}").unwrap_err().to_string();
        assert!(e.contains("result.json"), "{e}");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        assert!(!dir.path().join("result.json").exists());
    }

    #[test]
    fn unwritable_paths_are_found_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        // Running as root, permission bits stop nothing: a regular file as a parent directory does.
        let e = check_writable(&file.join("junit.xml")).unwrap_err().to_string();
        assert!(e.starts_with("cannot create"), "{e}");
        assert!(check_writable(dir.path()).unwrap_err().to_string().contains("is a directory"));
        check_writable(&dir.path().join("new/sub/junit.xml")).unwrap();
        assert!(leftovers(&dir.path().join("new/sub")).is_empty());
    }
}
