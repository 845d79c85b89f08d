//! `render k8s|slurm`: read the scenario and the feeder files it names, then hand the text to the pure renderers.

use std::path::{Component, Path};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::cli::{RenderCommand, RenderCommon, RenderK8sArgs, RenderSlurmArgs};
use crate::render::{self, DataFile, RunOptions, ScenarioFiles, k8s, slurm};
use crate::scenario;

/// Image pulls and scheduling take longer than a Slurm step's launch, hence the larger default.
const K8S_START_IN: Duration = Duration::from_secs(120);
const SLURM_START_IN: Duration = Duration::from_secs(30);

/// The rendered manifests or script, for `main` to print.
pub fn render(cmd: RenderCommand) -> Result<String> {
    match cmd {
        RenderCommand::K8s(a) => {
            let RenderK8sArgs { common, image, namespace, pvc, secret } = a;
            let (files, run, shards, start_in) = prepare(common)?;
            let o = k8s::K8sOptions {
                shards,
                image,
                namespace,
                pvc,
                secret,
                now: SystemTime::now(),
                start_in: start_in.unwrap_or(K8S_START_IN),
                run,
            };
            Ok(k8s::render(&files, &o)?)
        }
        RenderCommand::Slurm(a) => {
            let RenderSlurmArgs { common, partition, time } = a;
            let (files, run, shards, start_in) = prepare(common)?;
            let o = slurm::SlurmOptions { shards, start_in: start_in.unwrap_or(SLURM_START_IN), partition, time, run };
            Ok(slurm::render(&files, &o)?)
        }
    }
}

fn prepare(c: RenderCommon) -> Result<(ScenarioFiles, RunOptions, u64, Option<Duration>)> {
    let RenderCommon { scenario, shards, target, start_in, vars, scenarios } = c;
    // Before any file is read: a bad count is a usage error whatever the scenario.
    let shards = render::check_shards(shards)?;
    let path = scenario::locate_scenario(&scenario, &scenarios.dir)?;
    let loaded = scenario::load(&path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut data: Vec<DataFile> = Vec::new();
    let mut not_carried = Vec::new();
    for file in loaded.scenario.feeders.iter().filter_map(|f| f.file.as_deref()) {
        let Some(rel_path) = carried_path(file) else {
            not_carried.push(file.to_string());
            continue;
        };
        if data.iter().any(|d| d.rel_path == rel_path) {
            continue;
        }
        let full = base.join(&rel_path);
        let text = std::fs::read_to_string(&full).with_context(|| {
            format!("feeder file `{}` of the scenario: cannot read it as UTF-8 text", full.display())
        })?;
        data.push(DataFile { rel_path, text });
    }
    let file_name =
        path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario.toml".into());
    let files = ScenarioFiles {
        name: loaded.name,
        path: path.to_string_lossy().into_owned(),
        file_name,
        text: loaded.source,
        data,
        not_carried,
    };
    Ok((files, RunOptions { target, vars }, shards, start_in))
}

/// The path a feeder file keeps beside the mounted scenario: relative and inside the scenario's directory, or
/// `None` when it cannot be placed there.
fn carried_path(file: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(file).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::carried_path;

    #[test]
    fn feeder_paths_inside_the_scenario_directory_are_carried_and_others_are_not() {
        assert_eq!(carried_path("data/tasks.csv").as_deref(), Some("data/tasks.csv"));
        assert_eq!(carried_path("./data//tasks.csv").as_deref(), Some("data/tasks.csv"));
        assert_eq!(carried_path("../shared/tasks.csv"), None);
        assert_eq!(carried_path("/srv/tasks.csv"), None);
        assert_eq!(carried_path("."), None);
    }
}
