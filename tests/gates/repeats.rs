//! `run --repeat N` end to end against the embedded mock: three runs stored, each with its own series and
//! environment, and the totals of all of them; a baseline of three runs; one wildly slow run among three is
//! `ok` (the median resists it) while three slowed runs regress; `compare BASE C1 C2 C3` judges exactly as
//! `run --repeat 3 --baseline` did; bad values of `--repeat` and `--repeat` with a sweep are exit 2.

use serde_json::Value;

use super::*;

/// Two seconds a run keeps the test short; the mock's pace (see `CHAT`) still gives ~40 requests a run.
fn repeat_run(f: &Path, out: &Path, n: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--repeat", n, "--duration", "2s"];
    args.extend_from_slice(extra);
    gate_run(f, out, &args)
}

fn runs(r: &Value) -> &Vec<Value> {
    r["repeats"]["runs"].as_array().unwrap_or_else(|| panic!("no repeats: {}", r["repeats"]))
}

/// Each run of a stored repeated result, written as a result of its own.
fn split(r: &Value, dir: &Path, prefix: &str) -> Vec<PathBuf> {
    runs(r).iter().enumerate().map(|(i, run)| write(dir, &format!("{prefix}{i}.json"), &run.to_string())).collect()
}

/// The comparison table's rows in a Markdown summary (one line per compared statistic).
fn md_rows(path: &Path) -> Vec<String> {
    let md = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    md.lines().filter(|l| l.starts_with("| `")).map(str::to_string).collect()
}

#[test]
fn repeated_runs_are_stored_judged_on_their_median_and_compare_judges_the_same() {
    let f = fixture();
    let dir = tempfile::Builder::new().prefix("gates-repeat-").tempdir_in(&f.dir).unwrap();
    let d = dir.path();
    let base = d.join("base3.json");

    // Three runs stored, in the result and in the baseline.
    let o = repeat_run(&f.scenario, &d.join("a"), "3", &["--save-baseline", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let r = read_report(&d.join("a"));
    assert_eq!(r["schema_version"], 5);
    let each = runs(&r);
    assert_eq!(each.len(), 3, "{}", r["repeats"]);
    let sum = |key: &str| each.iter().map(|x| u(&x["totals"][key])).sum::<u64>();
    assert_eq!(u(&r["totals"]["requests"]), sum("requests"), "the top level is all runs together");
    assert_eq!(u(&r["totals"]["failures"]), sum("failures"));
    assert!(u(&r["totals"]["requests"]) > 0);
    let series: usize = each.iter().map(|x| x["series"].as_array().unwrap().len()).sum();
    assert_eq!(r["series"].as_array().unwrap().len(), series, "one series after the other");
    for (i, x) in each.iter().enumerate() {
        assert!(!x["series"].as_array().unwrap().is_empty(), "run {i} has its own series");
        assert!(x["environment"]["hiccup"]["samples"].as_u64().unwrap() > 0, "run {i} has its own host: {x}");
        assert!(x.get("repeats").is_none() && x.get("comparison").is_none() && x.get("thresholds").is_none());
    }
    let starts: Vec<&str> = each.iter().map(|x| x["started_at"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "runs one after the other: {starts:?}");
    let p95 =
        r["repeats"]["summary"].as_array().unwrap().iter().find(|s| s["metric"] == "latency" && s["stat"] == "p(95)");
    let p95 = p95.expect("latency p(95) summarised");
    assert_eq!(p95["values"].as_array().unwrap().len(), 3);
    assert!(p95["cv_pct"].as_f64().is_some(), "{p95}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    assert_eq!(runs(&saved).len(), 3, "a baseline holds the repeated runs");

    // Three slowed runs against it: a regression judged on their median, each run's value on the row.
    let (md_run, md_cmp) = (d.join("run.md"), d.join("compare.md"));
    let b = base.to_str().unwrap();
    let o = repeat_run(
        &f.scenario,
        &d.join("s"),
        "3",
        &["--baseline", b, "--mock", SLOWER, "--summary-md", md_run.to_str().unwrap()],
    );
    let slow = read_report(&d.join("s"));
    let tpot = row(&slow, "tpot", "p(50)");
    let code = slowed_code(&o, tpot);
    let values: Vec<f64> =
        tpot["current_runs"]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(values.len(), 3, "{tpot}");
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(tpot["current"].as_f64().unwrap(), sorted[1], "the median of the three runs");

    // The same runs as three files: `compare` gives the same rows and the same exit code.
    let files = split(&slow, d, "slow");
    let mut args = vec!["compare", b];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--quiet", "--summary-md", md_cmp.to_str().unwrap()]);
    let c = run(&args);
    assert_eq!(c.status.code(), Some(code), "{}", text(&c.stderr));
    let (by_run, by_compare) = (md_rows(&md_run), md_rows(&md_cmp));
    assert!(!by_run.is_empty() && by_run.iter().any(|l| l.contains("Current runs") || l.contains(" · ")), "{by_run:?}");
    assert_eq!(by_run, by_compare, "run --repeat 3 --baseline and compare BASE C1 C2 C3 judge alike");
    assert_eq!(gate_lines(&o), gate_lines(&c));

    // Two unchanged runs and one slowed: the median is an unchanged run's, so nothing regressed.
    let o = repeat_run(&f.scenario, &d.join("u"), "2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut args = vec!["compare", b];
    let unchanged = split(&read_report(&d.join("u")), d, "same");
    args.extend(unchanged.iter().map(|p| p.to_str().unwrap()));
    args.extend([files[0].to_str().unwrap(), "--summary-md", md_cmp.to_str().unwrap()]);
    let c = run(&args);
    let rows = md_rows(&md_cmp);
    let tpot = rows.iter().find(|l| l.starts_with("| `tpot` | p(50)")).expect("a tpot row");
    assert!(tpot.ends_with("| ok |") || tpot.ends_with("| within noise |"), "the median resists one run: {tpot}");
    // Exit 4 only when the host was too busy to judge the other rows; never a failed gate.
    let code = c.status.code();
    assert!(code == Some(0) || (code == Some(4) && rows.iter().any(|l| l.contains("host"))), "{code:?}: {rows:#?}");
    assert!(rows.iter().all(|l| !l.contains("REGRESSION")), "{rows:#?}");
    assert!(text(&c.stdout).contains("Current runs (CV)"), "{}", text(&c.stdout));
}

/// The exit code of three slowed runs: a regression (exit 1), unless the machine running the test was so busy
/// that the gate says it cannot tell (exit 4, the row `inconclusive` with the host's reason), which is the
/// gate working as documented, not a failure of the median.
fn slowed_code(o: &Output, tpot: &Value) -> i32 {
    let err = text(&o.stderr);
    match tpot["verdict"].as_str() {
        Some("regression") => assert_eq!(o.status.code(), Some(1), "{err}"),
        Some("inconclusive") => {
            assert!(tpot["reason"].as_str().is_some_and(|r| r.starts_with("host ")), "{tpot}");
            assert!(matches!(o.status.code(), Some(1 | 4)), "{err}");
        }
        _ => panic!("three runs at twice the token delay: {tpot}"),
    }
    o.status.code().unwrap_or(-1)
}

#[test]
fn bad_repeat_values_and_a_repeated_sweep_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gates.toml", CHAT);
    for bad in ["0", "101", "-1", "x", "2.5"] {
        let out = dir.path().join(format!("o{bad}"));
        let err = refused(&gate_run(&p, &out, &["--repeat", bad]), "--repeat", &out);
        assert!(err.contains("1 to 100"), "{bad}: {err}");
    }
    let out = dir.path().join("sweep");
    let err = refused(&gate_run(&p, &out, &["--repeat", "2", "--sweep", "users=1,2"]), "--repeat", &out);
    assert!(err.contains("--sweep"), "{err}");
}
