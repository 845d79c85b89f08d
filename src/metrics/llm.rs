//! What LLM responses add to a step's numbers: streaming timings, tokens, the served model (for switchover and
//! fallback) and cost. Allocated only for steps that produce LLM responses.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Hist, add_hist, micros, new_hist, record, record_n};

/// One LLM response as measured by the client.
#[derive(Debug, Clone, Default)]
pub struct LlmSample<'a> {
    /// Send → the end of the response (for streams: the end of the stream, after `usage` and `[DONE]`).
    pub latency: Duration,
    /// Streams only: first generated token (content, reasoning or tool call).
    pub ttft: Option<Duration>,
    /// Streams only: first visible answer content.
    pub ttfo: Option<Duration>,
    /// Streams only: the last chunk carrying a generated token.
    pub last_token: Option<Duration>,
    /// Streams only: gaps between token-carrying chunks, µs.
    pub gaps_us: &'a [u64],
    /// Streams only: chunks that carried a generated token.
    pub token_chunks: u64,
    /// `usage.completion_tokens` when sent, else `token_chunks`: the one count every per-token figure divides by.
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Output tokens came from the response's `usage` (else from counted chunks).
    pub from_usage: bool,
    /// The model that served the response (`model` field or the configured header); empty if unknown.
    pub model: &'a str,
    /// The gateway (or the scenario's `[aliases]`) says another model or target than the requested one served.
    pub fallback: bool,
    /// USD: the gateway's figure when it gave one, else `[pricing]`'s; 0 when neither (see `unpriced`).
    pub cost: f64,
    /// The gateway reported it.
    pub gateway: GatewaySample,
    /// The deployment (upstream, provider) the gateway names; empty if it named none.
    pub deployment: &'a str,
}

/// What the gateway said about one response, reduced to what is counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewaySample {
    /// Retries it made before this answer.
    pub retries: u64,
    pub cache_hit: bool,
    /// The target that served (0 = the primary), when it said.
    pub target: Option<u32>,
    /// Its own time, when it said.
    pub overhead: Option<Duration>,
    /// `cost` came from the gateway (headers or `usage.cost`), not `[pricing]`.
    pub cost_reported: bool,
    /// Tokens were served but neither the gateway nor `[pricing]` gave a price: `cost` is not known.
    pub unpriced: bool,
    /// Any of the gateway's headers (or a body `usage.cost`) came with the response.
    pub attributed: bool,
    /// The `[gateway] kind` the scenario named (not `auto`).
    pub expected: Option<&'static str>,
}

/// Target indexes counted apart; a higher index is counted in the last slot.
pub const MAX_TARGETS: usize = 16;

/// Distinct served-model labels kept per step; responses from any further model are counted under
/// [`OTHER_MODEL`]. Names come from the server, so without a cap one answering with a new name per response makes
/// every per-second snapshot, merge and total grow with the number of responses (each label owns a histogram).
pub const MAX_MODELS: usize = 64;
/// The label of responses from models beyond the first [`MAX_MODELS`].
pub const OTHER_MODEL: &str = "other";
/// Longest served-model label kept, in bytes.
const MAX_MODEL_BYTES: usize = 128;

/// A served-model name as it may be stored and reported: at most 128 bytes, only letters, digits and `._-:/@+`
/// (anything else becomes `_`). Borrowed, so free, for the usual well-formed name.
pub fn served_model_label(raw: &str) -> Cow<'_, str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:/@+".contains(c);
    let mut end = raw.len().min(MAX_MODEL_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &raw[..end];
    if cut.chars().all(allowed) {
        return Cow::Borrowed(cut);
    }
    Cow::Owned(cut.chars().map(|c| if allowed(c) { c } else { '_' }).collect())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelStats {
    pub model: String,
    pub requests: u64,
    pub fallbacks: u64,
    pub output_tokens: u64,
    pub cost: f64,
    #[serde(with = "super::hist_serde")]
    pub latency: Hist,
    #[serde(default)]
    pub gateway_retries: u64,
    #[serde(default)]
    pub cache_hits: u64,
    #[serde(default)]
    pub unpriced: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmStats {
    pub responses: u64,
    pub streamed: u64,
    /// Streams: send → first generated token (content, reasoning or tool call).
    #[serde(with = "super::hist_serde")]
    pub ttft: Hist,
    /// Streams: send → first visible answer content.
    #[serde(with = "super::hist_serde")]
    pub ttfo: Hist,
    /// Streams: gaps between token-carrying chunks (what vLLM calls ITL, AIPerf ICL).
    #[serde(with = "super::hist_serde")]
    pub icl: Hist,
    /// Streams: (last token − first token) / (output tokens − 1); see `tpot_us`.
    #[serde(with = "super::hist_serde")]
    pub tpot: Hist,
    /// latency / output tokens, streamed or not.
    #[serde(with = "super::hist_serde")]
    pub ntpot: Hist,
    /// Streams: last generated token → end of the stream (usage chunk, `[DONE]`, a gateway's buffering).
    #[serde(with = "super::hist_serde", default = "new_hist")]
    pub stream_tail: Hist,
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Responses whose output tokens came from `usage`; the rest were counted chunks.
    pub from_usage: u64,
    pub fallbacks: u64,
    pub cost: f64,
    /// What gateways said: retries, cache hits, cost, overhead, which target served.
    #[serde(default)]
    pub gateway: GatewayStats,
    /// At most [`MAX_MODELS`] named entries, then one [`OTHER_MODEL`].
    pub models: Vec<ModelStats>,
    /// Responses counted under [`OTHER_MODEL`] because the step had seen [`MAX_MODELS`] served models already.
    pub models_other: u64,
}

/// A step's gateway attribution: what the gateway reported, beside what was priced from `[pricing]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayStats {
    /// Responses that carried any of the gateway's headers (or a body `usage.cost`).
    #[serde(default)]
    pub attributed: u64,
    /// The `[gateway] kind` the scenario named, if not `auto`.
    #[serde(default)]
    pub expected: Option<Cow<'static, str>>,
    /// Retries the gateway made, over all responses.
    pub retries: u64,
    pub cache_hits: u64,
    /// Responses whose cost the gateway reported, and its sum.
    pub cost_reported: u64,
    pub reported_cost: f64,
    /// Responses priced from `[pricing]`, and their sum.
    pub priced: u64,
    pub priced_cost: f64,
    /// Responses with tokens that nothing priced.
    pub unpriced: u64,
    /// The gateway's own time per response, µs.
    #[serde(with = "super::hist_serde")]
    pub overhead: Hist,
    /// Responses by the target index that served them (the last slot counts every index beyond).
    pub targets: Vec<u64>,
    /// Responses by the deployment the gateway named: at most [`MAX_MODELS`] labels, then [`OTHER_MODEL`].
    #[serde(default)]
    pub deployments: Vec<(String, u64)>,
}

impl Default for GatewayStats {
    fn default() -> Self {
        GatewayStats {
            attributed: 0,
            expected: None,
            retries: 0,
            cache_hits: 0,
            cost_reported: 0,
            reported_cost: 0.0,
            priced: 0,
            priced_cost: 0.0,
            unpriced: 0,
            overhead: new_hist(),
            targets: Vec::new(),
            deployments: Vec::new(),
        }
    }
}

impl GatewayStats {
    fn record(&mut self, g: &GatewaySample, cost: f64) {
        self.attributed += u64::from(g.attributed);
        if self.expected.is_none() {
            self.expected = g.expected.map(Cow::Borrowed);
        }
        self.retries += g.retries;
        self.cache_hits += u64::from(g.cache_hit);
        if g.cost_reported {
            self.cost_reported += 1;
            self.reported_cost += cost;
        } else if g.unpriced {
            self.unpriced += 1;
        } else {
            self.priced += 1;
            self.priced_cost += cost;
        }
        if let Some(d) = g.overhead {
            record(&mut self.overhead, micros(d).max(1));
        }
        if let Some(t) = g.target {
            let i = (t as usize).min(MAX_TARGETS - 1);
            if self.targets.len() <= i {
                self.targets.resize(i + 1, 0);
            }
            self.targets[i] += 1;
        }
    }

    /// Counts `n` responses of a deployment; a name is allocated only the first time it is seen.
    fn count_deployment(&mut self, raw: &str, n: u64) {
        let label = served_model_label(raw);
        if let Some(d) = self.deployments.iter_mut().find(|(d, _)| *d == label) {
            d.1 += n;
            return;
        }
        let named = self.deployments.iter().filter(|(d, _)| d != OTHER_MODEL).count();
        let name = if named < MAX_MODELS { label.as_ref() } else { OTHER_MODEL };
        match self.deployments.iter_mut().find(|(d, _)| d == name) {
            Some(d) => d.1 += n,
            None => self.deployments.push((name.to_string(), n)),
        }
    }

    fn add(&mut self, o: &GatewayStats) {
        self.attributed += o.attributed;
        if self.expected.is_none() {
            self.expected.clone_from(&o.expected);
        }
        self.retries += o.retries;
        self.cache_hits += o.cache_hits;
        self.cost_reported += o.cost_reported;
        self.reported_cost += o.reported_cost;
        self.priced += o.priced;
        self.priced_cost += o.priced_cost;
        self.unpriced += o.unpriced;
        add_hist(&mut self.overhead, &o.overhead);
        if self.targets.len() < o.targets.len() {
            self.targets.resize(o.targets.len().min(MAX_TARGETS), 0);
        }
        for (i, n) in o.targets.iter().enumerate() {
            self.targets[i.min(MAX_TARGETS - 1)] += n;
        }
        for (d, n) in &o.deployments {
            self.count_deployment(d, *n);
        }
    }
}

impl Default for LlmStats {
    fn default() -> Self {
        LlmStats {
            responses: 0,
            streamed: 0,
            ttft: new_hist(),
            ttfo: new_hist(),
            icl: new_hist(),
            tpot: new_hist(),
            ntpot: new_hist(),
            stream_tail: new_hist(),
            output_tokens: 0,
            input_tokens: 0,
            reasoning_tokens: 0,
            from_usage: 0,
            fallbacks: 0,
            cost: 0.0,
            gateway: GatewayStats::default(),
            models: Vec::new(),
            models_other: 0,
        }
    }
}

/// (last token − first token) / (output tokens − 1), µs: the time per token after the first, ending at the last
/// token so that what a gateway sends after the answer (`usage`, `[DONE]`) is `stream_tail`, not decode time.
/// None for a stream of fewer than two output tokens, and for one whose tokens all came in one chunk: there is no
/// interval between tokens to divide, and 0 would read as infinitely fast.
fn tpot_us(s: &LlmSample<'_>) -> Option<u64> {
    let (first, last) = (s.ttft?, s.last_token?);
    if s.output_tokens < 2 || s.token_chunks < 2 {
        return None;
    }
    let decode = u64::try_from(last.saturating_sub(first).as_micros()).unwrap_or(u64::MAX);
    Some((decode / (s.output_tokens - 1)).max(1))
}

impl LlmStats {
    pub fn record(&mut self, s: &LlmSample<'_>) {
        self.responses += 1;
        self.output_tokens += s.output_tokens;
        self.input_tokens += s.input_tokens;
        self.reasoning_tokens += s.reasoning_tokens;
        self.from_usage += u64::from(s.from_usage);
        self.fallbacks += u64::from(s.fallback);
        self.cost += s.cost;
        self.gateway.record(&s.gateway, s.cost);
        if !s.deployment.is_empty() {
            self.gateway.count_deployment(s.deployment, 1);
        }
        if let Some(ttft) = s.ttft {
            self.streamed += 1;
            record(&mut self.ttft, micros(ttft));
        }
        if let Some(per_token) = tpot_us(s) {
            record(&mut self.tpot, per_token);
        }
        if let Some(last) = s.last_token {
            record(&mut self.stream_tail, micros(s.latency.saturating_sub(last)));
        }
        if let Some(ttfo) = s.ttfo {
            record(&mut self.ttfo, micros(ttfo));
        }
        // Chunks that came in one read have equal gaps (zero, recorded as 1 µs): a run is recorded at once.
        let mut gaps = s.gaps_us.iter().map(|&g| g.max(1)).peekable();
        while let Some(g) = gaps.next() {
            let mut n = 1;
            while gaps.next_if_eq(&g).is_some() {
                n += 1;
            }
            record_n(&mut self.icl, g, n);
        }
        if let Some(per_token) = micros(s.latency).checked_div(s.output_tokens) {
            record(&mut self.ntpot, per_token.max(1));
        }
        if !s.model.is_empty() {
            let label = served_model_label(s.model);
            let i = self.slot(&label);
            let m = &mut self.models[i];
            m.requests += 1;
            m.fallbacks += u64::from(s.fallback);
            m.output_tokens += s.output_tokens;
            m.cost += s.cost;
            m.gateway_retries += s.gateway.retries;
            m.cache_hits += u64::from(s.gateway.cache_hit);
            m.unpriced += u64::from(s.gateway.unpriced);
            record(&mut m.latency, micros(s.latency));
            if m.model == OTHER_MODEL && label != OTHER_MODEL {
                self.models_other += 1;
            }
        }
    }

    /// Index of the entry for `label`: its own while fewer than [`MAX_MODELS`] are named, else `other`.
    fn slot(&mut self, label: &str) -> usize {
        if let Some(i) = self.models.iter().position(|m| m.model == label) {
            return i;
        }
        let named = self.models.iter().filter(|m| m.model != OTHER_MODEL).count();
        let name = if named < MAX_MODELS { label } else { OTHER_MODEL };
        if let Some(i) = self.models.iter().position(|m| m.model == name) {
            return i;
        }
        self.models.push(ModelStats {
            model: name.to_string(),
            requests: 0,
            fallbacks: 0,
            output_tokens: 0,
            cost: 0.0,
            latency: new_hist(),
            gateway_retries: 0,
            cache_hits: 0,
            unpriced: 0,
        });
        self.models.len() - 1
    }

    pub fn add(&mut self, o: &LlmStats) {
        self.responses += o.responses;
        self.streamed += o.streamed;
        for (a, b) in [
            (&mut self.ttft, &o.ttft),
            (&mut self.ttfo, &o.ttfo),
            (&mut self.icl, &o.icl),
            (&mut self.tpot, &o.tpot),
            (&mut self.ntpot, &o.ntpot),
            (&mut self.stream_tail, &o.stream_tail),
        ] {
            add_hist(a, b);
        }
        self.output_tokens += o.output_tokens;
        self.input_tokens += o.input_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.from_usage += o.from_usage;
        self.fallbacks += o.fallbacks;
        self.cost += o.cost;
        self.gateway.add(&o.gateway);
        self.models_other += o.models_other;
        // Two workers may each have seen 64 different names: the merge keeps the cap too.
        for m in &o.models {
            let i = self.slot(&m.model);
            if self.models[i].model == OTHER_MODEL && m.model != OTHER_MODEL {
                self.models_other += m.requests;
            }
            let x = &mut self.models[i];
            x.requests += m.requests;
            x.fallbacks += m.fallbacks;
            x.output_tokens += m.output_tokens;
            x.cost += m.cost;
            x.gateway_retries += m.gateway_retries;
            x.cache_hits += m.cache_hits;
            x.unpriced += m.unpriced;
            add_hist(&mut x.latency, &m.latency);
        }
    }
}

#[cfg(test)]
#[path = "llm_tests.rs"]
mod tests;
