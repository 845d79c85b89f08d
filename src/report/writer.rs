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

/// Writes `result.json` and `report.html` beside it; returns the path of `result.json`.
pub fn write_outputs(report: &RunReport, dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("result.json");
    write_file(&path, &ReportFormat::Json.render(report))?;
    write_file(&dir.join("report.html"), &ReportFormat::Html.render(report))?;
    Ok(path)
}

/// Writes a file through a temporary one beside it, so a reader (or a CI step) never sees half of it; creates
/// the parent directory.
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}
