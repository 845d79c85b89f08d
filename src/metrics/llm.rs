//! What LLM responses add to a step's numbers: streaming timings, tokens, the served model (for switchover and
//! fallback) and cost. Allocated only for steps that produce LLM responses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Hist, add_hist, micros, new_hist, record};

/// One LLM response as measured by the client.
#[derive(Debug, Clone, Default)]
pub struct LlmSample<'a> {
    pub latency: Duration,
    /// Streams only: first generated token (content, reasoning or tool call).
    pub ttft: Option<Duration>,
    /// Streams only: first visible answer content.
    pub ttfo: Option<Duration>,
    /// Streams only: gaps between token-carrying chunks, µs.
    pub gaps_us: &'a [u64],
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Output tokens came from the response's `usage` (else from counted chunks).
    pub from_usage: bool,
    /// The model that served the response (`model` field or the configured header); empty if unknown.
    pub model: &'a str,
    /// The response came from a tier other than the first of the requested alias.
    pub fallback: bool,
    pub cost: f64,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmStats {
    pub responses: u64,
    pub streamed: u64,
    #[serde(with = "super::hist_serde")]
    pub ttft: Hist,
    #[serde(with = "super::hist_serde")]
    pub ttfo: Hist,
    #[serde(with = "super::hist_serde")]
    pub icl: Hist,
    #[serde(with = "super::hist_serde")]
    pub tpot: Hist,
    #[serde(with = "super::hist_serde")]
    pub ntpot: Hist,
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub reasoning_tokens: u64,
    /// Responses whose output tokens came from `usage`; the rest were counted chunks.
    pub from_usage: u64,
    pub fallbacks: u64,
    pub cost: f64,
    pub models: Vec<ModelStats>,
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
            output_tokens: 0,
            input_tokens: 0,
            reasoning_tokens: 0,
            from_usage: 0,
            fallbacks: 0,
            cost: 0.0,
            models: Vec::new(),
        }
    }
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
        if let Some(ttft) = s.ttft {
            self.streamed += 1;
            record(&mut self.ttft, micros(ttft));
            if s.output_tokens > 1 {
                let decode = s.latency.saturating_sub(ttft);
                record(&mut self.tpot, micros(decode) / (s.output_tokens - 1));
            }
        }
        if let Some(ttfo) = s.ttfo {
            record(&mut self.ttfo, micros(ttfo));
        }
        for &g in s.gaps_us {
            record(&mut self.icl, g.max(1));
        }
        if let Some(per_token) = micros(s.latency).checked_div(s.output_tokens) {
            record(&mut self.ntpot, per_token.max(1));
        }
        if !s.model.is_empty() {
            let m = match self.models.iter_mut().position(|m| m.model == s.model) {
                Some(i) => &mut self.models[i],
                None => {
                    self.models.push(ModelStats {
                        model: s.model.to_string(),
                        requests: 0,
                        fallbacks: 0,
                        output_tokens: 0,
                        cost: 0.0,
                        latency: new_hist(),
                    });
                    let last = self.models.len() - 1;
                    &mut self.models[last]
                }
            };
            m.requests += 1;
            m.fallbacks += u64::from(s.fallback);
            m.output_tokens += s.output_tokens;
            m.cost += s.cost;
            record(&mut m.latency, micros(s.latency));
        }
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
        ] {
            add_hist(a, b);
        }
        self.output_tokens += o.output_tokens;
        self.input_tokens += o.input_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.from_usage += o.from_usage;
        self.fallbacks += o.fallbacks;
        self.cost += o.cost;
        for m in &o.models {
            match self.models.iter_mut().find(|x| x.model == m.model) {
                Some(x) => {
                    x.requests += m.requests;
                    x.fallbacks += m.fallbacks;
                    x.output_tokens += m.output_tokens;
                    x.cost += m.cost;
                    add_hist(&mut x.latency, &m.latency);
                }
                None => self.models.push(m.clone()),
            }
        }
    }
}
