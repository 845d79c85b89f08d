use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A mock fast enough that short runs still make hundreds of requests.
pub const FAST_MOCK: &str = "[mock]\noutput_tokens = 4\nfirst_token_delay = \"2ms\"\ntoken_delay = \"1ms\"\n";

/// Runs whose assertions depend on measured time hold this lock exclusively ([`timed`]); every other run of the
/// binary through [`run`] (and the hostile suite's floods) holds it shared ([`untimed`]), so the few timing-sensitive
/// runs never share the machine with the rest of the suite when `cargo test` runs tests in parallel.
static TIMING: RwLock<()> = RwLock::new(());

thread_local! {
    static HOLDS_TIMING: Cell<bool> = const { Cell::new(false) };
}

/// The exclusive side; the runs this thread makes meanwhile do not take the shared side (no self-deadlock).
pub struct Timed(#[allow(dead_code)] RwLockWriteGuard<'static, ()>);

impl Drop for Timed {
    fn drop(&mut self) {
        HOLDS_TIMING.set(false);
    }
}

pub fn timed() -> Timed {
    let guard = TIMING.write().unwrap_or_else(PoisonError::into_inner);
    HOLDS_TIMING.set(true);
    Timed(guard)
}

pub fn untimed() -> Option<RwLockReadGuard<'static, ()>> {
    (!HOLDS_TIMING.get()).then(|| TIMING.read().unwrap_or_else(PoisonError::into_inner))
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
    let _shared = untimed();
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

/// Sends `sig` (`libc::SIGTERM`...) to a child this test spawned.
pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: plain kill(2) on the pid of a child the test spawned and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({sig}) failed");
}

/// One HTTP/1.1 request as the tests' loopback servers read it: header names lower-cased, the body read whole
/// (`content-length`, at most 1 MiB).
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The next request on a keep-alive connection; `None` once the client has closed it.
pub fn read_request(r: &mut impl std::io::BufRead) -> std::io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut req = HttpRequest { method, path, headers, body: Vec::new() };
    let len = req.header("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    req.body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut req.body)?;
    Ok(Some(req))
}
