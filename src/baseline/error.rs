//! The errors `baseline` returns: a `[regression]` entry that cannot be used, and a comparison that found a
//! histogram it cannot decode. Each message is one line, word for word what the user has always seen.

/// A `[regression]` entry that cannot be used; the message names the key and the fix
/// (`[regression] \`latency\`: cannot compare \`rate\`; use p(N), med, avg, min or max`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A comparison that could not be made: a histogram of one of the two results does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    #[error("baseline `{file}`: {detail}")]
    Baseline { file: String, detail: String },
    #[error("this run: {detail}")]
    Current { detail: String },
}
