//! Finding, reading and parsing scenario files; every failure becomes one `path:line:col: message` line.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Scenario, validate};

/// A parsed and validated scenario with what reports need to identify it.
#[derive(Debug)]
pub struct LoadedScenario {
    pub scenario: Scenario,
    /// `name` from the file, else the file stem.
    pub name: String,
    pub path: PathBuf,
    pub source: String,
    /// `sha256:<hex>` of the file bytes (never of expanded secrets).
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.path.display(), self.message),
            _ => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    pub fn at(path: &Path, src: &str, offset: Option<usize>, message: impl Into<String>) -> Self {
        let (line, col) = match offset {
            Some(o) => {
                let (l, c) = line_col(src, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ScenarioError { path: path.to_path_buf(), line, col, message: message.into() }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `scenarios/<name>.toml` for a bare name, the path itself for anything that looks like a path.
pub fn locate_scenario(name_or_path: &str, dir: &Path) -> Result<PathBuf, ScenarioError> {
    let looks_like_path = name_or_path.ends_with(".toml") || name_or_path.contains(['/', '\\']);
    let path = if looks_like_path { PathBuf::from(name_or_path) } else { dir.join(format!("{name_or_path}.toml")) };
    if path.is_file() {
        return Ok(path);
    }
    let hint = if looks_like_path {
        "check the path".to_string()
    } else {
        format!("`run-load-test list --scenarios-dir {}` shows the available scenarios", dir.display())
    };
    Err(ScenarioError { path, line: None, col: None, message: format!("scenario `{name_or_path}` not found; {hint}") })
}

pub fn load(path: &Path) -> Result<LoadedScenario, ScenarioError> {
    let source = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        path: path.to_path_buf(),
        line: None,
        col: None,
        message: format!("cannot read the scenario file: {e}"),
    })?;
    parse(path, source)
}

/// Parses and validates scenario text; `path` is only used in messages and the report.
pub fn parse(path: &Path, source: String) -> Result<LoadedScenario, ScenarioError> {
    let scenario: Scenario = toml::from_str(&source).map_err(|e| parse_error(path, &source, &e))?;
    validate::validate(&scenario, path, &source)?;
    let name = scenario
        .name
        .clone()
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let hash = format!("sha256:{}", hex(&Sha256::digest(source.as_bytes())));
    Ok(LoadedScenario { scenario, name, path: path.to_path_buf(), source, hash })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_error(path: &Path, src: &str, e: &toml::de::Error) -> ScenarioError {
    let raw = e.message().lines().next().unwrap_or("invalid TOML").trim();
    let mut message = if raw.contains("untagged enum ThinkTime") {
        "think_time must be a duration like \"1s\" or a table like { min = \"200ms\", max = \"1s\" }".to_string()
    } else if raw.contains("untagged enum Capture") {
        "a capture is a JSON path like \"$.id\" or a table { path = \"$.x\", append = true } / { value = ..., append = true }".to_string()
    } else if raw.contains("untagged enum StatusExpect") {
        "expect.status must be a status code like 200 or a list like [200, 201]".to_string()
    } else {
        raw.to_string()
    };
    let offset = e.span().map(|s| s.start);
    if let Some(key) = offset.and_then(|o| key_at(src, o)) {
        if !message.contains(&format!("`{key}`")) {
            message = format!("{message} (at `{key}`)");
        }
        // "expected i64" alone does not say what the key accepts.
        if let Some(range) = crate::limits::describe_key(&key).filter(|_| raw.starts_with("invalid")) {
            message = format!("{message}; it must be {range}");
        }
    }
    ScenarioError::at(path, src, offset, message)
}

/// Best-effort `table.key` for the byte offset of a parse error, so the message names what to fix.
fn key_at(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let before = src.get(line_start..offset)?;
    let key = match before.rfind('=') {
        Some(eq) => {
            let lhs = before[..eq].trim_end();
            let start = lhs
                .char_indices()
                .rev()
                .find(|(_, c)| *c == '{' || *c == ',' || c.is_whitespace())
                .map_or(0, |(i, c)| i + c.len_utf8());
            lhs.get(start..)?.trim_matches('"').to_string()
        }
        None => {
            let line_end = src.get(offset..)?.find('\n').map_or(src.len(), |i| offset + i);
            let line = src.get(line_start..line_end)?;
            line.split('=').next()?.trim().trim_matches('"').to_string()
        }
    };
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = src.get(..line_start)?.lines().rev().find_map(|l| {
        let l = l.trim();
        l.starts_with('[').then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

/// Every `*.toml` in `dir`, sorted by file name, each loaded or with its one-line error.
pub fn list_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<LoadedScenario, ScenarioError>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths.into_iter().map(|p| (p.clone(), load(&p))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STRESS: &str = include_str!("../../scenarios/stress.toml");
    const RICH: &str = r#"name = "rich"
tags = ["a"]
[load]
users = 3
spawn_rate = 1.5
iterations = 10
[defaults]
think_time = { min = "1ms", max = "2ms" }
headers = { x-key = "${env:RLT_NOPE:-k}" }
[vars]
model = "m"
[mock]
error_rate = 0.1
[[user]]
name = "A"
weight = 2
  [[user.step]]
  name = "s1"
  post = "/v1/chat/completions"
  json = { model = "{{ model }}", messages = [{ role = "user", content = "{{ user_id }}" }] }
  expect = { status = [200, 201], json_path = ["$.id"] }
  capture = { cid = "$.id" }
  [[user.step]]
  name = "s2"
  method = "GET"
  path = "/x/{{ cid }}"
  query = { q = "{{ iteration }}" }
  on_failure = "continue"
[thresholds]
"latency{step:s1}" = ["p(95) < 1s"]
"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any edit of a real scenario parses or fails with a located message; it never panics.
        #[test]
        fn mutated_scenarios_never_panic(rich: bool, at in 0usize..2000, cut in 0usize..40, insert in "[\\[\\]{}=\"'.,:$ a-z0-9{}\n-]{0,12}") {
            let sample = if rich { RICH } else { STRESS };
            let at = at % sample.len();
            let at = (0..=at).rev().find(|&i| sample.is_char_boundary(i)).unwrap_or(0);
            let end = (at + cut..=sample.len()).find(|&i| sample.is_char_boundary(i)).unwrap_or(sample.len());
            let text = format!("{}{}{}", &sample[..at], insert, &sample[end..]);
            if let Err(e) = parse(Path::new("m.toml"), text) {
                prop_assert!(e.to_string().starts_with("m.toml"));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse(Path::new("a.toml"), text);
        }
    }

    #[test]
    fn the_rich_sample_is_valid() {
        parse(Path::new("rich.toml"), RICH.to_string()).unwrap();
    }

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 11), (2, 6));
    }

    #[test]
    fn key_at_names_table_and_key() {
        let src = "[load]\nusers = -5\n";
        assert_eq!(key_at(src, src.find("-5").unwrap()).as_deref(), Some("load.users"));
        let inline = "[[user.step]]\nexpect = { status = \"x\" }\n";
        assert_eq!(key_at(inline, inline.find("\"x\"").unwrap()).as_deref(), Some("user.step.status"));
    }
}
