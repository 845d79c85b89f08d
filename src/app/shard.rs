//! A distributed run's part in `run`: waiting for `--start-at`, and what result.json records of the shard (its
//! identity, host, start skew).

use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};

use crate::config::RunConfig;
use crate::config::shard::START_AT_TOLERANCE;
use crate::engine::signals;
use crate::report;
use crate::result::ShardInfo;

/// Refuses a `--start-at` already more than `START_AT_TOLERANCE` past (a stale time, not a shard started a
/// moment late).
pub(super) fn check_start(at: SystemTime, now: SystemTime) -> Result<()> {
    if let Ok(late) = now.duration_since(at)
        && late > START_AT_TOLERANCE
    {
        bail!(
            "--start-at {}: that was {:.1} s ago (at most {} s late is allowed); give a later time or +30s",
            humantime::format_rfc3339_millis(at),
            late.as_secs_f64(),
            START_AT_TOLERANCE.as_secs()
        );
    }
    Ok(())
}

/// Sleeps until `at` in short steps, so that a stop signal ends the wait at once (the engine then starts its
/// users already stopped and the run reports the signal).
pub(super) fn wait_for_start(at: SystemTime, quiet: bool) -> Result<()> {
    check_start(at, SystemTime::now())?;
    if !quiet && let Ok(d) = at.duration_since(SystemTime::now()) {
        report::print_note(&format!(
            "waiting {} for --start-at {}",
            humantime::format_duration(Duration::from_millis(d.as_millis() as u64)),
            humantime::format_rfc3339_millis(at)
        ));
    }
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if left.is_zero() || signals::received().1 > 0 {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    Ok(())
}

/// The `shard` object of result.json: set when the run is a shard or waited for `--start-at`.
pub(super) fn info(cfg: &RunConfig, started_at: SystemTime) -> Option<ShardInfo> {
    if cfg.shard.is_none() && cfg.start_at.is_none() {
        return None;
    }
    let skew_ms = cfg.start_at.map(|at| match started_at.duration_since(at) {
        Ok(late) => late.as_secs_f64() * 1000.0,
        Err(early) => -early.duration().as_secs_f64() * 1000.0,
    });
    let s = cfg.shard.as_ref();
    Some(ShardInfo {
        index: s.and_then(|s| s.number).map(|n| n.0),
        count: s.and_then(|s| s.number).map(|n| n.1),
        segment: s.map_or("0:1".into(), |s| s.segment.to_string()),
        sequence: s.map_or("0,1".into(), |s| s.sequence.to_string()),
        host: host_name(),
        source: s.map_or("none", |s| s.source.name()).into(),
        requested_start: cfg.start_at.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        start_skew_ms: skew_ms.map(|ms| (ms * 1000.0).round() / 1000.0),
        aborted_by: None,
    })
}

/// This process as the abort file names it: `shard 2/4 on host`.
pub(super) fn who(cfg: &RunConfig) -> String {
    let part = match &cfg.shard {
        Some(s) => match s.number {
            Some((i, n)) => format!("shard {i}/{n}"),
            None => format!("segment {}", s.segment),
        },
        None => "a run".into(),
    };
    format!("{part} on {}", host_name())
}

/// Renames a finished shard's journal to `seconds.ndjson`, so that `report DIR` does not take it for the
/// journal of a killed run, and `merge` finds it.
pub(super) fn keep_seconds(dir: &std::path::Path) {
    let to = dir.join(crate::result::journal::SHARD_SECONDS);
    if let Err(e) = std::fs::rename(dir.join(report::JOURNAL), &to) {
        report::print_error(&format!("cannot keep the shard's seconds as {}: {e}", to.display()));
    }
}

/// The kernel's host name (what a pod or a Slurm node is called), else `$HOSTNAME`, else `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_a_little_late_is_kept_a_stale_one_refused() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert!(check_start(at, at - Duration::from_secs(60)).is_ok(), "in the future");
        assert!(check_start(at, at + Duration::from_secs(4)).is_ok(), "within the tolerance");
        let err = check_start(at, at + Duration::from_secs(30)).unwrap_err().to_string();
        assert!(err.contains("30.0 s ago") && err.contains("+30s"), "{err}");
    }
}
