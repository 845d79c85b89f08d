//! The allowed range of every number a user gives, in a scenario or on the command line: one table, so that
//! the checks, their messages and the README agree. Out of range is an error, never a silent clamp. A leaf:
//! imports nothing of the crate.
//!
//! The bounds are what one machine can really do: a user costs ~34 KiB (10,000 users took ~336 MiB), so
//! 100,000 users is ~3.3 GiB; one generator core sends well under 100,000 requests/s, so 1,000,000 arrivals/s
//! is beyond any real run yet keeps the schedule's arithmetic exact; 30 days bounds every duration so that
//! `start + duration` can never overflow a clock.

use std::fmt;
use std::time::Duration;

/// A whole-number key: `users`, `max_in_flight`, iteration counts, weights, worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub min: u64,
    pub max: u64,
}

/// A rate-like key: `rate`, `spawn_rate`, rate stages and levels.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub min: f64,
    pub max: f64,
}

pub const USERS: Count = Count { min: 1, max: 100_000 };
/// A stage's user target may fall to 0 (ramp down).
pub const STAGE_USERS: Count = Count { min: 0, max: USERS.max };
pub const MAX_IN_FLIGHT: Count = Count { min: 1, max: 100_000 };
/// Open model: connections to the target (at most one per iteration in flight is ever used).
pub const CONNECTIONS: Count = Count { min: 1, max: 100_000 };
/// Iterations in total or per user: at the highest rate a trillion iterations take over 11 days.
pub const ITERATIONS: Count = Count { min: 1, max: 1_000_000_000_000 };
pub const WEIGHT: Count = Count { min: 1, max: 1_000_000 };
/// Generator threads; more than cores only adds switching.
pub const WORKERS: Count = Count { min: 1, max: 1024 };
/// Exchanges `--http-debug` records per step: a debugging aid, not a capture of the run.
pub const HTTP_DEBUG: Count = Count { min: 1, max: 1000 };
/// `run --repeat`: each run is a whole run, so a hundred is already hours of load.
pub const REPEAT: Count = Count { min: 1, max: 100 };
/// Open model: iterations started per second (one per 1000 s at the least).
pub const RATE: Rate = Rate { min: 0.001, max: 1_000_000.0 };
/// A rate stage may fall to 0 (ramp down), as may `rate` when `stages` ramp it up.
pub const STAGE_RATE: Rate = Rate { min: 0.0, max: RATE.max };
/// Users started per second.
pub const SPAWN_RATE: Rate = Rate { min: 0.001, max: 100_000.0 };
/// The longest duration of anything: run, hold, timeout, stop, think time, delay, stage.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

impl Count {
    /// The range in words, for messages and help.
    pub fn describe(&self) -> String {
        format!("a whole number from {} to {}", self.min, self.max)
    }

    pub fn check(&self, v: u64) -> Result<u64, RangeError> {
        if (self.min..=self.max).contains(&v) { Ok(v) } else { Err(RangeError::new(self.describe(), v)) }
    }

    pub fn check_i64(&self, v: i64) -> Result<u64, RangeError> {
        u64::try_from(v).map_err(|_| RangeError::new(self.describe(), v)).and_then(|v| self.check(v))
    }

    /// A number written as a float (`1e3`, `0.5`): whole and in range, or an error.
    pub fn check_f64(&self, v: f64) -> Result<u64, RangeError> {
        // The upper bound is far below 2^53, so a whole float in range converts exactly.
        if v.is_finite() && v.fract() == 0.0 && v >= self.min as f64 && v <= self.max as f64 {
            Ok(v as u64)
        } else {
            Err(RangeError::new(self.describe(), number(v)))
        }
    }

    /// Command-line text: `10`, `1e3` (whole numbers only).
    pub fn parse(&self, s: &str) -> Result<u64, RangeError> {
        let t = s.trim();
        match (t.parse::<u64>(), t.parse::<f64>()) {
            (Ok(v), _) => self.check(v),
            (_, Ok(v)) => self.check_f64(v),
            _ => Err(RangeError::new(self.describe(), format!("`{s}`"))),
        }
    }

    /// `parse` narrowed to u32, for keys whose range fits it.
    pub fn parse_u32(&self, s: &str) -> Result<u32, RangeError> {
        self.parse(s).and_then(|v| self.narrow(v))
    }

    pub fn narrow(&self, v: u64) -> Result<u32, RangeError> {
        u32::try_from(v).map_err(|_| RangeError::new(self.describe(), v))
    }
}

impl Rate {
    pub fn describe(&self) -> String {
        format!("a number from {} to {}", self.min, self.max)
    }

    pub fn check(&self, v: f64) -> Result<f64, RangeError> {
        if v.is_finite() && v >= self.min && v <= self.max {
            Ok(v)
        } else {
            Err(RangeError::new(self.describe(), number(v)))
        }
    }

    pub fn parse(&self, s: &str) -> Result<f64, RangeError> {
        match s.trim().parse::<f64>() {
            Ok(v) => self.check(v),
            Err(_) => Err(RangeError::new(self.describe(), format!("`{s}`"))),
        }
    }
}

/// Positive durations (run, hold, timeout, p95 limit): longer than zero, at most `MAX_DURATION`.
pub fn positive_duration(d: Duration) -> Result<Duration, RangeError> {
    if !d.is_zero() && d <= MAX_DURATION {
        Ok(d)
    } else {
        Err(RangeError::new(format!("longer than zero and at most {}", show(MAX_DURATION)), show(d)))
    }
}

/// Durations that may be zero (think time, delay, graceful stop, a stage that jumps).
pub fn duration(d: Duration) -> Result<Duration, RangeError> {
    if d <= MAX_DURATION { Ok(d) } else { Err(RangeError::new(format!("at most {}", show(MAX_DURATION)), show(d))) }
}

/// A `{ min, max }` pair: each in range and `min <= max`.
pub fn duration_bounds(min: Duration, max: Duration) -> Result<(Duration, Duration), RangeError> {
    duration(min)?;
    duration(max)?;
    if min <= max {
        Ok((min, max))
    } else {
        Err(RangeError {
            allowed: "a `min` no longer than its `max`".into(),
            got: format!("min {} > max {}", show(min), show(max)),
        })
    }
}

/// A fraction such as an error rate: from 0 to 1.
pub fn fraction(v: f64) -> Result<f64, RangeError> {
    Rate { min: 0.0, max: 1.0 }.check(v)
}

/// `1e-300` rather than three hundred digits; plain notation where it is short.
fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&v.abs()) { v.to_string() } else { format!("{v:e}") }
}

/// Days as days (humantime would write 31 days as "1month 13h 26m 24s").
fn show(d: Duration) -> String {
    const DAY: u64 = 86_400;
    let days = d.as_secs() / DAY;
    let rest = d - Duration::from_secs(days * DAY);
    match (days, rest.is_zero()) {
        (0, _) => humantime::format_duration(d).to_string(),
        (_, true) => format!("{days}d"),
        (_, false) => format!("{days}d {}", humantime::format_duration(rest)),
    }
}

/// What was allowed and what was given; the caller names the key or flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    pub allowed: String,
    pub got: String,
}

impl RangeError {
    fn new(allowed: String, got: impl fmt::Display) -> Self {
        RangeError { allowed, got: got.to_string() }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "must be {}, got {}", self.allowed, self.got)
    }
}

/// The range of a scenario key, to complete a type error from the TOML parser ("expected i64").
pub fn describe_key(key: &str) -> Option<String> {
    let last = key.rsplit('.').next().unwrap_or(key);
    Some(match last {
        "users" => USERS.describe(),
        "max_in_flight" => MAX_IN_FLIGHT.describe(),
        "connections" => CONNECTIONS.describe(),
        "iterations" | "iterations_per_user" => ITERATIONS.describe(),
        "weight" => WEIGHT.describe(),
        "rate" => RATE.describe(),
        "spawn_rate" => SPAWN_RATE.describe(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_and_in_range() {
        assert_eq!(USERS.parse("10"), Ok(10));
        assert_eq!(USERS.parse("1e3"), Ok(1000));
        assert_eq!(USERS.parse("100000"), Ok(100_000));
        for bad in ["0", "100001", "4294967296", "0.5", "-1", "nan", "inf", "1e20", "ten", ""] {
            let e = USERS.parse(bad).unwrap_err();
            assert_eq!(e.allowed, "a whole number from 1 to 100000", "{bad}");
        }
        assert_eq!(USERS.check_i64(-5).unwrap_err().to_string(), "must be a whole number from 1 to 100000, got -5");
        assert_eq!(STAGE_USERS.check_f64(0.0), Ok(0));
        assert!(STAGE_USERS.check_f64(1e20).is_err());
        assert!(MAX_IN_FLIGHT.check_f64(1e11).is_err());
    }

    #[test]
    fn rates_are_finite_and_in_range() {
        assert_eq!(RATE.parse("0.5"), Ok(0.5));
        assert_eq!(RATE.parse("1e6"), Ok(1e6));
        for bad in ["0", "1e-300", "1e12", "-1", "nan", "inf", "x"] {
            assert!(RATE.parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            RATE.check(1e12).unwrap_err().to_string(),
            "must be a number from 0.001 to 1000000, got 1000000000000"
        );
        assert_eq!(RATE.check(1e-300).unwrap_err().got, "1e-300");
        assert_eq!(USERS.check_f64(1e20).unwrap_err().got, "1e20");
        assert_eq!(STAGE_RATE.check(0.0), Ok(0.0));
        assert!(SPAWN_RATE.check(1e-300).is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert!(positive_duration(Duration::ZERO).is_err());
        assert!(positive_duration(MAX_DURATION).is_ok());
        assert_eq!(
            positive_duration(MAX_DURATION + Duration::from_secs(1)).unwrap_err().to_string(),
            "must be longer than zero and at most 30d, got 30d 1s"
        );
        assert!(duration(Duration::ZERO).is_ok());
        assert!(duration(Duration::MAX).is_err());
        let e = duration_bounds(Duration::from_secs(2), Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "must be a `min` no longer than its `max`, got min 2s > max 1s");
        assert!(fraction(f64::NAN).is_err() && fraction(1.5).is_err() && fraction(0.0).is_ok());
    }
}
