//! Open and closed models against the embedded mock: arrival-rate accuracy, drops at max_in_flight, and
//! coordinated omission made visible by a whole-gateway pause.

use serde_json::Value;

use crate::common::*;

fn scenario(load: &str, mock: &str) -> String {
    format!(
        "[load]\n{load}\n[mock]\noutput_tokens = 1\n{mock}\n\
         [[user]]\nname = \"U\"\n[[user.step]]\nname = \"chat\"\npost = \"/v1/chat/completions\"\n\
         json = {{ model = \"m\", messages = [{{ role = \"user\", content = \"hi\" }}] }}\n"
    )
}

fn run_with(load: &str, mock: &str, extra: &[&str]) -> Value {
    let _quiet = timed();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", &scenario(load, mock));
    run_report(&p, &dir.path().join("o"), extra)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Counts, not timing: the schedule fixes the arrivals (200/s for 5 s) however busy the machine is, and each is
/// counted once, run or dropped. max_in_flight leaves room, so only a starved generator drops any: the tail it
/// had not started (dispatched and first polled) when the run ended. That slack is derived from the run itself:
/// a pending arrival per worker plus the arrivals of the longest schedule lag measured (at least 50 ms).
#[test]
fn open_model_keeps_the_target_rate() {
    let r = run_with(
        "rate = 200.0\nmax_in_flight = 1000\nduration = \"5s\"",
        "first_token_delay = \"2ms\"",
        &["--seed", "1"],
    );
    assert_eq!(r["load"]["model"], "open");
    let o = &r["open"];
    let arrivals = u(&o["arrivals"]);
    let workers = u(&r["generator"]["workers"]);
    let lag_s = (f(&o["schedule_lag"]["max_ms"]) / 1000.0).max(0.05);
    let slack = workers + (200.0 * lag_s).ceil() as u64;
    // Exact whatever the machine: an arrival due before the end counts even when the stop kept it from starting.
    // Only the float rounding of the last arrival's time can move one across the end.
    assert!((999..=1001).contains(&arrivals), "200/s for 5 s is 1000 arrivals: {arrivals}");
    let dropped = u(&o["dropped"]);
    assert!(dropped <= slack, "only a starved generator's unstarted tail is dropped (slack {slack}): {dropped}");
    let achieved = f(&o["achieved_rate"]);
    let ran = (arrivals - dropped) as f64 / 5.0;
    assert!((achieved - ran).abs() < 1e-6, "achieved {achieved}/s is the arrivals not dropped over the duration");
    // Requests cut at the stop may or may not be among `requests` (as `interrupted` failures): bound both ways.
    let (requests, cut) = (u(&r["totals"]["requests"]), u(&r["generator"]["interrupted_requests"]));
    assert!(
        requests + dropped <= arrivals && requests + cut + dropped >= arrivals,
        "every arrival ran once or was dropped: {requests} (+{cut} cut, {dropped} dropped) of {arrivals}"
    );
    assert!(r["totals"]["latency_uncorrected"]["p50_ms"].is_number(), "the uncorrected histogram is kept");
}

#[test]
fn poisson_arrivals_average_the_rate() {
    let r = run_with(
        "rate = 200.0\narrival = \"poisson\"\nmax_in_flight = 100\nduration = \"5s\"",
        "first_token_delay = \"2ms\"",
        &["--seed", "4"],
    );
    let arrivals = u(&r["open"]["arrivals"]);
    assert!((880..=1120).contains(&arrivals), "Poisson(1000) is within 4 sigma of 1000: {arrivals}");
    assert_eq!(r["load"]["arrival"], "poisson");
}

#[test]
fn arrivals_beyond_max_in_flight_are_dropped_and_counted() {
    let r = run_with(
        "rate = 200.0\nmax_in_flight = 4\nduration = \"2s\"",
        "first_token_delay = \"100ms\"",
        &["--seed", "2"],
    );
    let o = &r["open"];
    let (arrivals, dropped) = (u(&o["arrivals"]), u(&o["dropped"]));
    assert!(dropped > arrivals / 2, "4 in flight x 10/s each cannot keep 200/s: {dropped} of {arrivals} dropped");
    assert_eq!(u(&r["totals"]["requests"]) + dropped, arrivals);
    assert!(f(&o["achieved_rate"]) < 60.0);
}

/// A 1-second pause of the whole gateway: the closed model's few users just wait (the pause hides in a
/// handful of samples), while the open model keeps arriving and every arrival in the pause is counted late.
/// Bounds are fractions of the pause, not of a request's normal time, so a busy machine cannot cross them: the
/// closed model's pause samples (one or two per user) stay under 1 % as long as a user makes more than 100
/// requests outside the pause (checked), and its p99 stays a normal request, below half the pause. The closed run
/// lasts 8 s so that even a starved machine (tens of ms per request) makes those samples in the 7 s around it.
#[test]
fn a_pause_shows_in_the_open_models_p99_but_hides_in_the_closed_one() {
    let mock = "first_token_delay = \"1ms\"\noutage_after = \"1s\"\noutage = \"1s\"";
    let open = run_with("rate = 100.0\nmax_in_flight = 500\nduration = \"3s\"", mock, &["--seed", "3"]);
    let closed = run_with("users = 2\nduration = \"8s\"", mock, &["--seed", "3"]);
    let open_p99 = f(&open["totals"]["latency"]["p99_ms"]);
    let closed_p99 = f(&closed["totals"]["latency"]["p99_ms"]);
    let closed_requests = u(&closed["totals"]["requests"]);
    assert!(closed_requests > 2 * 2 * 100, "enough closed-model samples for the pause to hide: {closed_requests}");
    assert!(open_p99 > 400.0, "open-model p99 {open_p99} ms reflects the 1 s pause");
    assert!(closed_p99 < 500.0, "closed-model p99 {closed_p99} ms does not (coordinated omission)");
    assert!(closed_p99 * 2.0 < open_p99, "closed p99 {closed_p99} ms, open p99 {open_p99} ms");
    let closed_max = f(&closed["totals"]["latency"]["max_ms"]);
    assert!(closed_max > 500.0, "the closed users did wait through it: max {closed_max} ms");
    // The ~100 arrivals of the pause all fit under max_in_flight, so none is dropped for that; a starved generator
    // may still drop the tail it had not started at the end: a pending arrival per worker plus the arrivals (100/s)
    // of the longest schedule lag measured (at least 50 ms), as in `open_model_keeps_the_target_rate`.
    let o = &open["open"];
    let lag_s = (f(&o["schedule_lag"]["max_ms"]) / 1000.0).max(0.05);
    let slack = u(&open["generator"]["workers"]) + (100.0 * lag_s).ceil() as u64;
    assert!(u(&o["dropped"]) <= slack, "no arrival dropped for max_in_flight (slack {slack}): {o}");
}

#[test]
fn the_breaking_point_is_found_within_one_level_of_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_report(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/breaking-point.toml")),
        &dir.path().join("o"),
        &["--hold", "1s", "--seed", "6"],
    );
    let l = &r["levels"];
    assert_eq!(l["mode"], "breaking_point");
    // The mock serves 20 at once: 20 users hold, 25 do not.
    let last_ok = f(&l["last_ok"]);
    let first_broken = f(&l["first_broken"]);
    assert!((15.0..=20.0).contains(&last_ok), "last level that held: {last_ok}");
    assert!((20.0..=30.0).contains(&first_broken), "first that broke: {first_broken}");
    let rows = l["levels"].as_array().unwrap();
    assert_eq!(f(&rows.last().unwrap()["level"]), first_broken, "the search stops at the break");
    let broken = rows.last().unwrap();
    assert!(u(&broken["stats"]["errors"]["rate_limited"]) > 0, "it broke on 429s: {broken}");
    let sum: u64 = rows.iter().map(|row| u(&row["stats"]["requests"])).sum();
    assert_eq!(sum, u(&r["totals"]["requests"]), "the levels add up to the run");
}

#[test]
fn a_failed_threshold_breaks_a_level_and_the_verdicts_are_those_of_the_last_level_that_held() {
    // The error-rate limit is switched off (1.0): only the threshold can break a level.
    let body = scenario(
        "breaking_point = { users = [1, 2, 6, 8], hold = \"1s\", max_error_rate = 1.0 }",
        "first_token_delay = \"5ms\"\nmax_concurrency = 3",
    ) + "[thresholds]\nerrors = [\"rate < 0.01\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bp.toml", &body);
    let r = run_report(&p, &dir.path().join("o"), &["--seed", "3"]);
    let l = &r["levels"];
    assert_eq!((f(&l["last_ok"]), f(&l["first_broken"])), (2.0, 6.0), "{l}");
    let rows = l["levels"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "the search stops at the first broken level");
    let why = rows[2]["broken"].as_str().unwrap();
    assert!(why.starts_with("threshold `errors: rate < 0.01`: observed 0."), "{why}");
    let v = &r["thresholds"][0];
    assert_eq!((&v["pass"], f(&v["observed"])), (&true.into(), 0.0), "judged at 2 users, where it held: {v}");
}

#[test]
fn a_sweep_runs_every_level_and_a_floor_gates_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "s.toml", &scenario("users = 1", "first_token_delay = \"5ms\"\nmax_concurrency = 3"));
    let r = run_report(&p, &dir.path().join("o"), &["--sweep", "users=1,2,6", "--hold", "1s", "--seed", "2"]);
    let rows = r["levels"]["levels"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "a sweep does not stop at errors");
    assert!(u(&rows[2]["stats"]["failures"]) > 0);
    let floor = scenario(
        "breaking_point = { users = [2, 6], hold = \"1s\", min_sustainable = 6 }",
        "first_token_delay = \"5ms\"\nmax_concurrency = 3",
    );
    let p = write(dir.path(), "floor.toml", &floor);
    let o = run(&["run", p.to_str().unwrap(), "--quiet", "--out", dir.path().join("f").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "the last level that held (2) is below min_sustainable (6)");
    assert!(read_report(&dir.path().join("f"))["levels"]["first_broken"].is_number());
}

#[test]
fn ramping_stages_follow_the_profile() {
    let r = run_with("users = 1", "first_token_delay = \"5ms\"", &["--stages", "6,2s;6,2s;0,1s", "--seed", "5"]);
    let stages = r["load"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    let users: Vec<u64> = r["series"].as_array().unwrap().iter().map(|p| u(&p["users"])).collect();
    let peak = *users.iter().max().unwrap();
    assert_eq!(peak, 6, "the profile peaks at 6 users: {users:?}");
    assert!(users[0] < 6, "it ramps up: {users:?}");
    assert!(f(&r["duration_s"]) < 6.5, "the run lasts the profile (5 s) plus the drain");
    let o = run(&["run", "stress", "--stages", "6;1s", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--stages"));
}

#[test]
fn a_ramping_rate_follows_its_stages() {
    // 0 -> 100/s over 2 s, hold 100/s for 1 s: 100 + 100 = 200 arrivals, then the rate ends at its last stage.
    let load = "rate = 0.0\nmax_in_flight = 200\nstages = [{ target = 100, duration = \"2s\" }, { target = 100, duration = \"1s\" }]";
    let r = run_with(load, "first_token_delay = \"2ms\"", &["--seed", "7"]);
    let arrivals = u(&r["open"]["arrivals"]);
    // Exact, as in `open_model_keeps_the_target_rate`: arrivals a starved generator had not started at the end
    // count too (as dropped); only the rounding of the arrival times at the ends moves the count.
    assert!((198..=202).contains(&arrivals), "the integral of the profile is 200 arrivals: {arrivals}");
    let workers = u(&r["generator"]["workers"]);
    let lag_s = (f(&r["open"]["schedule_lag"]["max_ms"]) / 1000.0).max(0.05);
    let series: Vec<u64> = r["series"].as_array().unwrap().iter().map(|p| u(&p["requests"])).collect();
    // A late arrival moves to a later second, never an earlier one: the first second holds at most the 25 due in
    // it (+5 for the series' own rounding) and loses at most what the lag shifts out of its end (at most 50/s).
    let shifted = workers + (50.0 * lag_s).ceil() as u64;
    assert!(
        series[0] <= 30 && series[0] + shifted >= 20,
        "the first second of a 0->100/s ramp over 2 s holds 25 (slack {shifted}): {series:?}"
    );
    // A stall may shift the second second's arrivals into the third, so the ramp is the first second against the
    // busiest later one.
    let later = series[1..].iter().copied().max().unwrap_or(0);
    assert!(series[0] < later, "the rate ramps up: {series:?}");
}

#[test]
fn iterations_per_user_bound_each_user() {
    let r = run_with("users = 3\niterations_per_user = 4", "first_token_delay = \"2ms\"", &["--seed", "8"]);
    assert_eq!(u(&r["totals"]["requests"]), 12);
    assert_eq!(r["stop_reason"], "iterations_done");
    assert!(f(&r["duration_s"]) < 5.0, "the run ends when every user is done, not at the default duration");
}
