//! The mock's own HTTP/1.1 serving: a connection's requests read and parsed with httparse (hyper's own
//! parser), `POST /v1/chat/completions` (the request a load test sends at every step) answered by
//! `chat::completions` and every other by the axum router, and each answer written as hyper writes it (the same
//! status line, headers in the same order, the same framing and `date`). What this path does not serve exactly
//! (a chunked or over-limit body, `expect`, `upgrade`, HEAD, CONNECT, HTTP/1.0, a head too large or that fails
//! to parse) is handed to hyper with the bytes already read, and hyper serves the connection from there on.
//!
//! Why: on a zero-delay streamed answer hyper's serving was more than half of the mock's instructions (a
//! request `HeaderMap` and `Uri` built and dropped, the body's channel, the dispatcher's state machine, a
//! response `HeaderMap` encoded), and in the benchmarks it is the mock, sharing a host with the generator it
//! serves, that sets the pace of a streamed exchange. Served here, a 1-token streamed request costs the mock
//! 31 % fewer instructions, a 16-token one 24 % (callgrind). The router's requests are built as hyper builds
//! them; they are served here so that a connection that also calls a tool or logs in stays on this path.

use std::future::Future;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::pin::pin;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version, header};
use axum::response::Response;
use bytes::Buf;
use futures_util::FutureExt as _;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower_service::Service as _;

use super::{BODY_LIMIT, Shared, chat};

const CHAT: &str = "/v1/chat/completions";
/// More and the request goes to hyper, whose limit is 100.
const MAX_HEADERS: usize = 32;
/// A head not complete within this many bytes goes to hyper, which reads heads up to ~400 KB.
const MAX_HEAD: usize = 16 << 10;
/// The read buffer a connection starts with, and keeps between requests.
const INITIAL: usize = 4 << 10;
/// A response's bytes are written once this many are waiting, so a long body is not held whole.
const FLUSH_AT: usize = 64 << 10;

/// How a connection's own serving ended.
pub(super) enum Ended {
    /// It is over: the peer closed or asked to, the server is shutting down, or a write failed or a body was
    /// cut (a reset fault), which closes the connection as hyper closes it.
    Closed,
    /// The next request is not one this path serves: hyper takes the connection, starting with these bytes.
    HandOff(Vec<u8>),
}

/// What the head of a request this path serves says.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Head {
    /// `POST /v1/chat/completions`, answered by `chat::completions`; anything else goes to the router.
    pub chat: bool,
    /// Bytes of the head, its blank line included.
    pub len: usize,
    /// The body's length, from `content-length`.
    pub body: usize,
    /// The request asked to close the connection after its response.
    pub close: bool,
    /// Where the first `authorization` header's value is, in the buffer.
    pub authorization: Option<Range<usize>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    Served(Head),
    /// Not a whole head yet.
    Partial,
    /// For hyper.
    Other,
}

/// Serves `tcp` until it is over or its next request is for hyper. A shutdown (`closing`) closes an idle
/// connection at once and a busy one after its response, as hyper's graceful shutdown does.
pub(super) async fn serve(
    tcp: &mut TcpStream,
    shared: &Shared,
    router: &Router,
    closing: &mut watch::Receiver<()>,
) -> Ended {
    let mut buf: Vec<u8> = Vec::with_capacity(INITIAL);
    let mut out: Vec<u8> = Vec::new();
    let mut early: Vec<u8> = Vec::new();
    let mut date = Date::default();
    loop {
        let head = loop {
            match parse(&buf) {
                Parsed::Served(head) => break head,
                Parsed::Partial if buf.len() < MAX_HEAD => {}
                Parsed::Partial | Parsed::Other => return Ended::HandOff(buf),
            }
            if buf.capacity() - buf.len() < INITIAL / 2 {
                buf.reserve(INITIAL);
            }
            let read = if buf.is_empty() {
                tokio::select! {
                    read = tcp.read_buf(&mut buf) => read,
                    _ = closing.changed() => return Ended::Closed,
                }
            } else {
                tcp.read_buf(&mut buf).await
            };
            if !matches!(read, Ok(n) if n > 0) {
                return Ended::Closed;
            }
        };
        let end = head.len + head.body;
        buf.reserve(end.saturating_sub(buf.len()));
        while buf.len() < end {
            if !matches!(tcp.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return Ended::Closed;
            }
        }
        let body = &buf[head.len..end];
        let response = if head.chat {
            let authorization = head.authorization.clone().map(|range| &buf[range]);
            unless_gone(tcp, chat::completions(shared, authorization, Ok(body)), &mut early).await
        } else {
            // Built as hyper builds it; a head the `http` types refuse is hyper's to answer.
            let Some(request) = request(&buf[..head.len], body) else { return Ended::HandOff(buf) };
            unless_gone(tcp, router.clone().call(request).map(|r| r.unwrap_or_else(|e| match e {})), &mut early).await
        };
        let Some(response) = response else { return Ended::Closed };
        buf.drain(..end);
        buf.append(&mut early);
        let kept = write(tcp, response, head.close, &mut date, &mut out).await;
        if !kept || head.close || !matches!(closing.has_changed(), Ok(false)) {
            return Ended::Closed;
        }
        // A large body's buffer is not kept for the small requests that follow.
        if buf.capacity() > MAX_HEAD && buf.len() < INITIAL {
            buf.shrink_to(INITIAL);
        }
        if out.capacity() > FLUSH_AT * 2 {
            out = Vec::new();
        }
    }
}

/// The handler's answer, or `None` if the peer closed (or the connection failed) first: the handler is then
/// dropped, as hyper drops it, so that a request its client gave up on holds no `max_concurrency` slot and
/// sleeps out no stall. Bytes the peer sends meanwhile (a pipelined request) are kept in `early`.
async fn unless_gone(
    tcp: &mut TcpStream,
    handler: impl Future<Output = Response>,
    early: &mut Vec<u8>,
) -> Option<Response> {
    let mut handler = pin!(handler);
    loop {
        tokio::select! {
            // A zero-delay answer is ready on the first poll, and the socket is not asked about.
            biased;
            response = &mut handler => return Some(response),
            read = tcp.read_buf(early), if early.len() < MAX_HEAD => {
                if !matches!(read, Ok(n) if n > 0) {
                    return None;
                }
            }
        }
    }
}

/// The request for the router, from a head `parse` took and its body.
fn request(head: &[u8], body: &[u8]) -> Option<Request<Body>> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    parsed.parse_with_uninit_headers(head, &mut headers).ok()?;
    let mut request = Request::builder()
        .method(Method::from_bytes(parsed.method?.as_bytes()).ok()?)
        .uri(parsed.path?)
        .version(Version::HTTP_11);
    let map = request.headers_mut()?;
    for h in parsed.headers.iter() {
        map.append(HeaderName::from_bytes(h.name.as_bytes()).ok()?, HeaderValue::from_bytes(h.value).ok()?);
    }
    request.body(Body::from(Bytes::copy_from_slice(body))).ok()
}

/// Reads the head at the start of `buf`: a request this path serves, or not yet whole, or one for hyper.
pub(super) fn parse(buf: &[u8]) -> Parsed {
    // Uninitialised: zeroing 32 headers cost more than parsing a load test's five.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path)) = (request.method, request.path) else { return Parsed::Other };
    // HEAD (a body withheld) and CONNECT are hyper's to answer, as is a path not in origin form.
    if request.version != Some(1) || matches!(method, "HEAD" | "CONNECT") || !path.starts_with('/') {
        return Parsed::Other;
    }
    // As `front` routes it: by the path without its query.
    let chat = method == "POST" && path.split_once('?').map_or(path, |(path, _)| path) == CHAT;
    let mut body = None;
    let mut close = false;
    let mut authorization = None;
    for h in request.headers.iter() {
        let name = h.name.as_bytes();
        // By length first: most names are none of these and are passed over on one compare.
        let is = |wanted: &str| name.len() == wanted.len() && name.eq_ignore_ascii_case(wanted.as_bytes());
        if is("content-length") {
            match (body, content_length(h.value)) {
                (None, Some(n)) => body = Some(n),
                // A second one, or one that is not a plain number: hyper's rules decide.
                _ => return Parsed::Other,
            }
        } else if is("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return Parsed::Other;
            }
        } else if is("authorization") {
            if authorization.is_none() {
                // Invariant: httparse's header values are subslices of `buf`.
                let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
                authorization = Some(start..start + h.value.len());
            }
        } else if is("transfer-encoding") || is("expect") || is("upgrade") {
            return Parsed::Other;
        }
    }
    match body.unwrap_or(0) {
        // No length is an empty body, as hyper reads it; one over the limit is hyper's to answer (413).
        body if body <= BODY_LIMIT => Parsed::Served(Head { chat, len, body, close, authorization }),
        _ => Parsed::Other,
    }
}

/// Digits only, as hyper takes them, and no more than fit.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

/// How the body goes out.
enum Framing {
    /// `content-length`, given by the handler or known from the body: exactly these bytes.
    Length(u64),
    Chunked,
    /// A status that has no body.
    None,
}

/// Writes `response` as hyper would to a keep-alive HTTP/1.1 request (one asking to close when `close`).
/// False when the connection must close: a write failed, or the body failed or fell short of its length.
async fn write(tcp: &mut TcpStream, response: Response, close: bool, date: &mut Date, out: &mut Vec<u8>) -> bool {
    let (mut parts, mut body) = response.into_parts();
    // hyper cannot send a 1xx as a response: it answers a bare 500 (no headers, no body) and closes.
    let bare = parts.status.is_informational();
    if bare {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        parts.headers.clear();
        body = Body::empty();
    }
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close && !bare {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::None
    } else if let Some(n) = declared {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date.now());
    out.extend_from_slice(b"\r\n\r\n");
    let whole = match framing {
        Framing::None => Some(0),
        Framing::Length(_) | Framing::Chunked => body_into(tcp, &mut body, &framing, out).await,
    };
    let sent = tcp.write_all(out).await.is_ok();
    out.clear();
    let complete = match (framing, whole) {
        (Framing::Length(n), Some(written)) => written == n,
        (_, whole) => whole.is_some(),
    };
    sent && complete && !close && !bare
}

/// Appends the body's frames to `out` as they come, writing what is there whenever the next frame is not yet
/// ready (a paced stream) or `out` is full. The bytes of data, or `None` if the body failed or a write did.
async fn body_into(tcp: &mut TcpStream, body: &mut Body, framing: &Framing, out: &mut Vec<u8>) -> Option<u64> {
    let mut written = 0u64;
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                tcp.write_all(out).await.ok()?;
                out.clear();
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => {
                // What came before the failure goes out, then the connection closes.
                let _ = tcp.write_all(out).await;
                out.clear();
                return None;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers: the mock sends none.
                Err(_) => continue,
            },
        };
        if written == 0 && body.is_end_stream() {
            // A body of one frame ready at once (every zero-delay answer) goes out with the head in one
            // vectored write, not copied behind it.
            return last_frame(tcp, framing, out, &data).await;
        }
        match framing {
            Framing::Chunked if !data.is_empty() => {
                chunk_size(out, data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Length(n) => {
                // Never more than announced: the rest would be read as the next response.
                let room = usize::try_from(n.saturating_sub(written)).unwrap_or(usize::MAX);
                out.extend_from_slice(&data[..data.len().min(room)]);
            }
            Framing::Chunked | Framing::None => {}
        }
        written += data.len() as u64;
        if out.len() >= FLUSH_AT {
            tcp.write_all(out).await.ok()?;
            out.clear();
        }
    }
    if matches!(framing, Framing::Chunked) {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    Some(written)
}

/// Writes what `out` holds, then `data` as the whole body, and empties `out`. The bytes of data, or `None` if
/// the write failed.
async fn last_frame(tcp: &mut TcpStream, framing: &Framing, out: &mut Vec<u8>, data: &[u8]) -> Option<u64> {
    let sent = match framing {
        Framing::Chunked if !data.is_empty() => {
            chunk_size(out, data.len());
            tcp.write_all_buf(&mut Buf::chain(Buf::chain(out.as_slice(), data), b"\r\n0\r\n\r\n".as_slice())).await
        }
        Framing::Chunked => tcp.write_all_buf(&mut Buf::chain(out.as_slice(), b"0\r\n\r\n".as_slice())).await,
        Framing::Length(n) => {
            let room = usize::try_from(*n).unwrap_or(usize::MAX);
            tcp.write_all_buf(&mut Buf::chain(out.as_slice(), &data[..data.len().min(room)])).await
        }
        Framing::None => Ok(()),
    };
    out.clear();
    sent.ok().map(|()| data.len() as u64)
}

/// A chunk's size line, in upper-case hex as hyper writes it.
fn chunk_size(out: &mut Vec<u8>, len: usize) {
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{len:X}\r\n");
}

/// The `date` header's value, formatted once per second.
#[derive(Default)]
struct Date {
    second: u64,
    text: Vec<u8>,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}
