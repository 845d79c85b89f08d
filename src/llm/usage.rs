//! The tokens and served model of a non-streamed chat completion, read from its JSON body without building the
//! whole document: only `model` and `usage` are deserialized.

use std::borrow::Cow;

use serde::Deserialize;

use super::sse::Usage;

/// What a completion body says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion<'a> {
    /// The `model` field: the model that served the response, as the server names it.
    pub model: Option<Cow<'a, str>>,
    /// `usage`, with zeros for what is absent (a body without `usage` reads as zero tokens).
    pub usage: Usage,
}

#[derive(Deserialize)]
struct CompletionHead<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<UsageJson>,
}

#[derive(Deserialize, Default)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    completion_tokens_details: Option<Details>,
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
    }

    #[test]
    fn missing_usage_is_zero_and_a_non_json_body_is_none() {
        let c = read_completion(br#"{"choices":[]}"#).unwrap();
        assert_eq!((c.model, c.usage), (None, Usage::default()));
        assert!(read_completion(b"not json").is_none());
        assert!(read_completion(b"[1,2]").is_none());
    }
}
