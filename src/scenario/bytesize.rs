//! `max_body`: a number of bytes written as an integer or as "1MiB", "512KiB", "64KB", "2MB". Out-of-range or
//! unreadable values are rejected while parsing, so the error points at the line like every other scenario error.

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::client::human_bytes;

/// Smallest `max_body`: a JSON error or a short answer must still fit.
pub const MIN_MAX_BODY: usize = 1 << 10;
/// Largest `max_body`: every user may hold this much at once.
pub const MAX_MAX_BODY: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

const UNITS: &[(&str, u64)] = &[
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("b", 1),
    ("", 1),
];

/// The number of bytes `s` names, without the range check.
fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mult = UNITS.iter().find(|(u, _)| *u == unit.trim())?.1;
    n.checked_mul(mult)
}

/// A `max_body` outside the range the client accepts (`n` bytes).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`max_body` must be from {} to {}, got {n} bytes; set e.g. `max_body = \"1MiB\"`",
    human_bytes(MIN_MAX_BODY),
    human_bytes(MAX_MAX_BODY)
)]
pub struct OutOfRange {
    n: u64,
}

fn ranged(n: u64) -> Result<ByteSize, OutOfRange> {
    let ok = usize::try_from(n).ok().filter(|n| (MIN_MAX_BODY..=MAX_MAX_BODY).contains(n));
    ok.map(ByteSize).ok_or(OutOfRange { n })
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes such as 1048576, \"1MiB\", \"512KiB\" or \"64KB\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                let n = parse_bytes(s).ok_or_else(|| {
                    E::custom(format!(
                        "invalid size `{s}` for `max_body`: use e.g. 1048576, \"1MiB\", \"512KiB\", \"64KB\""
                    ))
                })?;
                ranged(n).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                ranged(u64::try_from(n).unwrap_or(0)).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                ranged(n).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_documented() {
        assert_eq!(parse_bytes("1MiB"), Some(1 << 20));
        assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("64KB"), Some(64_000));
        assert_eq!(parse_bytes("2MB"), Some(2_000_000));
        assert_eq!(parse_bytes(" 2048 "), Some(2048));
        assert_eq!(parse_bytes("1.5MiB"), None);
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
        assert!(ranged(512).is_err());
        assert!(ranged(2 << 30).is_err());
        assert_eq!(ranged(1 << 20), Ok(ByteSize(1 << 20)));
    }

    fn scenario(defaults: &str, step: &str) -> String {
        format!(
            "[defaults]\n{defaults}\n[[user]]\nname = \"u\"\n  [[user.step]]\n  name = \"s\"\n  get = \"/\"\n  {step}\n"
        )
    }

    #[test]
    fn max_body_is_read_from_defaults_and_steps_with_located_errors() {
        let p = std::path::Path::new("m.toml");
        let ok = crate::scenario::parse(p, scenario("max_body = \"512KiB\"", "max_body = 2097152")).unwrap();
        assert_eq!(ok.scenario.defaults.max_body, Some(ByteSize(512 << 10)));
        assert_eq!(ok.scenario.users[0].steps[0].max_body, Some(ByteSize(2 << 20)));
        for (defaults, step, line) in [
            ("max_body = \"100\"", "", 2),
            ("max_body = \"2GiB\"", "", 2),
            ("max_body = -1", "", 2),
            ("max_body = \"lots\"", "", 2),
            ("", "max_body = 1.5", 8),
        ] {
            let e = crate::scenario::parse(p, scenario(defaults, step)).unwrap_err().to_string();
            assert!(e.starts_with(&format!("m.toml:{line}:")) && e.contains("max_body"), "{e}");
        }
    }
}
