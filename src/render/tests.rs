//! The rendered manifests read back as the Kubernetes API types; the sbatch script parses and, run with a
//! stand-in `srun`, gives each task its own output directory and passes every value through unchanged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service};

use super::k8s::{self, K8sOptions, Names};
use super::slurm::{self, SlurmOptions};
use super::{DataFile, RenderError, RunOptions, ScenarioFiles, slug};

const SMOKE: &str = include_str!("../../scenarios/smoke.toml");

/// 2027-01-15T08:00:00Z: a fixed render time, so snapshots do not move.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn smoke() -> ScenarioFiles {
    ScenarioFiles {
        name: "smoke".into(),
        path: "scenarios/smoke.toml".into(),
        file_name: "smoke.toml".into(),
        text: SMOKE.into(),
        data: Vec::new(),
        not_carried: Vec::new(),
    }
}

fn k8s_options(shards: u64) -> K8sOptions {
    K8sOptions {
        shards,
        image: "registry.example/run-load-test:0.1".into(),
        namespace: Some("load".into()),
        pvc: "run-load-test-results".into(),
        secret: "run-load-test-env".into(),
        now: now(),
        start_in: Duration::from_secs(120),
        run: RunOptions {
            target: Some("http://gateway.load:8000".into()),
            vars: vec![("model".into(), "gpt-4o-mini".into())],
        },
    }
}

struct Rendered {
    text: String,
    configmap: ConfigMap,
    service: Service,
    shards: Job,
    merge: Job,
}

/// Splits the output into its documents and reads each as its API type; the header must be comments only.
fn render_k8s(sc: &ScenarioFiles, o: &K8sOptions) -> Rendered {
    let text = k8s::render(sc, o).expect("renders");
    let mut parts = text.split("\n---\n");
    let header = parts.next().expect("a header");
    assert!(header.lines().all(|l| l.starts_with('#')), "the header is comments: {header}");
    let docs: Vec<&str> = parts.collect();
    assert_eq!(docs.len(), 4, "ConfigMap, Service, two Jobs");
    Rendered { configmap: typed(docs[0]), service: typed(docs[1]), shards: typed(docs[2]), merge: typed(docs[3]), text }
}

/// One document as its API type, strictly: k8s-openapi skips fields it does not know, so the typed value is
/// written back and must equal the document, or a misspelt field would pass unseen.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &str) -> T {
    let raw: serde_json::Value = serde_yaml_ng::from_str(doc).expect("YAML");
    let value: T = serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
    assert_eq!(serde_json::to_value(&value).expect("serializes"), raw, "every field is a field of the API type");
    value
}

fn container(job: &Job) -> &Container {
    let spec = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("a pod spec");
    assert_eq!(spec.containers.len(), 1);
    &spec.containers[0]
}

#[test]
fn the_indexed_job_runs_n_shards_once_each_with_the_mounted_scenario() {
    let r = render_k8s(&smoke(), &k8s_options(4));
    let spec = r.shards.spec.as_ref().expect("job spec");
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(4), Some(4)));
    assert_eq!(spec.backoff_limit, Some(0), "a failed shard is not retried onto another timeline");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let c = container(&r.shards);
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args[..4], ["run", "/scenario/smoke.toml", "--out", "/results/shard-$(JOB_COMPLETION_INDEX)"]);
    let at = args.iter().position(|a| a == "--start-at").expect("--start-at");
    // Absolute and shared: render time + --start-in, never a relative offset each pod would read differently.
    assert_eq!(args[at + 1], "2027-01-15T08:02:00Z");
    assert!(args.windows(2).any(|w| w == ["--target", "http://gateway.load:8000"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--var", "model=gpt-4o-mini"]), "{args:?}");
    let env = c.env.clone().unwrap_or_default();
    let count = env.iter().find(|e| e.name == "RLT_SHARD_COUNT").expect("RLT_SHARD_COUNT");
    assert_eq!(count.value.as_deref(), Some("4"));
    // The scenario directory is the ConfigMap, at the path the args name.
    let volumes = pod.volumes.clone().unwrap_or_default();
    let cm = volumes.iter().find_map(|v| v.config_map.as_ref()).expect("a configMap volume");
    assert_eq!(cm.name, r.configmap.metadata.name.clone().unwrap_or_default());
    let pvc = volumes.iter().find_map(|v| v.persistent_volume_claim.as_ref()).expect("a PVC volume");
    assert_eq!(pvc.claim_name, "run-load-test-results");
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    assert!(mounts.iter().any(|m| m.mount_path == "/scenario" && m.read_only == Some(true)));
    assert!(mounts.iter().any(|m| m.mount_path == "/results"));
}

#[test]
fn the_configmap_holds_the_scenario_byte_for_byte_even_with_yaml_syntax_in_it() {
    let mut sc = smoke();
    // Everything YAML would misread if the text were pasted in: a document marker, `: `, quotes of both
    // kinds, `#`, tabs, trailing spaces, CRLF, a leading space, no final newline.
    sc.text = " name = \"x: y\" # 'q'\n---\n\tkey: |\r\n  trailing   \n... \"\\n\" ${env:A}:".into();
    sc.data = vec![DataFile { rel_path: "data/tasks.csv".into(), text: "a,b\n\"1: x\",2\n".into() }];
    let r = render_k8s(&sc, &k8s_options(2));
    let data = r.configmap.data.expect("data");
    assert_eq!(data.get("smoke.toml"), Some(&sc.text), "the scenario text round-trips");
    assert!(data.values().any(|v| v == &sc.data[0].text), "the feeder file round-trips");
    assert_eq!(data.len(), 2);
    // The feeder file lands beside the scenario, where the loader resolves it.
    let pod = r.shards.spec.and_then(|s| s.template.spec).expect("pod");
    let items = pod.volumes.unwrap_or_default().into_iter().find_map(|v| v.config_map).and_then(|c| c.items);
    let paths: Vec<String> = items.unwrap_or_default().into_iter().map(|i| i.path).collect();
    assert_eq!(paths, ["smoke.toml", "data/tasks.csv"]);
}

#[test]
fn secrets_are_referenced_by_name_and_never_rendered() {
    let r = render_k8s(&smoke(), &k8s_options(3));
    let env = container(&r.shards).env.clone().unwrap_or_default();
    let key = env.iter().find(|e| e.name == "GATEWAY_API_KEY").expect("GATEWAY_API_KEY is wired");
    assert_eq!(key.value, None, "no value");
    let sk = key.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("a secretKeyRef");
    assert_eq!((sk.name.as_str(), sk.key.as_str(), sk.optional), ("run-load-test-env", "GATEWAY_API_KEY", Some(false)));
    // A variable with a fallback is optional: the pod still starts without the key.
    let mut sc = smoke();
    sc.text = "password = \"${env:LOAD_PASSWORD:-pw}\"\nkey = \"${env:K}\"\n".into();
    let r = render_k8s(&sc, &k8s_options(1));
    let env = container(&r.shards).env.clone().unwrap_or_default();
    let optional =
        |n: &str| env.iter().find(|e| e.name == n).and_then(|e| e.value_from.clone()?.secret_key_ref?.optional);
    assert_eq!((optional("LOAD_PASSWORD"), optional("K")), (Some(true), Some(false)));
}

#[test]
fn the_headless_service_selects_the_shard_pods_and_gives_them_stable_names() {
    let r = render_k8s(&smoke(), &k8s_options(2));
    let spec = r.service.spec.expect("service spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let pod = r.shards.spec.expect("job").template;
    let labels = pod.metadata.and_then(|m| m.labels).unwrap_or_default();
    let selector = spec.selector.expect("a selector");
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "{selector:?} ⊆ {labels:?}");
    let service = r.service.metadata.name.expect("name");
    assert_eq!(pod.spec.and_then(|p| p.subdomain), Some(service.clone()));
    let names = Names::new("smoke", now());
    let host = names.shard_host(0, Some("load"));
    assert_eq!(host, format!("{}-0.{service}.load.svc.cluster.local", names.shard_job));
    assert!(r.text.contains(&host), "the header names shard 0's DNS name");
    // The longest pod host name (index 999) of the longest scenario name is a valid DNS label.
    let long = Names::new(&"x".repeat(200), now());
    assert!(format!("{}-999", long.shard_job).len() <= 63);
}

#[test]
fn the_merge_job_merges_every_shard_and_the_header_gives_the_order() {
    let r = render_k8s(&smoke(), &k8s_options(5));
    let c = container(&r.merge);
    let command = c.command.clone().unwrap_or_default();
    assert_eq!(command[..2], ["/bin/sh", "-c"]);
    assert!(command[2].contains("run-load-test merge /results/shard-* --expect \"$n\""), "{}", command[2]);
    assert_eq!(command.last().map(String::as_str), Some("5"), "$n is the shard count");
    assert_eq!(r.merge.spec.as_ref().and_then(|s| s.backoff_limit), Some(0));
    let shard_job = r.shards.metadata.name.clone().expect("name");
    let merge_job = r.merge.metadata.name.clone().expect("name");
    let header: Vec<&str> = r.text.lines().take_while(|l| l.starts_with('#')).collect();
    let at = |needle: &str| {
        header.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} in {header:?}"))
    };
    assert!(at("stage=shards") < at(&format!("--for=condition=complete --timeout=1h job/{shard_job}")));
    assert!(at(&format!("job/{shard_job}")) < at("stage=merge"));
    assert!(at("stage=merge") < at(&format!("job/{merge_job}")));
    let stage = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.labels.as_ref().and_then(|l| l.get("run-load-test/stage").cloned())
    };
    assert_eq!(stage(&r.merge.metadata).as_deref(), Some("merge"));
    assert_eq!(stage(&r.configmap.metadata).as_deref(), Some("shards"));
}

#[test]
fn user_values_stay_literal_in_kubernetes_args() {
    let mut o = k8s_options(1);
    o.run.vars = vec![("q".into(), "$(HOME) and $$ \n done".into())];
    let r = render_k8s(&smoke(), &o);
    let args = container(&r.shards).args.clone().unwrap_or_default();
    // Kubernetes reads `$$(` as a literal `$(`; the shard's own index reference stays live.
    assert!(args.contains(&"q=$$(HOME) and $$ \n done".to_string()), "{args:?}");
    assert!(args.contains(&"/results/shard-$(JOB_COMPLETION_INDEX)".to_string()));
}

#[test]
fn bad_counts_and_names_are_refused() {
    for n in [0, 1001] {
        assert!(matches!(k8s::render(&smoke(), &k8s_options(n)), Err(RenderError::Shards(_))));
        let o = SlurmOptions {
            shards: n,
            start_in: Duration::from_secs(30),
            partition: None,
            time: None,
            run: RunOptions::default(),
        };
        assert!(matches!(slurm::render(&smoke(), &o), Err(RenderError::Shards(_))));
    }
    assert!(k8s::render(&smoke(), &k8s_options(1000)).is_ok());
    for (ns, pvc, image) in [("Load", "p", "i"), ("l", "p_v", "i"), ("l", "p", ""), ("l", "p", "a b")] {
        let mut o = k8s_options(1);
        (o.namespace, o.pvc, o.image) = (Some(ns.into()), pvc.into(), image.into());
        let e = k8s::render(&smoke(), &o).expect_err("refused");
        assert!(matches!(e, RenderError::Flag { .. }), "{e}");
    }
    let mut o = k8s_options(1);
    o.run.target = Some("https://user:hunter22@gw.example".into());
    let e = k8s::render(&smoke(), &o).expect_err("a password in the target is refused");
    assert!(matches!(e, RenderError::Flag { flag: "target", .. }) && !e.to_string().contains("hunter22"), "{e}");
    let mut so = slurm_options(1);
    so.run.target = o.run.target.clone();
    assert!(matches!(slurm::render(&smoke(), &so), Err(RenderError::Flag { flag: "target", .. })));
    let mut sc = smoke();
    sc.text = "k = \"${env:BAD NAME}\"".into();
    assert!(matches!(k8s::render(&sc, &k8s_options(1)), Err(RenderError::EnvName(_))));
    sc.text = "x".repeat(1024 * 1024 + 1);
    assert!(matches!(k8s::render(&sc, &k8s_options(1)), Err(RenderError::TooLarge(_))));
}

#[test]
fn slugs_are_dns_labels() {
    assert_eq!(slug("Breaking Point: v2!", 30), "breaking-point-v2");
    assert_eq!(slug("42", 30), "s-42");
    assert_eq!(slug("", 30), "scenario");
    assert_eq!(slug("---", 30), "scenario");
    assert!(slug(&"ab-".repeat(40), 30).len() <= 30);
    assert!(!slug(&"ab-".repeat(40), 30).ends_with('-'));
}

#[test]
fn snapshot_k8s_smoke() {
    insta::assert_snapshot!(k8s::render(&smoke(), &k8s_options(4)).expect("renders"));
}

#[test]
fn snapshot_slurm_smoke() {
    insta::assert_snapshot!(slurm::render(&smoke(), &slurm_options(4)).expect("renders"));
}

fn slurm_options(shards: u64) -> SlurmOptions {
    SlurmOptions {
        shards,
        start_in: Duration::from_secs(30),
        partition: Some("load".into()),
        time: Some("01:00:00".into()),
        run: RunOptions {
            target: Some("http://gateway:8000".into()),
            vars: vec![("model".into(), "gpt-4o-mini".into())],
        },
    }
}

#[test]
fn slurm_flags_on_sbatch_lines_are_checked() {
    let mut o = slurm_options(2);
    o.partition = Some("load\n#SBATCH --x".into());
    assert!(matches!(slurm::render(&smoke(), &o), Err(RenderError::Flag { flag: "partition", .. })));
    for t in ["1:00", "01:60:00", "aa:00:00", "01:00:00\n", "100000:00:00"] {
        let mut o = slurm_options(2);
        o.time = Some(t.into());
        assert!(matches!(slurm::render(&smoke(), &o), Err(RenderError::Flag { flag: "time", .. })), "{t:?}");
    }
    let mut o = slurm_options(2);
    o.time = Some("120:00:00".into());
    assert!(slurm::render(&smoke(), &o).is_ok());
}

#[test]
fn shell_quoting_keeps_every_value_one_literal_word() {
    assert_eq!(slurm::quote("scenarios/smoke.toml"), "scenarios/smoke.toml");
    assert_eq!(slurm::quote(""), "''");
    assert_eq!(slurm::quote("it's $(x)"), "'it'\\''s $(x)'");
}
