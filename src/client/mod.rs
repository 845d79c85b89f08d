//! HTTP exchanges: one client (connection pool) per virtual user, timeouts covering the whole exchange, body
//! reading without buffering unless a check needs it, and classification of every failure. Knows nothing of
//! reports or scenarios.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use crate::metrics::ErrorKind;

/// Builds per-user clients cheaply: the TLS configuration (and its root store) is made once and shared.
pub struct ClientFactory {
    tls: Option<Arc<rustls::ClientConfig>>,
    insecure: bool,
    connect_timeout: Duration,
}

static CRYPTO: Once = Once::new();

impl ClientFactory {
    pub fn new(insecure: bool, connect_timeout: Duration) -> Result<Self, String> {
        CRYPTO.call_once(|| {
            // Another provider may already be installed by an embedding program; either is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let tls = if insecure {
            None
        } else {
            use rustls_platform_verifier::BuilderVerifierExt;
            let cfg = rustls::ClientConfig::builder()
                .with_platform_verifier()
                .map_err(|e| format!("cannot load the system's TLS root certificates: {e}"))?
                .with_no_client_auth();
            Some(Arc::new(cfg))
        };
        Ok(ClientFactory { tls, insecure, connect_timeout })
    }

    pub fn build(&self) -> Result<HttpClient, String> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("run-load-test/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .no_proxy()
            .pool_max_idle_per_host(usize::MAX)
            .redirect(reqwest::redirect::Policy::limited(10));
        b = match &self.tls {
            Some(cfg) => b.tls_backend_preconfigured((**cfg).clone()),
            None => b.tls_danger_accept_invalid_certs(self.insecure),
        };
        b.build().map(|inner| HttpClient { inner }).map_err(|e| error_chain(&e))
    }
}

pub struct HttpClient {
    inner: reqwest::Client,
}

/// A response that arrived completely (whatever its status).
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub ttfb: Duration,
    pub latency: Duration,
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    pub bytes: u64,
}

impl HttpClient {
    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.inner.request(method, url)
    }

    /// Sends `req` and reads the body to the end within `timeout`. The body is appended to `keep` when given
    /// (checks and captures need it), otherwise only counted.
    pub async fn exchange(
        &self,
        req: reqwest::Request,
        timeout: Duration,
        keep: Option<&mut Vec<u8>>,
    ) -> Result<Exchange, Failure> {
        let start = Instant::now();
        let mut bytes = 0u64;
        let work = self.run(req, start, keep, &mut bytes);
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(Failure {
                kind: ErrorKind::Timeout,
                message: format!("no complete response within {}", humantime::format_duration(timeout)),
                bytes,
            }),
        }
    }

    async fn run(
        &self,
        req: reqwest::Request,
        start: Instant,
        mut keep: Option<&mut Vec<u8>>,
        bytes: &mut u64,
    ) -> Result<Exchange, Failure> {
        let mut resp = self.inner.execute(req).await.map_err(|e| failure(&e, 0))?;
        let ttfb = start.elapsed();
        let status = resp.status().as_u16();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    *bytes += chunk.len() as u64;
                    if let Some(buf) = keep.as_deref_mut() {
                        buf.extend_from_slice(&chunk);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let mut f = failure(&e, *bytes);
                    if f.kind == ErrorKind::Connect {
                        f.kind = ErrorKind::Body;
                    }
                    return Err(f);
                }
            }
        }
        Ok(Exchange { status, ttfb, latency: start.elapsed(), bytes: *bytes })
    }
}

fn failure(e: &reqwest::Error, bytes: u64) -> Failure {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_body() || e.is_decode() {
        ErrorKind::Body
    } else {
        // Refused, reset or closed before a response: the connection is what failed.
        ErrorKind::Connect
    };
    Failure { kind, message: error_chain(e), bytes }
}

/// The error and its causes on one line, without the URL (which may carry a secret query parameter).
fn error_chain(e: &reqwest::Error) -> String {
    let mut msg = String::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        let text = strip_url(&text);
        if !text.is_empty() && !msg.contains(text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(text);
        }
        cur = err.source();
    }
    msg
}

fn strip_url(text: &str) -> &str {
    match text.find(" for url (") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// The failure kind for an unexpected status.
pub fn status_kind(status: u16) -> ErrorKind {
    if status == 429 { ErrorKind::RateLimited } else { ErrorKind::Status(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_429_is_rate_limited() {
        assert_eq!(status_kind(429), ErrorKind::RateLimited);
        assert_eq!(status_kind(503), ErrorKind::Status(503));
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_failure() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let factory = ClientFactory::new(false, Duration::from_secs(1)).unwrap();
        let client = factory.build().unwrap();
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
        let req = client.request(reqwest::Method::GET, url).build().unwrap();
        let err = client.exchange(req, Duration::from_secs(2), None).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Connect);
        assert!(!err.message.contains("127.0.0.1"), "message must not carry the URL: {}", err.message);
    }
}
