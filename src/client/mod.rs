//! HTTP/1.1 exchanges on hyper directly: each virtual user owns its keep-alive connection (as a browser or a
//! Locust user does), timeouts cover the whole exchange, bodies are read frame by frame without buffering
//! unless a check needs them, and every failure is classified. Knows nothing of reports, scenarios or what a body
//! means: bodies go to a [`BodySink`] the caller picks, and [`Transport`] with [`TransportFactory`] is the seam
//! another protocol plugs into.
//!
//! hyper is used without a pooled client: a per-user connection needs no pool, no locks and no URL re-parsing,
//! which is what makes the generator cheap per request (see scripts/bench.sh).

mod body;
mod tap;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, HeaderName, HeaderValue};

use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use body::{BodySink, Discard, KeepBody, SinkError};
pub use tap::{MESSAGE_EXCERPT_BYTES, TAP_BODY_BYTES, Tap, excerpt};

use crate::metrics::ErrorKind;

pub type Request = http::Request<Full<Bytes>>;

/// Why no client can be built for a target: a bad base URL or unusable TLS roots.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid target URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: url::ParseError },
    #[error("unsupported scheme `{0}`: use http or https")]
    UnsupportedScheme(String),
    #[error("target URL `{0}` has no host")]
    NoHost(String),
    #[error("invalid host in `{0}`")]
    InvalidHost(String),
    #[error("cannot load the system's TLS root certificates: {0}")]
    TlsRoots(rustls::Error),
}

/// What the engine asks of a connection, whatever the protocol: HTTP/1.1 on hyper ([`HttpClient`]) today; an
/// HTTP/2 or WebSocket client implements the same. Static dispatch: the user loop is generic over it, so the
/// seam costs no box and no allocation per request.
pub trait Transport {
    /// Sends `req` and reads the response within `timeout`, its body going where `reading` says.
    fn exchange<S: BodySink>(
        &mut self,
        req: Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> impl Future<Output = Result<Exchange, Failure>>;
}

/// Makes the transports of a run, one per user, and says where their requests go. The engine holds only this
/// (and what it builds), so another protocol plugs in by implementing both traits; [`ClientFactory`] is HTTP/1.1's.
pub trait TransportFactory {
    type Transport: Transport + 'static;

    /// A transport for one user; it connects on its first request, not here.
    fn build(&self) -> Self::Transport;

    /// The base URL's path (no trailing slash), which every request path starts with.
    fn prefix(&self) -> &str;

    /// The target's authority (`host[:port]`), sent as the `Host` header (`:authority` in HTTP/2).
    fn host_header(&self) -> &HeaderValue;

    /// Open model: the connections the run may hold (`[load] connections`), shared by the iterations in
    /// flight; `None` gives each iteration in flight its own, as the closed model does.
    fn connections(&self) -> Option<u32> {
        None
    }
}

/// Where requests go: parsed once from the base URL.
#[derive(Debug)]
struct Endpoint {
    host: String,
    port: u16,
    host_header: HeaderValue,
    /// Path prefix of the base URL (no trailing slash), prepended to every step path.
    prefix: String,
}

/// Shared by all users of a run: the endpoint and the TLS configuration (root store loaded once).
#[derive(Clone)]
pub struct ClientFactory {
    endpoint: Arc<Endpoint>,
    tls: Option<tokio_rustls::TlsConnector>,
    connect_timeout: Duration,
}

impl ClientFactory {
    pub fn new(base_url: &str, insecure: bool, connect_timeout: Duration) -> Result<Self, SetupError> {
        let url =
            url::Url::parse(base_url).map_err(|reason| SetupError::InvalidUrl { url: base_url.to_string(), reason })?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(SetupError::UnsupportedScheme(other.to_string())),
        };
        let host = url.host_str().ok_or_else(|| SetupError::NoHost(base_url.to_string()))?.to_string();
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let host_header =
            HeaderValue::from_str(&authority).map_err(|_| SetupError::InvalidHost(base_url.to_string()))?;
        let prefix = url.path().trim_end_matches('/').to_string();
        let tls = if https { Some(tls::connector(insecure)?) } else { None };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        Ok(ClientFactory { endpoint: Arc::new(Endpoint { host, port, host_header, prefix }), tls, connect_timeout })
    }

    /// The `Host` header every request carries.
    pub fn host_header(&self) -> &HeaderValue {
        &self.endpoint.host_header
    }

    /// The base URL's path, to prefix step paths with.
    pub fn prefix(&self) -> &str {
        &self.endpoint.prefix
    }

    /// A client for one user; it connects on its first request.
    pub fn build(&self) -> HttpClient {
        HttpClient { factory: self.clone(), sender: None }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let ep = &self.endpoint;
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(|_| Failure::connect(format!("connect timed out after {:?}", self.connect_timeout)))?
            .map_err(|e| Failure::connect(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| Failure::connect(format!("invalid TLS server name: {e}")))?;
                let stream = tokio::time::timeout(self.connect_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| Failure::connect("TLS handshake timed out".into()))?
                    .map_err(|e| Failure::connect(format!("TLS handshake: {e}")))?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::connect(format!("HTTP handshake: {e}")))?;
    // The connection task ends when the user drops its sender or the peer closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One user's connection. Used by one task at a time, so it needs no synchronisation.
pub struct HttpClient {
    factory: ClientFactory,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// A response that arrived completely (whatever its status).
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub ttfb: Duration,
    pub latency: Duration,
    pub bytes: u64,
    /// Advised wait of a 429/503 response.
    pub retry_after: RetryAdvice,
    /// Values of the headers `Reading::capture` named, in its order.
    pub captured: Captured,
}

/// Most response headers one exchange keeps: a gateway's attribution headers (LiteLLM 7, Portkey 4, a scenario's 8).
pub const MAX_CAPTURED: usize = 20;

/// The values of the headers a caller asked for, by position: refcounted slices of the response head, so
/// keeping them copies nothing and allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct Captured([Option<HeaderValue>; MAX_CAPTURED]);

impl Captured {
    /// Keeps the value of each of `names` (at most [`MAX_CAPTURED`]) that `headers` carries.
    pub fn from_headers(headers: &http::HeaderMap, names: &[HeaderName]) -> Captured {
        let mut c = Captured::default();
        for (slot, name) in c.0.iter_mut().zip(names) {
            *slot = headers.get(name).cloned();
        }
        c
    }

    /// The value of the `i`-th name asked for, if the response had it.
    pub fn get(&self, i: usize) -> Option<&HeaderValue> {
        self.0.get(i)?.as_ref()
    }
}

#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub bytes: u64,
}

impl Failure {
    fn connect(message: String) -> Self {
        Failure { kind: ErrorKind::Connect, message, bytes: 0 }
    }
}

/// Default of `max_body`: far above any chat completion or API answer, far below what would hurt a generator
/// running thousands of users.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Bytes of an unexpected status's body kept for the failure message; the rest is never read.
pub const EXCERPT_BYTES: usize = 512;
/// An error body up to this announced length is read to its end (and dropped) to keep the connection.
const DRAIN_BYTES: u64 = 64 << 10;

/// How to read a response body.
pub struct Reading<'a, S = Discard> {
    /// Where the body goes when `keep` is set, and the excerpt of an unexpected status in any case.
    pub buf: Option<&'a mut Vec<u8>>,
    /// Checks, captures or an LLM measurement read the whole body: buffer it, up to `max_body`.
    pub keep: bool,
    /// Reads the body of an expected, non-error status as it arrives (an SSE parser), instead of `keep`; raw
    /// bytes are then kept only for error statuses.
    pub sink: Option<&'a mut S>,
    /// Response headers to keep in [`Exchange::captured`] (a gateway's attribution headers).
    pub capture: &'a [HeaderName],
    /// Statuses the step expects (`None`: any 2xx). The body of any other is read only for an excerpt.
    pub expect: Option<&'a [u16]>,
    /// Most body bytes buffered, and the largest SSE line or event accepted.
    pub max_body: usize,
    /// `try` and `--http-debug`: a copy of the response head and the body's first bytes goes here too.
    pub tap: Option<&'a mut Tap>,
}

impl Default for Reading<'_> {
    fn default() -> Self {
        Reading {
            buf: None,
            keep: false,
            sink: None,
            capture: &[],
            expect: None,
            max_body: DEFAULT_MAX_BODY,
            tap: None,
        }
    }
}

/// What a 429/503 said about when to come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryAdvice {
    /// The advised wait, saturated: an absurd value becomes `Duration::MAX`, which the caller caps.
    pub wait: Option<Duration>,
    /// A `retry-after-ms` or `Retry-After` header was present but negative, not a number or not a date.
    pub invalid: bool,
}

/// Where the bytes of a body go.
enum Route<'a, S> {
    Discard,
    /// The whole body, up to `max_body`.
    Keep(KeepBody<'a>),
    /// The first `EXCERPT_BYTES`, then reading stops.
    Excerpt(&'a mut Vec<u8>),
    Sink(&'a mut S),
}

/// `1 MiB`, `512 KiB` or `1000 bytes`: how limits read in messages.
pub fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl HttpClient {
    /// Sends `req` and reads the body to the end within `timeout`, as `reading` says.
    pub async fn exchange<S: BodySink>(
        &mut self,
        req: Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> Result<Exchange, Failure> {
        let start = Instant::now();
        let mut bytes = 0u64;
        let result = tokio::time::timeout(timeout, self.run(req, start, reading, &mut bytes)).await;
        match result {
            Ok(Ok(ex)) => Ok(ex),
            Ok(Err(f)) => {
                // A broken exchange leaves the connection in an unknown state: start afresh next time.
                self.sender = None;
                Err(f)
            }
            Err(_) => {
                self.sender = None;
                Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: format!("no complete response within {timeout:?}"),
                    bytes,
                })
            }
        }
    }

    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        let reusable = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !reusable {
            self.sender = Some(self.factory.connect().await?);
        }
        self.sender.as_mut().ok_or_else(|| Failure::connect("no connection".into()))
    }

    async fn run<S: BodySink>(
        &mut self,
        req: Request,
        start: Instant,
        reading: Reading<'_, S>,
        bytes: &mut u64,
    ) -> Result<Exchange, Failure> {
        let Reading { buf, keep, sink, capture, expect, max_body, mut tap } = reading;
        let sender = self.ready_sender().await?;
        let resp = sender.send_request(req).await.map_err(|e| Failure {
            kind: if is_protocol(&e) { ErrorKind::Protocol } else { ErrorKind::Connect },
            message: hyper_chain(&e),
            bytes: 0,
        })?;
        let ttfb = start.elapsed();
        let status = resp.status().as_u16();
        let headers = resp.headers();
        if let Some(t) = tap.as_deref_mut() {
            t.head(headers);
        }
        let retry_after = if status == 429 || status == 503 {
            retry_after(headers, SystemTime::now())
        } else {
            RetryAdvice::default()
        };
        let captured = Captured::from_headers(headers, capture);
        let expected = expect.map_or(is_success(status), |codes| codes.contains(&status));
        let fail = |kind, message: String, bytes| Failure { kind, message, bytes };
        let body_kind = sink.as_deref().map_or(ErrorKind::Body, BodySink::failure_kind);
        // A sink that refuses the body (a JSON answer where a stream was asked for) fails the exchange, with the
        // body's first bytes read for the message: they usually say why.
        let mut refused = None;
        let mut route = match (sink.filter(|_| expected && status < 400), buf) {
            (_, Some(b)) if !expected => Route::Excerpt(b),
            (Some(s), b) => match s.begin(headers, max_body) {
                Ok(()) => Route::Sink(s),
                Err(e) => {
                    refused = Some(e);
                    b.map_or(Route::Discard, |b| Route::Excerpt(b))
                }
            },
            (None, Some(b)) if keep => Route::Keep(KeepBody::new(b, max_body)),
            _ => Route::Discard,
        };
        // Nothing asks for a compressed answer, so a server that sends one anyway cannot have it checked.
        if matches!(route, Route::Keep(_) | Route::Sink(_)) {
            if let Some(enc) = headers.get(CONTENT_ENCODING).filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
            {
                let enc = String::from_utf8_lossy(enc.as_bytes()).into_owned();
                let message =
                    format!("body sent with content-encoding `{enc}`, which was not asked for: cannot read it");
                return Err(fail(body_kind, message, 0));
            }
        }
        // An error body of a known, small length is drained past its excerpt so the connection can be reused.
        let drain = resp.body().size_hint().exact().is_some_and(|n| n <= DRAIN_BYTES);
        let mut body = resp.into_body();
        let mut cut = false;
        // The frame a stream ended on, moved (not copied) here: quoted if the sink then finds the stream broken.
        let mut last = Bytes::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let kind = if is_protocol(&e) { ErrorKind::Protocol } else { body_kind };
                fail(kind, format!("body cut short: {}", hyper_chain(&e)), *bytes)
            })?;
            let Ok(data) = frame.into_data() else { continue };
            *bytes += data.len() as u64;
            if let Some(t) = tap.as_deref_mut() {
                t.data(&data);
            }
            match &mut route {
                Route::Discard => {}
                Route::Keep(k) => k.data(&data, start).map_err(|e| sink_failure(e, *bytes))?,
                Route::Excerpt(b) => {
                    let room = EXCERPT_BYTES.saturating_sub(b.len());
                    b.extend_from_slice(&data[..room.min(data.len())]);
                    if data.len() >= room && !drain {
                        cut = true;
                        break;
                    }
                }
                Route::Sink(s) => {
                    s.data(&data, start).map_err(|e| quoted(sink_failure(e, *bytes), &data))?;
                    last = data;
                }
            }
        }
        if cut {
            // The rest of an error body is not worth reading (it may be 1 GB): this connection is given up.
            self.sender = None;
        }
        match (route, refused) {
            (Route::Sink(s), _) => s.end().map_err(|e| quoted(sink_failure(e, *bytes), &last))?,
            (Route::Excerpt(b), Some(e)) => return Err(quoted(sink_failure(e, *bytes), b)),
            (_, Some(e)) => return Err(sink_failure(e, *bytes)),
            _ => {}
        }
        Ok(Exchange { status, ttfb, latency: start.elapsed(), bytes: *bytes, retry_after, captured })
    }
}

impl TransportFactory for ClientFactory {
    type Transport = HttpClient;

    fn build(&self) -> HttpClient {
        ClientFactory::build(self)
    }

    fn prefix(&self) -> &str {
        ClientFactory::prefix(self)
    }

    fn host_header(&self) -> &HeaderValue {
        ClientFactory::host_header(self)
    }
}

impl Transport for HttpClient {
    fn exchange<S: BodySink>(
        &mut self,
        req: Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> impl Future<Output = Result<Exchange, Failure>> {
        HttpClient::exchange(self, req, timeout, reading)
    }
}

fn sink_failure(e: SinkError, bytes: u64) -> Failure {
    Failure { kind: e.kind, message: e.message, bytes }
}

/// A failure with the body bytes that caused it quoted (allocates only on this failure path).
fn quoted(mut f: Failure, body: &[u8]) -> Failure {
    f.message.push_str(&excerpt(body));
    f
}

/// `retry-after-ms` (OpenAI, exact) before `Retry-After` (seconds or an HTTP date). Server input: a value too
/// large for a `Duration` saturates (the caller waits at most `max_wait`), a negative, NaN or unreadable one is
/// ignored and flagged so that it is counted.
fn retry_after(h: &http::HeaderMap, now: SystemTime) -> RetryAdvice {
    let mut advice = RetryAdvice::default();
    let text = |name: &str| h.get(name).map(|v| v.to_str().map(str::trim).unwrap_or(""));
    if let Some(ms) = text("retry-after-ms") {
        match seconds(ms, 1000.0) {
            Some(d) => {
                advice.wait = Some(d);
                return advice;
            }
            None => advice.invalid = true,
        }
    }
    if let Some(v) = text("retry-after") {
        advice.wait = seconds(v, 1.0)
            .or_else(|| httpdate::parse_http_date(v).ok().map(|t| t.duration_since(now).unwrap_or(Duration::ZERO)));
        advice.invalid |= advice.wait.is_none();
    }
    advice
}

/// A non-negative number of `per_second` units as a saturating `Duration`.
fn seconds(s: &str, per_second: f64) -> Option<Duration> {
    let v: f64 = s.parse().ok()?;
    if v.is_nan() || v < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(v / per_second).unwrap_or(Duration::MAX))
}

/// Bytes that are not HTTP/1.1: a bad status line or header, an oversized head, a bad chunk size (hyper reports
/// the latter as an `InvalidData`/`InvalidInput` I/O error inside a body error).
fn is_protocol(e: &hyper::Error) -> bool {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return true;
    }
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput);
        }
        cur = err.source();
    }
    false
}

/// The error and its causes on one line.
fn hyper_chain(e: &hyper::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cur = err.source();
    }
    msg
}

/// Raises the open-file limit to its hard maximum: every user holds a connection, and a default soft limit of
/// 1024 would turn a 5,000-user test into `connect` errors of the generator's own making. Returns the limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit/setrlimit with RLIMIT_NOFILE.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    // rlim_t is u64 on Linux but not on every platform.
    #[allow(clippy::unnecessary_cast)]
    let cur = lim.rlim_cur as u64;
    cur
}

/// Success without `expect.status`: a 2xx. Redirects are not followed, so a 3xx is not the resource asked for
/// (a redirect loop or an http→https redirect must not pass as a fast success).
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The failure kind for an unexpected status.
pub fn status_kind(status: u16) -> ErrorKind {
    if status == 429 { ErrorKind::RateLimited } else { ErrorKind::Status(status) }
}

#[cfg(test)]
mod tests;
