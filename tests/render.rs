//! `render k8s|slurm` through the real binary: usage errors exit 2, secrets stay out, feeder files travel with
//! the scenario, and the sbatch script, run with a stand-in `srun`, starts one shard per task and then merges.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::common::*;

const K8S: &[&str] = &["render", "k8s", "smoke", "--shards", "3", "--image", "reg.example/rlt:1"];

fn fails_with_2(args: &[&str], needle: &str) {
    let o = run(args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle} in {err}");
    assert!(o.stdout.is_empty(), "nothing rendered on error");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    fails_with_2(&["render", "k8s", "no-such", "--shards", "2", "--image", "i"], "not found");
    fails_with_2(&["render", "slurm", "no-such", "--shards", "2"], "not found");
    for n in ["0", "1001"] {
        fails_with_2(&["render", "k8s", "smoke", "--shards", n, "--image", "i"], "--shards");
        fails_with_2(&["render", "slurm", "smoke", "--shards", n], "--shards");
    }
    fails_with_2(&["render", "k8s", "smoke", "--shards", "2", "--image", "i", "--namespace", "Bad_NS"], "--namespace");
    fails_with_2(&["render", "slurm", "smoke", "--shards", "2", "--time", "1h"], "--time");
}

#[test]
fn a_secret_value_in_the_environment_is_never_rendered() {
    const SENTINEL: &str = "sk-render-sentinel-5f1c";
    for args in [K8S, &["render", "slurm", "smoke", "--shards", "3"]] {
        let _shared = untimed();
        let o = bin().args(args).env("GATEWAY_API_KEY", SENTINEL).output().expect("spawn");
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(out.contains("GATEWAY_API_KEY"), "the variable is named");
        assert!(!out.contains(SENTINEL), "its value is not: {out}");
    }
}

#[test]
fn feeder_files_travel_in_the_configmap_beside_the_scenario() {
    let o = run(&["render", "k8s", "react", "--shards", "2", "--image", "i"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let cm: ConfigMap = serde_yaml_ng::from_str(out.split("\n---\n").nth(1).expect("a document")).expect("ConfigMap");
    let data = cm.data.expect("data");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let scenario = std::fs::read_to_string(root.join("react.toml")).expect("react.toml");
    let tasks = std::fs::read_to_string(root.join("data/tasks.csv")).expect("tasks.csv");
    assert_eq!(data.get("react.toml"), Some(&scenario));
    assert!(data.values().any(|v| v == &tasks), "data/tasks.csv carried byte for byte");
    assert!(out.contains("path: data/tasks.csv"), "mounted where the loader resolves it");
}

fn has_bash() -> bool {
    Command::new("bash").arg("-c").arg("true").status().is_ok_and(|s| s.success())
}

fn script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = write(dir, name, body);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn the_sbatch_script_runs_one_shard_per_task_then_merges_with_its_exit_code() {
    if !has_bash() {
        return;
    }
    let hostile = "q=it's $(touch pwned) `touch pwned2` \"x\"";
    let o = run(&["render", "slurm", "smoke", "--shards", "3", "--target", "http://gw:8000", "--var", hostile]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let sbatch = text(&o.stdout);
    assert!(sbatch.lines().any(|l| l == "#SBATCH --ntasks=3"), "{sbatch}");
    assert!(sbatch.contains("merge \"$RESULTS\"/shard-* --expect 3"), "{sbatch}");

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "job.sbatch", &sbatch);
    let syntax = Command::new("bash").arg("-n").arg(d.join("job.sbatch")).output().expect("bash -n");
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));

    // srun stand-in: the tasks one after another, each with its own SLURM_PROCID, as Slurm would set them.
    let bin_dir = d.join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir");
    script(
        &bin_dir,
        "srun",
        "#!/bin/bash\nn=1\nwhile [[ $1 == --* ]]; do [[ $1 == --ntasks=* ]] && n=${1#--ntasks=}; shift; done\n\
         rc=0\nfor ((i = 0; i < n; i++)); do SLURM_PROCID=$i SLURM_NTASKS=$n \"$@\" || rc=1; done\nexit $rc\n",
    );
    // run-load-test stand-in: records its arguments, one per line; merge exits 7 so the job's code is seen.
    script(
        &bin_dir,
        "rlt",
        "#!/bin/bash\nif [ \"$1\" = run ]; then printf '%s\\n' \"$@\" > \"$RESULTS/run-$SLURM_PROCID.args\"\n\
         for ((k = 1; k < $#; k++)); do if [ \"${!k}\" = --out ]; then j=$((k + 1)); mkdir -p \"${!j}\"; fi; done; exit 0; fi\n\
         printf '%s\\n' \"$@\" > \"$RESULTS/merge.args\"; exit 7\n",
    );
    let results = d.join("results");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let status = Command::new("bash")
        .arg(d.join("job.sbatch"))
        .current_dir(d)
        .env("PATH", path)
        .env("RLT", bin_dir.join("rlt"))
        .env("RESULTS", &results)
        .env_remove("SLURM_PROCID")
        .output()
        .expect("run the script");
    assert_eq!(status.status.code(), Some(7), "merge's exit code is the job's: {}", text(&status.stderr));
    let r = results.display().to_string();
    for i in 0..3 {
        let args = std::fs::read_to_string(results.join(format!("run-{i}.args"))).expect("shard ran");
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(
            args[..6],
            [
                "run",
                "scenarios/smoke.toml",
                "--target",
                "http://gw:8000",
                "--var",
                "q=it's $(touch pwned) `touch pwned2` \"x\""
            ]
        );
        let out = format!("{r}/shard-{i}");
        assert_eq!(args[6..9], ["--out", out.as_str(), "--start-at"]);
        assert!(args[9].len() == 20 && args[9].ends_with('Z'), "an RFC 3339 time: {}", args[9]);
    }
    let starts: Vec<String> = (0..3)
        .map(|i| {
            std::fs::read_to_string(results.join(format!("run-{i}.args")))
                .expect("args")
                .lines()
                .nth(9)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert!(starts.iter().all(|s| s == &starts[0]), "one start time for all tasks: {starts:?}");
    let merge = std::fs::read_to_string(results.join("merge.args")).expect("merge ran");
    let (s0, s1, s2, merged) =
        (format!("{r}/shard-0"), format!("{r}/shard-1"), format!("{r}/shard-2"), format!("{r}/merged"));
    assert_eq!(merge.lines().collect::<Vec<_>>(), ["merge", &s0, &s1, &s2, "--expect", "3", "--out", &merged]);
    assert!(!d.join("pwned").exists() && !d.join("pwned2").exists(), "no value ran as a command");
}
