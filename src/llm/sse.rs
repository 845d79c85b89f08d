//! Incremental parser for OpenAI chat-completions server-sent-event streams, fed body frames as they arrive,
//! measuring time to first token, time to first visible output, inter-token gaps and token counts, and
//! optionally rebuilding the complete message so that checks written for non-streaming answers still apply.
//!
//! It runs on the load generator's hot path: one parser per virtual user is reused across requests via
//! `reset`, lines are scanned in place and only partial lines are copied, and chunks are parsed into borrowed
//! structs (see `wire`), so after warm-up a stream costs no allocation beyond serde_json unescaping strings.
//! The common chunk shape is read by `fast` in one pass; serde_json reads whatever it leaves.
//! Every size is capped so that a hostile server cannot exhaust memory.

mod accumulate;
mod fast;
mod wire;

use std::fmt;
use std::time::{Duration, Instant};

use accumulate::{Accumulator, clear_bytes, error_text, too_large};

use crate::client::{BodySink, Head, SinkError};
use crate::metrics::{ErrorKind, LlmSample};

/// Largest event accepted by a parser not told otherwise (`begin` sets the step's `max_body`): nothing
/// legitimate comes close, so a bigger one is a broken or hostile server.
const MAX_EVENT_BYTES: usize = 16 << 20;
/// A line holds at most one event's data plus the field name.
const LINE_OVERHEAD: usize = 64;
/// Assembled content, reasoning and tool-call text together: bounds a stream that never ends.
const MAX_ASSEMBLED_BYTES: usize = 64 << 20;
/// Distinct tool calls per response: bounds memory and the linear index lookup.
const MAX_TOOL_CALLS: usize = 4096;
/// Buffers grown past this by one large response are shrunk on reset, so it does not pin memory per user.
const KEEP_CAPACITY: usize = 1 << 20;
/// Error messages become report labels: keep them readable.
const MAX_MESSAGE_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// A `data:` payload that is neither JSON nor `[DONE]`, or JSON that is not a chat chunk.
    Malformed(String),
    /// The server sent an error inside the stream (`event: error`, or a JSON payload with an `error` object).
    ErrorEvent(String),
    /// The body ended without `data: [DONE]` (a cut or truncated stream).
    MissingDone,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Malformed(m) => write!(f, "malformed SSE chunk: {m}"),
            StreamError::ErrorEvent(m) => write!(f, "error event in stream: {m}"),
            StreamError::MissingDone => f.write_str("stream ended without data: [DONE]"),
        }
    }
}

impl std::error::Error for StreamError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Usage,
    Chunks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

impl FinishReason {
    /// The wire value; the legacy `function_call` counts as a tool call.
    pub fn parse(s: &str) -> Self {
        match s {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    /// First chunk carrying any generated token: non-empty delta.content, delta.reasoning_content or
    /// delta.reasoning, or any delta.tool_calls entry. A role-only first chunk does not count.
    pub ttft: Option<Duration>,
    /// First chunk with non-empty delta.content (the visible answer; reasoning and tool calls excluded).
    pub ttfo: Option<Duration>,
    /// The last chunk carrying a generated token (same rule as `ttft`): where TPOT's decode interval ends and
    /// `stream_tail` begins. A finish-reason-only chunk, the `usage` chunk and `[DONE]` come after it.
    pub last_token_at: Option<Duration>,
    /// Chunks that carried at least one generated token (content, reasoning or tool-call delta).
    pub token_chunks: u32,
    /// From the last chunk with a `usage` object carrying `completion_tokens` (stream_options.include_usage).
    pub usage: Option<Usage>,
    /// `usage.cost` of the last chunk that had one (OpenRouter: USD).
    pub usage_cost: Option<f64>,
    /// The `model` field of the first chunk that had one (the served model), kept in a reused String.
    pub model: String,
    /// Of choice 0, the last one sent.
    pub finish_reason: Option<FinishReason>,
    /// Distinct tool-call indexes seen in choice 0.
    pub tool_calls: u32,
    /// `[DONE]` seen.
    pub done: bool,
}

impl StreamSummary {
    /// usage.completion_tokens when usage was sent, else token_chunks; and where the number came from.
    pub fn output_tokens(&self) -> (u64, TokenSource) {
        match self.usage {
            Some(u) => (u.completion_tokens, TokenSource::Usage),
            None => (u64::from(self.token_chunks), TokenSource::Chunks),
        }
    }
}

#[derive(Debug)]
pub struct SseParser {
    /// Bytes of a line split across frames; complete lines in a frame are parsed in place.
    line: Vec<u8>,
    /// Data of the event being read, `data:` lines joined by `\n`.
    data: Vec<u8>,
    has_data: bool,
    error_event: bool,
    /// The last frame ended in `\r`: a `\n` opening the next frame belongs to the same line ending.
    pending_cr: bool,
    /// No line processed yet, so a UTF-8 byte-order mark may still be stripped.
    at_start: bool,
    /// Sticky: once set, input is ignored and every call reports it.
    failed: Option<StreamError>,
    /// Largest event (and, plus the field name, line) accepted.
    max_event: usize,
    acc: Accumulator,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            error_event: false,
            pending_cr: false,
            at_start: true,
            failed: None,
            max_event: MAX_EVENT_BYTES,
            acc: Accumulator::new(MAX_ASSEMBLED_BYTES),
        }
    }

    /// Caps one event, one line and the assembled message at `max` bytes (the step's `max_body`), so that
    /// whatever the server sends, a stream holds at most that much in memory. Kept across `reset`.
    pub fn set_max_bytes(&mut self, max: usize) {
        self.max_event = max;
        self.acc.max_assembled = max;
    }

    /// Ready for a new response, keeping allocations. `assemble`: also rebuild the complete message (content,
    /// reasoning, tool calls) so JSON-path checks and captures can run on a streamed answer.
    pub fn reset(&mut self, assemble: bool) {
        clear_bytes(&mut self.line);
        clear_bytes(&mut self.data);
        self.has_data = false;
        self.error_event = false;
        self.pending_cr = false;
        self.at_start = true;
        self.failed = None;
        self.acc.reset(assemble);
    }

    /// One body frame, `at` = time since the request was sent (monotonic). Frames may split lines, UTF-8
    /// sequences and events anywhere. Returns the first error; after an error the parser ignores further
    /// input and every later `feed` or `finish` returns that same error again.
    pub fn feed(&mut self, data: &[u8], at: Duration) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.scan(data, at);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// The body ended. Err(MissingDone) if no [DONE] was seen (also when a final event is incomplete).
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.acc.summary.done {
            return Ok(());
        }
        // A final event without its blank line is not dispatched (WHATWG), so even a trailing
        // `data: [DONE]` cut before its blank line lands here.
        self.failed = Some(StreamError::MissingDone);
        Err(StreamError::MissingDone)
    }

    pub fn summary(&self) -> &StreamSummary {
        &self.acc.summary
    }

    /// Gaps between consecutive token-carrying chunks, in microseconds, for this response (reused buffer).
    pub fn gaps_us(&self) -> &[u64] {
        &self.acc.gaps_us
    }

    /// The stream's part of an LLM sample (timings, tokens and where the count came from), for a response that
    /// took `latency` to its end; the caller adds the served model, fallback and cost. One mapping, so the engine
    /// and the tests of the metric definitions measure the same thing.
    pub fn llm_sample(&self, latency: Duration) -> LlmSample<'_> {
        let s = &self.acc.summary;
        let (output_tokens, source) = s.output_tokens();
        let usage = s.usage.unwrap_or_default();
        LlmSample {
            latency,
            ttft: s.ttft,
            ttfo: s.ttfo,
            last_token: s.last_token_at,
            gaps_us: &self.acc.gaps_us,
            token_chunks: u64::from(s.token_chunks),
            output_tokens,
            input_tokens: usage.prompt_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            from_usage: source == TokenSource::Usage,
            ..LlmSample::default()
        }
    }

    /// With `assemble`: a JSON document shaped like a non-streaming chat completion
    /// {"id","object":"chat.completion","model","choices":[{"index":0,"message":{"role":"assistant","content":..,
    /// "reasoning_content":..(only if any),"tool_calls":[{"id","type":"function","function":{"name","arguments"}}]
    /// (only if any)},"finish_reason":..}],"usage":..(if sent)} serialized into `out` (cleared first).
    /// Without `assemble` the message is empty. `content` is null only when there are tool calls and no text.
    pub fn assembled_json(&self, out: &mut Vec<u8>) {
        self.acc.assembled_json(out);
    }

    /// Splits the frame into lines (`\n`, `\r\n` or `\r`), parsing complete ones in place.
    fn scan(&mut self, mut data: &[u8], at: Duration) -> Result<(), StreamError> {
        if self.pending_cr && !data.is_empty() {
            self.pending_cr = false;
            data = data.strip_prefix(b"\n").unwrap_or(data);
        }
        // A byte-order mark can only open the body: once the body's first byte is seen not to start one, the
        // fast path below need not look for it. Only the body's first byte: a mark cut across two frames has
        // its first part buffered, and the next frame's first byte is then from within it.
        if self.at_start && self.line.is_empty() && data.first().is_some_and(|&b| b != 0xEF) {
            self.at_start = false;
        }
        while !data.is_empty() && !self.acc.summary.done {
            if self.line.is_empty() && !self.has_data && !self.error_event && !self.at_start {
                if let Some(rest) = self.acc.repeat_event(data, at, self.max_event)? {
                    data = rest;
                    continue;
                }
                if let Some((value, rest)) = whole_data_event(data) {
                    if value.len() > self.max_event {
                        return Err(too_large("SSE event", self.max_event));
                    }
                    data = rest;
                    self.acc.payload(value, at)?;
                    continue;
                }
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', data) else {
                self.buffer_partial(data)?;
                return Ok(());
            };
            let (line, rest) = data.split_at(end);
            let cr = rest.first() == Some(&b'\r');
            data = rest.get(1..).unwrap_or_default();
            if self.line.is_empty() {
                self.line(line, at)?;
            } else {
                self.buffer_partial(line)?;
                // Taken out so the line can be read while the parser is mutated; put back to keep its capacity.
                let mut buffered = std::mem::take(&mut self.line);
                let result = self.line(&buffered, at);
                buffered.clear();
                self.line = buffered;
                result?;
            }
            if cr {
                match data.first() {
                    Some(b'\n') => data = data.get(1..).unwrap_or_default(),
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
        }
        Ok(())
    }

    fn buffer_partial(&mut self, part: &[u8]) -> Result<(), StreamError> {
        if self.line.len().saturating_add(part.len()) > self.max_event.saturating_add(LINE_OVERHEAD) {
            return Err(too_large("SSE line", self.max_event));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// One complete line, without its ending.
    fn line(&mut self, mut line: &[u8], at: Duration) -> Result<(), StreamError> {
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch(at);
        }
        if line.first() == Some(&b':') {
            return Ok(()); // comment, e.g. a keep-alive
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let (field, rest) = line.split_at(colon);
                (field, rest.get(1..).unwrap_or_default())
            }
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                let needed = self.data.len().saturating_add(value.len()).saturating_add(usize::from(self.has_data));
                if needed > self.max_event {
                    return Err(too_large("SSE event", self.max_event));
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.error_event = value == b"error",
            _ => {} // id, retry and unknown fields do not matter here
        }
        Ok(())
    }

    /// A blank line: hand the event's data on and start a new event.
    fn dispatch(&mut self, at: Duration) -> Result<(), StreamError> {
        let error_event = std::mem::take(&mut self.error_event);
        let has_data = std::mem::take(&mut self.has_data);
        // An error event counts even without data: the server said the stream failed.
        let result = if error_event {
            Err(StreamError::ErrorEvent(error_text(&self.data)))
        } else if has_data {
            self.acc.payload(&self.data, at)
        } else {
            Ok(())
        };
        self.data.clear();
        result
    }
}

/// An event that is one `data:` line followed by its blank line, both whole in `frame` (what servers send
/// nearly always): its value and what follows, so it is parsed in place rather than copied into the event
/// buffer. Anything else (a split line, several fields, other line endings) takes the general path.
fn whole_data_event(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let value = data_value(frame)?;
    let end = memchr::memchr2(b'\n', b'\r', value)?;
    Some((value.get(..end)?, after_blank_line(value.get(end..)?)?))
}

/// What follows `data:` (and the one space after it) at the start of `frame`.
fn data_value(frame: &[u8]) -> Option<&[u8]> {
    let value = frame.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// What follows a line's end and the blank line after it, when `ending` opens with both (`\n\n` or `\r\n\r\n`).
fn after_blank_line(ending: &[u8]) -> Option<&[u8]> {
    match ending {
        [b'\n', b'\n', rest @ ..] | [b'\r', b'\n', b'\r', b'\n', rest @ ..] => Some(rest),
        _ => None,
    }
}

/// The parser is fed by the transport as frames arrive, so the stream timings are taken at arrival.
impl BodySink for SseParser {
    fn failure_kind(&self) -> ErrorKind {
        ErrorKind::Stream
    }

    fn begin(&mut self, head: &Head<'_>, max_body: usize) -> Result<(), SinkError> {
        let ct = head.get("content-type").and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("none");
        if !ct.starts_with("text/event-stream") {
            let message = format!("expected a text/event-stream response, got content-type {ct}");
            return Err(SinkError { kind: ErrorKind::Stream, message });
        }
        self.set_max_bytes(max_body);
        Ok(())
    }

    fn data(&mut self, chunk: &[u8], sent: Instant) -> Result<(), SinkError> {
        self.feed(chunk, sent.elapsed()).map_err(stream_failure)
    }

    fn end(&mut self) -> Result<(), SinkError> {
        self.finish().map_err(stream_failure)
    }
}

fn stream_failure(e: StreamError) -> SinkError {
    SinkError { kind: ErrorKind::Stream, message: e.to_string() }
}

#[cfg(test)]
mod tests;
