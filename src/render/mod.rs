//! Engine integrations, rendered: a scenario and a few options become the manifests or script an existing
//! cluster engine (Kubernetes, Slurm) runs the shards with. Pure functions from text to text: nothing here reads
//! a file, the clock or the environment, so the same inputs always render the same output.

pub mod k8s;
pub mod slurm;

use std::time::{Duration, SystemTime};

/// The most shards a render accepts: beyond that a run is better split into several jobs.
pub const MAX_SHARDS: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("--shards {0}: must be from 1 to {MAX_SHARDS}")]
    Shards(u64),
    #[error("--{flag} `{value}`: {problem}")]
    Flag { flag: &'static str, value: String, problem: &'static str },
    #[error(
        "`${{env:{0}}}` in the scenario: `{0}` cannot be a Kubernetes Secret key (letters, digits, `-`, `_`, `.`); rename the variable"
    )]
    EnvName(String),
    #[error(
        "the scenario and its data files take {0} bytes, more than a ConfigMap holds (1 MiB); put large feeder files in the image or on the volume"
    )]
    TooLarge(usize),
    #[error("cannot write the YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// The scenario as the renderers see it: its text and the data files it names, already read by the caller.
#[derive(Debug, Clone)]
pub struct ScenarioFiles {
    /// The scenario's name (`name` in the file, else the file stem).
    pub name: String,
    /// The path a shard is given on a shared file system (Slurm), as the user located it.
    pub path: String,
    /// The file's own name, e.g. `smoke.toml`: the name it gets in the pod.
    pub file_name: String,
    pub text: String,
    /// Feeder files relative to the scenario's directory, which is where the loader resolves them.
    pub data: Vec<DataFile>,
    /// Files the scenario names that are not carried (absolute paths, paths leaving the scenario's directory).
    pub not_carried: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Relative, without `..`: safe as a path inside the mounted directory.
    pub rel_path: String,
    pub text: String,
}

/// What every shard is run with besides its identity and output directory.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub target: Option<String>,
    pub vars: Vec<(String, String)>,
}

impl RunOptions {
    /// `run` flags after the scenario, each value one argument (never joined into a shell line).
    fn flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.target {
            out.extend(["--target".to_string(), t.clone()]);
        }
        for (k, v) in &self.vars {
            out.extend(["--var".to_string(), format!("{k}={v}")]);
        }
        out
    }
}

/// A password in `--target` would be written into a manifest or script that is meant to be committed and
/// shared; credentials go through the scenario's `${env:NAME}`, which the renderers wire by name.
pub(crate) fn check_target(run: &RunOptions) -> Result<(), RenderError> {
    match &run.target {
        Some(t) if url::Url::parse(t).is_ok_and(|u| u.password().is_some()) => Err(RenderError::Flag {
            flag: "target",
            value: "(a URL with a password)".to_string(),
            problem: "a password would be written into the output; send it as a header from ${env:NAME} in the scenario",
        }),
        _ => Ok(()),
    }
}

pub(crate) fn check_shards(n: u64) -> Result<u64, RenderError> {
    if (1..=MAX_SHARDS).contains(&n) { Ok(n) } else { Err(RenderError::Shards(n)) }
}

/// A DNS-1035 label made of `s`: lowercase letters, digits and single `-`, at most `max` characters, starting
/// with a letter. Scenario names are free text; object names are not.
pub(crate) fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.truncate(max);
    let out = out.trim_matches('-').to_string();
    match out.chars().next() {
        None => "scenario".to_string(),
        Some(c) if !c.is_ascii_alphabetic() => format!("s-{out}").chars().take(max).collect(),
        Some(_) => out,
    }
}

/// `20261203T021428Z`-style compact UTC stamp: unique per second, safe in object names.
pub(crate) fn compact_utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string().chars().filter(char::is_ascii_digit).collect()
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A comment line's text with control characters escaped, so no user value can end the comment early.
pub(crate) fn comment_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests;
