//! Which part of a distributed run this process is: from `--shard I/N` or `--segment FROM:TO`, else from the
//! environment a cluster engine sets (`RLT_SHARD`, a Kubernetes Indexed Job, Slurm). One pure function,
//! `resolve`, with the environment passed in as a map, so every rule is tested without touching the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::engine::segment::{Segment, Sequence, Stripe};
use crate::scenario::feeder::Feeder;

/// A shard identity or `--start-at` that cannot be used: one line naming the flag or variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(pub String);

impl From<String> for ShardError {
    fn from(s: String) -> Self {
        ShardError(s)
    }
}

impl From<&str> for ShardError {
    fn from(s: &str) -> Self {
        ShardError(s.into())
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, ShardError> {
    Err(ShardError(message.into()))
}

/// Where the identity came from, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSource {
    Flag,
    RltShard,
    Kubernetes,
    Slurm,
    SlurmArray,
}

impl ShardSource {
    pub fn name(self) -> &'static str {
        match self {
            ShardSource::Flag => "flag",
            ShardSource::RltShard => "RLT_SHARD",
            ShardSource::Kubernetes => "kubernetes",
            ShardSource::Slurm => "slurm",
            ShardSource::SlurmArray => "slurm-array",
        }
    }
}

/// This process's part of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    /// `(I, N)`, I from 1, when the identity is a shard number (not a bare `--segment`).
    pub number: Option<(u64, u64)>,
    pub segment: Segment,
    pub sequence: Sequence,
    pub source: ShardSource,
    /// The global indices this process owns.
    pub stripe: Stripe,
}

/// The flags that name a shard, as given.
#[derive(Debug, Clone, Default)]
pub struct ShardFlags {
    pub shard: Option<String>,
    pub segment: Option<String>,
    pub segment_sequence: Option<String>,
    pub shard_count: Option<u64>,
}

/// The shard from the flags and this process's environment, and `--start-at` resolved against now.
pub fn from_process(
    flags: ShardFlags,
    start_at: Option<String>,
) -> Result<(Option<Shard>, Option<SystemTime>), ShardError> {
    let shard = resolve(&flags, &std::env::vars().collect())?;
    let start_at = start_at.map(|s| parse_start_at(&s, SystemTime::now())).transpose()?;
    Ok((shard, start_at))
}

/// A shard's sequential feeders take the whole run's picks at the shard's indices.
pub fn stripe_feeders(shard: Option<&Shard>, feeders: &mut [Feeder]) {
    if let Some(stripe) = shard.map(|s| s.stripe.clone()) {
        let take: Arc<dyn Fn(u64) -> u64 + Send + Sync> = Arc::new(move |k| stripe.nth(k));
        feeders.iter_mut().for_each(|f| f.take_sequential(take.clone()));
    }
}

/// `--shard`, `--segment`, then `RLT_SHARD`, then `JOB_COMPLETION_INDEX`, then Slurm; `None` when nothing names
/// a shard (the whole run). Errors are one line naming the flag or variable and the fix.
pub fn resolve(flags: &ShardFlags, env: &HashMap<String, String>) -> Result<Option<Shard>, ShardError> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if flags.shard.is_some() && flags.segment.is_some() {
        return err("--shard and --segment both name this process's part: keep one");
    }
    if let Some(s) = &flags.segment {
        let segment = Segment::parse(s).map_err(|e| format!("--segment: {e}"))?;
        let sequence = match &flags.segment_sequence {
            Some(q) => Sequence::parse(q).map_err(|e| format!("--segment-sequence: {e}"))?,
            None => Sequence::around(segment),
        };
        return build(None, segment, sequence, ShardSource::Flag).map(Some);
    }
    let (number, source) = if let Some(s) = &flags.shard {
        let n = parse_number(s).map_err(|e| format!("--shard {s}: {e}"))?;
        if let Some(c) = flags.shard_count.filter(|&c| c != n.1) {
            return err(format!("--shard {s} but --shard-count {c}: drop --shard-count or make them agree"));
        }
        (n, ShardSource::Flag)
    } else if let Some(s) = get("RLT_SHARD") {
        (parse_number(s).map_err(|e| format!("RLT_SHARD={s}: {e}"))?, ShardSource::RltShard)
    } else if let Some(i) = get("JOB_COMPLETION_INDEX") {
        let index = int("JOB_COMPLETION_INDEX", i)?;
        let count = match (flags.shard_count, get("RLT_SHARD_COUNT")) {
            (Some(c), _) => c,
            (None, Some(c)) => int("RLT_SHARD_COUNT", c)?,
            (None, None) => {
                return err(format!(
                    "JOB_COMPLETION_INDEX={i} but no shard count: add --shard-count N or set RLT_SHARD_COUNT"
                ));
            }
        };
        (zero_based("JOB_COMPLETION_INDEX", index, "the shard count", count)?, ShardSource::Kubernetes)
    } else if let Some(n) = get("SLURM_NTASKS").map(|n| int("SLURM_NTASKS", n)).transpose()?.filter(|&n| n > 1) {
        let id = get("SLURM_PROCID").ok_or("SLURM_NTASKS is set but SLURM_PROCID is not: run the shards with srun")?;
        (zero_based("SLURM_PROCID", int("SLURM_PROCID", id)?, "SLURM_NTASKS", n)?, ShardSource::Slurm)
    } else if let Some(id) = get("SLURM_ARRAY_TASK_ID") {
        let id = int("SLURM_ARRAY_TASK_ID", id)?;
        let min = int("SLURM_ARRAY_TASK_MIN", get("SLURM_ARRAY_TASK_MIN").unwrap_or("0"))?;
        let count = get("SLURM_ARRAY_TASK_COUNT")
            .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: submit with sbatch --array=0-N")?;
        let count = int("SLURM_ARRAY_TASK_COUNT", count)?;
        let index = id.checked_sub(min).ok_or_else(|| {
            format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}: use a contiguous --array=0-N")
        })?;
        (zero_based("SLURM_ARRAY_TASK_ID", index, "SLURM_ARRAY_TASK_COUNT", count)?, ShardSource::SlurmArray)
    } else {
        if let Some(c) = flags.shard_count {
            return err(format!(
                "--shard-count {c} without JOB_COMPLETION_INDEX: it only completes a Kubernetes Indexed Job's index; use --shard I/N"
            ));
        }
        if flags.segment_sequence.is_some() {
            return err("--segment-sequence needs --shard I/N or --segment FROM:TO");
        }
        return Ok(None);
    };
    let (i, n) = number;
    let sequence = match &flags.segment_sequence {
        Some(q) => {
            let seq = Sequence::parse(q).map_err(|e| format!("--segment-sequence: {e}"))?;
            if seq.segments().len() as u64 != n {
                return err(format!(
                    "--segment-sequence {q} has {} segments but the shard count is {n}: give one segment per shard",
                    seq.segments().len()
                ));
            }
            seq
        }
        None => Sequence::even(n).map_err(|e| e.to_string())?,
    };
    let segment = sequence.segments()[(i - 1) as usize];
    build(Some((i, n)), segment, sequence, source).map(Some)
}

fn build(
    number: Option<(u64, u64)>,
    segment: Segment,
    sequence: Sequence,
    source: ShardSource,
) -> Result<Shard, ShardError> {
    let position = sequence.position(&segment).ok_or_else(|| {
        format!("--segment {segment} is not one of --segment-sequence {sequence}: use one of its segments")
    })?;
    let stripe = Stripe::new(&sequence, position).map_err(|e| e.to_string())?;
    Ok(Shard { number, segment, sequence, source, stripe })
}

/// `I/N` with 1 ≤ I ≤ N, as Playwright's and Jest's `--shard`.
fn parse_number(s: &str) -> Result<(u64, u64), ShardError> {
    let bad = || "must be I/N with I from 1 to N, e.g. 2/4".to_string();
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if i == 0 || i > n {
        return Err(bad().into());
    }
    Ok((i, n))
}

fn int(name: &str, v: &str) -> Result<u64, ShardError> {
    v.parse().map_err(|_| ShardError(format!("{name}={v} is not a whole number ≥ 0: fix or unset it")))
}

/// A 0-based index of `count` as the 1-based `(I, N)`.
fn zero_based(name: &str, index: u64, count_name: &str, count: u64) -> Result<(u64, u64), ShardError> {
    if count == 0 || index >= count {
        return err(format!("{name}={index} is not below {count_name} ({count}): the indices run from 0 to count − 1"));
    }
    Ok((index + 1, count))
}

/// A start-at more than this far in the past is refused: shards launched a moment late still start (and report
/// their skew), a stale time from a previous job does not silently start an unsynchronized run.
pub const START_AT_TOLERANCE: Duration = Duration::from_secs(5);

/// `--start-at`: an RFC 3339 UTC time (`2026-12-03T10:00:00Z`) or `+DURATION` from now (resolved once, here).
pub fn parse_start_at(s: &str, now: SystemTime) -> Result<SystemTime, ShardError> {
    if let Some(rel) = s.strip_prefix('+') {
        let d = humantime::parse_duration(rel.trim())
            .map_err(|e| format!("--start-at {s}: {e}; write +30s or an RFC 3339 time like 2026-12-03T10:00:00Z"))?;
        return now.checked_add(d).ok_or_else(|| ShardError(format!("--start-at {s} is too far away")));
    }
    humantime::parse_rfc3339(s.trim()).map_err(|e| {
        ShardError(format!("--start-at {s}: {e}; write an RFC 3339 UTC time like 2026-12-03T10:00:00Z, or +30s"))
    })
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
