//! Which report files a run writes: `--format` names and `--ndjson`, checked before any load is sent.

use std::path::PathBuf;

use super::{ConfigError, flag};
use crate::report::ReportFormat;

/// The name of the live HdrHistogram interval logs in `--format` (written during `run`, not rendered from a
/// report, so `report` cannot make them).
pub const HLOG: &str = "hlog";

#[derive(Debug, Clone, PartialEq)]
pub struct OutputFiles {
    /// Rendered into the report directory after the run; always holds `Json`.
    pub formats: Vec<ReportFormat>,
    /// `hlog/<user>.<step>.hlog` in the report directory, written each second.
    pub hlog: bool,
    /// One JSON object per second, written while the run goes on.
    pub ndjson: Option<PathBuf>,
}

/// The renderers named, in order and without repeats, and whether `hlog` was among them (only `run`
/// can write it).
fn parse(names: &[String], run: bool) -> Result<(Vec<ReportFormat>, bool), ConfigError> {
    let mut out = Vec::new();
    let mut hlog = false;
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if name.eq_ignore_ascii_case(HLOG) {
            if !run {
                return Err(flag(
                    "--format",
                    "`hlog` is recorded second by second during `run --format hlog`; a stored result cannot make it",
                ));
            }
            hlog = true;
            continue;
        }
        let f = ReportFormat::from_name(name).ok_or_else(|| {
            let hlog = if run { format!(" or {HLOG}") } else { String::new() };
            flag("--format", format!("unknown format `{name}`; use {}{hlog}", ReportFormat::names()))
        })?;
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok((out, hlog))
}

/// `report --format json,csv --format md`: the renderers named.
pub fn report_formats(names: &[String]) -> Result<Vec<ReportFormat>, ConfigError> {
    parse(names, false).map(|(f, _)| f)
}

/// `run --format` and `--ndjson`: without `--format` the defaults; with it, what it names, `result.json` always.
pub fn resolve(names: &[String], ndjson: Option<PathBuf>) -> Result<OutputFiles, ConfigError> {
    let (named, hlog) = parse(names, true)?;
    let mut formats = vec![ReportFormat::Json];
    let chosen = if names.is_empty() { ReportFormat::DEFAULT.to_vec() } else { named };
    formats.extend(chosen.into_iter().filter(|f| *f != ReportFormat::Json));
    let ndjson = match ndjson {
        Some(p) if p.is_dir() => {
            return Err(flag("--ndjson", format!("`{}` is a directory; give a file path", p.display())));
        }
        other => other,
    };
    Ok(OutputFiles { formats, hlog, ndjson })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_are_json_html_and_csv() {
        let o = resolve(&[], None).unwrap();
        assert_eq!(o.formats, [ReportFormat::Json, ReportFormat::Html, ReportFormat::Csv]);
        assert!(!o.hlog && o.ndjson.is_none());
    }

    #[test]
    fn named_formats_replace_the_defaults_but_json_stays() {
        let o = resolve(&names(&["md", "junit", "MD", "hlog"]), None).unwrap();
        assert_eq!(o.formats, [ReportFormat::Json, ReportFormat::Markdown, ReportFormat::Junit]);
        assert!(o.hlog);
        let o = resolve(&names(&["csv", "json"]), None).unwrap();
        assert_eq!(o.formats, [ReportFormat::Json, ReportFormat::Csv]);
    }

    #[test]
    fn bad_names_name_the_flag() {
        let e = resolve(&names(&["json", "pdf"]), None).unwrap_err().to_string();
        assert_eq!(e, "--format: unknown format `pdf`; use json, csv, html, md, junit or hlog");
        let e = report_formats(&names(&["hlog"])).unwrap_err().to_string();
        assert!(e.starts_with("--format: `hlog`"), "{e}");
        let e = report_formats(&names(&["xml"])).unwrap_err().to_string();
        assert_eq!(e, "--format: unknown format `xml`; use json, csv, html, md, junit");
        let dir = tempfile::tempdir().unwrap();
        let e = resolve(&[], Some(dir.path().to_path_buf())).unwrap_err().to_string();
        assert!(e.starts_with("--ndjson"), "{e}");
    }
}
