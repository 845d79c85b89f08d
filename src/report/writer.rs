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

/// Writes `result.json` (through a temporary file, so a reader never sees half a report) and returns its path.
pub fn write_outputs(report: &RunReport, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let path = dir.join("result.json");
    let tmp = dir.join(".result.json.tmp");
    std::fs::write(&tmp, ReportFormat::Json.render(report))
        .map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}
