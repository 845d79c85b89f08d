//! Report files beyond `result.json`: the live ones (NDJSON snapshots, HdrHistogram interval logs) as interval
//! sinks fed once a second, and the `report` command that renders a stored result again. The files themselves
//! are written by `report`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::live::IntervalSink;
use crate::engine::{Plan, Progress};
use crate::metrics::{Recorder, StepStats, series_point};
use crate::report::{self, HlogWriter, LivePoint, LiveStep, NdjsonWriter, ReportFormat};
use crate::result;

/// Delay steps send nothing: they have no row in the report, so none in live outputs either.
fn request_steps(plan: &Plan) -> impl Iterator<Item = usize> + '_ {
    plan.steps.iter().enumerate().filter(|(_, s)| s.is_request()).map(|(i, _)| i)
}

/// `--ndjson`: one series point per second, with each step's counts.
pub struct NdjsonSink {
    writer: NdjsonWriter,
    /// Seconds of run before the next interval; kept here so a sweep's levels follow on in time.
    elapsed_s: f64,
    /// Everything so far, for the point's cumulative part (a sweep's engine totals restart with each level).
    all: StepStats,
}

impl NdjsonSink {
    pub fn create(path: &Path) -> Result<Self> {
        let writer = NdjsonWriter::create(path)?;
        Ok(NdjsonSink { writer, elapsed_s: 0.0, all: StepStats::default() })
    }
}

impl IntervalSink for NdjsonSink {
    fn interval(&mut self, plan: &Plan, p: &Progress, interval: &Recorder, _totals: &Recorder) {
        let t = interval.total();
        self.all.add(&t);
        let point = series_point(self.elapsed_s, p.interval_s, &t, &self.all, p.users, p.in_flight);
        self.elapsed_s += p.interval_s;
        let steps = request_steps(plan)
            .filter_map(|i| Some((plan.steps.get(i)?, interval.steps.get(i)?)))
            .map(|(info, s)| LiveStep {
                user: &info.user,
                name: &info.name,
                requests: s.requests,
                failures: s.failures,
            })
            .collect();
        self.writer.write(&LivePoint { elapsed_s: self.elapsed_s, point: &point, steps });
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.writer.finish()?)
    }
}

/// `--format hlog`: each step's latency histogram of the second, appended to its interval log.
pub struct HlogSink {
    writer: HlogWriter,
    steps: Vec<usize>,
    elapsed: Duration,
}

impl HlogSink {
    /// `start`: the run's start, the logs' time base.
    pub fn create(dir: &Path, plan: &Plan, start: SystemTime) -> Result<Self> {
        let steps: Vec<usize> = request_steps(plan).collect();
        let names: Vec<(&str, &str)> =
            steps.iter().map(|&i| (plan.steps[i].user.as_str(), plan.steps[i].name.as_str())).collect();
        let writer = HlogWriter::create(dir, &names, start)?;
        Ok(HlogSink { writer, steps, elapsed: Duration::ZERO })
    }
}

impl IntervalSink for HlogSink {
    fn interval(&mut self, _plan: &Plan, p: &Progress, interval: &Recorder, _totals: &Recorder) {
        let length = Duration::try_from_secs_f64(p.interval_s.max(0.0)).unwrap_or(Duration::ZERO);
        let hists = self.steps.iter().filter_map(|&i| interval.steps.get(i)).map(|s| &s.latency);
        self.writer.write(hists, self.elapsed, length);
        self.elapsed += length;
    }

    fn finish(&mut self) -> Result<()> {
        Ok(self.writer.finish()?)
    }
}

/// `run-load-test report RESULT --format ...`: renders a stored result again. Without `--out` text formats go
/// to stdout and CSV (three files) beside the result; without formats the summary table is printed.
/// When the run journal is there but `result.json` is missing or older (the process was killed, perhaps in a
/// folder an earlier run had written), `result.json` is rebuilt from the journal first.
pub fn rerender(source: &Path, formats: &[ReportFormat], out: Option<&Path>) -> Result<()> {
    let path = if source.is_dir() { source.join("result.json") } else { source.to_path_buf() };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if journal_is_newer(&path, &dir.join(report::JOURNAL)) {
        let r = super::journal::rebuild(dir)?;
        let written = report::write_outputs(&r, dir, &[])?;
        if let Some(note) = &r.rebuilt {
            report::print_note(note);
        }
        report::print_note(&format!("wrote {}", written.display()));
    }
    let r = result::read_result(&path, "result")?;
    if formats.is_empty() {
        report::print_out(&ReportFormat::Table.render(&r));
        return Ok(());
    }
    if let Some(dir) = out {
        report::prepare_dir(dir)?;
    }
    let beside = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for &f in formats {
        match (out, f) {
            (Some(dir), _) => note_written(report::write_formats(&r, dir, &[f]))?,
            (None, ReportFormat::Csv) => note_written(report::write_formats(&r, beside, &[f]))?,
            (None, _) => report::print_out(&f.render(&r)),
        }
    }
    Ok(())
}

/// A journal is removed once its run's `result.json` is written: one still there and newer than any
/// `result.json` is of a run that died.
fn journal_is_newer(result: &Path, journal: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(journal), modified(result)) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(j), Some(r)) => j > r,
    }
}

fn note_written(written: Result<Vec<std::path::PathBuf>, report::WriteError>) -> Result<()> {
    for p in written? {
        report::print_note(&format!("wrote {}", p.display()));
    }
    Ok(())
}
