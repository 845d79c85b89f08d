//! `render k8s`: a ConfigMap (the scenario and its feeder files), a headless Service, an Indexed Job of N
//! shards and a merge Job, as one multi-document YAML. Every document is a `serde_json::Value` written by
//! serde_yaml_ng, so a scenario text with `:`, quotes or newlines round-trips exactly.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{
    RenderError, RunOptions, ScenarioFiles, check_shards, check_target, comment_safe, compact_utc, human, rfc3339, slug,
};

/// Where the ConfigMap is mounted in a shard; the loader resolves feeder files beside the scenario, so they sit
/// under it at their relative paths.
pub const SCENARIO_DIR: &str = "/scenario";
/// Where the results volume is mounted, in shards and in the merge Job.
pub const RESULTS_DIR: &str = "/results";
/// The image's non-root user (the Dockerfile's `useradd --uid`); `fsGroup` makes the volume writable for it.
pub const IMAGE_UID: u64 = 10001;
/// How long the merge Job waits for the N results to appear before merging what is there (merge then names
/// the missing shards and exits 2).
pub const MERGE_WAIT_SECS: u64 = 600;
/// A ConfigMap's size limit (etcd's object limit is 1.5 MiB; the API refuses a ConfigMap's data over 1 MiB).
const CONFIGMAP_MAX: usize = 1024 * 1024;
const STAGE: &str = "run-load-test/stage";
const ROLE: &str = "run-load-test/role";
const INSTANCE: &str = "app.kubernetes.io/instance";

#[derive(Debug, Clone)]
pub struct K8sOptions {
    pub shards: u64,
    pub image: String,
    pub namespace: Option<String>,
    /// A ReadWriteMany PersistentVolumeClaim that exists in the namespace; each run writes under its own
    /// sub-directory of it.
    pub pvc: String,
    /// The Secret holding the values of the scenario's `${env:NAME}` variables, one key per name.
    pub secret: String,
    /// The render time: the shards start at `now + start_in`, an absolute time every pod shares.
    pub now: SystemTime,
    pub start_in: Duration,
    pub run: RunOptions,
}

/// Object names of one rendered run; `id` also names its directory on the results volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub id: String,
    pub configmap: String,
    pub service: String,
    pub shard_job: String,
    pub merge_job: String,
}

impl Names {
    /// `rlt-<scenario>-<UTC stamp>`: a render per second gets its own objects and its own results directory,
    /// so an old run's shard directories never join a new merge. Sized so `<shard job>-<index>` (the pod's
    /// host name) stays within 63 characters for any index below 1000.
    pub fn new(scenario: &str, now: SystemTime) -> Names {
        let id = format!("rlt-{}-{}", slug(scenario, 30), compact_utc(now));
        Names {
            configmap: format!("{id}-scenario"),
            service: id.clone(),
            shard_job: format!("{id}-shard"),
            merge_job: format!("{id}-merge"),
            id,
        }
    }

    /// The stable DNS name of a shard's pod through the headless Service.
    pub fn shard_host(&self, index: u64, namespace: Option<&str>) -> String {
        format!("{}-{index}.{}.{}.svc.cluster.local", self.shard_job, self.service, namespace.unwrap_or("<namespace>"))
    }
}

pub fn render(sc: &ScenarioFiles, o: &K8sOptions) -> Result<String, RenderError> {
    let n = check_shards(o.shards)?;
    check_target(&o.run)?;
    check_options(o)?;
    let names = Names::new(&sc.name, o.now);
    let secrets = secret_env(&sc.text)?;
    let (configmap, volume_items) = configmap(sc, &names, o)?;
    let docs =
        [configmap, service(&names, o), shard_job(sc, &names, o, n, &secrets, volume_items), merge_job(&names, o, n)];
    let mut out = header(sc, &names, o, n, &secrets);
    for doc in &docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(doc)?);
    }
    Ok(out)
}

fn check_options(o: &K8sOptions) -> Result<(), RenderError> {
    let flag = |flag, value: &str, problem| Err(RenderError::Flag { flag, value: value.to_string(), problem });
    if o.image.trim().is_empty() || o.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return flag("image", &o.image, "give an image reference like registry.example/run-load-test:0.1");
    }
    const LABEL: &str = "a Kubernetes name: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters";
    if let Some(ns) = o.namespace.as_ref().filter(|ns| !is_dns_label(ns)) {
        return flag("namespace", ns, LABEL);
    }
    if !is_dns_label(&o.pvc) {
        return flag("pvc", &o.pvc, LABEL);
    }
    if !is_dns_label(&o.secret) {
        return flag("secret", &o.secret, LABEL);
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    s.len() <= 63
        && edge_ok(s.chars().next())
        && edge_ok(s.chars().last())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The names of the scenario's `${env:NAME}` variables and how each shard gets them: from the Secret, by
/// reference. A value is never read here, so none can be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub name: String,
    /// Every reference has a `:-fallback`: the pod starts without the key.
    pub optional: bool,
}

fn secret_env(text: &str) -> Result<Vec<SecretEnv>, RenderError> {
    crate::scenario::referenced_names(text)
        .into_iter()
        .map(|(name, optional)| {
            let key_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if key_ok && name != "." && name != ".." {
                Ok(SecretEnv { name, optional })
            } else {
                Err(RenderError::EnvName(comment_safe(&name)))
            }
        })
        .collect()
}

fn labels(names: &Names, stage: &str) -> Value {
    json!({ "app.kubernetes.io/name": "run-load-test", INSTANCE: names.id, STAGE: stage })
}

fn metadata(name: &str, names: &Names, o: &K8sOptions, stage: &str) -> Value {
    let mut m = json!({ "name": name, "labels": labels(names, stage) });
    if let Some(ns) = &o.namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// A ConfigMap key for a file: keys allow `[-._a-zA-Z0-9]`, so anything else becomes `_`, and data files get
/// their position as a prefix so two paths that map to the same characters stay distinct.
fn key(prefix: &str, path: &str) -> String {
    let clean: String =
        path.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') { c } else { '_' }).collect();
    format!("{prefix}{clean}")
}

fn configmap(sc: &ScenarioFiles, names: &Names, o: &K8sOptions) -> Result<(Value, Value), RenderError> {
    let size = sc.text.len() + sc.data.iter().map(|d| d.text.len()).sum::<usize>();
    if size > CONFIGMAP_MAX {
        return Err(RenderError::TooLarge(size));
    }
    let scenario_key = key("", &sc.file_name);
    let mut data = serde_json::Map::new();
    let mut items = vec![json!({ "key": scenario_key, "path": sc.file_name })];
    data.insert(scenario_key, json!(sc.text));
    for (i, d) in sc.data.iter().enumerate() {
        let k = key(&format!("data{i}-"), &d.rel_path);
        items.push(json!({ "key": k, "path": d.rel_path }));
        data.insert(k, json!(d.text));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(&names.configmap, names, o, "shards"),
        "data": data,
    });
    Ok((doc, Value::Array(items)))
}

fn service(names: &Names, o: &K8sOptions) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&names.service, names, o, "shards"),
        "spec": {
            "clusterIP": "None",
            // Shard pods have no readiness probe; their names resolve from the moment they run.
            "publishNotReadyAddresses": true,
            "selector": { INSTANCE: names.id, ROLE: "shard" },
        },
    })
}

/// Kubernetes expands `$(NAME)` in `args` from the container's variables; `$$(` keeps a user's text literal.
fn literal(s: &str) -> String {
    s.replace("$(", "$$(")
}

fn pod_security() -> Value {
    json!({ "runAsNonRoot": true, "runAsUser": IMAGE_UID, "fsGroup": IMAGE_UID })
}

fn results_volume(o: &K8sOptions) -> Value {
    json!({ "name": "results", "persistentVolumeClaim": { "claimName": o.pvc } })
}

fn results_mount(names: &Names) -> Value {
    json!({ "name": "results", "mountPath": RESULTS_DIR, "subPath": names.id })
}

fn shard_job(sc: &ScenarioFiles, names: &Names, o: &K8sOptions, n: u64, secrets: &[SecretEnv], items: Value) -> Value {
    let mut args = vec![
        "run".to_string(),
        format!("{SCENARIO_DIR}/{}", literal(&sc.file_name)),
        "--out".to_string(),
        format!("{RESULTS_DIR}/shard-$(JOB_COMPLETION_INDEX)"),
        "--start-at".to_string(),
        rfc3339(o.now + o.start_in),
    ];
    args.extend(o.run.flags().iter().map(|a| literal(a)));
    let mut env = vec![json!({ "name": "RLT_SHARD_COUNT", "value": n.to_string() })];
    env.extend(secrets.iter().map(|s| {
        json!({ "name": s.name, "valueFrom": { "secretKeyRef": { "name": o.secret, "key": s.name, "optional": s.optional } } })
    }));
    let mut pod_labels = labels(names, "shards");
    pod_labels[ROLE] = json!("shard");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&names.shard_job, names, o, "shards"),
        "spec": {
            "completionMode": "Indexed",
            "completions": n,
            "parallelism": n,
            // A retried shard would start after the others, on a different timeline: fail the run instead.
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "restartPolicy": "Never",
                    "subdomain": names.service,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "shard",
                        "image": o.image,
                        "args": args,
                        "env": env,
                        "volumeMounts": [
                            { "name": "scenario", "mountPath": SCENARIO_DIR, "readOnly": true },
                            results_mount(names),
                        ],
                    }],
                    "volumes": [
                        { "name": "scenario", "configMap": { "name": names.configmap, "items": items } },
                        results_volume(o),
                    ],
                },
            },
        },
    })
}

/// Waits (bounded) until every shard wrote its result.json, then merges; merge's exit code is the Job's.
fn merge_script() -> String {
    format!(
        "n=\"$1\"; waited=0\n\
         while [ \"$(ls -d {RESULTS_DIR}/shard-*/result.json 2>/dev/null | wc -l)\" -lt \"$n\" ] && [ \"$waited\" -lt {MERGE_WAIT_SECS} ]; do\n  \
         sleep 5; waited=$((waited + 5))\n\
         done\n\
         exec run-load-test merge {RESULTS_DIR}/shard-* --expect \"$n\" --out {RESULTS_DIR}/merged\n"
    )
}

fn merge_job(names: &Names, o: &K8sOptions, n: u64) -> Value {
    let mut pod_labels = labels(names, "merge");
    pod_labels[ROLE] = json!("merge");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&names.merge_job, names, o, "merge"),
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "labels": pod_labels },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "merge",
                        "image": o.image,
                        "command": ["/bin/sh", "-c", merge_script(), "merge", n.to_string()],
                        "volumeMounts": [results_mount(names)],
                    }],
                    "volumes": [results_volume(o)],
                },
            },
        },
    })
}

fn header(sc: &ScenarioFiles, names: &Names, o: &K8sOptions, n: u64, secrets: &[SecretEnv]) -> String {
    let ns = o.namespace.as_ref().map(|ns| format!(" -n {ns}")).unwrap_or_default();
    let mut h = String::new();
    let mut line = |s: &str| {
        let _ = if s.is_empty() { writeln!(h, "#") } else { writeln!(h, "# {s}") };
    };
    line(&format!(
        "run-load-test: scenario {} in {n} shards, run id {}",
        comment_safe(&format!("{:?}", sc.name)),
        names.id
    ));
    line(&format!(
        "The shards start together at {} ({} after rendering): apply this within that margin, image pull",
        rfc3339(o.now + o.start_in),
        human(o.start_in)
    ));
    line(
        "included, or render again with a larger --start-in: a pod that starts after it records the skew, and merge checks it.",
    );
    line("");
    line(&format!("Needs: the PersistentVolumeClaim `{}` (ReadWriteMany) in the namespace; results go to", o.pvc));
    line(&format!("  <claim>/{}/shard-<index>/ and the merged report to <claim>/{}/merged/.", names.id, names.id));
    if !secrets.is_empty() {
        let keys: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
        line(&format!(
            "Needs: the Secret `{}` with the keys {} (values never rendered), e.g.",
            o.secret,
            keys.join(", ")
        ));
        let from: Vec<String> = keys.iter().map(|k| format!("--from-literal={k}=\"${k}\"")).collect();
        line(&format!("  kubectl{ns} create secret generic {} {}", o.secret, from.join(" ")));
    }
    line("");
    line(
        "Order, with this output saved as rlt.yaml (the merge Job runs after the shards; -l picks documents by stage):",
    );
    line(&format!("  kubectl{ns} apply -f rlt.yaml -l {STAGE}=shards"));
    line(&format!(
        "  kubectl{ns} wait --for=condition=complete --timeout=1h job/{}   # raise for long runs",
        names.shard_job
    ));
    line(&format!("  kubectl{ns} apply -f rlt.yaml -l {STAGE}=merge"));
    line(&format!("  kubectl{ns} wait --for=condition=complete --timeout=15m job/{}", names.merge_job));
    line(&format!("  kubectl{ns} logs job/{}   # the verdict; the Job fails when the gate fails", names.merge_job));
    line(&format!(
        "A failed shard fails job/{} (backoffLimit 0, no retry); merge then names the missing shard.",
        names.shard_job
    ));
    line(&format!("Shard 0's stable DNS name: {}", names.shard_host(0, o.namespace.as_deref())));
    if !sc.not_carried.is_empty() {
        line(
            "Not carried in the ConfigMap (outside the scenario's directory; put them in the image at the same path):",
        );
        for p in &sc.not_carried {
            line(&format!("  {}", comment_safe(p)));
        }
    }
    h
}
