//! HTTP/1.1 exchanges: each virtual user owns its keep-alive connection (as a browser or a Locust user does),
//! timeouts cover the whole exchange, bodies are read piece by piece without buffering unless a check needs
//! them, and every failure is classified. Knows nothing of reports, scenarios or what a body means: bodies go to a
//! [`BodySink`] the caller picks, and [`Transport`] with [`TransportFactory`] is the seam another protocol plugs
//! into.
//!
//! The exchange runs in the user's own task (`h1`: httparse for the head, the body framed in place), not in a
//! client library's connection task: no pool, no lock, no channel and no header map per request, which is what
//! makes the generator cheap per request (see scripts/bench.sh and docs/performance.md).

mod body;
mod exchange;
mod h1;
mod tap;
mod tls;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use tokio::net::TcpStream;

pub use body::{BodySink, Discard, KeepBody, SinkError};
pub use exchange::prepared;
pub use h1::Head;
pub use tap::{MESSAGE_EXCERPT_BYTES, TAP_BODY_BYTES, Tap, excerpt};

use crate::metrics::ErrorKind;

pub type Request = http::Request<Bytes>;

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

/// What the engine asks of a connection, whatever the protocol: HTTP/1.1 ([`HttpClient`]) today; an
/// HTTP/2 or WebSocket client implements the same. Static dispatch: the user loop is generic over it, so the
/// seam costs no box and no allocation per request.
pub trait Transport {
    /// Sends `req` and reads the response within `timeout`, its body going where `reading` says.
    fn exchange<S: BodySink>(
        &mut self,
        req: &Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> impl Future<Output = Result<Exchange, Failure>>;

    /// Connections this transport has opened so far, when it counts them: it reconnects by itself after a
    /// server closes one, and the open model's pool reports what was opened, not what it built.
    fn connects(&self) -> Option<u64> {
        None
    }
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
        HttpClient { factory: self.clone(), conn: None, wbuf: Vec::new(), timer: None, last: Vec::new(), connects: 0 }
    }

    async fn connect(&self) -> Result<h1::Conn, Failure> {
        let ep = &self.endpoint;
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(|_| Failure::connect(format!("connect timed out after {:?}", self.connect_timeout)))?
            .map_err(|e| Failure::connect(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io = match &self.tls {
            None => h1::Stream::Plain(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| Failure::connect(format!("invalid TLS server name: {e}")))?;
                let stream = tokio::time::timeout(self.connect_timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| Failure::connect("TLS handshake timed out".into()))?
                    .map_err(|e| Failure::connect(format!("TLS handshake: {e}")))?;
                h1::Stream::Tls(Box::new(stream))
            }
        };
        Ok(h1::Conn::new(io))
    }
}

/// One user's connection. Used by one task at a time, so it needs no synchronisation.
pub struct HttpClient {
    factory: ClientFactory,
    conn: Option<h1::Conn>,
    /// The request head is serialized here, its allocation reused from request to request.
    wbuf: Vec<u8>,
    /// The exchange timeout, made on the first request and re-armed for each.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The start of the last frame of a stream, for the message if the stream turns out broken.
    last: Vec<u8>,
    /// Connections opened.
    connects: u64,
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

/// The values of the headers a caller asked for, by position. Empty (and allocation-free) when nothing is asked
/// for, which is every step but an LLM call through a gateway; kept out of line because an [`Exchange`] is
/// moved through several futures per request, and twenty inline slots made that an 800-byte copy each time.
#[derive(Debug, Clone, Default)]
pub struct Captured(Vec<Option<HeaderValue>>);

impl Captured {
    /// Keeps the value of each of `names` (at most [`MAX_CAPTURED`]) that `headers` carries: the gateway
    /// parser's tests build heads as maps; the client reads its parsed head with `from_raw`.
    #[cfg(test)]
    pub fn from_headers(headers: &http::HeaderMap, names: &[HeaderName]) -> Captured {
        Captured(names.iter().take(MAX_CAPTURED).map(|name| headers.get(name).cloned()).collect())
    }

    /// Keeps the value of each of `names` that a parsed head carries: copied, on the few steps that ask, and
    /// nothing at all (no allocation) when the head carries none of them.
    fn from_raw(headers: &[httparse::Header<'_>], names: &[HeaderName]) -> Captured {
        let names = &names[..names.len().min(MAX_CAPTURED)];
        // The lengths of the head's names, modulo 64: a name asked for whose length is not among them is
        // not looked for. A gateway step asks for a dozen names and a head has a few, so the comparisons of
        // every name with every header (500 instructions per request) mostly go.
        let lengths = headers.iter().fold(0u64, |m, h| m | 1 << (h.name.len() % 64));
        let mut kept: Vec<Option<HeaderValue>> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if lengths & 1 << (name.as_str().len() % 64) == 0 {
                continue;
            }
            if let Some(h) = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_str())) {
                if kept.is_empty() {
                    kept.resize(names.len(), None);
                }
                kept[i] = HeaderValue::from_bytes(h.value).ok();
            }
        }
        Captured(kept)
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

/// How much later than its `timeout` a request may be timed out (see `HttpClient::exchange`).
const MAX_TIMEOUT_SLACK: Duration = Duration::from_millis(50);

impl HttpClient {
    /// Sends `req` and reads the body to the end within `timeout`, as `reading` says.
    pub async fn exchange<S: BodySink>(
        &mut self,
        req: &Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> Result<Exchange, Failure> {
        // One clock read gives both the timer's deadline and the start of the latency.
        let now = tokio::time::Instant::now();
        let start = now.into_std();
        let deadline = now + timeout;
        let HttpClient { factory, conn, wbuf, timer, last, connects } = self;
        // One timer per user, and re-armed only when it would fire too soon or much too late: a timeout fires
        // between `timeout` and `timeout` + 1/64 of it (50 ms at most) after the request began. Re-arming per
        // request cost ~140 instructions of a tiny GET's ~6,500.
        let slack = (timeout / 64).min(MAX_TIMEOUT_SLACK);
        let timer = match timer {
            Some(t) => {
                let armed = t.deadline();
                if armed < deadline || armed > deadline + slack {
                    t.as_mut().reset(deadline + slack);
                }
                t
            }
            None => timer.insert(Box::pin(tokio::time::sleep_until(deadline + slack))),
        };
        let mut bytes = 0u64;
        let result = {
            let mut run = pin!(exchange::run(factory, (conn, connects), wbuf, last, req, start, reading, &mut bytes));
            poll_fn(|cx| match run.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
            })
            .await
        };
        match result {
            Some(Ok(ex)) => Ok(ex),
            Some(Err(f)) => {
                // A broken exchange leaves the connection in an unknown state: start afresh next time.
                *conn = None;
                Err(f)
            }
            None => {
                *conn = None;
                Err(Failure {
                    kind: ErrorKind::Timeout,
                    message: format!("no complete response within {timeout:?}"),
                    bytes,
                })
            }
        }
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
        req: &Request,
        timeout: Duration,
        reading: Reading<'_, S>,
    ) -> impl Future<Output = Result<Exchange, Failure>> {
        HttpClient::exchange(self, req, timeout, reading)
    }

    fn connects(&self) -> Option<u64> {
        Some(self.connects)
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

/// [`retry_advice`] over a header map (the unit tests').
#[cfg(test)]
fn retry_after(h: &http::HeaderMap, now: SystemTime) -> RetryAdvice {
    retry_advice(|name| h.get(name).map(HeaderValue::as_bytes), now)
}

/// `retry-after-ms` (OpenAI, exact) before `Retry-After` (seconds or an HTTP date), looked up in a parsed head.
/// Server input: a value too large for a `Duration` saturates (the caller waits at most `max_wait`), a negative,
/// NaN or unreadable one is ignored and flagged so that it is counted.
fn retry_advice<'h>(get: impl Fn(&str) -> Option<&'h [u8]>, now: SystemTime) -> RetryAdvice {
    let mut advice = RetryAdvice::default();
    let text = |name: &str| get(name).map(|v| std::str::from_utf8(v).map(str::trim).unwrap_or(""));
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
