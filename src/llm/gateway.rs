//! What a gateway says it did for one response, read from the headers it sets (LiteLLM `x-litellm-*`, Portkey
//! `x-portkey-*`, a scenario's own names) and from the body's `usage.cost` (OpenRouter): the served model and
//! deployment, whether it fell back and which target served, the retries it made, a cache hit, its cost and its
//! own overhead. The transport keeps only the values of the headers [`GatewaySpec::names`] lists (refcounted, no
//! copy); [`GatewaySpec::parse`] turns them into a [`GatewayInfo`] borrowing from them, so nothing is allocated
//! per response. Every value is server input: anything unreadable or absurd reads as "not said".

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::client::Captured;

/// Which gateway's conventions a scenario's `[gateway] kind` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayKind {
    /// Whichever family of headers a response carries (LiteLLM, then Portkey); `usage.cost` from any body.
    #[default]
    Auto,
    Litellm,
    Portkey,
    /// No headers: `usage.cost` and `model` of the body.
    Openrouter,
    /// The header names the scenario gives.
    Generic,
}

/// A scenario's `[gateway]` table: the kind, and header names of a `generic` gateway (any kind reads them first,
/// so `model_header` also names the served model behind LiteLLM or Portkey).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub kind: GatewayKind,
    pub model_header: Option<String>,
    pub deployment_header: Option<String>,
    /// `true`/`1`/`yes`, or a count of fallbacks made (above 0 is a fallback).
    pub fallback_header: Option<String>,
    /// The index of the target that served (0 = the primary; above 0 is a fallback).
    pub target_header: Option<String>,
    pub retries_header: Option<String>,
    /// `hit`, `semantic hit`, `true`, `1`, `yes` is a hit; anything else a miss.
    pub cache_header: Option<String>,
    /// USD.
    pub cost_header: Option<String>,
    /// Milliseconds.
    pub overhead_header: Option<String>,
}

/// What a header says, whatever the gateway calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Model,
    Deployment,
    /// A count of fallbacks attempted (which is also the index of the target that served), or a boolean.
    Fallback,
    /// The index of the target that served; Portkey writes `config.targets[1]` or `1`.
    Target,
    Retries,
    /// A status word (`HIT`, `MISS`, ...).
    CacheStatus,
    /// A cache key, sent only when the answer came from the cache (LiteLLM).
    CacheKey,
    Cost,
    OverheadMs,
}

/// Which family a header belongs to, for auto-detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Litellm,
    Portkey,
    Generic,
}

const LITELLM: &[(&str, Field)] = &[
    // The model group that served: the requested one, or the fallback group LiteLLM moved to.
    ("x-litellm-model-group", Field::Model),
    ("x-litellm-model-id", Field::Deployment),
    ("x-litellm-attempted-fallbacks", Field::Fallback),
    ("x-litellm-attempted-retries", Field::Retries),
    ("x-litellm-response-cost", Field::Cost),
    ("x-litellm-overhead-duration-ms", Field::OverheadMs),
    ("x-litellm-cache-key", Field::CacheKey),
];

/// As the open-source gateway 1.15.2 sends them (observed: `/work/portkey-facts.md` of issue 12): the option
/// index is `config` for a plain request and `config.targets[I]` (nested: `config.targets[1].targets[0]`) when a
/// strategy picked target I; the retry count is `-1` when retries ran out (an error answer); the cache status
/// is `DISABLED` unless a cache store is wired (`HIT`, `SEMANTIC HIT`, `MISS`, `REFRESH` otherwise).
const PORTKEY: &[(&str, Field)] = &[
    ("x-portkey-last-used-option-index", Field::Target),
    ("x-portkey-retry-attempt-count", Field::Retries),
    ("x-portkey-cache-status", Field::CacheStatus),
    ("x-portkey-provider", Field::Deployment),
];

/// Most headers one response is read for: the LiteLLM and Portkey families plus a generic set.
pub const MAX_CAPTURED: usize = crate::client::MAX_CAPTURED;

/// Retries or a target index beyond this are not believed (a gateway retries a handful of times).
const MAX_COUNT: u32 = 1000;
/// A cost above this USD for one response is not believed.
const MAX_COST_USD: f64 = 1.0e6;
/// An overhead above an hour is not believed.
const MAX_OVERHEAD_MS: f64 = 3_600_000.0;

/// The headers a run reads and what each means; built once per run.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub kind: GatewayKind,
    names: Vec<HeaderName>,
    fields: Vec<(Family, Field)>,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        GatewaySpec::new(&GatewayConfig::default()).unwrap_or(GatewaySpec {
            kind: GatewayKind::Auto,
            names: Vec::new(),
            fields: Vec::new(),
        })
    }
}

/// A header name in `[gateway]` that is not one.
#[derive(Debug, thiserror::Error)]
#[error("[gateway] {key} = \"{value}\" is not a valid header name: use letters, digits and `-`")]
pub struct BadHeaderName {
    pub key: &'static str,
    pub value: String,
}

impl GatewaySpec {
    pub fn new(h: &GatewayConfig) -> Result<GatewaySpec, BadHeaderName> {
        let kind = h.kind;
        let mut spec = GatewaySpec { kind, names: Vec::new(), fields: Vec::new() };
        let generic = [
            ("model_header", &h.model_header, Field::Model),
            ("deployment_header", &h.deployment_header, Field::Deployment),
            ("fallback_header", &h.fallback_header, Field::Fallback),
            ("target_header", &h.target_header, Field::Target),
            ("retries_header", &h.retries_header, Field::Retries),
            ("cache_header", &h.cache_header, Field::CacheStatus),
            ("cost_header", &h.cost_header, Field::Cost),
            ("overhead_header", &h.overhead_header, Field::OverheadMs),
        ];
        // The scenario's own names come first: they win over a family's header saying the same thing.
        for (key, value, field) in generic {
            if let Some(v) = value {
                let name =
                    HeaderName::from_bytes(v.trim().as_bytes()).map_err(|_| BadHeaderName { key, value: v.clone() })?;
                spec.push(name, Family::Generic, field);
            }
        }
        let families: &[(Family, &[(&str, Field)])] = match kind {
            GatewayKind::Auto => &[(Family::Litellm, LITELLM), (Family::Portkey, PORTKEY)],
            GatewayKind::Litellm => &[(Family::Litellm, LITELLM)],
            GatewayKind::Portkey => &[(Family::Portkey, PORTKEY)],
            GatewayKind::Openrouter | GatewayKind::Generic => &[],
        };
        for (family, list) in families {
            for (name, field) in *list {
                spec.push(HeaderName::from_static(name), *family, *field);
            }
        }
        Ok(spec)
    }

    fn push(&mut self, name: HeaderName, family: Family, field: Field) {
        if self.names.len() < MAX_CAPTURED && !self.names.contains(&name) {
            self.names.push(name);
            self.fields.push((family, field));
        }
    }

    /// The response headers the transport keeps, in the order [`Captured`] holds them.
    pub fn names(&self) -> &[HeaderName] {
        &self.names
    }

    /// The kind's name when the scenario named one (not `auto`): a run where no response carried its headers
    /// says so.
    pub fn expected(&self) -> Option<&'static str> {
        match self.kind {
            GatewayKind::Auto => None,
            GatewayKind::Litellm => Some("litellm"),
            GatewayKind::Portkey => Some("portkey"),
            GatewayKind::Openrouter => Some("openrouter"),
            GatewayKind::Generic => Some("generic"),
        }
    }

    /// Whether the body's `usage.cost` counts as the gateway's cost.
    pub fn reads_body_cost(&self) -> bool {
        matches!(self.kind, GatewayKind::Auto | GatewayKind::Openrouter)
    }

    /// What the captured headers (and the body's `usage.cost`, when this kind reads it) say.
    pub fn parse<'a>(&self, captured: &'a Captured, body_cost: Option<f64>) -> GatewayInfo<'a> {
        let mut info = GatewayInfo::default();
        let mut seen = (false, false);
        for (i, &(family, field)) in self.fields.iter().enumerate() {
            let Some(v) = captured.get(i) else { continue };
            // A header of the family is present: that gateway answered, whatever the value says.
            match family {
                Family::Litellm => seen.0 = true,
                Family::Portkey => seen.1 = true,
                Family::Generic => info.family = Some(Family::Generic),
            }
            apply(&mut info, field, v);
        }
        info.family = info.family.or(match seen {
            (true, _) => Some(Family::Litellm),
            (false, true) => Some(Family::Portkey),
            _ => None,
        });
        if info.cost.is_none() && self.reads_body_cost() {
            info.cost = body_cost.and_then(cost);
        }
        info.attributed = info.family.is_some() || info.cost.is_some();
        info
    }
}

/// What one response's gateway said; every field `None` when it said nothing about it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GatewayInfo<'a> {
    /// Which family of headers answered (`None`: none did).
    pub family: Option<Family>,
    /// The served model (or model group) the gateway names.
    pub model: Option<&'a str>,
    pub deployment: Option<&'a str>,
    pub fallback: Option<bool>,
    /// 0 = the primary target.
    pub target: Option<u32>,
    pub retries: Option<u32>,
    pub cache_hit: Option<bool>,
    /// USD, as the gateway computed it.
    pub cost: Option<f64>,
    pub overhead: Option<Duration>,
    /// Any of its headers (or a body `usage.cost`) was there.
    pub attributed: bool,
}

fn apply<'a>(info: &mut GatewayInfo<'a>, field: Field, v: &'a HeaderValue) {
    let Ok(text) = v.to_str().map(str::trim) else { return };
    if text.is_empty() {
        return;
    }
    match field {
        Field::Model => info.model = info.model.or(Some(text)),
        Field::Deployment => info.deployment = info.deployment.or(Some(text)),
        Field::Fallback => {
            info.fallback = info.fallback.or_else(|| flag_or_count(text));
            // Fallbacks are tried in order, so after n of them the n-th fallback target served.
            info.target = info.target.or_else(|| count(text));
        }
        Field::Target => {
            if let (None, Some((first, later))) = (info.target, target_path(text)) {
                info.target = Some(first);
                // Any index above 0 on the path means a target after the first served: a fallback, unless a
                // header of higher precedence said otherwise.
                info.fallback = info.fallback.or(Some(later));
            }
        }
        Field::Retries => info.retries = info.retries.or_else(|| count(text)),
        Field::CacheStatus => info.cache_hit = info.cache_hit.or(Some(cache_word(text))),
        Field::CacheKey => info.cache_hit = info.cache_hit.or(Some(true)),
        Field::Cost => info.cost = info.cost.or_else(|| text.parse().ok().and_then(cost)),
        Field::OverheadMs => info.overhead = info.overhead.or_else(|| overhead(text)),
    }
}

fn count(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&n| n <= MAX_COUNT)
}

fn flag_or_count(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        other => count(other).map(|n| n > 0),
    }
}

/// `1`, `config.targets[1]`, `config.targets[1].targets[0]`: the top-level index, and whether any index on
/// the path is above 0. `config` alone (no strategy) names no target.
fn target_path(text: &str) -> Option<(u32, bool)> {
    if !text.contains('[') {
        return count(text).map(|n| (n, n > 0));
    }
    let mut first = None;
    let mut later = false;
    for part in text.split('[').skip(1) {
        let n = count(part.split_once(']')?.0.trim())?;
        first = first.or(Some(n));
        later |= n > 0;
    }
    first.map(|f| (f, later))
}

fn cache_word(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    matches!(t.as_str(), "hit" | "semantic hit" | "semantic_hit" | "true" | "yes" | "1")
}

fn cost(v: f64) -> Option<f64> {
    (v.is_finite() && (0.0..=MAX_COST_USD).contains(&v)).then_some(v)
}

fn overhead(text: &str) -> Option<Duration> {
    let ms: f64 = text.parse().ok()?;
    (ms.is_finite() && (0.0..=MAX_OVERHEAD_MS).contains(&ms)).then(|| Duration::from_secs_f64(ms / 1000.0))
}

#[cfg(test)]
mod tests;
