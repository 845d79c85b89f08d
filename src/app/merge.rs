//! `run-load-test merge DIR...`: reads each shard's result.json and kept seconds, has `merge` add them, then
//! judges and publishes the one report as `run` does: baseline comparison, every output file, one exit code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{Outcome, gate};
use crate::baseline;
use crate::cli::MergeArgs;
use crate::config::{self, GateOutputs};
use crate::merge::{self, Counted, Options, Seconds, SecondsError, SecondsSource, ShardInput, Unreadable};
use crate::metrics::Recorder;
use crate::report::{self, ReportFormat};
use crate::result::journal::{Header, SHARD_SECONDS, Second};
use crate::result::{self, RunReport, RunStatus};

/// Merges the shards, writes the outputs and returns the outcome (exit 2 through the error for a refused set).
pub fn merge_shards(a: MergeArgs) -> Result<Outcome> {
    let outputs = GateOutputs {
        baseline: a.gate.baseline.clone(),
        on_inconclusive: a.gate.on_inconclusive,
        save_baseline: None,
        junit: a.gate.junit.clone(),
        summary_md: a.gate.summary_md.clone(),
    };
    let pushgateway = a.pushgateway.as_deref().map(|u| config::check_url("--pushgateway", u)).transpose()?;
    gate::check_paths(&outputs)?;
    let base = outputs.baseline.as_deref().map(baseline::load).transpose()?;
    let (inputs, broken) = read_all(&a.shards);
    let o = Options { expect: a.expect, allow_partial: a.allow_partial, max_skew: a.max_skew };
    let merge::Merged { report: mut rep, total, steps } = merge::merge(inputs, broken, &o)?;
    let out = a.out.clone().unwrap_or_else(|| {
        let d = config::default_out_dir(&rep.scenario.name);
        d.with_file_name(format!("{}-merged", d.file_name().map_or("merged".into(), |n| n.to_string_lossy())))
    });
    report::prepare_dir(&out)?;
    let save = a.gate.save_baseline.clone().map(|p| p.unwrap_or_else(|| baseline::default_path(&rep.scenario.name)));
    let outputs = GateOutputs { save_baseline: save, ..outputs };
    gate::check_paths(&outputs)?;
    if let (Some(b), Some(path)) = (&base, &outputs.baseline) {
        let rules = rep.regression.clone().unwrap_or_default();
        rep.comparison = Some(baseline::compare(b, &path.display().to_string(), &rep, &rules)?);
    }
    let formats =
        if a.formats.is_empty() { ReportFormat::DEFAULT.to_vec() } else { config::report_formats(&a.formats) };
    let outcome = publish(&rep, &out, &formats, &outputs, a.quiet);
    if let Some(url) = &pushgateway {
        // As for a run: a failed push is one error line and changes neither the report nor the exit code.
        let disturbed = rep.environment.as_ref().map(|e| e.disturbed);
        let push = super::metrics_server::push_final(&rep.scenario.name, &steps, &total, disturbed, url, a.quiet);
        if let Err(e) = push {
            report::print_error(&format!("{e:#}"));
        }
    }
    Ok(outcome)
}

/// Each shard read; one that cannot be (a killed shard has no result.json) is kept aside with the reason.
fn read_all(paths: &[PathBuf]) -> (Vec<ShardInput>, Vec<Unreadable>) {
    let mut inputs = Vec::new();
    let mut broken = Vec::new();
    for p in paths {
        match read_shard(p) {
            Ok(s) => inputs.push(s),
            Err(e) => broken.push(e),
        }
    }
    (inputs, broken)
}

fn read_shard(p: &Path) -> Result<ShardInput, Unreadable> {
    let file = p.display().to_string();
    let (dir, result_path) = if p.is_dir() {
        (p.to_path_buf(), p.join("result.json"))
    } else {
        (p.parent().map_or_else(PathBuf::new, Path::to_path_buf), p.to_path_buf())
    };
    let fail = |reason: String, number: Option<u64>| Unreadable { file: file.clone(), reason, number };
    let report = match result::read_result(&result_path, "shard") {
        Ok(r) => r,
        Err(e) => {
            // A shard killed outright left its journal: its header says which shard is missing.
            let journal = dir.join(report::JOURNAL);
            let header = report::read_journal::<Header, serde_json::Value>(&journal).ok().map(|(h, _)| h);
            let number = header.as_ref().and_then(|h| h.shard.as_ref()?.index);
            let reason = match (&number, journal.exists()) {
                (Some(n), true) => format!(
                    "shard {n} has no result.json, only the journal of a run that died: run the shard again, or \
                     --allow-partial to merge the rest"
                ),
                _ => format!("{e}: give a shard's report directory, or --allow-partial to merge the rest"),
            };
            return Err(fail(reason, number));
        }
    };
    let path = dir.join(SHARD_SECONDS);
    let seconds = FileSeconds { path: path.clone() };
    let (header, counted) = seconds.count().map_err(|e| {
        fail(format!("{e}: a shard run with --shard keeps it beside result.json; run the shard again"), None)
    })?;
    if header.journal != result::journal::VERSION {
        let v = header.journal;
        return Err(fail(format!("{SHARD_SECONDS} of journal version {v}: merge with the same version"), None));
    }
    Ok(ShardInput { file, report, header, counted, seconds: Box::new(seconds) })
}

/// A shard's `seconds.ndjson`, read a line at a time.
struct FileSeconds {
    path: PathBuf,
}

/// A second's counters only: the histograms are skipped, not decoded, in the checking pass.
#[derive(serde::Deserialize)]
struct Light {
    steps: Vec<LightStep>,
}

#[derive(serde::Deserialize)]
struct LightStep {
    requests: u64,
    failures: u64,
}

impl FileSeconds {
    fn lines(&self) -> Result<impl Iterator<Item = (usize, String)>, SecondsError> {
        let f = std::fs::File::open(&self.path)
            .map_err(|e| SecondsError(format!("cannot read `{}`: {e}", self.path.display())))?;
        let lines = BufReader::new(f).lines().map_while(Result::ok).enumerate();
        Ok(lines.filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l)))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, n: usize, line: &str) -> Result<T, SecondsError> {
        serde_json::from_str(line).map_err(|e| SecondsError(format!("{}:{n}: {e}", self.path.display())))
    }

    /// The header, and what the seconds count: the first, light pass.
    fn count(&self) -> Result<(Header, Counted), SecondsError> {
        let mut lines = self.lines()?;
        let (n, first) = lines.next().ok_or_else(|| SecondsError(format!("`{}` is empty", self.path.display())))?;
        let header: Header = self.parse(n, &first)?;
        let mut counted = Counted::default();
        for (n, line) in lines {
            let s: Second<Light> = self.parse(n, &line)?;
            counted.start_ms = counted.start_ms.or(s.start_ms);
            counted.requests += s.rec.steps.iter().map(|x| x.requests).sum::<u64>();
            counted.failures += s.rec.steps.iter().map(|x| x.failures).sum::<u64>();
        }
        Ok((header, counted))
    }
}

impl SecondsSource for FileSeconds {
    fn open(&self) -> Result<Seconds<'_>, SecondsError> {
        Ok(Box::new(self.lines()?.skip(1).map(|(n, line)| self.parse::<Second<Recorder>>(n, &line))))
    }
}

/// Writes the report files and CI files, prints the summary and the reasons, and decides the exit code with
/// `run`'s precedence; a partial merge never exits 0.
fn publish(rep: &RunReport, out: &Path, formats: &[ReportFormat], o: &GateOutputs, quiet: bool) -> Outcome {
    let mut failed_writes = Vec::new();
    let path = report::write_outputs(rep, out, formats).map_err(|e| failed_writes.push(e.to_string())).ok();
    if let Err(e) = gate::write_ci_outputs(rep, o) {
        failed_writes.push(format!("{e:#}"));
    }
    if quiet {
        gate::print_warnings(rep);
    } else {
        report::print_out(&ReportFormat::Table.render(rep));
        if let Some(p) = &path {
            report::print_note(&format!("merged {} shards: {}", rep.shards.len(), p.display()));
        }
    }
    if let Some(to) = &o.save_baseline {
        if rep.partial.is_some() {
            report::print_note(&format!("baseline not saved to {}: the merge is partial", to.display()));
        } else if let Err(e) = gate::save_baseline(rep, to, quiet) {
            failed_writes.push(format!("{e:#}"));
        }
    }
    if let Some(p) = &rep.partial {
        for r in &p.reasons {
            report::print_note(&format!("partial: {r}"));
        }
    }
    let gate_failed = gate::failed(rep);
    if rep.failure.is_none() {
        gate::print_inconclusive(rep, o);
        if gate_failed {
            gate::print_failures(rep, false);
        }
    }
    if let Some(f) = &rep.failure {
        report::print_note(&f.message);
    }
    for e in &failed_writes {
        report::print_error(e);
    }
    match () {
        _ if rep.failure.is_some() || !failed_writes.is_empty() => Outcome::NothingValid,
        // A shard stopped by its `abort_on_fail` threshold failed the run, whatever the whole says of it.
        _ if gate_failed || rep.status == RunStatus::Aborted => Outcome::GateFailed,
        // Some of the load is not in the numbers: whatever they say, they cannot pass the run.
        _ if rep.partial.is_some() || rep.status != RunStatus::Completed => Outcome::Inconclusive,
        _ => gate::unfailed_outcome(rep, o),
    }
}
