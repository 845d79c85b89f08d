//! What a served response means beyond its tokens: whether it was a fallback from the requested alias's first
//! tier, and what it cost at the scenario's prices. Gateway attribution from response headers will live here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// USD per million tokens of one model (`[pricing]` in a scenario).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// The aliases and prices a run attributes responses with.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    /// alias → tiers in fallback order.
    pub aliases: BTreeMap<String, Vec<String>>,
    pub pricing: BTreeMap<String, Price>,
}

impl Attribution {
    /// USD for one response served by `model` (the requested model when the served one is unknown).
    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> f64 {
        self.pricing
            .get(model)
            .map_or(0.0, |p| (input_tokens as f64 * p.input + output_tokens as f64 * p.output) / 1_000_000.0)
    }

    /// Whether `served` is a fallback for a request that asked for `requested`.
    pub fn is_fallback(&self, requested: &str, served: &str) -> bool {
        match self.aliases.get(requested).and_then(|t| t.first()) {
            Some(first) => !served.is_empty() && served != first,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_any_tier_but_the_first_and_cost_uses_the_served_models_price() {
        let a = Attribution {
            aliases: [("coding".to_string(), vec!["tier_1".to_string(), "tier_2".to_string()])].into(),
            pricing: [("tier_2".to_string(), Price { input: 1.0, output: 4.0 })].into(),
        };
        assert!(!a.is_fallback("coding", "tier_1"));
        assert!(a.is_fallback("coding", "tier_2"));
        assert!(!a.is_fallback("coding", ""), "an unknown served model is not counted as a fallback");
        assert!(!a.is_fallback("gpt-4o", "gpt-4o-mini"), "no alias, no fallback");
        assert_eq!(a.cost("tier_2", 1_000_000, 500_000), 3.0);
        assert_eq!(a.cost("tier_1", 1_000_000, 1_000_000), 0.0);
    }
}
