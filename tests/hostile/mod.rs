//! The real binary against a hostile server (`server.rs`): every fault mode is a short run whose exit code, error
//! kinds, report, wall time and peak memory are checked against the contract (README "Exit codes", DESIGN §9).

mod content;
mod server;
mod transport;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// The load of every hostile run: short, so the suite stays quick, with a timeout shorter than the run.
const DURATION_S: u64 = 2;
const TIMEOUT_S: u64 = 1;
const GRACEFUL_S: u64 = 1;
/// Timeout and graceful stop of the modes whose server answers at once ([`run_patient`]): on a busy machine a
/// request may take over a second, and a `timeout`, or an `interrupted` cut at the stop, is not what those modes
/// test. A client that hung on them (read a whole gigabyte...) still shows as a `timeout` kind, which they refuse.
const PATIENT_S: u64 = 10;
/// Start-up, report writing and a busy machine (two CPU hogs, tests in parallel).
const SLACK_S: u64 = 15;
/// Memory any run may use; the 1 GB-body and new-model modes are held to `TIGHT_RSS_KIB`.
const SANE_RSS_KIB: i64 = 256 << 10;
const TIGHT_RSS_KIB: i64 = 64 << 10;
/// Beyond this the child is killed at once.
const MAX_RSS_EVER_KIB: i64 = 1 << 20;

pub const HTTP: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"get\"\nget = \"/x\"\n";
/// A non-streamed chat completion: the client reads and parses the whole body.
pub const CHAT: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";
pub const SSE: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    stream = true\njson = { model = \"m\", stream = true, messages = [{ role = \"user\", content = \"hi\" }] }\n";

/// One finished run of the binary.
pub struct Outcome {
    /// Exit code, or 128 + n when a signal ended it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak resident set of the child (`ru_maxrss`, KiB).
    pub max_rss_kib: i64,
    pub out: PathBuf,
    /// Duration + graceful stop + timeout of this run (+ slack): the run must end within it.
    pub limit: Duration,
    _dir: tempfile::TempDir,
}

impl Outcome {
    pub fn report(&self) -> Value {
        let raw = std::fs::read_to_string(self.out.join("result.json"))
            .unwrap_or_else(|e| panic!("result.json not written ({e})\n{}", self.context()));
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("result.json is not JSON ({e})"))
    }

    /// Error counts by kind, from `result.json`'s `errors`.
    pub fn kinds(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for e in self.report()["errors"].as_array().expect("errors is an array") {
            *m.entry(e["kind"].as_str().expect("kind").to_string()).or_insert(0) += u(&e["count"]);
        }
        m
    }

    pub fn context(&self) -> String {
        let errors = std::fs::read_to_string(self.out.join("result.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .map(|r| {
                let e = r["errors"].as_array().cloned().unwrap_or_default();
                let kinds: Vec<String> =
                    e.iter().map(|e| format!("{}={} ({:.80})", e["kind"], e["count"], e["message"])).collect();
                format!("status {}, {} requests, errors [{}]", r["status"], r["totals"]["requests"], kinds.join(", "))
            })
            .unwrap_or_else(|| "no result.json".into());
        format!(
            "{errors}\nexit {}, {:?}, {} KiB\nstdout: {}\nstderr: {}",
            self.code, self.wall, self.max_rss_kib, self.stdout, self.stderr
        )
    }
}

/// Runs `scenario` against `target` with the short hostile settings (4 users, 1 s timeout) plus `extra`: for the
/// modes that hang, stall or retry, whose failures a timeout must end in time.
pub fn run_against(scenario: &str, target: &str, extra: &[&str]) -> Outcome {
    launch(scenario, target, extra, &[], (TIMEOUT_S, GRACEFUL_S))
}

/// The same load with a patient timeout and graceful stop ([`PATIENT_S`]), for a server that answers at once.
pub fn run_patient(scenario: &str, target: &str, extra: &[&str]) -> Outcome {
    run_with_env(scenario, target, extra, &[])
}

pub fn run_with_env(scenario: &str, target: &str, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    launch(scenario, target, extra, env, (PATIENT_S, PATIENT_S))
}

fn launch(
    scenario: &str,
    target: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    (timeout_s, graceful_s): (u64, u64),
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "hostile.toml", scenario);
    let out = dir.path().join("out");
    let (d, t, g) = (format!("{DURATION_S}s"), format!("{timeout_s}s"), format!("{graceful_s}s"));
    let mut args = vec!["run", path.to_str().unwrap(), "--target", target, "--out", out.to_str().unwrap()];
    args.extend_from_slice(&["--duration", &d, "--timeout", &t, "--graceful-stop", &g, "-u", "4", "--seed", "1"]);
    args.extend_from_slice(extra);
    let mut cmd = bin();
    cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let _shared = untimed();
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn run-load-test");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let so = drain(Box::new(child.stdout.take().unwrap()));
    let se = drain(Box::new(child.stderr.take().unwrap()));
    let (code, max_rss_kib) = wait_rusage(&mut child, Duration::from_secs(DURATION_S + graceful_s + timeout_s + 60));
    let wall = start.elapsed();
    let stdout = text(&so.join().unwrap());
    let stderr = text(&se.join().unwrap());
    let limit = Duration::from_secs(DURATION_S + graceful_s + timeout_s + SLACK_S);
    Outcome { code, stdout, stderr, wall, max_rss_kib, out, limit, _dir: dir }
}

/// Waits for the child, polling its peak RSS, and kills it after `limit` so a hang fails instead of hanging.
///
/// The peak is the child's own `VmHWM` (`/proc/PID/status`), read until it exits. `wait4`'s `ru_maxrss` cannot be
/// used alone: Linux carries the parent's high-water mark through the vfork + exec that spawns the child, so it
/// reads as the test binary's size (~200 MiB), not the tool's. It still bounds the result from above.
fn wait_rusage(child: &mut std::process::Child, limit: Duration) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut hwm = 0i64;
    loop {
        hwm = hwm.max(vm_hwm_kib(pid).unwrap_or(0));
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value, filled in by wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own unreaped child; status and usage are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if r == pid {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
            let peak = if hwm > 0 { hwm.min(usage.ru_maxrss) } else { usage.ru_maxrss };
            return (code, peak);
        }
        // A runaway child is stopped early: the machine is shared, and the bound is long broken by then.
        if start.elapsed() > limit || hwm > MAX_RSS_EVER_KIB {
            let _ = child.kill();
            panic!(
                "run-load-test killed after {:?} at a peak RSS of {hwm} KiB (limits {limit:?}, {MAX_RSS_EVER_KIB} KiB)",
                start.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The high-water mark of a live process's resident set, in KiB.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The checks every mode shares: the exit code, a parseable report whose status matches it, no panic, the run
/// ended within duration + graceful stop + timeout (+ slack), memory under `max_rss_kib`, and the error kinds:
/// every kind seen is in `allowed`, and at least one failure when `allowed` is not empty (none when it is).
pub fn expect(o: &Outcome, code: i32, allowed: &[&str], max_rss_kib: i64) -> BTreeMap<String, u64> {
    let ctx = o.context();
    assert!(!o.stderr.contains("panicked"), "a panic: {ctx}");
    assert_eq!(o.code, code, "exit code: {ctx}");
    let r = o.report();
    let status = r["status"].as_str().unwrap_or_default();
    match code {
        0 | 1 => assert_eq!(status, "completed", "{ctx}"),
        3 => assert_eq!(status, "failed", "exit 3 reads `failed` in the report: {ctx}"),
        _ => {}
    }
    assert!(o.wall <= o.limit, "the run took {:?} (limit {:?}): {ctx}", o.wall, o.limit);
    assert!(
        o.max_rss_kib > 0 && o.max_rss_kib < max_rss_kib,
        "peak RSS {} KiB (limit {max_rss_kib}): {ctx}",
        o.max_rss_kib
    );
    let kinds = o.kinds();
    for k in kinds.keys() {
        assert!(allowed.contains(&k.as_str()), "error kind `{k}` not in {allowed:?}: {kinds:?}\n{ctx}");
    }
    let failures = u(&r["totals"]["failures"]);
    if allowed.is_empty() {
        assert_eq!(failures, 0, "no failure expected: {kinds:?}\n{ctx}");
        assert!(u(&r["totals"]["requests"]) > 0, "{ctx}");
    } else {
        assert!(failures > 0 && !kinds.is_empty(), "failures expected as {allowed:?}: {ctx}");
    }
    kinds
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() { todo.push(p) } else { all.push(p) }
        }
    }
    all
}
