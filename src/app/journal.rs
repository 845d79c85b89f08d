//! The run journal as an interval sink: the run's description first, then each second's recorder, so a run
//! killed outright can still be reported (`report DIR`). Nothing here touches the hot path: it is fed the
//! interval the engine merged anyway, once a second, on the merging thread.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};

use super::live::IntervalSink;
use crate::engine::{Plan, Progress};
use crate::metrics::{Recorder, Timeline};
use crate::report::{self, JOURNAL, JournalWriter};
use crate::result::assemble::{self, RunDescription, RunOutput, Stop};
use crate::result::journal::{Header, Second, VERSION};
use crate::result::{HdrSettings, RunReport, RunStatus, ShardInfo};

pub struct JournalSink {
    writer: JournalWriter,
    t: f64,
    /// The engine's start is written once, with the first second.
    first: bool,
}

impl JournalSink {
    /// Starts `dir/journal.ndjson` with the run's description.
    pub fn create(dir: &Path, run: &RunDescription, shard: Option<ShardInfo>) -> Result<Self> {
        let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let hdr = Some(HdrSettings::CURRENT);
        let header = Header { journal: VERSION, started_at, run: run.clone(), hdr, shard };
        let writer = JournalWriter::create(dir, &header)?;
        Ok(JournalSink { writer, t: 0.0, first: true })
    }
}

impl IntervalSink for JournalSink {
    fn interval(&mut self, _plan: &Plan, p: &Progress, interval: &Recorder, _totals: &Recorder) {
        let start_ms = std::mem::take(&mut self.first)
            .then(|| p.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
        let line =
            Second { t: self.t, d: p.interval_s, users: p.users, in_flight: p.in_flight, rec: interval, start_ms };
        self.writer.append(&line);
        self.t += p.interval_s;
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.writer.finish()?)
    }
}

/// The report of a run that died before writing it, from its journal in `dir`: every second the journal holds,
/// `status: interrupted`, `stop_reason: killed`, and `rebuilt` saying so.
pub fn rebuild(dir: &Path) -> Result<RunReport> {
    let path = dir.join(JOURNAL);
    let (h, seconds): (Header, Vec<Second<Recorder>>) = report::read_journal(&path)?;
    if h.journal != VERSION {
        bail!("{}: journal version {} is not {VERSION}; rebuild it with the same version", path.display(), h.journal);
    }
    let (steps, flows) = (h.run.steps.len(), h.run.flows.len());
    let mut timeline = Timeline::new(steps, flows);
    let mut elapsed = 0.0f64;
    for (i, s) in seconds.iter().enumerate() {
        if s.rec.steps.len() != steps || s.rec.flows.len() != flows {
            bail!("{}:{}: the second does not match the run's steps", path.display(), i + 2);
        }
        timeline.push(s.t, s.d, &s.rec, s.users, s.in_flight);
        elapsed = elapsed.max(s.t + s.d);
    }
    let started_at = humantime::parse_rfc3339_weak(&h.started_at)
        .map_err(|e| anyhow!("{}:1: started_at `{}`: {e}", path.display(), h.started_at))?;
    let (total, series, hiccup_max, windows) = timeline.finish();
    let output = RunOutput {
        total: &total,
        series: &series,
        windows: &windows,
        started_at,
        // A journal is input like any file: a corrupt time must not panic.
        elapsed: Duration::try_from_secs_f64(elapsed).unwrap_or(Duration::ZERO),
        stop: Stop::DurationElapsed,
        cpu: Duration::ZERO,
        workers: 1,
    };
    let mut rep = assemble::build(&h.run, &output);
    rep.status = RunStatus::Interrupted;
    rep.stop_reason = "killed".into();
    // Journals written before the probe existed carry no samples: no environment rather than an empty one.
    if !total.hiccup.is_empty() {
        rep.environment = Some(super::host::probe_only(&total.hiccup, &hiccup_max));
    }
    rep.rebuilt = Some(format!(
        "rebuilt from {JOURNAL}: the process died before writing its report; {} seconds recorded, up to {elapsed:.1} s \
         into the run (what followed, at most a second, is lost; thresholds and sweep levels were not judged)",
        seconds.len()
    ));
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StepStats;

    fn description() -> RunDescription {
        let r = crate::report::fixture::one_step("s", "U", "chat", &StepStats::default(), 1.0);
        let label = |m: &str, is_request: bool| assemble::StepLabel {
            user: "U".into(),
            name: m.into(),
            method: m.into(),
            path: "/".into(),
            is_request,
        };
        RunDescription {
            scenario: r.scenario,
            target: r.target,
            load: r.load,
            steps: vec![label("POST", true), label("DELAY", false)],
            flows: vec!["U".into()],
            regression: None,
            thresholds: Vec::new(),
        }
    }

    fn second(t: f64, ms: &[u64], failures: u64) -> String {
        let mut rec = Recorder::new(2, 1);
        for &m in ms {
            rec.steps[0].record_ok(Duration::from_millis(m), Duration::from_millis(1), 10);
        }
        rec.record_hiccup(Duration::from_micros(300 + 1000 * t as u64));
        for _ in 0..failures {
            rec.steps[0].record_err(crate::metrics::ErrorKind::Timeout, 0, || "slow".into());
        }
        serde_json::to_string(&Second { t, d: 1.0, users: 2, in_flight: 1, rec: &rec, start_ms: None }).unwrap()
    }

    #[test]
    fn a_journal_rebuilds_the_report_of_its_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JournalSink::create(dir.path(), &description(), None).unwrap();
        sink.finish().unwrap();
        let empty = rebuild(dir.path()).unwrap();
        assert_eq!((empty.totals.requests, empty.series.len()), (0, 0));
        let path = dir.path().join(JOURNAL);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text += &format!("{}\n{}\n{{\"t\":2.0,", second(0.0, &[5, 7], 1), second(1.0, &[100], 0));
        std::fs::write(&path, text).unwrap();
        let r = rebuild(dir.path()).unwrap();
        assert_eq!((r.status, r.stop_reason.as_str()), (RunStatus::Interrupted, "killed"));
        assert_eq!((r.totals.requests, r.totals.failures, r.series.len()), (4, 1, 2));
        assert_eq!(r.steps.len(), 1, "the delay step has no row");
        let windows: Vec<(f64, usize, u64)> =
            r.windows.iter().map(|w| (w.t_s, w.steps.len(), w.steps[0].requests)).collect();
        assert_eq!(windows, [(0.0, 1, 3), (1.0, 1, 1)], "a window per second replayed, without the delay step");
        assert_eq!(r.errors[0].kind, "timeout");
        assert!((r.totals.latency.as_ref().unwrap().max_ms - 100.0).abs() < 0.5);
        assert_eq!(r.duration_s, 2.0);
        assert!(r.rebuilt.as_deref().unwrap().contains("2 seconds recorded, up to 2.0 s"), "{:?}", r.rebuilt);
        let env = r.environment.as_ref().expect("the journal carries the hiccup probe");
        assert_eq!(env.hiccup.samples, 2);
        assert_eq!(env.hiccup_per_second.len(), 2);
        assert!((env.hiccup_per_second[1] - 1.3).abs() < 0.01, "{:?}", env.hiccup_per_second);
        assert_eq!(env.cpu_pressure_pct, None, "a dead process's OS counters are not guessed");
    }

    #[test]
    fn a_journal_of_another_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = description();
        d.steps.pop();
        JournalSink::create(dir.path(), &d, None).unwrap();
        let path = dir.path().join(JOURNAL);
        let text = std::fs::read_to_string(&path).unwrap() + &second(0.0, &[5], 0) + "\n";
        std::fs::write(&path, text).unwrap();
        let e = rebuild(dir.path()).unwrap_err().to_string();
        assert!(e.contains("journal.ndjson:2: the second does not match"), "{e}");
    }
}
