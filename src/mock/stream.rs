//! The streamed (`"stream": true`) shape of a chat completion: server-sent events, one chunk per token,
//! at the model's pace, with the streams-only faults spliced in.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::chat::{Answer, Reply, Usage, later, reset, wait_until};
use super::faults::Fault;
use super::synth::Tokens;

const ROLE_TEXT: &str = r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#;
const ROLE_TOOL: &str = r#"{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}"#;
const CONTENT_OPEN: &str = r#"{"index":0,"delta":{"content":""#;
const REASONING_OPEN: &str = r#"{"index":0,"delta":{"reasoning_content":""#;
const TOKEN_CLOSE: &str = r#""},"finish_reason":null}"#;
const ARGUMENTS_OPEN: &str = r#"{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"#;
const ARGUMENTS_CLOSE: &str = r#"}}]},"finish_reason":null}"#;
const FINISH_OPEN: &str = r#"{"index":0,"delta":{},"finish_reason":""#;
const FINISH_CLOSE: &str = r#""}"#;
const CHUNK_END: &str = "]}\n\n";
/// Chunks stop joining a frame past this size, so a long zero-delay answer is sent in pieces rather than
/// built whole in memory.
const MAX_BATCH_BYTES: usize = 64 << 10;
const MALFORMED: &[u8] = b"data: {\"choices\": [\n\n";
const UPSTREAM_ERROR: &[u8] =
    b"data: {\"error\":{\"message\":\"upstream provider failed\",\"type\":\"server_error\"}}\n\n";

/// Where a stream is in its sequence of chunks.
#[derive(Clone, Copy)]
enum Step {
    Role,
    Tokens,
    Usage,
    Done,
    End,
}

/// A tool call still to be streamed: its opening chunk (id, type, name), then one chunk per argument piece.
struct ToolStream {
    opening: Option<String>,
    fragments: std::vec::IntoIter<String>,
}

struct StreamState {
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[`, shared by every chunk.
    prefix: String,
    reasoning: Tokens,
    text: Tokens,
    tool: Option<ToolStream>,
    finish_reason: &'static str,
    /// The usage, when the client asked for a usage chunk.
    usage: Option<Usage>,
    next_token_at: Instant,
    token_delay: Duration,
    /// Token chunks sent so far, and how many go out before a mid-stream fault.
    sent: u32,
    fault_at: u32,
    fault: Option<Fault>,
    step: Step,
}

pub(super) fn response(
    reply: Reply,
    include_usage: bool,
    first_token_at: Instant,
    token_delay: Duration,
    fault: Option<Fault>,
) -> Response {
    // Built with pushes, not `write!`: the formatting machinery was a tenth of a zero-delay answer's cost.
    let mut prefix = String::with_capacity(128 + reply.model.len());
    prefix.push_str(r#"data: {"id":""#);
    prefix.push_str(&reply.id);
    prefix.push_str(r#"","object":"chat.completion.chunk","created":"#);
    prefix.push_str(itoa::Buffer::new().format(reply.created));
    prefix.push_str(r#","model":"#);
    push_json_str(&mut prefix, &reply.model);
    prefix.push_str(r#","choices":["#);
    let total = u32::try_from(reply.usage.completion_tokens).unwrap_or(u32::MAX);
    let (text, tool, finish_reason) = match reply.answer {
        Answer::Text(tokens) => (tokens, None, "stop"),
        Answer::Tool(call) => {
            let opening = format!(
                r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"{}","type":"function","function":{{"name":{},"arguments":""}}}}]}},"finish_reason":null}}"#,
                call.id,
                serde_json::to_string(&call.name).unwrap_or_else(|_| "\"tool\"".into()),
            );
            let tool = ToolStream { opening: Some(opening), fragments: call.fragments.into_iter() };
            (Tokens::new(0, 0, 0), Some(tool), "tool_calls")
        }
    };
    let mut state = StreamState {
        prefix,
        reasoning: reply.reasoning,
        text,
        tool,
        finish_reason,
        usage: include_usage.then_some(reply.usage),
        next_token_at: first_token_at,
        token_delay,
        sent: 0,
        fault_at: total / 2,
        fault,
        step: Step::Role,
    };
    let body = match whole(&mut state) {
        Some(Ok(bytes)) => Body::new(OneFrame(Some(bytes))),
        Some(Err(part)) => Body::from_stream(futures_util::stream::once(async { Ok(part) }).chain(paced(state))),
        None => Body::from_stream(paced(state)),
    };
    // Built in place rather than from a `(status, headers, body)` tuple, whose conversion cost as much as
    // the two inserts again.
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The body as frames, each as soon as its first chunk is due, with the chunks due by then.
fn paced(state: StreamState) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold(state, |mut s| async move {
        if matches!(s.step, Step::End) {
            return None;
        }
        let mut out = Vec::with_capacity(s.batch_capacity());
        if let Err(e) = next_chunk(&mut s, &mut out).await? {
            return Some((Err(e), s));
        }
        // Chunks already due go out in the same frame: a fast server writes what it has at once. Faults keep
        // one frame per chunk: a reset must come after the chunks before it were flushed.
        let now = Instant::now();
        while s.fault.is_none() && out.len() < MAX_BATCH_BYTES && s.due(now) {
            if !matches!(next_chunk(&mut s, &mut out).await, Some(Ok(()))) {
                break;
            }
        }
        Some((Ok(Bytes::from(out)), s))
    })
}

/// With nothing to wait for (no delay left, no fault) and a body that fits one frame, the whole body, built
/// here: it is one write either way, and building it in place spares the stream machinery a fifth of a
/// zero-delay answer's cost. `None` when the answer is to be paced; `Err` with the chunks built, should a
/// chunk ever wait after all (the rest then goes as paced).
fn whole(s: &mut StreamState) -> Option<Result<Bytes, Bytes>> {
    let capacity = s.batch_capacity();
    let now = Instant::now();
    if !(capacity < MAX_BATCH_BYTES && s.fault.is_none() && s.token_delay.is_zero() && s.next_token_at <= now) {
        return None;
    }
    let mut out = Vec::with_capacity(capacity);
    loop {
        // Every deadline has passed, so no chunk can wait.
        if s.waits_for().is_some_and(|due| due > now) {
            return Some(Err(Bytes::from(out)));
        }
        match write_chunk(s, &mut out) {
            Wrote::Chunk => {}
            Wrote::End => return Some(Ok(Bytes::from(out))),
            Wrote::Reset => return Some(Err(Bytes::from(out))),
        }
    }
}

/// A body of one data frame and no stated length, so that it goes out chunked, as an event stream does.
struct OneFrame(Option<Bytes>);

impl http_body::Body for OneFrame {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().0.take().map(|data| Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

impl StreamState {
    /// Whether the next chunk may go out at `now` without waiting.
    fn due(&self, now: Instant) -> bool {
        match self.step {
            Step::Role | Step::Usage | Step::Done => true,
            Step::Tokens => self.next_token_at <= now,
            Step::End => false,
        }
    }

    /// Room for the frame: the whole body when the tokens come without delay, else one chunk.
    fn batch_capacity(&self) -> usize {
        let chunk = self.prefix.len() + 96;
        let chunks = if self.token_delay.is_zero() { self.reasoning.len() + self.text.len() + 4 } else { 1 };
        chunk.saturating_mul(chunks).min(MAX_BATCH_BYTES)
    }
}

/// Appends the next chunk to `out` once it is due; None when the stream is over, Err when it is to be cut (a
/// reset).
async fn next_chunk(s: &mut StreamState, out: &mut Vec<u8>) -> Option<std::io::Result<()>> {
    if let Some(due) = s.waits_for() {
        wait_until(due).await;
    }
    match write_chunk(s, out) {
        Wrote::Chunk => Some(Ok(())),
        Wrote::End => None,
        // An error from the body stream makes hyper drop the connection mid-body.
        Wrote::Reset => Some(reset().await.map(|_| ())),
    }
}

/// What [`write_chunk`] came to.
enum Wrote {
    Chunk,
    End,
    Reset,
}

/// The next chunk of the token phase, in the order they go out: a fault due at this point, else the reasoning,
/// a tool call's opening (after the reasoning), the text, the call's argument pieces, and the finish.
#[derive(Clone, Copy)]
enum TokenChunk {
    Fault,
    Reasoning,
    Opening,
    Text,
    Argument,
    Finish,
}

impl StreamState {
    /// Which chunk the token phase writes next. The one place that order is stated: `token_step` writes what
    /// this picks and `waits_for` waits for it.
    fn token_chunk(&self) -> TokenChunk {
        if self.sent == self.fault_at
            && matches!(self.fault, Some(Fault::Malformed | Fault::MidstreamError | Fault::Reset))
        {
            return TokenChunk::Fault;
        }
        let tool = self.tool.as_ref();
        if self.reasoning.len() > 0 {
            TokenChunk::Reasoning
        } else if tool.is_some_and(|t| t.opening.is_some()) {
            TokenChunk::Opening
        } else if self.text.len() > 0 {
            TokenChunk::Text
        } else if tool.is_some_and(|t| t.fragments.len() > 0) {
            TokenChunk::Argument
        } else {
            TokenChunk::Finish
        }
    }

    /// The moment the next chunk waits for, if any: a token's (a tool call's opening goes out with its first
    /// argument piece), and the finish's when no token came before it (a zero-token completion still takes a
    /// first-token delay). A fault due now waits for nothing.
    fn waits_for(&self) -> Option<Instant> {
        if !matches!(self.step, Step::Tokens) {
            return None;
        }
        match self.token_chunk() {
            TokenChunk::Fault => None,
            TokenChunk::Finish if self.sent > 0 => None,
            _ => Some(self.next_token_at),
        }
    }
}

/// Appends the next chunk to `out`, due or not: by hand rather than as a future, so that a body built whole
/// (zero delays) pays for no state machine per chunk.
fn write_chunk(s: &mut StreamState, out: &mut Vec<u8>) -> Wrote {
    match s.step {
        Step::Role => {
            s.step = Step::Tokens;
            choice_chunk(out, &s.prefix, &[if s.tool.is_some() { ROLE_TOOL } else { ROLE_TEXT }]);
        }
        Step::Tokens => return token_step(s, out),
        Step::Usage => {
            s.step = Step::Done;
            out.extend_from_slice(s.prefix.as_bytes());
            out.extend_from_slice(b"],\"usage\":");
            match s.usage {
                Some(usage) => usage.write_json(out),
                None => out.extend_from_slice(b"{}"),
            }
            out.extend_from_slice(b"}\n\n");
        }
        Step::Done => {
            s.step = Step::End;
            if s.fault == Some(Fault::NoDone) {
                return Wrote::End;
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
        Step::End => return Wrote::End,
    }
    Wrote::Chunk
}

/// The next reasoning, content or tool-call chunk, a fault due at this point, or the finish chunk.
fn token_step(s: &mut StreamState, out: &mut Vec<u8>) -> Wrote {
    let piece_json;
    let parts = match s.token_chunk() {
        TokenChunk::Fault => return fault_step(s, out),
        TokenChunk::Opening => {
            // The call's opening chunk goes out with its first argument piece; it is no token of its own.
            if let Some(opening) = s.tool.as_mut().and_then(|t| t.opening.take()) {
                choice_chunk(out, &s.prefix, &[&opening]);
            }
            return Wrote::Chunk;
        }
        TokenChunk::Reasoning => s.reasoning.next().map(|token| [REASONING_OPEN, token, TOKEN_CLOSE]),
        TokenChunk::Text => s.text.next().map(|token| [CONTENT_OPEN, token, TOKEN_CLOSE]),
        TokenChunk::Argument => match s.tool.as_mut().and_then(|t| t.fragments.next()) {
            Some(piece) => {
                piece_json = serde_json::to_string(&piece).unwrap_or_default();
                Some([ARGUMENTS_OPEN, piece_json.as_str(), ARGUMENTS_CLOSE])
            }
            None => None,
        },
        TokenChunk::Finish => None,
    };
    match parts {
        Some(parts) => {
            s.next_token_at = later(s.next_token_at, s.token_delay);
            s.sent = s.sent.saturating_add(1);
            choice_chunk(out, &s.prefix, &parts);
        }
        None => {
            s.step = if s.usage.is_some() { Step::Usage } else { Step::Done };
            choice_chunk(out, &s.prefix, &[FINISH_OPEN, s.finish_reason, FINISH_CLOSE]);
        }
    }
    Wrote::Chunk
}

/// The fault due at this point of the stream: a malformed chunk (once), an error event that ends the stream,
/// or a reset.
fn fault_step(s: &mut StreamState, out: &mut Vec<u8>) -> Wrote {
    match s.fault {
        Some(Fault::Malformed) => {
            s.fault = None;
            out.extend_from_slice(MALFORMED);
        }
        Some(Fault::MidstreamError) => {
            s.step = Step::End;
            out.extend_from_slice(UPSTREAM_ERROR);
        }
        Some(Fault::Reset) => {
            s.step = Step::End;
            return Wrote::Reset;
        }
        Some(Fault::Stall | Fault::NoDone) | None => {}
    }
    Wrote::Chunk
}

/// `s` as a JSON string, as `serde_json` writes it: quoted, and escaped only where it must be (which a model
/// name never is, so the common case is a copy).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"mock-model\"".into()));
    }
}

fn choice_chunk(out: &mut Vec<u8>, prefix: &str, parts: &[&str]) {
    out.extend_from_slice(prefix.as_bytes());
    parts.iter().for_each(|p| out.extend_from_slice(p.as_bytes()));
    out.extend_from_slice(CHUNK_END.as_bytes());
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn reply(tokens: u32) -> Reply {
        Reply {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
            usage: Usage {
                prompt_tokens: 1,
                completion_tokens: u64::from(tokens),
                total_tokens: 1 + u64::from(tokens),
                completion_tokens_details: None,
            },
            reasoning: Tokens::new(1, 1, 0),
            answer: Answer::Text(Tokens::new(1, 1, tokens)),
        }
    }

    /// The data frames of a streamed answer, in order.
    async fn frames(token_delay: Duration, fault: Option<Fault>) -> Vec<Bytes> {
        let response = response(reply(16), true, Instant::now(), token_delay, fault);
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            out.extend(frame.into_data().ok());
        }
        out
    }

    #[test]
    fn the_usage_chunk_reads_as_serde_json_writes_it() {
        use crate::mock::chat::Details;
        for details in [None, Some(Details { reasoning_tokens: 0 }), Some(Details { reasoning_tokens: u32::MAX })] {
            for (p, c) in [(0, 0), (1, 16), (u64::MAX, u64::MAX)] {
                let usage = Usage {
                    prompt_tokens: p,
                    completion_tokens: c,
                    total_tokens: p.saturating_add(c),
                    completion_tokens_details: details,
                };
                let mut out = Vec::new();
                usage.write_json(&mut out);
                assert_eq!(out, serde_json::to_vec(&usage).unwrap());
            }
        }
    }

    #[test]
    fn strings_are_quoted_as_serde_json_quotes_them() {
        for s in ["m", "gpt-4o-mini", "", "a\"b", "back\\slash", "tab\there", "nul\u{0}", "é ü 模型", "\u{7f}"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_delay_stream_is_one_frame_and_a_paced_one_a_frame_per_chunk() {
        let whole = frames(Duration::ZERO, None).await;
        let paced = frames(Duration::from_millis(5), None).await;
        assert_eq!(whole.len(), 1);
        // Role and first token together (both due at once), 15 more tokens one by one, then finish, usage and
        // [DONE] together (none of them waits for a token slot).
        assert_eq!(paced.len(), 17);
        assert_eq!(whole.concat(), paced.concat(), "the bytes sent do not depend on the framing");
        let text = String::from_utf8(whole.concat()).unwrap();
        assert_eq!(text.matches("\n\n").count(), 20);
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_delay_stream_states_no_length_and_a_long_one_goes_in_pieces() {
        use http_body::Body as _;
        let short = response(reply(16), true, Instant::now(), Duration::ZERO, None);
        // No exact length: hyper sends it chunked, as an event stream is sent.
        assert_eq!(short.body().size_hint().exact(), None);
        let long = response(reply(2_000), true, Instant::now(), Duration::ZERO, None);
        let mut body = long.into_body();
        let mut sizes = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            sizes.extend(frame.into_data().ok().map(|d| d.len()));
        }
        assert!(sizes.len() > 1 && sizes.iter().all(|&n| n <= MAX_BATCH_BYTES + 512), "{sizes:?}");
        assert!(sizes.iter().sum::<usize>() > 2_000 * 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_with_a_fault_keeps_a_frame_per_chunk() {
        let frames = frames(Duration::ZERO, Some(Fault::NoDone)).await;
        assert_eq!(frames.len(), 19);
        assert!(!frames.concat().ends_with(b"data: [DONE]\n\n"));
    }
}
