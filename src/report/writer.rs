//! The only code that writes report files. The output directory is created before any load is sent, so a bad
//! `--out` fails in the first second, not after a long run.

use std::path::{Path, PathBuf};

use super::{ReportFormat, RunReport};

pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--out: cannot create `{}`: {e}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("--out: cannot write in `{}`: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes `result.json` and the files of `formats`; returns the path of `result.json`.
pub fn write_outputs(report: &RunReport, dir: &Path, formats: &[ReportFormat]) -> Result<PathBuf, String> {
    let mut all = vec![ReportFormat::Json];
    all.extend(formats.iter().filter(|f| **f != ReportFormat::Json));
    write_formats(report, dir, &all)?;
    Ok(dir.join("result.json"))
}

/// Writes the files of each format into `dir`; returns their paths.
pub fn write_formats(report: &RunReport, dir: &Path, formats: &[ReportFormat]) -> Result<Vec<PathBuf>, String> {
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
/// the parent directory. Every report file passes here, so here the run's secrets are masked (in a `.json`
/// file, in string values only: its keys are the schema's).
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let text = if path.extension().is_some_and(|e| e == "json") {
        crate::redact::json(text)
    } else {
        crate::redact::text(text)
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text.as_bytes()).map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
