//! A copy of what came back, for `try` and `run --http-debug`: the response head and the first bytes of its
//! body, whatever route the body took (kept, streamed into a sink, excerpted or discarded). The transport fills
//! one only when the caller hands it one, so a run without debugging pays a branch per frame and nothing else.
//! Also how a failure's body excerpt reads, so every failure message quotes a body the same way.

use http::HeaderMap;

/// Body bytes a tap keeps: enough to read an error or the first SSE events, small enough to print.
pub const TAP_BODY_BYTES: usize = 2048;
/// Body bytes quoted in a failure message (the reports' error samples).
pub const MESSAGE_EXCERPT_BYTES: usize = 200;

#[derive(Debug, Default)]
pub struct Tap {
    /// The response headers as received.
    pub headers: HeaderMap,
    /// The first `TAP_BODY_BYTES` of the body (raw; for a stream, the first events).
    pub body: Vec<u8>,
    /// Whether a response head arrived at all.
    pub responded: bool,
}

impl Tap {
    /// A head given as a map: what a fake transport in the engine's tests hands over. The client itself goes
    /// through `head_raw`, so this one path is not compiled into the tool.
    #[cfg(test)]
    pub fn head(&mut self, headers: &HeaderMap) {
        self.responded = true;
        self.headers = headers.clone();
    }

    /// The head of the HTTP/1.1 client, parsed in place: copied into a map here, off the hot path.
    pub(super) fn head_raw(&mut self, headers: &[httparse::Header<'_>]) {
        self.responded = true;
        self.headers.clear();
        for h in headers {
            if let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(h.name.as_bytes()), http::HeaderValue::from_bytes(h.value))
            {
                self.headers.append(name, value);
            }
        }
    }

    pub fn data(&mut self, chunk: &[u8]) {
        let room = TAP_BODY_BYTES.saturating_sub(self.body.len());
        self.body.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }
}

/// `: <the first bytes of body>` on one line, for a failure message; empty for an empty body. Called on failures
/// only: a successful request never formats one.
pub fn excerpt(body: &[u8]) -> String {
    let body = body.trim_ascii();
    if body.is_empty() {
        return String::new();
    }
    let end = body.len().min(MESSAGE_EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&body[..end]);
    let more = if body.len() > end { "…" } else { "" };
    format!(": {}{more}", text.replace(['\n', '\r'], " "))
}
