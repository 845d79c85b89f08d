//! Ramping closed load (k6 `ramping-vus`, goose test plans): a piecewise-linear target of users over time,
//! turned into the windows during which each user runs. User `i` runs while the target is at least `i + 1`;
//! when the target falls, the highest-numbered users stop first, after their current iteration.

use std::time::Duration;

use crate::engine::EngineError;
use crate::limits;

/// Reach `target` users by the end of `duration` (linearly from the previous stage's target; the first
/// stage starts from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub target: u32,
    pub duration: Duration,
}

/// Goose's test-plan string: `"10,1m;10,5m;0,30s"` = ramp to 10 users over 1 minute, hold 5 minutes, ramp
/// to 0 over 30 seconds.
pub fn parse_plan(s: &str) -> Result<Vec<Stage>, EngineError> {
    let bad =
        |part: &str| EngineError::Stages(format!("`{part}` is not `USERS,DURATION` (e.g. \"10,1m;10,5m;0,30s\")"));
    let stages = s
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (u, d) = part.split_once(',').ok_or_else(|| bad(part))?;
            let target =
                limits::STAGE_USERS.parse_u32(u).map_err(|e| EngineError::Stages(format!("`{part}`: users {e}")))?;
            let duration = humantime::parse_duration(d.trim()).map_err(|_| bad(part))?;
            limits::duration(duration).map_err(|e| EngineError::Stages(format!("`{part}`: duration {e}")))?;
            Ok(Stage { target, duration })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    if stages.is_empty() {
        return Err(EngineError::Stages("an empty test plan: give at least one `USERS,DURATION` stage".into()));
    }
    let total = stages.iter().fold(Duration::ZERO, |t, s| t.saturating_add(s.duration));
    limits::positive_duration(total).map_err(|e| EngineError::Stages(format!("the plan's total duration {e}")))?;
    Ok(stages)
}

pub fn total(stages: &[Stage]) -> Duration {
    // Saturating: absurd durations are the limits' business (validation), never a panic here.
    stages.iter().fold(Duration::ZERO, |t, s| t.saturating_add(s.duration))
}

pub fn peak(stages: &[Stage]) -> u32 {
    stages.iter().map(|s| s.target).max().unwrap_or(0)
}

/// When user `i` runs: `(start, stop)` windows from the run start; `None` as stop means to the end.
pub fn windows(stages: &[Stage], i: u32) -> Vec<(Duration, Option<Duration>)> {
    let need = f64::from(i) + 1.0;
    let mut out: Vec<(Duration, Option<Duration>)> = Vec::new();
    let mut open: Option<Duration> = None;
    let (mut t0, mut a) = (Duration::ZERO, 0.0f64);
    for s in stages {
        let t1 = t0.saturating_add(s.duration);
        let b = f64::from(s.target);
        let at = |frac: f64| t0.saturating_add(s.duration.mul_f64(frac.clamp(0.0, 1.0)));
        match (a >= need, b >= need) {
            (false, true) => {
                // Rising through `need` (a zero-length stage jumps at once).
                let frac = if b > a { (need - a) / (b - a) } else { 0.0 };
                open.get_or_insert(at(frac));
            }
            (true, false) => {
                let frac = if a > b { (a - need) / (a - b) } else { 0.0 };
                let stop = at(frac);
                // The lower bound of a falling segment is exclusive: a user needed at `need` exactly stays
                // until the target goes below it.
                if let Some(start) = open.take() {
                    if stop > start {
                        out.push((start, Some(stop)));
                    }
                }
            }
            (true, true) => {
                open.get_or_insert(t0);
            }
            (false, false) => {}
        }
        t0 = t1;
        a = b;
    }
    if let Some(start) = open {
        out.push((start, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(target: u32, secs: u64) -> Stage {
        Stage { target, duration: Duration::from_secs(secs) }
    }

    #[test]
    fn goose_plans_parse() {
        assert_eq!(parse_plan("10,1m;10,5m;0,30s").unwrap(), vec![st(10, 60), st(10, 300), st(0, 30)]);
        assert!(parse_plan("10;5m").is_err());
        assert!(parse_plan("").is_err());
        assert!(parse_plan("x,1m").is_err());
        assert_eq!(
            parse_plan("4294967296,1m").unwrap_err().to_string(),
            "`4294967296,1m`: users must be a whole number from 0 to 100000, got 4294967296"
        );
        assert!(parse_plan("1e20,1m").unwrap_err().to_string().contains("from 0 to 100000"));
        assert!(parse_plan("10,31days").unwrap_err().to_string().contains("at most 30d"));
        assert!(parse_plan("10,0s").unwrap_err().to_string().contains("total duration"));
    }

    #[test]
    fn ramp_up_hold_ramp_down() {
        let plan = [st(10, 10), st(10, 10), st(0, 10)];
        // User 0 starts when the target reaches 1 (1 s in), stops when it falls below 1 (29 s).
        assert_eq!(windows(&plan, 0), vec![(Duration::from_secs(1), Some(Duration::from_secs(29)))]);
        // User 9 is needed only while the target is 10: from 10 s until it starts falling at 20 s.
        assert_eq!(windows(&plan, 9), vec![(Duration::from_secs(10), Some(Duration::from_secs(20)))]);
        assert!(windows(&plan, 10).is_empty());
        assert_eq!(peak(&plan), 10);
        assert_eq!(total(&plan), Duration::from_secs(30));
    }

    #[test]
    fn a_second_peak_reopens_a_window() {
        let plan = [st(2, 0), st(2, 10), st(0, 0), st(0, 10), st(2, 0), st(2, 10)];
        let w = windows(&plan, 1);
        assert_eq!(w, vec![(Duration::ZERO, Some(Duration::from_secs(10))), (Duration::from_secs(20), None)]);
    }

    #[test]
    fn active_users_follow_the_target() {
        let plan = [st(20, 20), st(5, 10)];
        let active = |t: f64| {
            let t = Duration::from_secs_f64(t);
            (0..20).filter(|&i| windows(&plan, i).iter().any(|(s, e)| *s <= t && e.is_none_or(|e| t < e))).count()
        };
        assert_eq!(active(10.0), 10);
        assert_eq!(active(19.5), 19);
        assert_eq!(active(25.0), 12);
        assert_eq!(active(29.9), 5);
    }
}
