//! What the events of one response add up to: the summary, the gaps, and (when assembling) the message.
//! Kept apart from the line state in the parent so that a payload borrowed from the event buffer can be
//! applied while that buffer is borrowed.

use std::time::Duration;

use super::fast;
use super::wire::{self, Choice, Chunk, Tokens, ToolCallDelta};
use super::{FinishReason, KEEP_CAPACITY, MAX_MESSAGE_CHARS, MAX_TOOL_CALLS, StreamError, StreamSummary, Usage};

/// One tool call of choice 0. Entries are kept across responses so their Strings are reused.
#[derive(Debug, Default)]
pub(super) struct ToolCall {
    index: u64,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) arguments: String,
}

#[derive(Debug, Default)]
pub(super) struct Accumulator {
    pub(super) summary: StreamSummary,
    pub(super) gaps_us: Vec<u64>,
    assemble: bool,
    id: String,
    content: String,
    reasoning: String,
    finish: String,
    /// `calls[..n_calls]` belong to this response; the rest are spare entries.
    calls: Vec<ToolCall>,
    n_calls: usize,
    assembled_bytes: usize,
    /// Largest assembled message: `MAX_ASSEMBLED_BYTES` until `SseParser::set_max_bytes` says otherwise.
    pub(super) max_assembled: usize,
    /// The leading bytes every chunk repeats, read once (see `fast::Prefix`); kept from response to response.
    prefix: fast::Prefix,
}

impl Accumulator {
    pub(super) fn new(max_assembled: usize) -> Self {
        Accumulator { max_assembled, ..Accumulator::default() }
    }

    pub(super) fn reset(&mut self, assemble: bool) {
        let mut model = std::mem::take(&mut self.summary.model);
        clear_string(&mut model);
        self.summary = StreamSummary { model, ..StreamSummary::default() };
        self.gaps_us.clear();
        if self.gaps_us.capacity() > KEEP_CAPACITY / 8 {
            self.gaps_us.shrink_to(KEEP_CAPACITY / 64);
        }
        self.assemble = assemble;
        clear_string(&mut self.id);
        clear_string(&mut self.content);
        clear_string(&mut self.reasoning);
        clear_string(&mut self.finish);
        // Spare entries are cleared when reused; only trim what one large response left behind.
        self.calls.truncate(16);
        for call in &mut self.calls {
            clear_string(&mut call.arguments);
        }
        self.n_calls = 0;
        self.assembled_bytes = 0;
    }

    /// See `SseParser::assembled_json`.
    pub(super) fn assembled_json(&self, out: &mut Vec<u8>) {
        out.clear();
        let calls = self.calls.get(..self.n_calls).unwrap_or_default();
        let finish = if self.finish.is_empty() {
            self.summary.finish_reason.map(FinishReason::as_str)
        } else {
            Some(&*self.finish)
        };
        let doc = wire::Completion {
            id: &self.id,
            object: "chat.completion",
            model: &self.summary.model,
            choices: [wire::CompletionChoice {
                index: 0,
                message: wire::Message {
                    role: "assistant",
                    content: if self.content.is_empty() && !calls.is_empty() { None } else { Some(&self.content) },
                    reasoning_content: if self.reasoning.is_empty() { None } else { Some(&self.reasoning) },
                    tool_calls: calls,
                },
                finish_reason: finish,
            }],
            usage: self.summary.usage.map(|u| wire::UsageOut {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
                completion_tokens_details: wire::UsageDetailsOut { reasoning_tokens: u.reasoning_tokens },
            }),
        };
        // Serializing borrowed strings and integers into a Vec cannot fail; never hand out half a document.
        if serde_json::to_writer(&mut *out, &doc).is_err() {
            out.clear();
        }
    }

    /// One dispatched `data:` payload.
    pub(super) fn payload(&mut self, data: &[u8], at: Duration) -> Result<(), StreamError> {
        let data = data.trim_ascii();
        if data.is_empty() {
            return Ok(()); // a blank `data:` is a keep-alive, not a chunk
        }
        if data == b"[DONE]" {
            self.summary.done = true;
            return Ok(());
        }
        if let Some((plain, text, len)) = fast::repeat(data, &self.prefix) {
            if len == data.len() {
                return self.plain(plain, text, at);
            }
        }
        let mut chunk = Chunk::EMPTY;
        if fast::read_into(data, &mut chunk, &mut self.prefix).is_some() {
            #[cfg(any(test, fuzzing))]
            fast::assert_serde_agrees(data, &chunk);
        } else {
            chunk = serde_json::from_slice(data)
                .map_err(|e| StreamError::Malformed(format!("{e} in `{}`", snippet(data))))?;
        }
        if let Some(error) = chunk.error.value.as_ref().filter(|e| !e.is_null()) {
            return Err(StreamError::ErrorEvent(json_message(error)));
        }
        if !chunk.choices.present && !chunk.usage.present && !chunk.error.present {
            return Err(StreamError::Malformed(format!("no choices or usage in `{}`", snippet(data))));
        }
        let id = self.assemble.then_some(&mut self.id);
        record_names(
            &mut self.summary.model,
            id,
            chunk.id.as_ref().map(|t| t.as_str()),
            chunk.model.as_ref().map(|t| t.as_str()),
        );
        if let Some(u) = &chunk.usage.value {
            self.summary.usage_cost = u.cost.as_ref().and_then(serde_json::Value::as_f64).or(self.summary.usage_cost);
            if let Some(completion_tokens) = u.completion_tokens {
                self.summary.usage = Some(Usage {
                    prompt_tokens: u.prompt_tokens.unwrap_or(0),
                    completion_tokens,
                    reasoning_tokens: u
                        .completion_tokens_details
                        .as_ref()
                        .and_then(|d| d.reasoning_tokens)
                        .unwrap_or(0),
                });
            }
        }
        let Some(choices) = &chunk.choices.value else { return Ok(()) };
        self.choices(choices.first.as_ref(), choices.others, at)
    }

    /// The `data:` event that opens `frame` when it is one chunk `fast::repeat` reads, followed by its blank
    /// line: applied, and the rest of the frame returned. The line's end is not looked for: with a prefix of
    /// one line the chunk holds no line break, so the event is exactly that line (a line scan was a fifth of
    /// such a chunk's cost).
    pub(super) fn repeat_event<'f>(
        &mut self,
        frame: &'f [u8],
        at: Duration,
        max_event: usize,
    ) -> Result<Option<&'f [u8]>, StreamError> {
        let Some(value) = super::data_value(frame).filter(|_| self.prefix.one_line()) else { return Ok(None) };
        let Some((plain, text, len)) = fast::repeat(value, &self.prefix) else { return Ok(None) };
        let Some(rest) = value.get(len..).and_then(super::after_blank_line).filter(|_| len <= max_event) else {
            return Ok(None);
        };
        self.plain(plain, text, at)?;
        Ok(Some(rest))
    }

    /// A chunk `fast::repeat` read: the prefix's id and model, and choice 0 as `plain` and its text say.
    fn plain(&mut self, plain: fast::Plain, text: &str, at: Duration) -> Result<(), StreamError> {
        if self.summary.model.is_empty() || (self.assemble && self.id.is_empty()) {
            let id = self.assemble.then_some(&mut self.id);
            record_names(&mut self.summary.model, id, self.prefix.id(), self.prefix.model());
        }
        let filled = !text.is_empty();
        #[cfg(any(test, fuzzing))]
        assert_eq!(
            plain.choice(text).tokens(),
            Tokens {
                any: filled && matches!(plain, fast::Plain::Content),
                content: filled && matches!(plain, fast::Plain::Content)
            }
        );
        match plain {
            fast::Plain::Content => {
                self.content(text)?;
                self.count(Tokens { any: filled, content: filled }, at);
            }
            fast::Plain::Finish => self.finish_reason(text),
        }
        Ok(())
    }

    /// A chunk's choices: choice 0 (`first`) and the token flags of the others.
    fn choices(&mut self, first: Option<&Choice>, others: Tokens, at: Duration) -> Result<(), StreamError> {
        let mut tokens = others;
        if let Some(first) = first {
            tokens.merge(first.tokens());
            self.choice(first)?;
        }
        self.count(tokens, at);
        Ok(())
    }

    /// A chunk's token flags, at the time it arrived.
    fn count(&mut self, tokens: Tokens, at: Duration) {
        if tokens.any {
            let s = &mut self.summary;
            s.token_chunks = s.token_chunks.saturating_add(1);
            s.ttft.get_or_insert(at);
            // An endless stream of tiny chunks must not grow memory until the timeout: past the cap, the
            // inter-chunk distribution is that of the first gaps.
            if let Some(prev) = s.last_token_at.filter(|_| self.gaps_us.len() < MAX_GAPS) {
                self.gaps_us.push(u64::try_from(at.saturating_sub(prev).as_micros()).unwrap_or(u64::MAX));
            }
            s.last_token_at = Some(at);
        }
        if tokens.content {
            self.summary.ttfo.get_or_insert(at);
        }
    }

    fn finish_reason(&mut self, reason: &str) {
        self.summary.finish_reason = Some(FinishReason::parse(reason));
        if self.assemble {
            self.finish.clear();
            self.finish.push_str(reason);
        }
    }

    /// Visible text of choice 0, kept when assembling.
    fn content(&mut self, text: &str) -> Result<(), StreamError> {
        if self.assemble {
            self.grow(text.len())?;
            self.content.push_str(text);
        }
        Ok(())
    }

    /// Choice 0: finish reason, tool calls and, when assembling, the message text.
    fn choice(&mut self, choice: &Choice) -> Result<(), StreamError> {
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason(reason.as_str());
        }
        let Some(delta) = &choice.delta else { return Ok(()) };
        if let Some(text) = &delta.content {
            self.content(text.as_str())?;
        }
        if self.assemble {
            // Some servers send the same text as both `reasoning_content` and `reasoning`: keep one.
            let reasoning =
                delta.reasoning_content.as_ref().filter(|t| !t.as_str().is_empty()).or(delta.reasoning.as_ref());
            if let Some(text) = reasoning {
                self.grow(text.as_str().len())?;
                self.reasoning.push_str(text.as_str());
            }
        }
        for call in delta.tool_calls.iter().flat_map(|c| c.iter()) {
            self.tool_call(call)?;
        }
        Ok(())
    }

    fn tool_call(&mut self, delta: &ToolCallDelta) -> Result<(), StreamError> {
        let id = delta.id.as_ref().map(|t| t.as_str()).filter(|id| !id.is_empty());
        let slot = self.tool_slot(delta.index, id)?;
        let (name, arguments) = match (&delta.function, self.assemble) {
            (Some(f), true) => {
                (f.name.as_ref().map_or("", |t| t.as_str()), f.arguments.as_ref().map_or("", |t| t.as_str()))
            }
            _ => ("", ""),
        };
        self.grow(name.len().saturating_add(arguments.len()))?;
        let Some(call) = self.calls.get_mut(slot) else { return Ok(()) };
        if let Some(id) = id.filter(|_| call.id.is_empty()) {
            call.id.push_str(id);
        }
        // The name normally comes once; some servers repeat it in every delta, which must not double it.
        if call.name != name {
            call.name.push_str(name);
        }
        call.arguments.push_str(arguments);
        Ok(())
    }

    /// The entry for a tool-call delta, added when its index is new. Deltas without an index (non-conformant
    /// servers) continue the last call unless they bring a new id.
    fn tool_slot(&mut self, index: Option<u64>, id: Option<&str>) -> Result<usize, StreamError> {
        let active = self.calls.get(..self.n_calls).unwrap_or_default();
        let index = match (index, active.last()) {
            (Some(index), _) => index,
            (None, None) => 0,
            (None, Some(last)) => match id {
                Some(id) if !last.id.is_empty() && last.id != id => {
                    active.iter().map(|c| c.index).max().map_or(0, |m| m.saturating_add(1))
                }
                _ => last.index,
            },
        };
        // Deltas nearly always continue the latest call, so search from the end.
        if let Some(slot) = active.iter().rposition(|c| c.index == index) {
            return Ok(slot);
        }
        if self.n_calls >= MAX_TOOL_CALLS {
            return Err(StreamError::Malformed(format!("more than {MAX_TOOL_CALLS} tool calls")));
        }
        let slot = self.n_calls;
        match self.calls.get_mut(slot) {
            Some(spare) => {
                spare.index = index;
                spare.id.clear();
                spare.name.clear();
                spare.arguments.clear();
            }
            None => self.calls.push(ToolCall { index, ..ToolCall::default() }),
        }
        self.n_calls += 1;
        self.summary.tool_calls = u32::try_from(self.n_calls).unwrap_or(u32::MAX);
        Ok(slot)
    }

    /// Accounts for `n` more assembled bytes.
    fn grow(&mut self, n: usize) -> Result<(), StreamError> {
        self.assembled_bytes = self.assembled_bytes.saturating_add(n);
        if self.assembled_bytes > self.max_assembled {
            return Err(too_large("assembled response", self.max_assembled));
        }
        Ok(())
    }
}

/// The response's model (its first chunk's that names one) and, when assembling, its id.
fn record_names(summary_model: &mut String, id_out: Option<&mut String>, id: Option<&str>, model: Option<&str>) {
    if let Some(model) = model.filter(|_| summary_model.is_empty()) {
        summary_model.push_str(model);
    }
    if let (Some(out), Some(id)) = (id_out, id) {
        if out.is_empty() {
            out.push_str(id);
        }
    }
}

/// Inter-chunk gaps kept per response (1 MiB of them).
const MAX_GAPS: usize = 1 << 17;

pub(super) fn too_large(what: &str, limit: usize) -> StreamError {
    StreamError::Malformed(format!(
        "{what} larger than max_body ({}): reading stopped",
        crate::client::human_bytes(limit)
    ))
}

pub(super) fn clear_bytes(v: &mut Vec<u8>) {
    v.clear();
    if v.capacity() > KEEP_CAPACITY {
        v.shrink_to(KEEP_CAPACITY / 16);
    }
}

fn clear_string(s: &mut String) {
    s.clear();
    if s.capacity() > KEEP_CAPACITY {
        s.shrink_to(KEEP_CAPACITY / 16);
    }
}

/// The message of an `event: error`: the JSON error's message when the data is JSON, else the text itself.
pub(super) fn error_text(data: &[u8]) -> String {
    let data = data.trim_ascii();
    if data.is_empty() {
        return "server sent an error event".to_owned();
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => json_message(v.get("error").filter(|e| !e.is_null()).unwrap_or(&v)),
        Err(_) => clip(&String::from_utf8_lossy(data)),
    }
}

/// `"text"`, `{"message": "text", ..}`, or the JSON itself.
fn json_message(error: &serde_json::Value) -> String {
    match error {
        serde_json::Value::String(s) => clip(s),
        other => match other.get("message").and_then(serde_json::Value::as_str) {
            Some(message) => clip(message),
            None => clip(&other.to_string()),
        },
    }
}

/// At most `MAX_MESSAGE_CHARS` characters on one line: messages end up in one-line errors and reports.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.chars().nth(MAX_MESSAGE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The start of a bad payload, for the error message.
fn snippet(data: &[u8]) -> String {
    clip(&String::from_utf8_lossy(data.get(..4 * MAX_MESSAGE_CHARS).unwrap_or(data)))
}
