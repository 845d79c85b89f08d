//! One request and its response on a user's own connection, in the user's task: the request serialized into a
//! reused buffer, the head read in place, the body routed slice by slice to where `Reading` says, every
//! failure classified as hyper's client classified it before.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;

use super::h1::{Conn, Decoder, FrameError, Framing, Head, HeadError};
use super::{
    BodySink, Captured, ClientFactory, DRAIN_BYTES, EXCERPT_BYTES, Exchange, Failure, KeepBody, MESSAGE_EXCERPT_BYTES,
    Reading, Request, RetryAdvice, Route, SinkError, quoted, retry_advice, sink_failure,
};
use crate::metrics::ErrorKind;

/// The request head as hyper wrote it: request line, the request's headers in order, and a `content-length`
/// for a non-empty body unless the caller set one.
pub(super) fn serialize(req: &Request, body_len: usize, w: &mut Vec<u8>) {
    w.clear();
    w.extend_from_slice(req.method().as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(req.uri().path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        w.extend_from_slice(name.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    if body_len > 0 && !req.headers().contains_key(CONTENT_LENGTH) {
        w.extend_from_slice(b"content-length: ");
        w.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
}

/// The head into `w`, and a small body after it: one plain write costs the kernel less than a vectored one
/// (a chat request is a few hundred bytes), and the copy is cheaper than the difference. Returns what is
/// left to send apart: a large body, not copied.
fn serialize_with<'b>(req: &'b Request, w: &mut Vec<u8>) -> &'b [u8] {
    let body = req.body();
    serialize(req, body.len(), w);
    if body.len() > COALESCE_BODY {
        return body;
    }
    w.extend_from_slice(body);
    &[]
}

/// A request's bytes on the wire, serialized once (see `prepared`).
#[derive(Clone)]
struct Wire(Bytes);

/// `req` with its bytes on the wire serialized now, for a request sent unchanged many times (a step with
/// nothing to render): each exchange of it then writes those bytes and serializes nothing. A body too large to
/// coalesce is left to the ordinary path.
pub fn prepared(mut req: Request) -> Request {
    let mut w = Vec::new();
    if serialize_with(&req, &mut w).is_empty() {
        req.extensions_mut().insert(Wire(Bytes::from(w)));
    }
    req
}

/// What to write for `req`: its prepared bytes, or its head (and a small body) serialized into `w` and any
/// large body apart.
fn on_wire<'b>(req: &'b Request, w: &'b mut Vec<u8>) -> (&'b [u8], &'b [u8]) {
    match req.extensions().get::<Wire>() {
        Some(Wire(bytes)) => (bytes, &[]),
        None => {
            let body = serialize_with(req, w);
            (w, body)
        }
    }
}

/// Bodies up to this size are sent in the head's buffer; it bounds what that buffer keeps per user.
const COALESCE_BODY: usize = 4096;

/// What the head decided, taken while its headers are still borrowed from the read buffer.
struct Setup<'a, S> {
    retry_after: RetryAdvice,
    captured: Captured,
    route: Route<'a, S>,
    refused: Option<SinkError>,
    /// A content-encoding other than identity (allocated only when a server sends one).
    encoding: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run<S: BodySink>(
    factory: &ClientFactory,
    (slot, connects): (&mut Option<Conn>, &mut u64),
    wbuf: &mut Vec<u8>,
    last: &mut Vec<u8>,
    req: &Request,
    start: Instant,
    reading: Reading<'_, S>,
    bytes: &mut u64,
) -> Result<Exchange, Failure> {
    let Reading { buf, keep, sink, capture, expect, max_body, mut tap } = reading;
    let body_kind = sink.as_deref().map_or(ErrorKind::Body, BodySink::failure_kind);
    if let Some(c) = slot.as_mut() {
        if !c.reusable().await {
            *slot = None;
        }
    }
    let conn = match slot {
        Some(c) => c,
        None => {
            let c = factory.connect().await?;
            *connects += 1;
            slot.insert(c)
        }
    };
    let (head, body) = on_wire(req, wbuf);
    conn.send(head, body).await.map_err(|e| Failure::connect(format!("connection error: {e}")))?;
    let (mut sink, mut buf) = (sink, buf);
    let head_request = req.method() == http::Method::HEAD;
    let on_head = |head: &Head<'_>| {
        let status = head.meta.status;
        if let Some(t) = tap.as_deref_mut() {
            t.head_raw(head.headers);
        }
        let retry_after = if status == 429 || status == 503 {
            retry_advice(|name| head.get(name), SystemTime::now())
        } else {
            RetryAdvice::default()
        };
        let captured = Captured::from_raw(head.headers, capture);
        let expected = expect.map_or(super::is_success(status), |codes| codes.contains(&status));
        // A sink that refuses the body (a JSON answer where a stream was asked for) fails the exchange, with the
        // body's first bytes read for the message: they usually say why.
        let mut refused = None;
        let route = match (sink.take().filter(|_| expected && status < 400), buf.take()) {
            (_, Some(b)) if !expected => Route::Excerpt(b),
            (Some(s), b) => match s.begin(head, max_body) {
                Ok(()) => Route::Sink(s),
                Err(e) => {
                    refused = Some(e);
                    b.map_or(Route::Discard, |b| Route::Excerpt(b))
                }
            },
            (None, Some(b)) if keep => Route::Keep(KeepBody::new(b, max_body)),
            _ => Route::Discard,
        };
        let encoding = head.encoding();
        Setup { retry_after, captured, route, refused, encoding }
    };
    let (meta, setup) = conn.read_head(head_request, on_head).await.map_err(|e| match e {
        HeadError::Invalid(message) => Failure { kind: ErrorKind::Protocol, message, bytes: 0 },
        HeadError::Closed => Failure::connect("connection closed before message completed".into()),
        HeadError::Io(e) => Failure::connect(format!("connection error: {e}")),
    })?;
    let head_at = Instant::now();
    let reads_at_head = conn.reads();
    let Setup { retry_after, captured, mut route, refused, encoding } = setup;
    let fail = |kind, message: String, bytes| Failure { kind, message, bytes };
    // Nothing asks for a compressed answer, so a server that sends one anyway cannot have it checked.
    if let Some(enc) = encoding.filter(|_| matches!(route, Route::Keep(_) | Route::Sink(_))) {
        let message = format!("body sent with content-encoding `{enc}`, which was not asked for: cannot read it");
        return Err(fail(body_kind, message, 0));
    }
    // An error body of a known, small length is drained past its excerpt so the connection can be reused.
    let drain = match meta.framing {
        Framing::Empty => true,
        Framing::Length(n) => n <= DRAIN_BYTES,
        Framing::Chunked | Framing::Close => false,
    };
    let mut decoder = Decoder::new(meta.framing);
    let mut cut = false;
    last.clear();
    loop {
        let frame = conn.frame(&mut decoder).await.map_err(|e| match e {
            FrameError::Invalid(m) => fail(ErrorKind::Protocol, format!("body cut short: {m}"), *bytes),
            FrameError::Closed => {
                fail(body_kind, "body cut short: connection closed before the message completed".into(), *bytes)
            }
            FrameError::Io(e) => fail(body_kind, format!("body cut short: {e}"), *bytes),
        })?;
        let Some(range) = frame else { break };
        let data = conn.slice(range);
        *bytes += data.len() as u64;
        if let Some(t) = tap.as_deref_mut() {
            t.data(data);
        }
        match &mut route {
            Route::Discard => {}
            Route::Keep(k) => k.data(data, start).map_err(|e| sink_failure(e, *bytes))?,
            Route::Excerpt(b) => {
                let room = EXCERPT_BYTES.saturating_sub(b.len());
                b.extend_from_slice(&data[..room.min(data.len())]);
                if data.len() >= room && !drain {
                    cut = true;
                    break;
                }
            }
            Route::Sink(s) => {
                s.data(data, start).map_err(|e| quoted(sink_failure(e, *bytes), data))?;
                // The frame a stream ended on, quoted if the sink then finds the stream broken: enough of it
                // for the excerpt, copied into a buffer the client keeps.
                let data = data.trim_ascii_start();
                last.clear();
                last.extend_from_slice(&data[..data.len().min(2 * MESSAGE_EXCERPT_BYTES)]);
            }
        }
    }
    let ttfb: Duration = head_at - start;
    // A small response read with its head needs no second clock read.
    let latency = if conn.reads() == reads_at_head { ttfb } else { start.elapsed() };
    // The rest of an error body is not worth reading (it may be 1 GB): such a connection is given up, as is one
    // the server will close or that carried a body delimited by its close.
    if cut || !meta.keep_alive {
        *slot = None;
    } else {
        conn.settle();
    }
    match (route, refused) {
        (Route::Sink(s), _) => s.end().map_err(|e| quoted(sink_failure(e, *bytes), last))?,
        (Route::Excerpt(b), Some(e)) => return Err(quoted(sink_failure(e, *bytes), b)),
        (_, Some(e)) => return Err(sink_failure(e, *bytes)),
        _ => {}
    }
    Ok(Exchange { status: meta.status, ttfb, latency, bytes: *bytes, retry_after, captured })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_request_writes_what_serializing_it_would() {
        for len in [0, 300, COALESCE_BODY, COALESCE_BODY + 1, 70_000] {
            let req = http::Request::post("/v1/chat/completions?x=1")
                .header("host", "gw:8000")
                .header("authorization", "Bearer k")
                .body(Bytes::from(vec![b'a'; len]))
                .unwrap();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let plain = on_wire(&req, &mut a);
            let (plain, ready) = ((plain.0.to_vec(), plain.1.to_vec()), prepared(req));
            assert_eq!(ready.extensions().get::<Wire>().is_some(), len <= COALESCE_BODY, "{len}");
            let sent = on_wire(&ready, &mut b);
            assert_eq!((sent.0.to_vec(), sent.1.to_vec()), plain, "a {len}-byte body");
            assert!(b.is_empty() || len > COALESCE_BODY, "a prepared request serializes nothing");
        }
    }
}
