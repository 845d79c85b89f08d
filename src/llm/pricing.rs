//! What a served response means beyond its tokens when the gateway does not say: whether it was a fallback
//! according to the scenario's `[aliases]`, and what it cost at its `[pricing]`. What the gateway says itself
//! (headers, `usage.cost`) is read in `gateway` and wins over both.

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
    /// USD for one response served by `model` (the requested model when the served one is unknown); `None` when
    /// `[pricing]` has no price for it.
    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        self.pricing.get(model).map(|p| (input_tokens as f64 * p.input + output_tokens as f64 * p.output) / 1_000_000.0)
    }

    /// Whether `served` is a fallback for a request that asked for `requested`: only when `served` is one of the
    /// alias's later tiers. A gateway that renames models (`gpt-4o-mini` → `gpt-4o-mini-2024-07-18`) serves
    /// names the table does not list: unknown is not a fallback, and neither is the model asked for.
    pub fn is_fallback(&self, requested: &str, served: &str) -> bool {
        if served.is_empty() || served == requested {
            return false;
        }
        self.aliases.get(requested).is_some_and(|tiers| tiers.iter().skip(1).any(|t| t == served))
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
        assert!(!a.is_fallback("coding", "coding"), "the model asked for is never a fallback");
        assert!(!a.is_fallback("coding", "gpt-4o-mini-2024-07-18"), "a name the alias does not list is unknown");
        assert_eq!(a.cost("tier_2", 1_000_000, 500_000), Some(3.0));
        assert_eq!(a.cost("tier_1", 1_000_000, 1_000_000), None, "no price is not $0");
    }
}
