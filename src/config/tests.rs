use super::*;

fn scenario_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("s.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const BASE: &str =
    "[load]\nusers = 4\nduration = \"20s\"\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";

fn overrides(p: &Path) -> Overrides {
    Overrides { scenario: p.display().to_string(), scenarios_dir: "scenarios".into(), ..Default::default() }
}

fn closed(cfg: &RunConfig) -> (u32, Option<Duration>) {
    match &cfg.load {
        LoadModel::Closed(c) => (c.users, c.duration),
        LoadModel::Open(_) => panic!("expected the closed model"),
    }
}

#[test]
fn the_model_follows_the_command_line_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        scenario_file(dir.path(), &BASE.replace("users = 4", "rate = 50.0\narrival = \"poisson\"\nmax_in_flight = 20"));
    let cfg = RunConfig::resolve(overrides(&p)).unwrap();
    match &cfg.load {
        LoadModel::Open(o) => {
            assert_eq!((o.rate, o.arrival, o.max_in_flight), (50.0, crate::engine::Arrival::Poisson, 20))
        }
        LoadModel::Closed(_) => panic!("rate in the file means open"),
    }
    let cfg = RunConfig::resolve(Overrides { users: Some(3), ..overrides(&p) }).unwrap();
    assert_eq!(closed(&cfg).0, 3, "--users on the command line means closed");
    let e = RunConfig::resolve(Overrides { users: Some(3), rate: Some(5.0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--rate"), "{e}");
    let e = RunConfig::resolve(Overrides { spawn_rate: Some(2.0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--spawn-rate"), "{e}");
}

#[test]
fn cli_beats_toml_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    let cfg = RunConfig::resolve(overrides(&p)).unwrap();
    assert_eq!(closed(&cfg), (4, Some(Duration::from_secs(20))));
    assert_eq!(cfg.timeout, DEFAULT_TIMEOUT);
    let cfg = RunConfig::resolve(Overrides { users: Some(9), duration: Some(Duration::from_secs(3)), ..overrides(&p) })
        .unwrap();
    assert_eq!(closed(&cfg), (9, Some(Duration::from_secs(3))));
    assert!(matches!(cfg.target, Target::EmbeddedMock(_)));
}

#[test]
fn iterations_alone_means_no_default_duration() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/\"\n");
    let cfg = RunConfig::resolve(Overrides { iterations: Some(5), ..overrides(&p) }).unwrap();
    assert_eq!((cfg.load.duration(), cfg.load.iterations(), closed(&cfg).0), (None, Some(5), 1));
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    let e = RunConfig::resolve(Overrides { users: Some(0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--users"), "{e}");
    let e = RunConfig::resolve(Overrides { target: Some("ftp://x".into()), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--target"), "{e}");
    let e = RunConfig::resolve(Overrides { pushgateway: Some("pg:9091".into()), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--pushgateway"), "{e}");
    let cfg = RunConfig::resolve(Overrides { pushgateway: Some("http://pg:9091/".into()), ..overrides(&p) });
    assert_eq!(cfg.unwrap().prometheus.pushgateway.as_deref(), Some("http://pg:9091"), "no trailing slash");
}

#[test]
fn credentials_are_hidden_from_the_target() {
    assert_eq!(display_target("http://u:pw@gw:8000"), "http://gw:8000");
    assert_eq!(display_target("http://gw:8000"), "http://gw:8000");
}

#[test]
fn fail_fast_is_on_unless_the_scenario_or_the_flag_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    assert!(RunConfig::resolve(overrides(&p)).unwrap().fail_fast, "on by default");
    assert!(!RunConfig::resolve(Overrides { no_fail_fast: true, ..overrides(&p) }).unwrap().fail_fast);
    let off = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = false\n"));
    assert!(!RunConfig::resolve(overrides(&off)).unwrap().fail_fast);
    let on = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = true\n"));
    assert!(
        !RunConfig::resolve(Overrides { no_fail_fast: true, ..overrides(&on) }).unwrap().fail_fast,
        "the flag wins"
    );
    let bad = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = \"yes\"\n"));
    assert!(RunConfig::resolve(overrides(&bad)).is_err(), "a boolean");
}
