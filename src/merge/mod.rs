//! `merge`: the shards of a distributed run as one report. HdrHistograms add exactly, so the merged report
//! holds what one process sending all the load would have recorded: every shard's per-second recorders are
//! added on one wall clock, the totals, series and windows rebuilt from them through `result::assemble` (the
//! path a run takes), and the thresholds judged once on the whole. Pure: the shards come in read, the report
//! goes out; reading files and writing outputs is `app`'s.

mod add;
mod check;

use std::time::Duration;

use crate::metrics::Recorder;
use crate::result::journal::{Header, Second};
use crate::result::{Failure, Partial, RunReport, RunStatus};

pub use check::{identity, start_ms};

/// A shard's seconds, one at a time: an hour of per-second recorders is gigabytes once decoded, so they are
/// added as they are read, never held together.
pub type Seconds<'a> = Box<dyn Iterator<Item = Result<Second<Recorder>, SecondsError>> + 'a>;

/// A shard's seconds that cannot be read or added: one line naming the file (and line) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecondsError(pub String);

impl From<String> for SecondsError {
    fn from(m: String) -> Self {
        SecondsError(m)
    }
}

impl From<&str> for SecondsError {
    fn from(m: &str) -> Self {
        SecondsError(m.to_string())
    }
}

/// Where a shard's seconds are read from (its `seconds.ndjson`, or memory in tests); read once to add them.
pub trait SecondsSource {
    fn open(&self) -> Result<Seconds<'_>, SecondsError>;
}

impl SecondsSource for Vec<Second<Recorder>> {
    fn open(&self) -> Result<Seconds<'_>, SecondsError> {
        Ok(Box::new(self.iter().cloned().map(Ok)))
    }
}

/// What a first, light pass over a shard's seconds found: enough to check it before anything is added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub requests: u64,
    pub failures: u64,
    /// The engine's start (the first second's `start_ms`), ms since the epoch.
    pub start_ms: Option<u64>,
}

/// One shard, read: its result.json, its journal header, what its seconds count, and the seconds themselves.
pub struct ShardInput {
    /// The directory or file it was read from, as given.
    pub file: String,
    pub report: RunReport,
    pub header: Header,
    pub counted: Counted,
    pub seconds: Box<dyn SecondsSource>,
}

impl ShardInput {
    /// A shard whose seconds are in memory.
    pub fn in_memory(file: String, report: RunReport, header: Header, seconds: Vec<Second<Recorder>>) -> Self {
        let mut counted = Counted { start_ms: seconds.first().and_then(|s| s.start_ms), ..Counted::default() };
        for s in &seconds {
            let t = s.rec.total();
            counted.requests += t.requests;
            counted.failures += t.failures;
        }
        ShardInput { file, report, header, counted, seconds: Box::new(seconds) }
    }
}

/// A shard given but not readable (a killed shard has no result.json), with its number when its journal said.
pub struct Unreadable {
    pub file: String,
    pub reason: String,
    pub number: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The shard count the run had; default: the count the shards declare.
    pub expect: Option<u64>,
    /// Merge what there is, marked `partial`, instead of refusing.
    pub allow_partial: bool,
    pub max_skew: Duration,
}

/// Why shards were not merged: one line per problem, each naming its file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct MergeError(pub Vec<String>);

/// The merged run: its report, and its recorders added up (what a Prometheus push of the whole run reads).
#[derive(Debug)]
pub struct Merged {
    pub report: RunReport,
    pub total: Recorder,
    /// Each step's (user class, step name), in the recorders' order.
    pub steps: Vec<(String, String)>,
}

/// Checks the shards and merges them into one report, thresholds judged. Without `allow_partial`, any problem
/// is an error; with it, the shards that can be added are, and `partial` lists what is missing and why.
pub fn merge(inputs: Vec<ShardInput>, broken: Vec<Unreadable>, o: &Options) -> Result<Merged, MergeError> {
    let mut problems: Vec<String> = broken.iter().map(|b| format!("{}: {}", b.file, b.reason)).collect();
    let mut kept: Vec<(ShardInput, u64, u64)> = Vec::new();
    for s in inputs {
        let Some((n, count)) = identity(&s) else {
            problems.push(format!(
                "{}: not a shard (its result.json has no shard number): run it with --shard I/N or under a cluster \
                 engine",
                s.file
            ));
            continue;
        };
        let refused = match kept.first() {
            Some((first, ..)) => check::mismatch(first, &s),
            None => None,
        }
        .or_else(|| check::disagreement(&s))
        .or_else(|| {
            start_ms(&s).is_none().then(|| {
                format!("{}: no seconds.ndjson with the engine's start: it is not a finished shard's directory", s.file)
            })
        });
        match refused {
            Some(p) => problems.push(p),
            None => kept.push((s, n, count)),
        }
    }
    let Some(first) = kept.first() else {
        problems.push("no shard could be merged: give the shards' report directories".into());
        return Err(MergeError(problems));
    };
    let expect = o.expect.unwrap_or(first.2);
    let numbers: Vec<(String, u64, u64)> = kept.iter().map(|(s, n, c)| (s.file.clone(), *n, *c)).collect();
    let (numbering, missing) = check::numbering(&numbers, expect);
    problems.extend(numbering);
    let starts: Vec<(String, u64)> = kept.iter().filter_map(|(s, ..)| Some((s.file.clone(), start_ms(s)?))).collect();
    problems.extend(check::skew(&starts, o.max_skew));
    if !problems.is_empty() && !o.allow_partial {
        return Err(MergeError(problems));
    }
    // What cannot be added even to a partial merge: a second copy of a shard, a shard of another count.
    let mut seen = Vec::new();
    kept.retain(|(_, n, c)| {
        *c == expect && !seen.contains(n) && {
            seen.push(*n);
            true
        }
    });
    if kept.is_empty() {
        problems.push(format!("no shard of a run of {expect} is left to merge"));
        return Err(MergeError(problems));
    }
    let shards: Vec<&ShardInput> = kept.iter().map(|(s, ..)| s).collect();
    let (mut rep, total) = add::report(&shards).map_err(|e| MergeError(vec![e.0]))?;
    if !problems.is_empty() {
        rep.partial = Some(Partial { missing, reasons: problems });
    }
    carry_status(&mut rep, &kept);
    let steps = kept[0].0.header.run.steps.iter().map(|s| (s.user.clone(), s.name.clone())).collect();
    Ok(Merged { report: rep, total, steps })
}

/// A shard that did not complete keeps the merged run from saying `completed`; one that measured nothing valid
/// makes the merge say so too.
fn carry_status(rep: &mut RunReport, shards: &[(ShardInput, u64, u64)]) {
    let rank = |s: RunStatus| match s {
        RunStatus::Completed => 0,
        RunStatus::Aborted => 1,
        RunStatus::Interrupted => 2,
        RunStatus::Failed => 3,
    };
    let worst = shards.iter().max_by_key(|(s, ..)| rank(s.report.status));
    if let Some((s, n, _)) = worst.filter(|(s, ..)| s.report.status != RunStatus::Completed) {
        rep.status = s.report.status;
        rep.stop_reason = s.report.stop_reason.clone();
        if let Some(f) = &s.report.failure {
            rep.failure =
                Some(Failure { kind: f.kind.clone(), message: format!("shard {n} ({}): {}", s.file, f.message) });
        }
    }
}

#[cfg(test)]
mod tests;
