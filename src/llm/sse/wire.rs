//! Wire shapes of chat-completion chunks and of the assembled completion. Incoming strings borrow from the
//! event buffer (`Text`), and `choices` is folded while it is read (`Choices`), so that parsing a chunk
//! allocates nothing unless serde_json has to unescape a string.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::accumulate::ToolCall;

/// One `data:` payload. Unknown fields are skipped by serde without allocating.
#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Chunk<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub model: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub choices: Field<Choices<'a>>,
    #[serde(default)]
    pub usage: Field<UsageWire>,
    /// Parsed into a `Value` only when present: errors are rare and their shape varies by server.
    #[serde(default)]
    pub error: Field<serde_json::Value>,
}

/// A string borrowed from the payload when it has no escapes. serde's own `Option<Cow<str>>` always copies,
/// which would allocate for every content delta.
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl<'a> Chunk<'a> {
    /// Nothing read yet: what the fast reader fills in place.
    pub const EMPTY: Chunk<'a> =
        Chunk { id: None, model: None, choices: Field::ABSENT, usage: Field::ABSENT, error: Field::ABSENT };
}

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// Whether a key was present at all (even as null) and its value: a chunk must carry `choices`, `usage` or
/// `error` to count as a chat chunk, but any of them may be null.
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Field<T> {
    pub present: bool,
    pub value: Option<T>,
}

impl<T> Field<T> {
    pub const ABSENT: Field<T> = Field { present: false, value: None };
}

impl<T> Default for Field<T> {
    fn default() -> Self {
        Field::ABSENT
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Field { present: true, value: Option::deserialize(d)? })
    }
}

/// Token flags of a chunk or choice.
#[derive(Default, Clone, Copy)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Tokens {
    /// Content, reasoning or a tool-call delta.
    pub any: bool,
    /// Non-empty visible content.
    pub content: bool,
}

impl Tokens {
    pub fn merge(&mut self, other: Tokens) {
        self.any |= other.any;
        self.content |= other.content;
    }
}

/// The `choices` array folded as it is read: choice 0 is kept whole (it is what gets assembled), other
/// choices (n > 1) only contribute their token flags. Avoids allocating a Vec per chunk.
#[derive(Default)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Choices<'a> {
    pub first: Option<Choice<'a>>,
    pub others: Tokens,
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut out = Choices::default();
                while let Some(choice) = seq.next_element::<Option<Choice<'a>>>()? {
                    let Some(choice) = choice else { continue };
                    // A missing index is how single-choice servers that omit it mean choice 0.
                    if out.first.is_none() && choice.index.unwrap_or(0) == 0 {
                        out.first = Some(choice);
                    } else {
                        out.others.merge(choice.tokens());
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Choice<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Text<'a>>,
}

impl<'a> Choice<'a> {
    pub const EMPTY: Choice<'a> = Choice { index: None, delta: None, finish_reason: None };

    pub fn tokens(&self) -> Tokens {
        let Some(d) = &self.delta else { return Tokens::default() };
        let filled = |t: &Option<Text>| t.as_ref().is_some_and(|t| !t.0.is_empty());
        let content = filled(&d.content);
        let tools = d.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        Tokens { any: content || filled(&d.reasoning_content) || filled(&d.reasoning) || tools, content }
    }
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct Delta<'a> {
    #[serde(borrow)]
    pub content: Option<Text<'a>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Text<'a>>,
    #[serde(borrow)]
    pub reasoning: Option<Text<'a>>,
    /// Boxed: a choice is moved through several of serde's `Option` layers per chunk, and inline tool calls
    /// made it ~200 bytes larger; content-only chunks (most of any stream) now allocate nothing for it.
    #[serde(borrow)]
    pub tool_calls: Option<Box<ToolCalls<'a>>>,
}

impl<'a> Delta<'a> {
    pub const EMPTY: Delta<'a> = Delta { content: None, reasoning_content: None, reasoning: None, tool_calls: None };
}

/// `delta.tool_calls`, with the first entry inline: streams send one entry per chunk, so a Vec is only
/// allocated for the rare chunk carrying several. Null entries are skipped.
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct ToolCalls<'a> {
    first: Option<ToolCallDelta<'a>>,
    rest: Vec<ToolCallDelta<'a>>,
}

impl<'a> ToolCalls<'a> {
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ToolCallDelta<'a>> {
        self.first.iter().chain(&self.rest)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolCalls<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ToolCalls<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of tool calls")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ToolCalls<'a>, A::Error> {
                let mut out = ToolCalls { first: None, rest: Vec::new() };
                while let Some(call) = seq.next_element::<Option<ToolCallDelta<'a>>>()? {
                    match (call, &out.first) {
                        (None, _) => {}
                        (Some(call), None) => out.first = Some(call),
                        (Some(call), Some(_)) => out.rest.push(call),
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct ToolCallDelta<'a> {
    pub index: Option<u64>,
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct FunctionDelta<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub arguments: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct UsageWire {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub completion_tokens_details: Option<UsageDetails>,
    /// OpenRouter's USD figure; anything but a number is ignored rather than failing the stream.
    #[serde(default)]
    pub cost: Option<serde_json::Value>,
}

impl UsageWire {
    pub const EMPTY: UsageWire =
        UsageWire { prompt_tokens: None, completion_tokens: None, completion_tokens_details: None, cost: None };
}

#[derive(Deserialize)]
#[cfg_attr(any(test, fuzzing), derive(PartialEq, Debug))]
pub(super) struct UsageDetails {
    pub reasoning_tokens: Option<u64>,
}

/// The assembled answer, shaped like a non-streaming chat completion.
#[derive(Serialize)]
pub(super) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub model: &'a str,
    pub choices: [CompletionChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Serialize)]
pub(super) struct CompletionChoice<'a> {
    pub index: u32,
    pub message: Message<'a>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct Message<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty", serialize_with = "tool_calls")]
    pub tool_calls: &'a [ToolCall],
}

fn tool_calls<S: Serializer>(calls: &&[ToolCall], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Out<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    }
    #[derive(Serialize)]
    struct Function<'a> {
        name: &'a str,
        arguments: &'a str,
    }
    s.collect_seq(calls.iter().map(|c| Out {
        id: &c.id,
        kind: "function",
        function: Function { name: &c.name, arguments: &c.arguments },
    }))
}

#[derive(Serialize)]
pub(super) struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub completion_tokens_details: UsageDetailsOut,
}

#[derive(Serialize)]
pub(super) struct UsageDetailsOut {
    pub reasoning_tokens: u64,
}

#[cfg(test)]
mod size_tests {
    /// A choice is moved by value through serde's layers for every chunk: keep it small (tool calls boxed).
    #[test]
    fn a_choice_stays_small() {
        assert!(std::mem::size_of::<super::Choice<'_>>() <= 128, "{}", std::mem::size_of::<super::Choice<'_>>());
    }
}
