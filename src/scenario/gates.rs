//! The schema of `[thresholds]` (SLOs, k6 grammar, optionally aborting the run). Parsing only; `slo/` judges.
//! `[regression]` is `baseline`'s grammar, its types live there (`baseline::RegressionTable`).

use std::fmt;

use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::DurationValue;

/// One entry of a `[thresholds]` list: `"p(95) < 2s"`, or k6's long form
/// `{ threshold = "rate < 0.01", abort_on_fail = true, delay_abort_eval = "10s" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdEntry {
    pub expr: String,
    /// Stop the run as soon as this threshold fails (checked once a second).
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: not before this much of the run has passed, so a cold start cannot abort it.
    pub delay_abort_eval: Option<DurationValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdTable {
    threshold: String,
    #[serde(default)]
    abort_on_fail: bool,
    delay_abort_eval: Option<DurationValue>,
}

impl<'de> Deserialize<'de> for ThresholdEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThresholdEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an expression such as \"p(95) < 2s\" or { threshold = \"p(95) < 2s\", abort_on_fail = true }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ThresholdEntry, E> {
                Ok(ThresholdEntry { expr: s.to_string(), abort_on_fail: false, delay_abort_eval: None })
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<ThresholdEntry, A::Error> {
                let t = ThresholdTable::deserialize(MapAccessDeserializer::new(m))?;
                Ok(ThresholdEntry {
                    expr: t.threshold,
                    abort_on_fail: t.abort_on_fail,
                    delay_abort_eval: t.delay_abort_eval,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        thresholds: BTreeMap<String, Vec<ThresholdEntry>>,
    }

    #[test]
    fn both_threshold_forms_parse() {
        let d: Doc = toml::from_str(
            "[thresholds]\nerrors = [\"rate < 0.01\", { threshold = \"count < 5\", abort_on_fail = true, delay_abort_eval = \"3s\" }]\n",
        )
        .unwrap();
        let e = &d.thresholds["errors"];
        assert_eq!(e[0].expr, "rate < 0.01");
        assert!(!e[0].abort_on_fail);
        assert!(e[1].abort_on_fail);
        assert_eq!(e[1].delay_abort_eval.map(|d| d.0.as_secs()), Some(3));
        let bad = toml::from_str::<Doc>("[thresholds]\nerrors = [{ threshold = \"rate < 1\", abort = true }]\n");
        assert!(bad.err().unwrap().to_string().contains("unknown field `abort`"));
    }
}
