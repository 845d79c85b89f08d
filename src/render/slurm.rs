//! `render slurm`: an sbatch script that runs N shards as the tasks of one `srun` step, then merges them; the
//! merge's exit code is the job's. Values from the user reach the shell only as single-quoted words (or, for
//! `#SBATCH` lines, after a strict check), so no scenario path or `--var` can run a command.

use std::fmt::Write as _;
use std::time::Duration;

use super::{RenderError, RunOptions, ScenarioFiles, check_shards, check_target, comment_safe, human, slug};

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub shards: u64,
    /// The tasks start this long after the step's start time is computed (once, in the batch script).
    pub start_in: Duration,
    pub partition: Option<String>,
    /// Slurm's wall-clock limit, `HH:MM:SS`.
    pub time: Option<String>,
    pub run: RunOptions,
}

pub fn render(sc: &ScenarioFiles, o: &SlurmOptions) -> Result<String, RenderError> {
    let n = check_shards(o.shards)?;
    check_target(&o.run)?;
    let partition_ok = |p: &String| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ','))
    };
    if let Some(p) = o.partition.as_ref().filter(|p| !partition_ok(p)) {
        return Err(RenderError::Flag {
            flag: "partition",
            value: p.clone(),
            problem: "a partition name is letters, digits, `_`, `-`, `.` (several: comma-separated)",
        });
    }
    if let Some(t) = o.time.as_ref().filter(|t| !is_hms(t)) {
        return Err(RenderError::Flag { flag: "time", value: t.clone(), problem: "use HH:MM:SS, e.g. 01:30:00" });
    }
    let job = format!("rlt-{}", slug(&sc.name, 40));
    let secrets: Vec<String> = crate::scenario::referenced_names(&sc.text).into_iter().map(|(n, _)| n).collect();
    let mut run_words = vec![quote(&sc.path)];
    run_words.extend(o.run.flags().iter().map(|a| quote(a)));
    let run_words = run_words.join(" ");
    let secs = o.start_in.as_secs().max(1);

    let mut s = String::new();
    let mut w = |line: &str| {
        let _ = writeln!(s, "{line}");
    };
    w("#!/bin/bash");
    w(&format!(
        "# run-load-test: scenario {} in {n} shards, as one Slurm job.",
        comment_safe(&format!("{:?}", sc.name))
    ));
    w("# Submit from the directory the scenario path is relative to (a file system every node shares):");
    w("#   sbatch rlt.sbatch      # RLT=/path/to/run-load-test and RESULTS=/shared/dir override the defaults");
    if !secrets.is_empty() {
        w(&format!(
            "# Secrets: export {} before sbatch; the job inherits the environment, this file holds no value.",
            secrets.join(", ")
        ));
    }
    w("# Job-array variant (one array task per shard; tasks may start at different times, so the start is an");
    w("# absolute time fixed at submission, and the merge is a second job that depends on the array):");
    w(&format!(
        "#   export RESULTS=/shared/rlt-results/run-1; START_AT=$(date -u -d '+{secs} seconds' +%Y-%m-%dT%H:%M:%SZ)"
    ));
    w(&format!(
        "#   jid=$(sbatch --parsable --array=0-{} --wrap \"run-load-test run <scenario and flags as below> --out \\$RESULTS/shard-\\$SLURM_ARRAY_TASK_ID --start-at $START_AT\")",
        n - 1
    ));
    w(&format!(
        "#   sbatch --dependency=afterany:$jid --wrap \"run-load-test merge \\$RESULTS/shard-* --expect {n} --out \\$RESULTS/merged\""
    ));
    w(
        "#   (each array task reads its shard from SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT)",
    );
    w(&format!("#SBATCH --job-name={job}"));
    w(&format!("#SBATCH --ntasks={n}"));
    if let Some(p) = &o.partition {
        w(&format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &o.time {
        w(&format!("#SBATCH --time={t}"));
    }
    w(&format!("#SBATCH --output={job}-%j.out"));
    w("set -uo pipefail");
    w("RLT=${RLT:-run-load-test}");
    w("RESULTS=${RESULTS:-${SLURM_SUBMIT_DIR:-$PWD}/rlt-results/${SLURM_JOB_ID:-local}}");
    w("mkdir -p \"$RESULTS\" || exit 2");
    w(&format!(
        "# One start time for every task, {} from when the allocation is granted, so all shards start together.",
        human(Duration::from_secs(secs))
    ));
    w(&format!("START_AT=$(date -u -d '+{secs} seconds' +%Y-%m-%dT%H:%M:%SZ) || exit 2"));
    w("export RLT RESULTS START_AT");
    w("# Each task takes its shard from SLURM_PROCID/SLURM_NTASKS; bash -c so $SLURM_PROCID expands per task.");
    w(&format!(
        "srun --ntasks={n} bash -c 'exec \"$RLT\" run \"$@\" --out \"$RESULTS/shard-$SLURM_PROCID\" --start-at \"$START_AT\"' shard {run_words}"
    ));
    w("echo \"shards finished (srun exit $?); merging $RESULTS/shard-*\" >&2");
    w(&format!("exec \"$RLT\" merge \"$RESULTS\"/shard-* --expect {n} --out \"$RESULTS/merged\""));
    Ok(s)
}

fn is_hms(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    let two = |p: &str, max: u32| p.len() == 2 && p.parse::<u32>().is_ok_and(|v| v <= max);
    parts.len() == 3
        && !parts[0].is_empty()
        && parts[0].len() <= 4
        && parts[0].chars().all(|c| c.is_ascii_digit())
        && two(parts[1], 59)
        && two(parts[2], 59)
}

/// One shell word with the same text: bare when only safe characters, else single-quoted (`'` as `'\''`).
pub fn quote(s: &str) -> String {
    let safe =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '%' | '+' | ',');
    if !s.is_empty() && s.chars().all(safe) { s.to_string() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}
