//! What makes a response an LLM response: the OpenAI server-sent-event stream parser (a [`client::BodySink`]
//! measuring time to first token, inter-token gaps and tokens) and the reading of `usage` and the served model
//! from a non-streamed chat completion; what the gateway says it did (`gateway`); fallback and cost from the
//! scenario's tables (`pricing`). Knows the OpenAI wire format, not the engine or reports.
//!
//! [`client::BodySink`]: crate::client::BodySink

pub mod gateway;
pub mod pricing;
pub mod sse;
pub mod usage;
