//! A comparison of repeated runs (`run --repeat`, `compare BASE C1 C2 ...`): each side is the median of its
//! runs, one wild run does not move it, every run slowed does; a side is disturbed when half its runs were.

use super::*;
use crate::result::Repeats;

/// A report of repeated runs as `run --repeat` stores it: the first run stands for the set-up, `repeats` holds
/// them all.
fn repeated(runs: Vec<RunReport>) -> RunReport {
    let mut top = runs[0].clone();
    top.repeats = Some(Repeats::of(runs));
    top
}

fn runs_at(ms: &[f64]) -> Vec<RunReport> {
    ms.iter().map(|&m| run(m, 2000, 0)).collect()
}

#[test]
fn one_wild_run_does_not_move_the_median_and_every_run_slowed_does() {
    let base = repeated(runs_at(&[100.0, 101.0, 99.0]));
    // p95 doubled in one run only: the median is the other two's.
    let outlier = repeated(runs_at(&[100.0, 200.0, 101.0]));
    let c = compare(&base, "b", &outlier, &RuleSet::default()).unwrap();
    for stat in ["p(50)", "p(95)", "p(99)"] {
        let v = verdict(&c, "latency", stat);
        assert!(matches!(v, Change::Ok | Change::Noise), "latency {stat}: {v:?} {:#?}", row(&c, "latency", stat));
    }
    assert!(!c.failed(), "{:#?}", c.rows);
    let p95 = row(&c, "latency", "p(95)");
    let spread = p95.current_runs.as_ref().expect("the current runs are shown");
    assert_eq!(spread.values.len(), 3);
    assert!(spread.values[1] > 1.8 * spread.values[0], "{spread:?}");
    assert!(spread.cv_pct.unwrap() > 15.0, "{spread:?}");
    assert!((p95.current.unwrap() - spread.values[2]).abs() < 1e-9, "the median is the middle run's");

    let slowed = repeated(runs_at(&[150.0, 152.0, 149.0]));
    let c = compare(&base, "b", &slowed, &RuleSet::default()).unwrap();
    for stat in ["p(50)", "p(95)", "p(99)"] {
        assert_eq!(verdict(&c, "latency", stat), Change::Regression, "latency {stat}");
    }
    assert!(row(&c, "latency", "p(95)").current_runs.as_ref().unwrap().cv_pct.unwrap() < 15.0);
}

#[test]
fn the_spread_between_runs_widens_the_noise_band() {
    let base = repeated(runs_at(&[100.0, 100.0, 100.0]));
    let steady = repeated(runs_at(&[130.0, 130.0, 130.0]));
    let wobbly = repeated(runs_at(&[100.0, 130.0, 160.0]));
    let (a, b) = (
        compare(&base, "b", &steady, &RuleSet::default()).unwrap(),
        compare(&base, "b", &wobbly, &RuleSet::default()).unwrap(),
    );
    let (na, nb) = (row(&a, "latency", "p(50)").noise.unwrap(), row(&b, "latency", "p(50)").noise.unwrap());
    assert!(nb > 5.0 * na, "runs 30 ms apart are noisier than alike runs: {nb} vs {na}");
    assert_eq!(verdict(&a, "latency", "p(50)"), Change::Regression);
    assert_eq!(verdict(&b, "latency", "p(50)"), Change::Noise, "{:#?}", row(&b, "latency", "p(50)"));
}

#[test]
fn a_single_run_compares_exactly_as_before() {
    let (base, cur) = (run(100.0, 2000, 0), run(130.0, 2000, 0));
    let plain = compare(&base, "b", &cur, &RuleSet::default()).unwrap();
    // A repeat of one run is a set of one: the same rows, bit for bit.
    let one = compare(&repeated(vec![base.clone()]), "b", &repeated(vec![cur.clone()]), &RuleSet::default()).unwrap();
    assert_eq!(plain, one);
    assert!(plain.rows.iter().all(|d| d.current_runs.is_none()));
}

#[test]
fn a_side_is_disturbed_when_half_its_runs_were() {
    let quiet = host(0.1, 0.8, false);
    let busy = host(9.0, 38.0, true);
    let on = |ms: &[f64], envs: &[&crate::result::Environment]| {
        let mut runs = runs_at(ms);
        for (r, e) in runs.iter_mut().zip(envs) {
            r.environment = Some((*e).clone());
        }
        repeated(runs)
    };
    let base = on(&[100.0, 100.0, 100.0], &[&quiet, &quiet, &quiet]);
    // Every run slowed, one on a busy host: the median still says slower, and the host does not excuse it.
    let one_busy = on(&[150.0, 150.0, 150.0], &[&busy, &quiet, &quiet]);
    let c = compare(&base, "b", &one_busy, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&c, "latency", "p(50)"), Change::Regression, "{:#?}", row(&c, "latency", "p(50)"));
    let two_busy = on(&[150.0, 150.0, 150.0], &[&busy, &quiet, &busy]);
    let c = compare(&base, "b", &two_busy, &RuleSet::default()).unwrap();
    assert_eq!(verdict(&c, "latency", "p(50)"), Change::Inconclusive);
    let why = row(&c, "latency", "p(50)").reason.clone().unwrap();
    assert!(why.starts_with("host disturbed in 2 of 3 current runs (run 1: hiccup p99 38.0 ms"), "{why}");
    assert!(why.contains("; run 3: hiccup p99 38.0 ms"), "{why}");
    assert_eq!(verdict(&c, "errors", "rate"), Change::Ok);
}
