//! HTTP/1.1 exchanges on hyper directly: each virtual user owns its keep-alive connection (as a browser or a
//! Locust user does), timeouts cover the whole exchange, bodies are read frame by frame without buffering
//! unless a check needs them, and every failure is classified. Knows nothing of reports or scenarios.
//!
//! hyper is used without a pooled client: a per-user connection needs no pool, no locks and no URL re-parsing,
//! which is what makes the generator cheap per request (see scripts/bench.sh).

pub mod sse;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};

use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
pub use sse::{SseParser, StreamError, StreamSummary, TokenSource};
use tokio::net::TcpStream;

use crate::metrics::ErrorKind;

pub type Request = http::Request<Full<Bytes>>;

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
    pub fn new(base_url: &str, insecure: bool, connect_timeout: Duration) -> Result<Self, String> {
        let url = url::Url::parse(base_url).map_err(|e| format!("invalid target URL `{base_url}`: {e}"))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("unsupported scheme `{other}`: use http or https")),
        };
        let host = url.host_str().ok_or_else(|| format!("target URL `{base_url}` has no host"))?.to_string();
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let host_header = HeaderValue::from_str(&authority).map_err(|_| format!("invalid host in `{base_url}`"))?;
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
    pub retry_after: Option<Duration>,
    /// Value of the configured served-model header.
    pub served_model: Option<HeaderValue>,
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

/// How to read a response body.
#[derive(Default)]
pub struct Reading<'a> {
    /// Body bytes are appended here (checks, captures, error excerpts).
    pub keep: Option<&'a mut Vec<u8>>,
    /// Parse a `text/event-stream` body incrementally (raw bytes are then kept only for error statuses).
    pub sse: Option<&'a mut SseParser>,
    /// Response header naming the served model.
    pub model_header: Option<&'a HeaderName>,
}

impl HttpClient {
    /// Sends `req` and reads the body to the end within `timeout`, as `reading` says.
    pub async fn exchange(
        &mut self,
        req: Request,
        timeout: Duration,
        reading: Reading<'_>,
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

    async fn run(
        &mut self,
        req: Request,
        start: Instant,
        reading: Reading<'_>,
        bytes: &mut u64,
    ) -> Result<Exchange, Failure> {
        let Reading { mut keep, sse, model_header } = reading;
        let sender = self.ready_sender().await?;
        let resp = sender.send_request(req).await.map_err(|e| Failure::connect(hyper_chain(&e)))?;
        let ttfb = start.elapsed();
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let retry_after = if status == 429 || status == 503 { retry_after(headers) } else { None };
        let served_model = model_header.and_then(|h| headers.get(h)).cloned();
        let mut sse = match sse {
            Some(p) if status < 400 => {
                let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("none");
                if !ct.starts_with("text/event-stream") {
                    return Err(Failure {
                        kind: ErrorKind::Stream,
                        message: format!("expected a text/event-stream response, got content-type {ct}"),
                        bytes: 0,
                    });
                }
                keep = None;
                Some(p)
            }
            _ => None,
        };
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure {
                kind: if sse.is_some() { ErrorKind::Stream } else { ErrorKind::Body },
                message: format!("body cut short: {}", hyper_chain(&e)),
                bytes: *bytes,
            })?;
            if let Some(data) = frame.data_ref() {
                *bytes += data.len() as u64;
                if let Some(buf) = keep.as_deref_mut() {
                    buf.extend_from_slice(data);
                }
                if let Some(p) = sse.as_deref_mut() {
                    p.feed(data, start.elapsed()).map_err(|e| stream_failure(&e, *bytes))?;
                }
            }
        }
        if let Some(p) = sse {
            p.finish().map_err(|e| stream_failure(&e, *bytes))?;
        }
        Ok(Exchange { status, ttfb, latency: start.elapsed(), bytes: *bytes, retry_after, served_model })
    }
}

fn stream_failure(e: &StreamError, bytes: u64) -> Failure {
    Failure { kind: ErrorKind::Stream, message: e.to_string(), bytes }
}

/// `retry-after-ms` (OpenAI, exact) before `Retry-After` (whole seconds; an HTTP date is not honoured).
fn retry_after(h: &http::HeaderMap) -> Option<Duration> {
    let num = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<f64>().ok());
    if let Some(ms) = num("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    num("retry-after").filter(|v| v.is_finite() && *v >= 0.0).map(Duration::from_secs_f64)
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

/// The failure kind for an unexpected status.
pub fn status_kind(status: u16) -> ErrorKind {
    if status == 429 { ErrorKind::RateLimited } else { ErrorKind::Status(status) }
}

#[cfg(test)]
mod tests;
