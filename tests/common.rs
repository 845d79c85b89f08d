use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A mock fast enough that short runs still make hundreds of requests.
pub const FAST_MOCK: &str = "[mock]\noutput_tokens = 4\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"\n";

/// Runs whose assertions depend on measured time take this lock exclusively (`timed()`); the hostile suite's
/// request floods take it shared (`flood()`), so the two never overlap when `cargo test` runs tests in parallel.
static TIMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn timed() -> std::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn flood() -> std::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_run-load-test"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write scenario");
    p
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("spawn run-load-test")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a scenario with `--out`, asserts exit 0 and returns result.json.
pub fn run_report(scenario: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "stdout: {}\nstderr: {}", text(&o.stdout), text(&o.stderr));
    read_report(out)
}

pub fn read_report(out: &Path) -> Value {
    let raw = std::fs::read_to_string(out.join("result.json")).expect("result.json written");
    serde_json::from_str(&raw).expect("result.json is JSON")
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits for a child to exit, killing it after `limit` so a hung binary fails the test instead of hanging it.
pub fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("kill").success();
    assert!(ok, "kill {sig} failed");
}
