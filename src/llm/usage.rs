//! The tokens and served model of a non-streamed chat completion, read from its JSON body without building the
//! whole document: only `model` and `usage` are deserialized.

use std::borrow::Cow;

use serde::Deserialize;

use super::sse::Usage;

/// What a completion body says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion<'a> {
    /// The `model` field: the model that served the response, as the server names it.
    pub model: Option<Cow<'a, str>>,
    /// `usage`, with zeros for what is absent (a body without `usage` reads as zero tokens).
    pub usage: Usage,
    /// `usage.cost`: USD, as OpenRouter (and gateways copying it) reports it.
    pub cost: Option<f64>,
    /// `provider`: who served it behind the gateway (OpenRouter).
    pub provider: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CompletionHead<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<UsageJson>,
    #[serde(borrow, default)]
    provider: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    completion_tokens_details: Option<Details>,
    /// A number, or anything else (ignored): a malformed cost must not lose the tokens.
    #[serde(default)]
    cost: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    reasoning_tokens: u64,
}

/// The model and usage of a chat completion body; `None` if the body is not a JSON object of that shape.
pub fn read_completion(body: &[u8]) -> Option<Completion<'_>> {
    let head = serde_json::from_slice::<CompletionHead<'_>>(body).ok()?;
    let usage = head.usage.unwrap_or_default();
    Some(Completion {
        model: head.model,
        cost: usage.cost.as_ref().and_then(serde_json::Value::as_f64),
        provider: head.provider,
        usage: Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            reasoning_tokens: usage.completion_tokens_details.map_or(0, |d| d.reasoning_tokens),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_and_the_model() {
        let body = br#"{"id":"x","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5,
            "completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let c = read_completion(body).unwrap();
        assert_eq!(c.model.as_deref(), Some("gpt-4o"));
        assert_eq!(c.usage, Usage { prompt_tokens: 7, completion_tokens: 5, reasoning_tokens: 2 });
        assert_eq!((c.cost, c.provider), (None, None));
    }

    #[test]
    fn reads_openrouters_usage_cost_and_provider() {
        let body = include_bytes!("../../tests/fixtures/gateways/openrouter_completion.json");
        let c = read_completion(body).unwrap();
        assert_eq!(c.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert_eq!(c.provider.as_deref(), Some("OpenAI"));
        assert_eq!(c.cost, Some(0.0000957));
        assert_eq!(c.usage.completion_tokens, 123);
        let odd = read_completion(br#"{"usage":{"completion_tokens":3,"cost":"free"}}"#).unwrap();
        assert_eq!((odd.cost, odd.usage.completion_tokens), (None, 3), "a cost that is not a number is unsaid");
    }

    #[test]
    fn missing_usage_is_zero_and_a_non_json_body_is_none() {
        let c = read_completion(br#"{"choices":[]}"#).unwrap();
        assert_eq!((c.model, c.usage, c.cost), (None, Usage::default(), None));
        assert!(read_completion(b"not json").is_none());
        assert!(read_completion(b"[1,2]").is_none());
    }
}
