//! The `[regression]` table as a scenario writes it: metric keys with their rules, plus the settings
//! `confidence` and `defaults`. Parsing only; `rules` turns it into a `RuleSet`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

/// A value of the `[regression]` table: `confidence = 0.99`, `defaults = false`, or per metric
/// `"latency{step:chat}" = { stats = ["p(50)", "p(95)"], relative = "10%", absolute = "5ms" }` / `= false`.
#[derive(Debug, Clone, PartialEq)]
pub enum RegressionEntry {
    Flag(bool),
    Number(f64),
    Rule(RuleSpec),
}

/// How one metric is compared: which statistics, and the worsening tolerated (both must be exceeded).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Statistics in threshold grammar: `p(95)`, `med`, `avg`, `rate`, `value`.
    pub stats: Option<Vec<String>>,
    /// Relative worsening tolerated: `"10%"` or `10` (percent).
    pub relative: Option<Percent>,
    /// Absolute worsening tolerated: a duration (`"5ms"`) for latencies, a number otherwise.
    pub absolute: Option<Amount>,
}

/// A percentage written `"10%"` or `10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage such as \"10%\" or 10")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Percent, E> {
                let n = s.trim().strip_suffix('%').unwrap_or(s).trim().parse::<f64>();
                match n {
                    Ok(n) if n.is_finite() && n >= 0.0 => Ok(Percent(n)),
                    _ => Err(E::custom(format!("invalid percentage `{s}`: use e.g. \"10%\""))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Percent, E> {
                self.visit_f64(n as f64)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Percent, E> {
                if n.is_finite() && n >= 0.0 {
                    Ok(Percent(n))
                } else {
                    Err(E::custom(format!("invalid percentage {n}: must be 0 or more")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An absolute amount as written: a string with a unit (`"5ms"`) or a plain number.
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    Text(String),
    Number(f64),
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount such as \"5ms\" or 0.01")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Amount, E> {
                Ok(Amount::Text(s.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Amount, E> {
                Ok(Amount::Number(n as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Amount, E> {
                Ok(Amount::Number(n))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RegressionEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RegressionEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule such as { stats = [\"p(95)\"], relative = \"10%\", absolute = \"5ms\" }, or false")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<RegressionEntry, E> {
                Ok(RegressionEntry::Flag(b))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RegressionEntry, E> {
                Ok(RegressionEntry::Number(n as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<RegressionEntry, E> {
                Ok(RegressionEntry::Number(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RegressionEntry, A::Error> {
                RuleSpec::deserialize(MapAccessDeserializer::new(m)).map(RegressionEntry::Rule)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[regression]` as written: metric keys plus the two settings `confidence` and `defaults`.
pub type RegressionTable = BTreeMap<String, RegressionEntry>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        regression: RegressionTable,
    }

    #[test]
    fn regression_entries_parse() {
        let d: Doc = toml::from_str(
            "[regression]\nconfidence = 0.95\nttft = false\n\"latency{step:a}\" = { stats = [\"p(95)\"], relative = \"15%\", absolute = \"5ms\" }\nrps = { relative = 20 }\n",
        )
        .unwrap();
        assert_eq!(d.regression["confidence"], RegressionEntry::Number(0.95));
        assert_eq!(d.regression["ttft"], RegressionEntry::Flag(false));
        let RegressionEntry::Rule(r) = &d.regression["latency{step:a}"] else { panic!("a rule") };
        assert_eq!((r.relative, r.absolute.clone()), (Some(Percent(15.0)), Some(Amount::Text("5ms".into()))));
        let RegressionEntry::Rule(r) = &d.regression["rps"] else { panic!("a rule") };
        assert_eq!(r.relative, Some(Percent(20.0)));
        let bad = toml::from_str::<Doc>("[regression]\nlatency = { relative = \"ten\" }\n");
        assert!(bad.err().unwrap().to_string().contains("invalid percentage"));
        let bad = toml::from_str::<Doc>("[regression]\nlatency = { tolerance = 1 }\n");
        assert!(bad.err().unwrap().to_string().contains("unknown field `tolerance`"));
    }
}
