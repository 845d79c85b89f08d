//! The `render` subcommands' flags: what a cluster engine needs to run a scenario in N shards.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ScenariosDir, parse_duration, parse_var};

#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// A ConfigMap (the scenario), a headless Service, an Indexed Job of N shards and a merge Job, as YAML
    K8s(RenderK8sArgs),
    /// An sbatch script: N `srun` tasks, then the merge, whose exit code is the job's
    Slurm(RenderSlurmArgs),
}

/// What both engines' renders take.
#[derive(Debug, Args)]
pub struct RenderCommon {
    /// Scenario name (scenarios/<NAME>.toml) or path to a scenario file
    pub scenario: String,
    /// Number of shards (1-1000)
    #[arg(long, value_name = "N")]
    pub shards: u64,
    /// Base URL of the service under test; without it each shard tests its own embedded mock
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The shards start together this long after rendering (k8s, default 2m) or after the job starts
    /// (slurm, default 30s)
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub start_in: Option<Duration>,
    /// Set a variable of the scenario's [vars] in every shard, e.g. --var model=gpt-4o-mini (repeatable)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    #[command(flatten)]
    pub scenarios: ScenariosDir,
}

#[derive(Debug, Args)]
pub struct RenderK8sArgs {
    #[command(flatten)]
    pub common: RenderCommon,
    /// The container image holding run-load-test (the repository's Dockerfile builds one)
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Namespace of every object (default: kubectl's current one)
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// A ReadWriteMany PersistentVolumeClaim for the results; each run writes under its own directory
    #[arg(long, value_name = "NAME", default_value = "run-load-test-results")]
    pub pvc: String,
    /// The Secret holding the scenario's ${env:NAME} values, one key per name
    #[arg(long, value_name = "NAME", default_value = "run-load-test-env")]
    pub secret: String,
}

#[derive(Debug, Args)]
pub struct RenderSlurmArgs {
    #[command(flatten)]
    pub common: RenderCommon,
    /// Slurm partition
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Slurm wall-clock limit, HH:MM:SS
    #[arg(long, value_name = "HH:MM:SS")]
    pub time: Option<String>,
}
