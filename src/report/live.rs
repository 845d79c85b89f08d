//! Files written while the run goes on, one record per second: NDJSON snapshots (`--ndjson`) and HdrHistogram
//! interval logs (`--format hlog`). Each second is on disk when its call returns, so `tail -f` or a log
//! processor sees it live. A write error is kept, later seconds are skipped, and the error is returned by
//! `finish`: a full disk must not stop the run or lose its report.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use serde::Serialize;

use super::WriteError;
use crate::metrics::{Hist, SeriesPoint};

/// One line of `--ndjson`: the second as a series point, plus each step's counts in it.
#[derive(Debug, Serialize)]
pub struct LivePoint<'a> {
    /// Seconds from the start of the run to the end of this interval.
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub point: &'a SeriesPoint,
    pub steps: Vec<LiveStep<'a>>,
}

#[derive(Debug, Serialize)]
pub struct LiveStep<'a> {
    pub user: &'a str,
    pub name: &'a str,
    pub requests: u64,
    pub failures: u64,
}

pub struct NdjsonWriter {
    path: PathBuf,
    file: File,
    error: Option<WriteError>,
}

const NDJSON: Option<&str> = Some("--ndjson");
const HLOG: Option<&str> = Some("--format hlog");

impl NdjsonWriter {
    /// Creates (truncates) the file now, before any load, so a bad path is an error in the first second.
    pub fn create(path: &Path) -> Result<Self, WriteError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| WriteError::CreateDir {
                flag: NDJSON,
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let file =
            File::create(path).map_err(|error| WriteError::Write { flag: NDJSON, path: path.to_path_buf(), error })?;
        Ok(NdjsonWriter { path: path.to_path_buf(), file, error: None })
    }

    pub fn write(&mut self, line: &LivePoint<'_>) {
        if self.error.is_some() {
            return;
        }
        let json = serde_json::to_string(line).unwrap_or_default();
        // Names come from the scenario and may carry an `${env:}` value; a mask keeps the line valid JSON.
        let mut buf = crate::redact::json(&json).into_owned().into_bytes();
        buf.push(b'\n');
        // One write per line, unbuffered: a reader never sees half a line, and never waits for a buffer.
        if let Err(error) = self.file.write_all(&buf) {
            self.error = Some(WriteError::Write { flag: NDJSON, path: self.path.clone(), error });
        }
    }

    pub fn finish(&mut self) -> Result<(), WriteError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.file.sync_data().map_err(|error| WriteError::Write {
                flag: NDJSON,
                path: self.path.clone(),
                error,
            }),
        }
    }
}

/// One HdrHistogram interval log per step (`hlog/<user>.<step>.hlog`), in the format of the Java
/// `HistogramLogWriter` (log format 1.3, V2 compressed histograms), so `HistogramLogProcessor`, HdrHistogram's
/// plotters and the Rust crate's `IntervalLogIterator` read it.
pub struct HlogWriter {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
    serializer: V2DeflateSerializer,
    error: Option<WriteError>,
}

/// A file-name-safe form of a user class or step name.
fn file_stem(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' }).collect()
}

impl HlogWriter {
    /// Creates `dir` and one log per `(user, step)` with its header; `start` is the run's start (the logs'
    /// StartTime and BaseTime: interval timestamps are seconds from it).
    pub fn create(dir: &Path, steps: &[(&str, &str)], start: SystemTime) -> Result<Self, WriteError> {
        let fail = |p: &Path, error| WriteError::Write { flag: HLOG, path: p.to_path_buf(), error };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        let mut names: Vec<String> = Vec::new();
        let mut files = Vec::new();
        for (user, step) in steps {
            let base = format!("{}.{}", file_stem(user), file_stem(step));
            // Two names that only differ in characters a file name cannot hold must not share a file.
            let mut name = base.clone();
            let mut n = 1;
            while names.contains(&name) {
                n += 1;
                name = format!("{base}-{n}");
            }
            let path = dir.join(format!("{name}.hlog"));
            let mut w = BufWriter::new(File::create(&path).map_err(|e| fail(&path, e))?);
            let mut serializer = V2DeflateSerializer::new();
            IntervalLogWriterBuilder::new()
                .add_comment(&crate::redact::text(&format!(
                    "run-load-test {} latency of user class `{user}`, step `{step}`",
                    env!("CARGO_PKG_VERSION")
                )))
                // Recorded in microseconds: HistogramLogProcessor wants `-outputValueUnitRatio 1000` for
                // milliseconds (its default, 1e6, assumes nanoseconds). Interval_Max is in microseconds too.
                .add_comment("values in microseconds; successful requests only; one interval per second")
                .add_comment("[Histogram log format version 1.3]")
                .with_start_time(start)
                .with_base_time(start)
                .begin_log_with(&mut w, &mut serializer)
                .map_err(|e| fail(&path, e))?;
            // The column legend the Java writer adds; readers skip it.
            w.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")
                .and_then(|()| w.flush())
                .map_err(|e| fail(&path, e))?;
            names.push(name);
            files.push(w);
        }
        Ok(HlogWriter { dir: dir.to_path_buf(), files, serializer: V2DeflateSerializer::new(), error: None })
    }

    /// Appends one interval to every log: `hists` in the order of `create`'s steps, `start` from the run's start.
    pub fn write<'h>(&mut self, hists: impl IntoIterator<Item = &'h Hist>, start: Duration, length: Duration) {
        if self.error.is_some() {
            return;
        }
        for (w, h) in self.files.iter_mut().zip(hists) {
            // The header was written by the builder that opened the log; an empty builder adds nothing before
            // the interval line, so the borrow of the file lasts one call instead of the whole run.
            let written = IntervalLogWriterBuilder::new()
                .begin_log_with(w, &mut self.serializer)
                .and_then(|mut log| log.write_histogram(h, start, length, None).map_err(std::io::Error::other))
                .and_then(|()| w.flush());
            if let Err(error) = written {
                self.error = Some(WriteError::WriteIn { flag: HLOG, path: self.dir.clone(), error });
                return;
            }
        }
    }

    pub fn finish(&mut self) -> Result<(), WriteError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn hlog_reads_back_with_the_crate_iterator() {
        let dir = tempfile::tempdir().unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut w = HlogWriter::create(dir.path(), &[("U", "chat"), ("U", "c/hat"), ("U", "c hat")], start).unwrap();
        let mut h = crate::metrics::new_hist();
        for v in [1000, 2000, 5_000_000] {
            h.record(v).unwrap();
        }
        let empty = crate::metrics::new_hist();
        for s in 0..3 {
            w.write([&h, &empty, &h], Duration::from_secs(s), Duration::from_secs(1));
        }
        w.finish().unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["U.c_hat-2.hlog", "U.c_hat.hlog", "U.chat.hlog"], "sanitized, and never shared");
        let text = std::fs::read(dir.path().join("U.chat.hlog")).unwrap();
        let mut total = 0;
        let mut starts = Vec::new();
        let mut base = None;
        for e in IntervalLogIterator::new(&text) {
            match e.unwrap() {
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::StartTime(_) => {}
                LogEntry::Interval(i) => {
                    starts.push(i.start_timestamp().as_secs());
                    let bytes =
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, i.encoded_histogram())
                            .unwrap();
                    let d: Hist = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                    total += d.len();
                    assert_eq!(i.max(), h.max() as f64, "Interval_Max in microseconds");
                }
            }
        }
        assert_eq!(base, Some(Duration::from_secs(1_700_000_000)));
        assert_eq!(starts, [0, 1, 2]);
        assert_eq!(total, 9);
        let head = String::from_utf8(text).unwrap();
        assert!(
            head.contains("#[Histogram log format version 1.3]\n") && head.contains("\"StartTimestamp\""),
            "{head}"
        );
    }

    #[test]
    fn ndjson_lines_are_whole_json_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/live.ndjson");
        let mut w = NdjsonWriter::create(&path).unwrap();
        let point = SeriesPoint { t_s: 0.0, duration_s: 1.0, requests: 3, ..Default::default() };
        let steps = vec![LiveStep { user: "U", name: "a", requests: 3, failures: 0 }];
        w.write(&LivePoint { elapsed_s: 1.0, point: &point, steps });
        w.write(&LivePoint { elapsed_s: 2.0, point: &point, steps: Vec::new() });
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0]["requests"].as_u64(), lines[0]["steps"][0]["name"].as_str()), (Some(3), Some("a")));
        assert_eq!(lines[1]["elapsed_s"].as_f64(), Some(2.0));
        let refused = NdjsonWriter::create(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.starts_with("--ndjson"), "a directory is refused: {refused}");
    }
}
