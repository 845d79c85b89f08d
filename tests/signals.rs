//! Every way a run can be stopped keeps its numbers: SIGTERM and SIGHUP like Ctrl-C (exit 128+n, every report
//! file), a second signal at once, kill -9 through the journal and `report DIR`; and output problems found
//! before the load (bad paths) or after it (a full disk) never hide the verdict.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::common::*;

const LONG: &str = "[load]\nusers = 4\nduration = \"60s\"\n[mock]\noutput_tokens = 2\nfirst_token_delay = \"2ms\"\n\
    token_delay = \"1ms\"\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

/// Generous on a busy machine: a stopped run writes its report well within this.
const EXIT_LIMIT: Duration = Duration::from_secs(40);

fn spawn_run(scenario: &Path, out: &Path, extra: &[&str]) -> Child {
    bin()
        .args(["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run-load-test")
}

fn journal_lines(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("journal.ndjson")).unwrap_or_default();
    // Only complete lines: the last one may be being written.
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete.lines().map(|l| serde_json::from_str(l).expect("a journal line is JSON")).collect()
}

/// Waits until the journal holds its header and `seconds` seconds in which requests were sent, so a signal
/// lands on a run that has measured something, however slow the machine.
fn wait_for_seconds(child: &mut Child, out: &Path, seconds: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let lines = journal_lines(out);
        if lines.len() > seconds && journal_requests(&lines) > 0 {
            return lines;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("run ended ({s}) before {seconds} seconds were journaled");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no journal after 60 s: {} lines", lines.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_requests(lines: &[Value]) -> u64 {
    lines[1..].iter().flat_map(|l| l["rec"]["steps"].as_array().unwrap().iter()).map(|s| u(&s["requests"])).sum()
}

fn tmp_files(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
    names.filter(|n| n.ends_with(".tmp")).collect()
}

/// A signal mid-run: the exit code, every report file, the seconds measured. `hang_up`: stdout and stderr are
/// gone, as when the terminal that sends SIGHUP closes, and the run is not `--quiet`.
fn stops_with_report(sig: i32, code: i32, reason: &str, hang_up: bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let out = dir.path().join("o");
    let (junit, md) = (dir.path().join("ci/junit.xml"), dir.path().join("ci/summary.md"));
    let extra = ["--junit", junit.to_str().unwrap(), "--summary-md", md.to_str().unwrap()];
    let mut child = if hang_up {
        let mut c = bin()
            .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop((c.stdout.take(), c.stderr.take()));
        c
    } else {
        spawn_run(&p, &out, &extra)
    };
    wait_for_seconds(&mut child, &out, 2);
    signal(&child, sig);
    let status = wait_bounded(&mut child, EXIT_LIMIT);
    assert_eq!(status.code(), Some(code), "exit code for signal {sig}");
    let r = read_report(&out);
    assert_eq!(r["status"], "interrupted");
    assert_eq!(r["stop_reason"], reason);
    assert!(r["series"].as_array().unwrap().len() >= 2, "the seconds before the signal: {}", r["series"]);
    assert!(u(&r["totals"]["requests"]) > 0);
    assert!(r["duration_s"].as_f64().unwrap() < 50.0, "stopped long before its 60 s");
    for f in ["report.html", "stats.csv", "failures.csv"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuite"), "JUnit written");
    assert!(md.is_file(), "summary written");
    assert!(!out.join("journal.ndjson").exists(), "the journal goes once the report is written");
    assert!(tmp_files(&out).is_empty());
}

#[test]
fn sigint_writes_every_report_and_exits_130() {
    stops_with_report(libc::SIGINT, 130, "interrupted", false);
}

#[test]
fn sigterm_writes_every_report_and_exits_143() {
    stops_with_report(libc::SIGTERM, 143, "sigterm", false);
}

#[test]
fn sighup_from_a_closed_terminal_writes_every_report_and_exits_129() {
    stops_with_report(libc::SIGHUP, 129, "sighup", true);
}

#[test]
fn a_second_sigterm_stops_stuck_users_at_once_and_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    // Every response takes 30 s: after the first second all four users are stuck in a request.
    let stuck = LONG.replace("first_token_delay = \"2ms\"", "first_token_delay = \"30s\"");
    let p = write(dir.path(), "stuck.toml", &stuck);
    let out = dir.path().join("o");
    let mut child = spawn_run(&p, &out, &["--graceful-stop", "60s", "--users", "4"]);
    let start = Instant::now();
    let mut journal = journal_lines(&out);
    while journal.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no journaled second after 60 s");
        assert!(child.try_wait().unwrap().is_none(), "run ended early");
        std::thread::sleep(Duration::from_millis(50));
        journal = journal_lines(&out);
    }
    let started = humantime::parse_rfc3339_weak(journal[0]["started_at"].as_str().unwrap()).unwrap();
    // Two signals sent back to back may reach the process as one: the second goes once the first was heard.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    signal(&child, libc::SIGTERM);
    let heard = rx.iter().find(|l| l.starts_with("SIGTERM received: stopping: "));
    assert!(heard.is_some(), "the first signal is acknowledged on stderr");
    signal(&child, libc::SIGTERM);
    let signalled = SystemTime::now();
    let now = rx.recv_timeout(EXIT_LIMIT).unwrap_or_default();
    assert_eq!(now, "SIGTERM received: stopping now, cutting off requests in flight");
    let status = wait_bounded(&mut child, EXIT_LIMIT);
    assert_eq!(status.code(), Some(143));
    let r = read_report(&out);
    assert_eq!(r["stop_reason"], "sigterm");
    assert_eq!(u(&r["generator"]["interrupted_requests"]), 4, "the four stuck requests were cut off and counted");
    assert!(!r["series"].as_array().unwrap().is_empty());
    // One signal alone cuts the stuck requests 2 s after it; the second cuts them at once. The run's measured end
    // is compared with the time of the signals (1.5 s of slack for a busy machine's thread wake-ups).
    let at_signal = signalled.duration_since(started).unwrap().as_secs_f64();
    let ran = r["duration_s"].as_f64().unwrap();
    assert!(ran < at_signal + 1.5, "signalled {at_signal:.2} s into the run, it ended at {ran:.2} s");
}

#[test]
fn kill_9_loses_at_most_the_last_second_and_report_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let out = dir.path().join("o");
    // An earlier run's result in the same folder must not pass for this one's.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("result.json"), "{}").unwrap();
    let mut child = spawn_run(&p, &out, &["--format", "json,html,junit"]);
    let seen = wait_for_seconds(&mut child, &out, 3);
    child.kill().unwrap();
    let killed_at = SystemTime::now();
    let _ = child.wait();
    assert_eq!(std::fs::read_to_string(out.join("result.json")).unwrap(), "{}", "kill -9 leaves no report");
    let journal = journal_lines(&out);
    assert!(journal.len() >= seen.len());
    let seconds = journal.len() - 1;

    let o = run(&["report", out.to_str().unwrap(), "--format", "html,md", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("rebuilt from journal.ndjson"), "{}", text(&o.stderr));
    let r = read_report(&out);
    assert_eq!(r["status"], "interrupted");
    assert_eq!(r["stop_reason"], "killed");
    assert!(r["rebuilt"].as_str().unwrap().contains(&format!("{seconds} seconds recorded")), "{}", r["rebuilt"]);
    assert_eq!(r["series"].as_array().unwrap().len(), seconds, "one point per journaled second");
    assert_eq!(u(&r["totals"]["requests"]), journal_requests(&journal), "totals are the journal's sum");
    let series_sum: u64 = r["series"].as_array().unwrap().iter().map(|p| u(&p["requests"])).sum();
    assert_eq!(series_sum, journal_requests(&journal));
    assert_eq!(u(&r["steps"][0]["stats"]["requests"]), journal_requests(&journal));
    assert!(r["steps"][0]["stats"]["latency"]["p99_ms"].as_f64().unwrap() > 0.0, "histograms came through");
    // At most the last second is lost (plus scheduling slack on a busy machine: a second is journaled once
    // every worker handed it over).
    let started = humantime::parse_rfc3339_weak(journal[0]["started_at"].as_str().unwrap()).unwrap();
    let ran = killed_at.duration_since(started).unwrap().as_secs_f64();
    let measured = r["duration_s"].as_f64().unwrap();
    assert!(ran - measured <= 2.5, "ran {ran:.2} s, journal covers {measured:.2} s");
    assert!(out.join("report.html").is_file() && out.join("summary.md").is_file());
}

#[test]
fn unwritable_output_paths_fail_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    // Root ignores permission bits; a regular file where a directory should be stops anyone.
    let file = write(dir.path(), "plain", "");
    let bad = file.join("sub/x");
    let bad = bad.to_str().unwrap();
    for flag in ["--junit", "--summary-md", "--save-baseline", "--ndjson", "--out"] {
        let out = dir.path().join(format!("o{flag}"));
        let mut args = vec!["run", p.to_str().unwrap(), "--quiet"];
        if flag != "--out" {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        args.extend([flag, bad]);
        let start = Instant::now();
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(err.starts_with(&format!("error: {flag}: ")), "{flag}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(start.elapsed() < Duration::from_secs(30), "{flag}: the 60 s load was not run");
        assert!(!out.join("result.json").exists() && !out.join("journal.ndjson").exists(), "{flag}: no load sent");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_still_prints_the_verdict_leaves_no_temporary_file_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "short.toml", &LONG.replace("duration = \"60s\"", "iterations = 40"));
    let out = dir.path().join("o");
    std::fs::create_dir_all(&out).unwrap();
    // result.json goes through `.result.json.tmp`: here that leads to /dev/full, where every write fails.
    std::os::unix::fs::symlink("/dev/full", out.join(".result.json.tmp")).unwrap();
    let o = run(&["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--threshold", "errors: rate < 0.5"]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(3), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Aggregated") && stdout.contains("rate < 0.5"), "summary and verdict: {stdout}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("error: cannot write") && last.contains("result.json"), "{stderr}");
    assert!(tmp_files(&out).is_empty(), "{:?}", tmp_files(&out));
    assert!(!out.join("result.json").exists());
    // The journal stays: the report can still be had once there is room.
    let o = run(&["report", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(u(&read_report(&out)["totals"]["requests"]), 40);
}

#[test]
fn a_signal_during_setup_stops_the_run_before_its_load_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    // The feeder file is a FIFO: reading it holds the run in its setup until this test writes the rows.
    let fifo = dir.path().join("q.csv");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let body = LONG
        .replace("[[user]]", "[[feeder]]\nname = \"qs\"\nfile = \"q.csv\"\n[[user]]")
        .replace("\"hi\"", "\"{{ qs.q }}\"");
    let p = write(dir.path(), "setup.toml", &body);
    let out = dir.path().join("o");
    let mut child = spawn_run(&p, &out, &[]);
    // Opening the FIFO for writing returns once the run opened it for reading: it is in its setup.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || tx.send(std::fs::OpenOptions::new().write(true).open(path)));
    let mut w = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(w) => w.unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("the run never read its feeder");
        }
    };
    signal(&child, libc::SIGTERM);
    std::io::Write::write_all(&mut w, b"q\nhello\n").unwrap();
    drop(w);
    let status = wait_bounded(&mut child, EXIT_LIMIT);
    assert_eq!(status.code(), Some(143), "{}", text(&child.wait_with_output().unwrap().stderr));
    let r = read_report(&out);
    assert_eq!(r["stop_reason"], "sigterm");
    assert_eq!(u(&r["totals"]["requests"]), 0, "no load after a signal during setup");
    assert!(r["duration_s"].as_f64().unwrap() < 30.0);
}

#[test]
fn sigterm_during_a_sweep_stops_at_the_current_level_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let out = dir.path().join("o");
    let mut child = spawn_run(&p, &out, &["--sweep", "users=1,2,3", "--hold", "60s"]);
    wait_for_seconds(&mut child, &out, 2);
    signal(&child, libc::SIGTERM);
    let status = wait_bounded(&mut child, EXIT_LIMIT);
    assert_eq!(status.code(), Some(143));
    let r = read_report(&out);
    assert_eq!(r["stop_reason"], "sigterm");
    let levels = r["levels"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 1, "no level starts after the signal: {levels:?}");
    assert!(u(&levels[0]["stats"]["requests"]) > 0);
    assert!(r["duration_s"].as_f64().unwrap() < 50.0);
}

#[test]
fn sigterm_during_a_repeat_stops_the_repeats_and_reports_the_runs_measured() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "long.toml", LONG);
    let out = dir.path().join("o");
    let mut child = spawn_run(&p, &out, &["--repeat", "3"]);
    wait_for_seconds(&mut child, &out, 2);
    signal(&child, libc::SIGTERM);
    let status = wait_bounded(&mut child, EXIT_LIMIT);
    assert_eq!(status.code(), Some(143));
    let r = read_report(&out);
    assert_eq!((&r["stop_reason"], &r["status"]), (&"sigterm".into(), &"interrupted".into()));
    let runs = r["repeats"]["runs"].as_array().expect("the runs measured");
    assert_eq!(runs.len(), 1, "no run starts after the signal");
    assert_eq!(u(&runs[0]["totals"]["requests"]), u(&r["totals"]["requests"]));
    assert!(u(&r["totals"]["requests"]) > 0);
    assert!(r["duration_s"].as_f64().unwrap() < 50.0);
}
