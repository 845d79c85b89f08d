//! Every number of a scenario within its documented range (`crate::limits`): users, rates, stages, levels,
//! counts, weights and durations. Out of range, NaN, a fraction where a whole number is meant, or a `min`
//! above its `max` is an error at the line to fix, never a silent clamp.

use std::path::Path;
use std::time::Duration;

use super::load::ScenarioError;
use super::{Scenario, Step, ThinkTime};
use crate::limits::{self, RangeError};

pub(super) fn check(s: &Scenario, path: &Path, src: &str) -> Result<(), ScenarioError> {
    let at =
        |offset: usize, key: &str, e: RangeError| ScenarioError::at(path, src, Some(offset), format!("`{key}` {e}"));
    let load = &s.load;
    if let Some(u) = &load.users {
        limits::USERS.check_i64(*u.get_ref()).map_err(|e| at(u.span().start, "users", e))?;
    }
    if let Some(r) = &load.spawn_rate {
        limits::SPAWN_RATE.check(*r.get_ref()).map_err(|e| at(r.span().start, "spawn_rate", e))?;
    }
    if let Some(i) = &load.iterations {
        limits::ITERATIONS.check_i64(*i.get_ref()).map_err(|e| at(i.span().start, "iterations", e))?;
    }
    if let Some(i) = &load.iterations_per_user {
        limits::ITERATIONS.check_i64(*i.get_ref()).map_err(|e| at(i.span().start, "iterations_per_user", e))?;
    }
    if let Some(r) = &load.rate {
        // 0 only as the start of a ramp: the stages then give the rate.
        let range = if load.stages.is_empty() { limits::RATE } else { limits::STAGE_RATE };
        range.check(*r.get_ref()).map_err(|e| at(r.span().start, "rate", e))?;
    }
    if let Some(m) = &load.max_in_flight {
        limits::MAX_IN_FLIGHT.check_i64(*m.get_ref()).map_err(|e| at(m.span().start, "max_in_flight", e))?;
    }
    if let Some(c) = &load.connections {
        limits::CONNECTIONS.check_i64(*c.get_ref()).map_err(|e| at(c.span().start, "connections", e))?;
    }
    if let Some(d) = &load.duration {
        limits::positive_duration(d.get_ref().0).map_err(|e| at(d.span().start, "duration", e))?;
    }
    let mut stages_total = Duration::ZERO;
    for st in &load.stages {
        let off = st.target.span().start;
        let target = *st.target.get_ref();
        if load.rate.is_some() {
            limits::STAGE_RATE.check(target).map(drop)
        } else {
            limits::STAGE_USERS.check_f64(target).map(drop)
        }
        .map_err(|e| at(off, "stages.target", e))?;
        limits::duration(st.duration.0).map_err(|e| at(off, "stages.duration", e))?;
        stages_total = stages_total.saturating_add(st.duration.0);
    }
    if let Some(first) = load.stages.first() {
        let off = first.target.span().start;
        limits::positive_duration(stages_total).map_err(|e| at(off, "stages (total duration)", e))?;
        let all_zero = load.stages.iter().all(|st| *st.target.get_ref() == 0.0);
        let msg = match load.rate.as_ref().map(|r| *r.get_ref()) {
            None if all_zero => Some("`stages` never start a user: give a stage a target of at least 1"),
            Some(r) if all_zero && r == 0.0 => Some("`rate` and `stages` are all 0: no iteration would ever start"),
            _ => None,
        };
        if let Some(msg) = msg {
            return Err(ScenarioError::at(path, src, Some(off), msg));
        }
    }
    if let Some(bp) = &load.breaking_point {
        let (b, off) = (bp.get_ref(), bp.span().start);
        for &u in b.users.iter().flatten() {
            limits::USERS.check(u64::from(u)).map_err(|e| at(off, "breaking_point.users", e))?;
        }
        for &r in b.rate.iter().flatten() {
            limits::RATE.check(r).map_err(|e| at(off, "breaking_point.rate", e))?;
        }
        limits::positive_duration(b.hold.0).map_err(|e| at(off, "breaking_point.hold", e))?;
        if let Some(r) = b.max_error_rate {
            limits::fraction(r).map_err(|e| at(off, "breaking_point.max_error_rate", e))?;
        }
        if let Some(p) = &b.max_p95 {
            limits::positive_duration(p.0).map_err(|e| at(off, "breaking_point.max_p95", e))?;
        }
        if let Some(m) = b.min_sustainable {
            let range = if b.rate.is_some() { limits::RATE } else { limits::Rate { min: 1.0, ..limits::RATE } };
            range.check(m).map_err(|e| at(off, "breaking_point.min_sustainable", e))?;
        }
    }
    let defaults = src.find("[defaults]").unwrap_or(0);
    if let Some(t) = &s.defaults.timeout {
        limits::positive_duration(t.0).map_err(|e| at(key_at(src, defaults, "timeout"), "[defaults] timeout", e))?;
    }
    if let Some(t) = &s.defaults.think_time {
        think(t).map_err(|e| at(key_at(src, defaults, "think_time"), "[defaults] think_time", e))?;
    }
    for user in &s.users {
        let uoff = user.name.span().start;
        if let Some(w) = &user.weight {
            limits::WEIGHT.check_i64(*w.get_ref()).map_err(|e| at(w.span().start, "weight", e))?;
        }
        if let Some(t) = &user.think_time {
            think(t).map_err(|e| at(key_at(src, uoff, "think_time"), "think_time", e))?;
        }
        for step in user.on_start.iter().chain(&user.steps).chain(&user.on_stop) {
            check_step(step, src).map_err(|(key, off, e)| at(off, key, e))?;
        }
    }
    for entries in s.thresholds.values() {
        for e in entries {
            if let Some(d) = &e.delay_abort_eval {
                let off = key_at(src, src.find("[thresholds]").unwrap_or(0), "delay_abort_eval");
                limits::duration(d.0).map_err(|e| at(off, "delay_abort_eval", e))?;
            }
        }
    }
    Ok(())
}

type StepError = (&'static str, usize, RangeError);

fn check_step(step: &Step, src: &str) -> Result<(), StepError> {
    let soff = step.name.span().start;
    let fail = |key: &'static str| move |e: RangeError| (key, key_at(src, soff, key), e);
    if let Some(t) = &step.timeout {
        limits::positive_duration(t.0).map_err(fail("timeout"))?;
    }
    if let Some(t) = &step.think_time {
        think(t).map_err(fail("think_time"))?;
    }
    if let Some(t) = &step.delay {
        think(t).map_err(fail("delay"))?;
    }
    if let Some(r) = &step.retry {
        if let Some(b) = &r.backoff {
            limits::duration(b.0).map_err(fail("backoff"))?;
        }
        if let Some(w) = &r.max_wait {
            limits::duration(w.0).map_err(fail("max_wait"))?;
        }
    }
    Ok(())
}

fn think(t: &ThinkTime) -> Result<(), RangeError> {
    let (min, max) = t.bounds();
    limits::duration_bounds(min, max).map(drop)
}

/// Where `key` is first written at or after `from` (a table header or a step's name), for keys without a span.
fn key_at(src: &str, from: usize, key: &str) -> usize {
    src.get(from..).and_then(|s| s.find(key)).map_or(from, |i| from + i)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use crate::scenario::parse;

    const STEP: &str = "[[user]]\nname = \"U\"\n[[user.step]]\nname = \"a\"\nget = \"/health\"\n";

    /// The one-line error for a scenario whose `[load]` (or other head) is `head`.
    fn error(head: &str) -> String {
        let text = format!("{head}\n{STEP}");
        parse(Path::new("s.toml"), text).map(|_| ()).unwrap_err().to_string()
    }

    fn ok(head: &str) {
        let text = format!("{head}\n{STEP}");
        if let Err(e) = parse(Path::new("s.toml"), text) {
            panic!("`{head}` should load: {e}");
        }
    }

    /// Any number, written as TOML would, for a key that wants a count, a rate or a duration.
    fn any_number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            (0u32..300).prop_map(|e| format!("1e{e}")),
            (1u32..320).prop_map(|e| format!("1e-{e}")),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            (0u64..=200_000).prop_map(|v| v.to_string()),
            (0.0f64..2e6).prop_map(|v| format!("{v:?}")),
            any::<u64>().prop_map(|v| format!("\"{v}s\"")),
            (0u64..4_000_000).prop_map(|v| format!("\"{v}s\"")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Any number in any numeric key loads in range or fails with one located line; it never panics.
        #[test]
        fn numbers_load_in_range_or_fail_on_one_line(n in any_number(), key in 0usize..12) {
            let head = match key {
                0 => format!("[load]\nusers = {n}"),
                1 => format!("[load]\nspawn_rate = {n}"),
                2 => format!("[load]\nrate = {n}"),
                3 => format!("[load]\nrate = 1.0\nmax_in_flight = {n}"),
                4 => format!("[load]\niterations = {n}"),
                5 => format!("[load]\nstages = [{{ target = {n}, duration = \"1s\" }}]"),
                6 => format!("[load]\nrate = 1.0\nstages = [{{ target = {n}, duration = {n} }}]"),
                7 => format!("[load]\nduration = {n}"),
                8 => format!("[defaults]\ntimeout = {n}\nthink_time = {{ min = {n}, max = \"1s\" }}"),
                9 => format!("[load.breaking_point]\nhold = {n}\nrate = [{n}]\nmin_sustainable = {n}\nmax_error_rate = {n}"),
                10 => format!("[[user]]\nname = \"W\"\nweight = {n}\n[[user.step]]\nname = \"w\"\ndelay = {n}"),
                _ => format!("[load]\nusers = 1\niterations_per_user = {n}"),
            };
            let text = format!("{head}\n{STEP}");
            match parse(Path::new("s.toml"), text) {
                Ok(loaded) => {
                    let l = &loaded.scenario.load;
                    if let Some(u) = &l.users {
                        prop_assert!((1..=100_000).contains(u.get_ref()));
                    }
                    if let Some(r) = &l.rate {
                        prop_assert!(r.get_ref().is_finite() && *r.get_ref() <= 1e6);
                    }
                    if let Some(d) = &l.duration {
                        prop_assert!(d.get_ref().0 <= crate::limits::MAX_DURATION);
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(e.starts_with("s.toml:"), "{}", e);
                    prop_assert_eq!(e.lines().count(), 1, "{}", e);
                }
            }
        }
    }

    #[test]
    fn load_counts_have_ranges() {
        assert_eq!(
            error("[load]\nusers = 4294967296"),
            "s.toml:2:9: `users` must be a whole number from 1 to 100000, got 4294967296"
        );
        assert!(error("[load]\nusers = 0").contains("from 1 to 100000, got 0"));
        assert!(error("[load]\nusers = 10000000").starts_with("s.toml:2:9: `users`"));
        ok("[load]\nusers = 100000");
        assert!(error("[load]\nrate = 10.0\nmax_in_flight = 100000000000").contains("`max_in_flight` must be"));
        ok("[load]\nrate = 10.0\nmax_in_flight = 100000");
        assert!(error("[load]\niterations = 0").contains("`iterations` must be a whole number from 1"));
        assert!(error("[load]\niterations_per_user = 1000000000001").contains("`iterations_per_user`"));
        assert!(
            error("[[user]]\nname = \"B\"\nweight = 2000000\n[[user.step]]\nname = \"b\"\nget = \"/\"")
                .contains("`weight` must be a whole number from 1 to 1000000")
        );
    }

    #[test]
    fn rates_have_ranges() {
        assert!(
            error("[load]\nspawn_rate = 1e-300").starts_with("s.toml:2:14: `spawn_rate` must be a number from 0.001")
        );
        assert!(
            error("[load]\nrate = 1e12").contains("`rate` must be a number from 0.001 to 1000000, got 1000000000000")
        );
        assert!(error("[load]\nrate = nan").contains("`rate` must be"));
        assert!(error("[load]\nrate = -1.0").contains("`rate` must be"));
        assert!(error("[load]\nrate = 0.0").contains("`rate` must be"));
        ok("[load]\nrate = 0.0\nstages = [{ target = 5.0, duration = \"1s\" }]");
        ok("[load]\nrate = 0.001");
    }

    #[test]
    fn stage_targets_have_ranges() {
        let e = error("[load]\nstages = [{ target = 1e20, duration = \"1s\" }]");
        assert!(e.starts_with("s.toml:2:22: `stages.target` must be a whole number from 0 to 100000"), "{e}");
        assert!(error("[load]\nstages = [{ target = 2.5, duration = \"1s\" }]").contains("whole number"));
        assert!(error("[load]\nrate = 1.0\nstages = [{ target = 2e6, duration = \"1s\" }]").contains("to 1000000"));
        assert!(error("[load]\nstages = [{ target = 1, duration = \"0s\" }]").contains("stages (total duration)"));
        assert!(error("[load]\nstages = [{ target = 0, duration = \"1s\" }]").contains("never start a user"));
        let e = error("[load]\nrate = 0.0\nstages = [{ target = 0, duration = \"1s\" }]");
        assert!(e.contains("no iteration would ever start"), "{e}");
        ok("[load]\nrate = 1.0\nstages = [{ target = 2.5, duration = \"1s\" }]");
    }

    #[test]
    fn durations_have_ranges() {
        assert!(error("[load]\nduration = \"0s\"").contains("`duration` must be longer than zero"));
        assert!(error("[load]\nduration = \"31days\"").contains("at most 30d, got 31d"));
        let e = error("[defaults]\ntimeout = \"0s\"");
        assert!(e.starts_with("s.toml:2:1: `[defaults] timeout` must be longer than zero"), "{e}");
        let e = error("[defaults]\nthink_time = { min = \"2s\", max = \"1s\" }");
        assert!(
            e.contains("`[defaults] think_time` must be a `min` no longer than its `max`, got min 2s > max 1s"),
            "{e}"
        );
        let e = error(&STEP.replace("get = \"/health\"", "delay = { min = \"5s\", max = \"1s\" }"));
        assert!(e.contains("`delay` must be a `min` no longer"), "{e}");
        let e = error(&STEP.replace("get = \"/health\"", "get = \"/\"\ntimeout = 0"));
        assert!(e.starts_with("s.toml:6:1: `timeout` must be longer than zero"), "{e}");
    }

    #[test]
    fn breaking_point_levels_have_ranges() {
        let bp = |body: &str| format!("[load.breaking_point]\nhold = \"1s\"\n{body}");
        assert!(error(&bp("users = [5, 200000]")).contains("`breaking_point.users` must be a whole number from 1"));
        assert!(error(&bp("rate = [1e-300]")).contains("`breaking_point.rate` must be a number from 0.001"));
        assert!(error(&bp("users = [1]\nmin_sustainable = nan")).contains("`breaking_point.min_sustainable`"));
        assert!(error(&bp("users = [1]\nmax_error_rate = 2.0")).contains("`breaking_point.max_error_rate`"));
        assert!(error(&bp("users = [1]\nmax_p95 = \"0s\"")).contains("`breaking_point.max_p95`"));
        ok(&bp("users = [1, 100000]\nmin_sustainable = 10\nmax_p95 = \"1s\""));
    }
}
