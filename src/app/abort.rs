//! `abort_on_fail` across shards through a file on storage they all see (a shared volume in Kubernetes, the
//! shared file system under Slurm): the shard whose threshold fails writes one line and stops; every shard
//! looks for the file once a second, on the live gate's tick, and stops too. No server, no per-request work.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

pub struct AbortFile {
    path: PathBuf,
    /// This process in the line it writes: `shard 2/4 on host`.
    who: String,
    /// Set once this process wrote the file: its own line is not news.
    wrote: bool,
}

impl AbortFile {
    /// Refuses a file already there: a stale one from an earlier run would stop this one in its first second.
    pub fn open(path: &Path, who: String) -> Result<Self> {
        if path.exists() {
            bail!(
                "--abort-file {}: the file exists (left by an earlier run?): remove it before starting the shards",
                path.display()
            );
        }
        Ok(AbortFile { path: path.to_path_buf(), who, wrote: false })
    }

    /// This shard's threshold failed: tells the others. The first shard to fail wins; a failed write is
    /// reported, and this shard still stops.
    pub fn trip(&mut self, threshold: &str, observed: &str) {
        self.wrote = true;
        let line = format!("{}: threshold `{threshold}` failed: observed {observed}\n", self.who);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => crate::report::print_error(&format!("--abort-file {}: {e}", self.path.display())),
        }
    }

    /// The line another shard wrote, once it is there.
    pub fn poll(&self) -> Option<String> {
        if self.wrote {
            return None;
        }
        let text = std::fs::read_to_string(&self.path).ok()?;
        // A file seen between its creation and its write: read again on the next tick.
        let line = text.lines().next().map(str::trim).filter(|l| !l.is_empty())?;
        Some(line.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_shard_to_fail_is_named_and_the_others_see_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abort");
        let mut a = AbortFile::open(&path, "shard 1/2 on a".into()).unwrap();
        let mut b = AbortFile::open(&path, "shard 2/2 on b".into()).unwrap();
        assert_eq!(b.poll(), None);
        a.trip("errors: rate < 0.01", "0.5");
        assert_eq!(a.poll(), None, "its own line is not news");
        let seen = b.poll().unwrap();
        assert_eq!(seen, "shard 1/2 on a: threshold `errors: rate < 0.01` failed: observed 0.5");
        b.trip("latency: p(95) < 1ms", "3 ms");
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("shard 1/2"), "the first line stays");
        let e = AbortFile::open(&path, "x".into()).err().unwrap().to_string();
        assert!(e.contains("the file exists") && e.contains("remove it"), "{e}");
    }
}
