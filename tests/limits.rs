//! Absurd numbers from a scenario or a flag, each of which once crashed, hung or was silently changed: now
//! exit 2 at once, one stderr line naming the key (with file:line) or the flag and the allowed range, and
//! nothing written. And the largest allowed rate still ends on time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const STEP: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";

/// Validation happens before any load; a process that takes this long is hanging (or loading).
const QUICK: Duration = Duration::from_secs(20);

/// Runs the binary, checks exit 2 within `QUICK`, no panic, one stderr line, no report; returns that line.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--quiet", "--out", out.to_str().unwrap()]);
    let start = Instant::now();
    let mut child = bin().args(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let status = wait_bounded(&mut child, QUICK);
    let o = child.wait_with_output().expect("output");
    let err = text(&o.stderr);
    assert_eq!(status.code(), Some(2), "{args:?}: stderr: {err}");
    assert!(start.elapsed() < QUICK, "{args:?} took {:?}", start.elapsed());
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "{args:?}: nothing is written for refused input");
    err
}

/// `refused` for a scenario whose head (the part before the one user) is `head`.
fn refused_scenario(head: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "lim.toml", &format!("{head}\n{STEP}"));
    let err = refused(&["run", p.to_str().unwrap()]);
    assert!(err.contains("lim.toml:"), "names the file: {err}");
    err
}

fn refused_flags(flags: &[&str]) -> String {
    let mut args = vec!["run", "smoke"];
    args.extend_from_slice(flags);
    refused(&args)
}

#[test]
fn a_tiny_rate_flag_is_refused() {
    let e = refused_flags(&["--rate", "1e-300"]);
    assert!(e.contains("--rate") && e.contains("from 0.001 to 1000000") && e.contains("1e-300"), "{e}");
}

#[test]
fn a_huge_rate_flag_is_refused() {
    let e = refused_flags(&["--rate", "1e12"]);
    assert!(e.contains("--rate") && e.contains("from 0.001 to 1000000"), "{e}");
}

#[test]
fn sweep_levels_beyond_range_or_fractional_are_refused() {
    let e = refused_flags(&["--sweep", "users=4294967296"]);
    assert!(e.contains("--sweep") && e.contains("whole number from 1 to 100000"), "{e}");
    let e = refused_flags(&["--sweep", "users=0.5"]);
    assert!(e.contains("--sweep") && e.contains("got 0.5"), "{e}");
}

#[test]
fn count_flags_beyond_range_are_refused_not_truncated() {
    let e = refused_flags(&["--users", "4294967296"]);
    assert!(e.contains("--users") && e.contains("from 1 to 100000"), "{e}");
    let e = refused_flags(&["--max-in-flight", "1e11"]);
    assert!(e.contains("--max-in-flight") && e.contains("from 1 to 100000"), "{e}");
    let e = refused_flags(&["--stages", "1e20,1s"]);
    assert!(e.contains("--stages") && e.contains("from 0 to 100000"), "{e}");
    let e = refused_flags(&["--spawn-rate", "1e-300"]);
    assert!(e.contains("--spawn-rate") && e.contains("from 0.001"), "{e}");
}

#[test]
fn a_tiny_spawn_rate_in_the_scenario_is_refused() {
    let e = refused_scenario("[load]\nspawn_rate = 1e-300");
    assert!(e.contains("lim.toml:2:") && e.contains("`spawn_rate`") && e.contains("from 0.001 to 100000"), "{e}");
}

#[test]
fn ten_million_users_are_refused() {
    let e = refused_scenario("[load]\nusers = 10000000");
    assert!(e.contains("lim.toml:2:9: `users` must be a whole number from 1 to 100000"), "{e}");
}

#[test]
fn users_beyond_u32_are_refused_not_truncated_to_one() {
    let e = refused_scenario("[load]\nusers = 4294967296");
    assert!(e.contains("lim.toml:2:9: `users`") && e.contains("got 4294967296"), "{e}");
}

#[test]
fn a_huge_stage_target_is_refused() {
    let e = refused_scenario("[load]\nstages = [{ target = 1e20, duration = \"1s\" }]");
    assert!(e.contains("lim.toml:2:") && e.contains("`stages.target`") && e.contains("from 0 to 100000"), "{e}");
}

#[test]
fn max_in_flight_beyond_range_is_refused_not_replaced() {
    let e = refused_scenario("[load]\nrate = 5.0\nmax_in_flight = 100000000000");
    assert!(e.contains("lim.toml:3:") && e.contains("`max_in_flight`") && e.contains("from 1 to 100000"), "{e}");
}

#[test]
fn a_zero_timeout_in_the_scenario_names_the_scenario_not_the_flag() {
    let e = refused_scenario("[defaults]\ntimeout = \"0s\"");
    assert!(e.contains("lim.toml:2:") && e.contains("`[defaults] timeout` must be longer than zero"), "{e}");
    assert!(!e.contains("--timeout"), "{e}");
}

#[test]
fn a_nan_min_sustainable_is_refused() {
    let e = refused_scenario("[load.breaking_point]\nusers = [1, 2]\nhold = \"1s\"\nmin_sustainable = nan");
    assert!(e.contains("`breaking_point.min_sustainable`") && e.contains("NaN"), "{e}");
}

#[test]
fn think_time_min_above_max_is_refused() {
    let e = refused_scenario("[defaults]\nthink_time = { min = \"2s\", max = \"1s\" }");
    assert!(e.contains("lim.toml:2:") && e.contains("min 2s > max 1s"), "{e}");
}

#[test]
fn an_unknown_template_filter_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let body = STEP.replace("get = \"/health\"", "get = \"/health?u={{ user_id | nosuch }}\"");
    let p = write(dir.path(), "lim.toml", &body);
    let e = refused(&["run", p.to_str().unwrap()]);
    assert!(e.contains("lim.toml:5:") && e.contains("unknown filter `nosuch`; available: abs,"), "{e}");
}

#[test]
fn the_highest_rate_ends_on_time_with_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "max.toml", &format!("[load]\nrate = 1000000.0\nduration = \"1s\"\n{STEP}"));
    let out = dir.path().join("out");
    let start = Instant::now();
    let mut child = bin()
        .args(["run", p.to_str().unwrap(), "--quiet", "--out", out.to_str().unwrap(), "--graceful-stop", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // duration + graceful stop + report writing, with a wide margin for a busy machine.
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    assert!(status.code().is_some_and(|c| c != 2), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(60));
    let r = read_report(&out);
    assert!(u(&r["totals"]["requests"]) > 0, "{r}");
}
