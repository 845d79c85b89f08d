//! Which report files a run writes: the `--format` values and `--ndjson`, checked before any load is sent.

use std::path::PathBuf;

use super::{ConfigError, flag};
use crate::cli::FormatArg;
use crate::report::ReportFormat;

#[derive(Debug, Clone, PartialEq)]
pub struct OutputFiles {
    /// Rendered into the report directory after the run; always holds `Json`.
    pub formats: Vec<ReportFormat>,
    /// `hlog/<user>.<step>.hlog` in the report directory, written each second.
    pub hlog: bool,
    /// One JSON object per second, written while the run goes on.
    pub ndjson: Option<PathBuf>,
}

/// The renderer a `--format` name stands for; `None` for `hlog`, which is recorded during the run.
fn renderer(f: FormatArg) -> Option<ReportFormat> {
    Some(match f {
        FormatArg::Json => ReportFormat::Json,
        FormatArg::Csv => ReportFormat::Csv,
        FormatArg::Html => ReportFormat::Html,
        FormatArg::Md => ReportFormat::Markdown,
        FormatArg::Junit => ReportFormat::Junit,
        FormatArg::Hlog => return None,
    })
}

/// The renderers named, in order and without repeats.
fn renderers(names: &[FormatArg]) -> Vec<ReportFormat> {
    let mut out = Vec::new();
    for f in names.iter().copied().filter_map(renderer) {
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// `report --format json,csv --format md`: the renderers named (clap refused `hlog` and unknown names).
pub fn report_formats(names: &[FormatArg]) -> Vec<ReportFormat> {
    renderers(names)
}

/// `run --format` and `--ndjson`: without `--format` the defaults; with it, what it names, `result.json` always.
pub fn resolve(names: &[FormatArg], ndjson: Option<PathBuf>) -> Result<OutputFiles, ConfigError> {
    let mut formats = vec![ReportFormat::Json];
    let chosen = if names.is_empty() { ReportFormat::DEFAULT.to_vec() } else { renderers(names) };
    formats.extend(chosen.into_iter().filter(|f| *f != ReportFormat::Json));
    let ndjson = match ndjson {
        Some(p) if p.is_dir() => {
            return Err(flag("--ndjson", format!("`{}` is a directory; give a file path", p.display())));
        }
        other => other,
    };
    Ok(OutputFiles { formats, hlog: names.contains(&FormatArg::Hlog), ndjson })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, value_error};
    use clap::Parser;

    /// `--format` values as `run` parses them.
    fn names(list: &[&str]) -> Vec<FormatArg> {
        let joined = list.join(",");
        match Cli::try_parse_from(["run-load-test", "run", "s", "--format", &joined]).unwrap().command {
            Command::Run(a) => a.formats,
            _ => unreachable!("run"),
        }
    }

    /// The one-line error of `command --format list`.
    fn refused(command: &str, list: &[&str]) -> String {
        let mut argv = vec!["run-load-test", command, "s"];
        for name in list {
            argv.extend(["--format", name]);
        }
        value_error(&Cli::try_parse_from(argv).unwrap_err()).unwrap()
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
        let e = refused("run", &["json", "pdf"]);
        assert_eq!(e, "--format: unknown format `pdf`; use json, csv, html, md, junit or hlog");
        let e = refused("report", &["hlog"]);
        assert!(e.starts_with("--format: `hlog`"), "{e}");
        let e = refused("report", &["xml"]);
        assert_eq!(e, "--format: unknown format `xml`; use json, csv, html, md, junit");
        let dir = tempfile::tempdir().unwrap();
        let e = resolve(&[], Some(dir.path().to_path_buf())).unwrap_err().to_string();
        assert!(e.starts_with("--ndjson"), "{e}");
    }
}
