//! A shard of a distributed run: `--shard 2/4` (or the Kubernetes Indexed Job variables) sends exactly its
//! stripe of the one global open-model schedule, records who it was, and bad identities are exit 2.

use std::path::Path;
use std::process::{Command, Output};

use run_load_test::engine::segment::{Sequence, Stripe};
use serde_json::Value;

use crate::common::*;

const SCENARIO: &str = "[load]\nrate = 100.0\nmax_in_flight = 100\nduration = \"2s\"\n\
    [mock]\noutput_tokens = 1\nfirst_token_delay = \"2ms\"\n\
    [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
    json = { model = \"m\", messages = [{ role = \"user\", content = \"hi\" }] }\n";

/// The binary without any shard identity the environment running the tests may carry (a CI job on Slurm).
pub fn shard_bin(env: &[(&str, &str)]) -> Command {
    let mut c = bin();
    for k in [
        "RLT_SHARD",
        "RLT_SHARD_COUNT",
        "JOB_COMPLETION_INDEX",
        "SLURM_PROCID",
        "SLURM_NTASKS",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied());
    c
}

fn run_shard(dir: &Path, out: &str, env: &[(&str, &str)], extra: &[&str]) -> (Output, Option<Value>) {
    let s = write(dir, "s.toml", SCENARIO);
    let out = dir.join(out);
    let mut c = shard_bin(env);
    c.args(["run", s.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet", "--seed", "1"]).args(extra);
    let o = {
        let _shared = untimed();
        c.output().expect("spawn run-load-test")
    };
    let report = out.join("result.json").exists().then(|| read_report(&out));
    (o, report)
}

/// Global arrival k is due at k/100 s; those before 2 s are 0..200 (the one at exactly 2 s is index 200, not
/// shard 2's either way). Shard 2 of 4 owns its stripe of them: counted, not guessed.
fn expected_arrivals() -> u64 {
    Stripe::new(&Sequence::even(4).unwrap(), 1).unwrap().scale(200)
}

#[test]
fn shard_two_of_four_sends_its_stripe_of_the_schedule() {
    let _timing = timed();
    let dir = tempfile::tempdir().unwrap();
    let (o, r) = run_shard(dir.path(), "flag", &[], &["--shard", "2/4", "--start-at", "+1s"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let r = r.expect("result.json");
    assert_eq!(expected_arrivals(), 50);
    assert_eq!(u(&r["open"]["arrivals"]), expected_arrivals(), "{}", r["open"]);
    let s = &r["shard"];
    assert_eq!((u(&s["index"]), u(&s["count"])), (2, 4));
    assert_eq!((s["segment"].as_str(), s["sequence"].as_str()), (Some("1/4:1/2"), Some("0,1/4,1/2,3/4,1")));
    assert_eq!(s["source"], "flag");
    assert!(s["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(s["requested_start"].is_string());
    // The wait ends at the requested instant, never before it.
    let skew = s["start_skew_ms"].as_f64().expect("a skew");
    assert!((0.0..10_000.0).contains(&skew), "{skew}");
    assert_eq!(r["schema_version"], 5);

    let k8s = [("JOB_COMPLETION_INDEX", "1"), ("RLT_SHARD_COUNT", "4")];
    let (o, r) = run_shard(dir.path(), "k8s", &k8s, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let r = r.expect("result.json");
    assert_eq!(u(&r["open"]["arrivals"]), expected_arrivals());
    let s = &r["shard"];
    assert_eq!((u(&s["index"]), u(&s["count"]), s["source"].as_str()), (2, 4, Some("kubernetes")));
    assert_eq!(s["segment"], "1/4:1/2");
    assert!(s.get("start_skew_ms").is_none(), "no --start-at, no skew");
}

#[test]
fn bad_shard_identities_are_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 7] = [
        (&[], &["--shard", "5/4"], "--shard 5/4: must be I/N with I from 1 to N"),
        (&[("JOB_COMPLETION_INDEX", "3")], &[], "JOB_COMPLETION_INDEX=3 but no shard count: add --shard-count N"),
        (&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "x")], &[], "SLURM_PROCID=x is not a whole number"),
        (&[], &["--segment", "1/2:1/4"], "--segment: segment 1/2:1/4 is empty"),
        (&[], &["--start-at", "2000-01-01T00:00:00Z"], "s ago"),
        // Series of runs: merge would flatten them, and each shard's search would break at its own level.
        (&[("RLT_SHARD", "1/2")], &["--sweep", "rate=10,20"], "--sweep: a shard cannot run --sweep"),
        (&[], &["--shard", "1/2", "--repeat", "2"], "--repeat: a shard cannot repeat its part"),
    ];
    for (i, (env, args, message)) in cases.into_iter().enumerate() {
        let (o, r) = run_shard(dir.path(), &format!("bad{i}"), env, args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(message), "{args:?} {env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(r.is_none(), "no load was sent");
    }
}

/// A shard's part of the load is not the run: a threshold that fails on it is recorded for `merge` to judge on all
/// shards, not this process's exit code (a failed shard would fail a Kubernetes Indexed Job before the merge), and
/// a baseline comparison is refused in favour of `merge --baseline`.
#[test]
fn a_shard_leaves_thresholds_and_the_baseline_to_merge() {
    let dir = tempfile::tempdir().unwrap();
    let failing = ["--threshold", "latency: p(95) < 0.001ms"];
    let (o, r) = run_shard(dir.path(), "alone", &[], &failing);
    assert_eq!(o.status.code(), Some(1), "the same threshold fails a whole run: {}", text(&o.stderr));
    assert_eq!(r.expect("a report")["thresholds"][0]["pass"], false);
    let (o, r) = run_shard(dir.path(), "shard", &[], &[&["--shard", "2/4"][..], &failing].concat());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let r = r.expect("a report");
    assert!(r.get("thresholds").is_none(), "not judged on a quarter of the load: {}", r["thresholds"]);
    assert_eq!(r["shard"]["index"], 2);
    let base = dir.path().join("alone").join("result.json");
    let (o, r) = run_shard(dir.path(), "compared", &[], &["--shard", "2/4", "--baseline", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("give --baseline FILE to `merge`"), "{}", text(&o.stderr));
    assert!(r.is_none(), "refused before any load");
}
