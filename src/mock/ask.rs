//! What a chat request asks the mock for. Nearly every request is read straight into borrowed fields; a
//! `serde_json::Value` tree (a map node and a `String` per key, then freed) cost a quarter of the mock's
//! instructions per streamed request (callgrind), and the mock, not the generator, set the pace of the
//! streaming benchmark; read this way, a streamed request costs the mock 18 % fewer instructions. Anything the
//! typed reader does not take exactly as written (a field of another type, a duplicate key, an array where an
//! object belongs) is read as a `Value` instead, as before, so an unusual request is answered as it always was.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::tools;

/// What a request asks for, once validated.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ask<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    pub include_usage: bool,
    pub completion_tokens: u32,
    pub prompt_tokens: u64,
    /// The function the model answers with a call to, when the request offers tools.
    pub tool: Option<String>,
}

/// Why a body is answered with a 400; its text is the response's message.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadRequest {
    #[error("We could not parse the JSON body of your request. ({0})")]
    Json(serde_json::Error),
    #[error("'messages' is required and must be an array")]
    NoMessages,
}

/// Reads `body`.
pub(super) fn read(body: &[u8], output_tokens: u32, react_steps: u32) -> Result<Ask<'_>, BadRequest> {
    // Read as `&str`, UTF-8 checked once: from bytes, serde_json checks every string it reads (a fifth of
    // the reader's instructions on a short request, keys included).
    let typed = std::str::from_utf8(body).ok().and_then(|text| serde_json::from_str::<Object<Wire<'_>>>(text).ok());
    if let Some(ask) = typed.and_then(|w| w.0.ask(output_tokens, react_steps)) {
        return Ok(ask);
    }
    let value: Value = serde_json::from_slice(body).map_err(BadRequest::Json)?;
    from_value(&value, output_tokens, react_steps).map(Ask::into_owned)
}

impl Ask<'_> {
    fn into_owned(self) -> Ask<'static> {
        Ask { model: Cow::Owned(self.model.into_owned()), ..self }
    }
}

/// The fields the mock reads, typed as a well-formed request sends them.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<Conversation>,
    stream: Option<bool>,
    stream_options: Option<Object<StreamOptions>>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(borrow)]
    tools: Option<Vec<Object<Tool<'a>>>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    content: Option<Content>,
}

/// A tool on offer: OpenAI nests its name under `function`, looser clients send a bare `name`.
#[derive(Deserialize)]
struct Tool<'a> {
    /// Missing, or present (null or an object): `"function": null` names no tool, where a missing `function`
    /// leaves the bare `name` to speak, as `tools::wanted_call` reads it.
    #[serde(borrow, default, deserialize_with = "present")]
    function: Option<Option<Object<Named<'a>>>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// A field that is there, whatever its value (null included).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// What the mock needs of `messages`, summed as they are read rather than kept: a short request's one
/// allocation was the array.
#[derive(Default)]
struct Conversation {
    /// Whitespace-separated words of every message's text.
    words: u64,
    /// Messages of role `tool`: the tool results a ReAct agent has sent back.
    tool_results: usize,
}

/// A message's text: a string, or an array of parts (objects whose `text` counts), counted in words.
struct Content(u64);

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A struct read from a JSON object only. A derived struct also reads an array, positionally, where the
/// `Value` path sees no field at all: refusing it sends such a request down that path.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Fields(PhantomData)).map(Object)
    }
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Messages;
        impl<'de> Visitor<'de> for Messages {
            type Value = Conversation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conversation, A::Error> {
                let mut sum = Conversation::default();
                while let Some(Object(message)) = seq.next_element::<Object<Message<'de>>>()? {
                    sum.words += message.content.map_or(0, |c| c.0);
                    sum.tool_results += usize::from(message.role.as_deref() == Some("tool"));
                }
                Ok(sum)
            }
        }
        deserializer.deserialize_seq(Messages)
    }
}

/// By hand rather than `untagged`, which buffers the value (parts and all) before trying each shape.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shapes;
        impl<'de> Visitor<'de> for Shapes {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of parts")
            }
            fn visit_str<E>(self, v: &str) -> Result<Content, E> {
                Ok(Content(words(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut sum = 0;
                while let Some(Object(part)) = seq.next_element::<Object<Part<'de>>>()? {
                    sum += part.text.as_deref().map_or(0, words);
                }
                Ok(Content(sum))
            }
        }
        deserializer.deserialize_any(Shapes)
    }
}

impl<'a> Wire<'a> {
    /// `None` where the `Value` path must speak (no `messages`: its error message).
    fn ask(self, output_tokens: u32, react_steps: u32) -> Option<Ask<'a>> {
        let messages = self.messages?;
        // As `tools::wanted_call`: the first tool, until the conversation holds `react_steps` tool results.
        let tool = self
            .tools
            .as_ref()
            .and_then(|tools| tools.first())
            .filter(|_| messages.tool_results < react_steps as usize);
        let tool = tool.map(|t| {
            let name = match &t.0.function {
                Some(function) => function.as_ref().and_then(|f| f.0.name.as_deref()),
                None => t.0.name.as_deref(),
            };
            name.unwrap_or("tool").to_owned()
        });
        Some(Ask {
            model: self.model.unwrap_or(Cow::Borrowed(DEFAULT_MODEL)),
            stream: self.stream == Some(true),
            include_usage: self.stream_options.and_then(|o| o.0.include_usage) == Some(true),
            completion_tokens: completion_tokens(output_tokens, [self.max_tokens, self.max_completion_tokens]),
            prompt_tokens: messages.words.max(1),
            tool,
        })
    }
}

const DEFAULT_MODEL: &str = "mock-model";

fn completion_tokens(output_tokens: u32, caps: [Option<u64>; 2]) -> u32 {
    let cap = caps.into_iter().flatten().map(|cap| u32::try_from(cap).unwrap_or(u32::MAX)).min();
    output_tokens.max(1).min(cap.unwrap_or(u32::MAX))
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Any JSON object, read leniently: a field of an unexpected type counts as absent.
fn from_value(value: &Value, output_tokens: u32, react_steps: u32) -> Result<Ask<'_>, BadRequest> {
    let messages = value.get("messages").and_then(Value::as_array).ok_or(BadRequest::NoMessages)?;
    let caps = ["max_tokens", "max_completion_tokens"].map(|key| value.get(key).and_then(Value::as_u64));
    Ok(Ask {
        model: Cow::Borrowed(value.get("model").and_then(Value::as_str).unwrap_or(DEFAULT_MODEL)),
        stream: value.get("stream").and_then(Value::as_bool) == Some(true),
        include_usage: value.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
            == Some(true),
        completion_tokens: completion_tokens(output_tokens, caps),
        prompt_tokens: count_prompt_words(messages).max(1),
        tool: tools::wanted_call(value, react_steps),
    })
}

/// A rough prompt size: whitespace-separated words of every message's text, whether the content is a
/// plain string or an array of parts.
fn count_prompt_words(messages: &[Value]) -> u64 {
    messages
        .iter()
        .filter_map(|m| m.get("content"))
        .map(|content| match content {
            Value::String(s) => words(s),
            Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(words).sum(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `Value` path alone reads from `body`.
    fn slow(body: &str) -> Result<Ask<'static>, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        from_value(&value, 8, 2).map(Ask::into_owned).map_err(|e| e.to_string())
    }

    fn typed(body: &str) -> Option<Ask<'_>> {
        serde_json::from_str::<Object<Wire<'_>>>(body).ok()?.0.ask(8, 2)
    }

    #[test]
    fn well_formed_requests_are_read_without_a_value_tree_and_read_the_same() {
        for body in [
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":1}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"one two  three"}],"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x"}}]}],"max_completion_tokens":3,"max_tokens":5}"#,
            r#"{"model":null,"messages":[{"role":"user","content":null}],"stream":null,"stream_options":null,"tools":null}"#,
            r#"{"model":"caf\u00e9","messages":[{"role":"assistant","content":"x\ny"}],"temperature":0.2,"n":1,"extra":{"a":[1,2]}}"#,
            r#"{"messages":[],"max_tokens":99999999999}"#,
            r#"{"messages":[{"content":[{"text":null}]}],"stream_options":{}}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"search","parameters":{}}}]}"#,
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"tool","content":"r"}],"tools":[{"function":{"name":"a"}},{"name":"b"}]}"#,
            r#"{"messages":[{"role":"tool","content":"r"},{"role":"tool","content":"s"}],"tools":[{"function":{"name":"a"}}]}"#,
            r#"{"messages":[],"tools":[{"name":"bare"}]}"#,
            r#"{"messages":[],"tools":[{"function":null,"name":"bare"}]}"#,
            r#"{"messages":[],"tools":[{"function":{},"name":"bare"}]}"#,
            r#"{"messages":[],"tools":[{}]}"#,
            r#"{"messages":[],"tools":[]}"#,
        ] {
            let fast = typed(body).unwrap_or_else(|| panic!("fell back on {body}"));
            assert_eq!(Ok(fast), slow(body), "{body}");
        }
    }

    #[test]
    fn anything_else_is_read_as_a_value_as_before() {
        for body in [
            r#"{"model":"m","messages":"hi"}"#,
            r#"{"model":7,"messages":[]}"#,
            r#"{"messages":[],"stream":"yes"}"#,
            r#"{"messages":[],"max_tokens":2.5}"#,
            r#"{"messages":[],"max_tokens":-1}"#,
            r#"{"messages":[1,{"content":"a b"}]}"#,
            r#"{"messages":[{"content":7}]}"#,
            r#"{"messages":[{"content":[1,{"text":"a"}]}]}"#,
            r#"{"messages":[],"stream_options":{"include_usage":1}}"#,
            r#"{"messages":[],"model":"a","model":"b"}"#,
            r#"{"stream":true}"#,
            r#"{"messages":[],"tools":"x"}"#,
            r#"{"messages":[],"tools":[{"name":"a"},7]}"#,
            r#"{"messages":[],"tools":[{"function":7}]}"#,
            r#"{"messages":[],"tools":[{"function":{"name":1}}]}"#,
            r#"{"messages":[{"role":5}],"tools":[{"name":"a"}]}"#,
            r#"["m",[],true]"#,
            r#"{"messages":[["a b"]]}"#,
            r#"{"messages":[{"content":[["a b"]]}]}"#,
            r#"{"messages":[],"stream_options":[true]}"#,
            r#"{"messages":[{"content":"a","content":"b c"}]}"#,
        ] {
            assert!(typed(body).is_none(), "read {body}");
            let read = read(body.as_bytes(), 8, 2).map(Ask::into_owned).map_err(|e| e.to_string());
            assert_eq!(read, slow(body), "{body}");
        }
        let asked =
            read(br#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"function":{"name":"search"}}]}"#, 8, 2);
        assert_eq!(asked.ok().and_then(|a| a.tool).as_deref(), Some("search"));
        for bad in [b"{".as_slice(), b"{\"messages\":[],\"model\":\"\xff\"}"] {
            assert!(read(bad, 8, 2).is_err_and(|e| e.to_string().starts_with("We could not parse the JSON body")));
        }
        let refused = read(b"[]", 8, 2).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(refused, Err("'messages' is required and must be an array".to_owned()));
    }
}
