use proptest::prelude::*;

use super::*;
use crate::cli::{Cli, Command, NumberArg, value_error};

fn scenario_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("s.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const BASE: &str =
    "[load]\nusers = 4\nduration = \"20s\"\n[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";

/// `run <p>` with no other flag, as the command line gives it.
fn overrides(p: &Path) -> RunArgs {
    use clap::Parser;
    match crate::cli::Cli::try_parse_from(["run-load-test", "run", &p.display().to_string()]).unwrap().command {
        crate::cli::Command::Run(a) => *a,
        _ => unreachable!("run"),
    }
}

/// A number flag's text.
fn n(v: impl ToString) -> Option<NumberArg> {
    Some(NumberArg(v.to_string()))
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
    let cfg = RunConfig::resolve(RunArgs { users: n(3), ..overrides(&p) }).unwrap();
    assert_eq!(closed(&cfg).0, 3, "--users on the command line means closed");
    let e = RunConfig::resolve(RunArgs { users: n(3), rate: n(5.0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--rate"), "{e}");
    let e = RunConfig::resolve(RunArgs { spawn_rate: n(2.0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--spawn-rate"), "{e}");
}

#[test]
fn cli_beats_toml_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    let cfg = RunConfig::resolve(overrides(&p)).unwrap();
    assert_eq!(closed(&cfg), (4, Some(Duration::from_secs(20))));
    assert_eq!(cfg.timeout, DEFAULT_TIMEOUT);
    let cfg =
        RunConfig::resolve(RunArgs { users: n(9), duration: Some(Duration::from_secs(3)), ..overrides(&p) }).unwrap();
    assert_eq!(closed(&cfg), (9, Some(Duration::from_secs(3))));
    assert!(matches!(cfg.target, Target::EmbeddedMock(_)));
}

#[test]
fn iterations_alone_means_no_default_duration() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/\"\n");
    let cfg = RunConfig::resolve(RunArgs { iterations: n(5), ..overrides(&p) }).unwrap();
    assert_eq!((cfg.load.duration(), cfg.load.iterations(), closed(&cfg).0), (None, Some(5), 1));
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    let e = RunConfig::resolve(RunArgs { users: n(0), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("invalid value '0' for '--users <N>': must be a whole number"), "{e}");
    let e = RunConfig::resolve(RunArgs { target: Some("ftp://x".into()), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--target"), "{e}");
    let e = RunConfig::resolve(RunArgs { pushgateway: Some("pg:9091".into()), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--pushgateway"), "{e}");
    let cfg = RunConfig::resolve(RunArgs { pushgateway: Some("http://pg:9091/".into()), ..overrides(&p) });
    assert_eq!(cfg.unwrap().prometheus.pushgateway.as_deref(), Some("http://pg:9091"), "no trailing slash");
}

#[test]
fn credentials_are_hidden_from_the_target() {
    assert_eq!(display_target("http://u:pw@gw:8000"), "http://gw:8000");
    assert_eq!(display_target("http://gw:8000"), "http://gw:8000");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever numbers the flags carry, resolution never panics: it gives a load within the documented
    /// ranges or one line naming the flag.
    #[test]
    fn any_flag_numbers_resolve_in_range_or_name_the_flag(
        users in proptest::option::of(any::<u32>()),
        rate in proptest::option::of(any::<f64>()),
        spawn_rate in proptest::option::of(any::<f64>()),
        max_in_flight in proptest::option::of(any::<u32>()),
        iterations in proptest::option::of(any::<u64>()),
        secs in proptest::option::of(any::<u64>()),
        workers in proptest::option::of(any::<usize>()),
        sweep in proptest::option::of("(users|rate)=[-0-9.e]{1,12}(,[-0-9.e]{1,12})?"),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = scenario_file(dir.path(), BASE);
        let duration = secs.map(Duration::from_secs);
        let o = RunArgs {
            users: users.and_then(n), rate: rate.and_then(n), spawn_rate: spawn_rate.and_then(n),
            max_in_flight: max_in_flight.and_then(n), iterations: iterations.and_then(n), workers: workers.and_then(n),
            duration, sweep,
            timeout: duration, hold: duration, graceful_stop: duration,
            ..overrides(&p)
        };
        match RunConfig::resolve(o) {
            Ok(cfg) => {
                match &cfg.load {
                    LoadModel::Closed(c) => prop_assert!((1..=100_000).contains(&c.users)),
                    LoadModel::Open(o) => {
                        prop_assert!(o.rate.is_finite() && (0.001..=1e6).contains(&o.rate));
                        prop_assert!((1..=100_000).contains(&o.max_in_flight));
                    }
                }
                prop_assert!(cfg.load.duration().is_none_or(|d| d <= crate::limits::MAX_DURATION));
                prop_assert!((1..=1024).contains(&cfg.workers));
                if let Some(l) = &cfg.levels {
                    prop_assert!(l.values.iter().all(|v| v.is_finite() && (0.001..=1e6).contains(v)));
                }
            }
            Err(e) => {
                let e = e.to_string();
                // A number out of range is worded as clap words a bad value: `invalid value '0' for '--users <N>'`.
                prop_assert!(e.starts_with("--") || (e.starts_with("invalid value '") && e.contains("' for '--")), "{}", e);
                prop_assert_eq!(e.lines().count(), 1, "{}", e);
            }
        }
    }
}

#[test]
fn scenario_numbers_are_never_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), &BASE.replace("users = 4", "rate = 5.0\nmax_in_flight = 100000"));
    let cfg = RunConfig::resolve(overrides(&p)).unwrap();
    let LoadModel::Open(o) = &cfg.load else { panic!("open") };
    assert_eq!(o.max_in_flight, 100_000);
    let p = scenario_file(dir.path(), &BASE.replace("users = 4", "stages = [{ target = 100000, duration = \"1s\" }]"));
    assert_eq!(closed(&RunConfig::resolve(overrides(&p)).unwrap()).0, 100_000);
    let p = scenario_file(dir.path(), &BASE.replace("users = 4", "users = 4294967296"));
    let e = RunConfig::resolve(overrides(&p)).unwrap_err().to_string();
    assert!(e.ends_with("`users` must be a whole number from 1 to 100000, got 4294967296"), "{e}");
}

#[test]
fn the_scenario_timeout_is_blamed_on_the_file_and_the_flag_on_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), &format!("[defaults]\ntimeout = \"0s\"\n{BASE}"));
    let e = RunConfig::resolve(overrides(&p)).unwrap_err().to_string();
    assert!(e.contains("s.toml:2:1: `[defaults] timeout` must be longer than zero"), "{e}");
    let p = scenario_file(dir.path(), BASE);
    let e = RunConfig::resolve(RunArgs { timeout: Some(Duration::ZERO), ..overrides(&p) }).unwrap_err();
    assert_eq!(e.to_string(), "--timeout: must be longer than zero and at most 30d, got 0s");
    let e = RunConfig::resolve(RunArgs { stages: Some("0,10s".into()), ..overrides(&p) }).unwrap_err();
    assert!(e.to_string().starts_with("--stages: the plan never starts a user"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Any number in a scenario's load keys resolves to a load within range or fails with one located line.
    #[test]
    fn any_scenario_numbers_resolve_in_range_or_name_the_line(
        n in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            (0u64..=200_000).prop_map(|v| v.to_string()),
            (0u32..300).prop_map(|e| format!("1e{e}")),
            (1u32..320).prop_map(|e| format!("1e-{e}")),
        ],
        key in 0usize..6,
    ) {
        let load = match key {
            0 => format!("users = {n}"),
            1 => format!("users = 2\nspawn_rate = {n}"),
            2 => format!("rate = {n}"),
            3 => format!("rate = 2.0\nmax_in_flight = {n}"),
            4 => format!("stages = [{{ target = {n}, duration = \"1s\" }}]"),
            _ => format!("users = 1\niterations_per_user = {n}"),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = scenario_file(dir.path(), &BASE.replace("users = 4", &load));
        match RunConfig::resolve(overrides(&p)) {
            Ok(cfg) => match &cfg.load {
                LoadModel::Closed(c) => {
                    prop_assert!((1..=100_000).contains(&c.users));
                    prop_assert!(c.spawn_rate.is_none_or(|r| (0.001..=100_000.0).contains(&r)));
                    prop_assert!(c.iterations_per_user.is_none_or(|i| (1..=1_000_000_000_000).contains(&i)));
                }
                LoadModel::Open(o) => {
                    prop_assert!((0.001..=1e6).contains(&o.rate));
                    prop_assert!((1..=100_000).contains(&o.max_in_flight));
                }
            },
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.contains("s.toml:"), "{}", e);
                prop_assert_eq!(e.lines().count(), 1, "{}", e);
            }
        }
    }
}

#[test]
fn fail_fast_is_on_unless_the_scenario_or_the_flag_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    assert!(RunConfig::resolve(overrides(&p)).unwrap().fail_fast, "on by default");
    assert!(!RunConfig::resolve(RunArgs { no_fail_fast: true, ..overrides(&p) }).unwrap().fail_fast);
    let off = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = false\n"));
    assert!(!RunConfig::resolve(overrides(&off)).unwrap().fail_fast);
    let on = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = true\n"));
    assert!(!RunConfig::resolve(RunArgs { no_fail_fast: true, ..overrides(&on) }).unwrap().fail_fast, "the flag wins");
    let bad = scenario_file(dir.path(), &BASE.replace("[load]\n", "[load]\nfail_fast = \"yes\"\n"));
    assert!(RunConfig::resolve(overrides(&bad)).is_err(), "a boolean");
}

/// `run stress ARGS` as `main` reports it: clap's one-line value error, else the error of `resolve`.
fn flag_error(args: &[&str]) -> String {
    use clap::Parser;
    let mut argv = vec!["run-load-test", "run", "stress"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Err(e) => value_error(&e).unwrap_or_else(|| panic!("{args:?} is not a value error: {e}")),
        Ok(Cli { command: Command::Run(a) }) => RunConfig::resolve(*a).unwrap_err().to_string(),
        Ok(_) => unreachable!("run"),
    }
}

#[test]
fn numeric_flags_are_one_line_errors_naming_flag_and_range() {
    let err = flag_error;
    assert_eq!(
        err(&["--users", "4294967296"]),
        "invalid value '4294967296' for '--users <N>': must be a whole number from 1 to 100000, got 4294967296"
    );
    assert!(err(&["--users", "-1"]).contains("'--users <N>': must be a whole number from 1 to 100000, got -1"));
    assert!(err(&["--users", "0.5"]).contains("got 0.5"));
    assert!(err(&["--rate", "1e-300"]).contains("'--rate <PER_SEC>': must be a number from 0.001 to 1000000"));
    assert!(err(&["--rate", "1e12"]).contains("got 1000000000000"));
    assert!(err(&["--rate", "nan"]).contains("--rate"));
    assert!(err(&["--spawn-rate", "1e-300"]).contains("'--spawn-rate <PER_SEC>': must be a number from 0.001"));
    assert!(err(&["--max-in-flight", "1e11"]).contains("from 1 to 100000"));
    assert!(err(&["--iterations", "0"]).contains("--iterations"));
    assert!(err(&["--iterations-per-user", "1e13"]).contains("--iterations-per-user"));
    assert!(err(&["--workers", "100000"]).contains("from 1 to 1024"));
    assert!(err(&["--duration", "-5"]).contains("--duration"));
    assert_eq!(
        err(&["--arrival", "burst"]),
        "invalid value 'burst' for '--arrival <KIND>' [possible values: constant, poisson]"
    );
    for e in [err(&["--users", "x"]), err(&["--duration", "soon"])] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), BASE);
    let cfg = RunConfig::resolve(RunArgs { users: n("1e3"), ..overrides(&p) }).unwrap();
    assert_eq!(closed(&cfg).0, 1000);
    let cfg = RunConfig::resolve(RunArgs { rate: n("0.5"), ..overrides(&p) }).unwrap();
    let LoadModel::Open(o) = &cfg.load else { panic!("open") };
    assert_eq!(o.rate, 0.5);
}

/// `run <p> ARGS..`, as the command line gives it.
fn run_with(p: &Path, args: &[&str]) -> RunArgs {
    use clap::Parser;
    let path = p.display().to_string();
    let argv = ["run-load-test", "run", path.as_str()].into_iter().chain(args.iter().copied());
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::Command::Run(a) => *a,
        _ => unreachable!("run"),
    }
}

#[test]
fn header_flags_replace_or_add_default_headers_and_refuse_bad_ones_without_echoing_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = scenario_file(dir.path(), &format!("[defaults]\nheaders = {{ Authorization = \"Bearer a\" }}\n{BASE}"));
    let config = r#"x-portkey-config: {"strategy":{"mode":"fallback"},"targets":[{"provider":"openai"}]}"#;
    let args = run_with(&p, &["-H", "authorization: Bearer b", "--header", "X-Portkey-Provider:openai", "-H", config]);
    let cfg = RunConfig::resolve(args).unwrap();
    let headers: Vec<(&str, &str)> =
        cfg.scenario.scenario.defaults.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        headers,
        [
            ("authorization", "Bearer b"),
            ("x-portkey-config", r#"{"strategy":{"mode":"fallback"},"targets":[{"provider":"openai"}]}"#),
            ("x-portkey-provider", "openai"),
        ]
    );
    for (given, wanted) in [
        ("no-colon-secret", "--header: expected NAME: VALUE"),
        ("bad name: v", "--header: `bad name` is not a valid header name"),
        ("x-key: sec\u{7}ret", "--header: the value of `x-key` is not valid in an HTTP header"),
        ("x-key: {{ secret }}", "--header: the value of `x-key` contains `{{` or `{%`"),
    ] {
        let e = RunConfig::resolve(run_with(&p, &["-H", given])).unwrap_err().to_string();
        assert!(e.starts_with(wanted), "{given}: {e}");
        assert!(!e.contains("secret") && !e.contains("sec\u{7}ret"), "the value leaked: {e}");
    }
}

#[test]
fn mock_set_takes_any_mock_key_over_the_flags_and_names_itself_in_errors() {
    use clap::Parser;
    let mock = |args: &[&str]| {
        let argv = ["run-load-test", "mock"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Mock(a) => mock_from_args(a),
            _ => unreachable!("mock"),
        }
    };
    let m = mock(&["--error-rate", "0.1", "--set", "retry_after=50ms", "--set", "error_rate=0.2"]).unwrap();
    assert_eq!((m.retry_after, m.error_rate), (Duration::from_millis(50), 0.2));
    let e = mock(&["--set", "retry_afte=50ms"]).unwrap_err().to_string();
    assert!(e.starts_with("--set: ") && e.contains("retry_afte"), "{e}");
    let e = mock(&["--set", "error_rate=2"]).unwrap_err().to_string();
    assert!(e.starts_with("--set: [mock] error_rate must be between 0 and 1"), "{e}");
}
