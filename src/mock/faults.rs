//! Deterministic failure decisions for a chat completion: which tier of an alias serves it, and which
//! fault (if any) mangles its response. Both are pure functions of the config and the request index.

use super::config::MockConfig;
use super::synth::{FAULT_KIND_DOMAIN, TIER_DOMAIN, unit};

/// Where the gateway sent a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// Served by `model` after `hops` unavailable tiers; `fallback` when that is not the alias's first.
    Served { model: &'a str, hops: u32, fallback: bool },
    /// Every tier of the alias was unavailable, after trying `hops` of them.
    AllFailed { hops: u32 },
    /// A tier asked for by its own name (as a gateway in front of the mock does when it does the fallback
    /// itself) is unavailable for this request; nothing falls back.
    TierDown { tier: &'a str },
}

pub(super) fn route<'a>(config: &'a MockConfig, requested: &'a str, index: u64) -> Route<'a> {
    let Some(alias) = config.aliases.iter().find(|a| a.name == requested) else {
        return direct(config, requested, index);
    };
    let last = alias.tiers.len().saturating_sub(1);
    let mut hops = 0u32;
    for (position, tier) in alias.tiers.iter().enumerate() {
        if !tier_down(config, tier, position, last, index) {
            return Route::Served { model: tier, hops, fallback: position > 0 };
        }
        hops = hops.saturating_add(1);
    }
    Route::AllFailed { hops }
}

/// A model that is no alias: served under its own name unless it is a tier of an alias that is down for this
/// request, by the same draw the alias's own routing would make, so the failures a gateway sees when it
/// names the tiers itself are those the mock would have routed around.
fn direct<'a>(config: &'a MockConfig, requested: &'a str, index: u64) -> Route<'a> {
    let tier = config
        .aliases
        .iter()
        .find_map(|a| a.tiers.iter().position(|t| t == requested).map(|p| (p, a.tiers.len().saturating_sub(1))));
    match tier {
        Some((position, last)) if tier_down(config, requested, position, last, index) => {
            Route::TierDown { tier: requested }
        }
        None if config.failing_tiers.iter().any(|t| t == requested) => Route::TierDown { tier: requested },
        _ => Route::Served { model: requested, hops: 0, fallback: false },
    }
}

/// Whether the tier at `position` of an alias whose last tier is at `last` is unavailable for a request.
fn tier_down(config: &MockConfig, tier: &str, position: usize, last: usize, index: u64) -> bool {
    let forced = config.failing_tiers.iter().any(|t| t == tier);
    // The last tier is the one the alias falls back to for good: only `failing_tiers` takes it down.
    let drawn = position < last
        && config.tier_failure_rate > 0.0
        && unit(config.seed, TIER_DOMAIN.wrapping_add(position as u64), index) < config.tier_failure_rate;
    forced || drawn
}

/// The response faults, mutually exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Nothing is sent for `stall`; then the response proceeds normally.
    Stall,
    /// The connection is cut after the headers and part of the body.
    Reset,
    /// Streams only: one chunk mid-stream is invalid JSON.
    Malformed,
    /// Streams only: an error event mid-stream, then the end of the stream without `[DONE]`.
    MidstreamError,
    /// Streams only: a complete stream without `[DONE]`.
    NoDone,
}

/// One draw per request, split into consecutive ranges, one per fault, so that the faults exclude each
/// other and each keeps its own rate. A streams-only fault drawn for a non-streamed request is dropped.
pub(super) fn fault(config: &MockConfig, index: u64, stream: bool) -> Option<Fault> {
    let rates = [
        (Fault::Stall, config.stall_rate),
        (Fault::Reset, config.reset_rate),
        (Fault::Malformed, config.malformed_rate),
        (Fault::MidstreamError, config.midstream_error_rate),
        (Fault::NoDone, config.no_done_rate),
    ];
    if rates.iter().map(|(_, r)| r.max(0.0)).sum::<f64>() <= 0.0 {
        return None;
    }
    let u = unit(config.seed, FAULT_KIND_DOMAIN, index);
    let mut bound = 0.0;
    let picked = rates.into_iter().find_map(|(fault, rate)| {
        bound += rate.max(0.0);
        (u < bound).then_some(fault)
    })?;
    (stream || matches!(picked, Fault::Stall | Fault::Reset)).then_some(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coding(config: &MockConfig, index: u64) -> Route<'_> {
        route(config, "coding_agent", index)
    }

    #[test]
    fn aliases_fall_back_through_their_tiers() {
        let mut c = MockConfig::default();
        assert_eq!(route(&c, "gpt-x", 0), Route::Served { model: "gpt-x", hops: 0, fallback: false });
        assert_eq!(coding(&c, 0), Route::Served { model: "coding_tier_3", hops: 0, fallback: false });
        c.failing_tiers = vec!["coding_tier_3".into()];
        assert_eq!(coding(&c, 0), Route::Served { model: "coding_tier_2", hops: 1, fallback: true });
        c.failing_tiers.push("coding_tier_2".into());
        assert_eq!(coding(&c, 0), Route::Served { model: "coding_fallback", hops: 2, fallback: true });
        c.failing_tiers.push("coding_fallback".into());
        assert_eq!(coding(&c, 0), Route::AllFailed { hops: 3 });
        // A rate never takes down the last tier.
        let c = MockConfig { tier_failure_rate: 1.0, ..MockConfig::default() };
        assert_eq!(coding(&c, 9), Route::Served { model: "coding_fallback", hops: 2, fallback: true });
    }

    #[test]
    fn a_tier_named_directly_is_down_exactly_when_its_alias_would_skip_it() {
        let c = MockConfig { tier_failure_rate: 0.3, seed: 5, ..MockConfig::default() };
        let mut down = 0;
        for i in 0..2_000 {
            let skipped = !matches!(coding(&c, i), Route::Served { hops: 0, .. });
            let direct = route(&c, "coding_tier_3", i);
            assert_eq!(direct == Route::TierDown { tier: "coding_tier_3" }, skipped, "request {i}");
            down += u32::from(skipped);
            // The alias's last tier is its fallback for good; a model of no alias is always served.
            assert!(matches!(route(&c, "coding_fallback", i), Route::Served { hops: 0, fallback: false, .. }));
            assert!(matches!(route(&c, "gpt-x", i), Route::Served { model: "gpt-x", .. }));
        }
        assert!((450..750).contains(&down), "{down} of 2000 down at rate 0.3");
        let forced = MockConfig { failing_tiers: vec!["coding_fallback".into(), "solo".into()], ..c };
        assert_eq!(route(&forced, "coding_fallback", 0), Route::TierDown { tier: "coding_fallback" });
        assert_eq!(route(&forced, "solo", 0), Route::TierDown { tier: "solo" });
        // Nothing changes by default.
        assert!((0..100).all(|i| route(&MockConfig::default(), "coding_tier_3", i) != Route::TierDown { tier: "coding_tier_3" }));
    }

    #[test]
    fn faults_exclude_each_other_keep_their_rates_and_spare_plain_responses() {
        let c = MockConfig { stall_rate: 0.2, reset_rate: 0.2, malformed_rate: 0.2, ..MockConfig::default() };
        let drawn: Vec<_> = (0..10_000).map(|i| fault(&c, i, true)).collect();
        let count = |f: Fault| drawn.iter().filter(|d| **d == Some(f)).count();
        for f in [Fault::Stall, Fault::Reset, Fault::Malformed] {
            assert!((1_700..2_300).contains(&count(f)), "{f:?}: {}", count(f));
        }
        assert!((0..10_000).all(|i| fault(&c, i, false) != Some(Fault::Malformed)));
        assert!((0..1_000).all(|i| fault(&MockConfig::default(), i, true).is_none()));
    }
}
