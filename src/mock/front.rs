//! The mock's HTTP/1.1 serving: the accept loop, each connection served by `wire` until a request it does
//! not take and by hyper from there on, and hyper's entry service. `POST /v1/chat/completions`, the request a
//! load test sends at every step, is handed to its handler directly on either; everything else goes through
//! the axum router.
//!
//! Why not `axum::serve` and the router for everything: on a zero-delay streamed answer, axum's routing was a
//! fifth of the mock's instructions (a boxed future per layer; matched-path, original-URI and params
//! extensions; a cloned `HeaderMap`) and its serving glue (HTTP/2 sniffing, tower adapters, a boxed body)
//! more; the mock shares its machine, often its core, with the generator it serves, and in the benchmarks it
//! is the mock, not the generator, that sets the pace of a streamed exchange.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use futures_util::future::Either;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service as _;

use super::{BODY_LIMIT, Shared, chat, error_response, wire};

const CHAT: &str = "/v1/chat/completions";

type ChatFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// One per server, cloned per connection (two `Arc`s).
#[derive(Clone)]
pub(super) struct Front {
    router: Router,
    shared: Arc<Shared>,
}

impl Front {
    pub(super) fn new(router: Router, shared: Arc<Shared>) -> Front {
        Front { router, shared }
    }
}

impl hyper::service::Service<Request<Incoming>> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<ChatFuture, axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if request.method() == Method::POST && request.uri().path() == CHAT {
            let shared = self.shared.clone();
            Either::Left(Box::pin(async move {
                let (parts, body) = request.into_parts();
                let authorization = parts.headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
                let response = match read_body(body).await {
                    Ok(body) => chat::completions(&shared, authorization, Ok(&body)).await,
                    Err(rejected) => chat::completions(&shared, authorization, Err(rejected)).await,
                };
                Ok(response)
            }))
        } else {
            // A router is always ready (axum documents it), so it is called without `poll_ready`.
            Either::Right(self.router.clone().call(request.map(Body::new)))
        }
    }
}

/// The whole body, up to [`BODY_LIMIT`]; a failure is answered as axum's `Bytes` extractor (behind
/// `DefaultBodyLimit::max(BODY_LIMIT)`) answers it on the routed paths, in the OpenAI error shape. A body
/// that arrives as one frame (nearly all do) is returned as it is, neither queued nor copied.
async fn read_body(body: Incoming) -> Result<Bytes, Response> {
    let mut body = Limited::new(body, BODY_LIMIT);
    let mut first = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let status = match e.downcast_ref::<LengthLimitError>() {
                Some(_) => StatusCode::PAYLOAD_TOO_LARGE,
                None => StatusCode::BAD_REQUEST,
            };
            error_response(status, "invalid_request_error", &format!("Failed to buffer the request body: {e}"))
        })?;
        // Trailers, the only other kind of frame, are ignored as axum ignores them.
        let Ok(data) = frame.into_data() else { continue };
        match &mut joined {
            Some(all) => all.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => joined = Some([first.as_ref(), data.as_ref()].concat()),
        }
    }
    Ok(joined.map_or(first, Bytes::from))
}

/// Accepts and serves until `shutdown` resolves; then stops accepting, lets every connection finish the
/// response it is on (hyper's graceful shutdown), and returns once all are closed, as `axum::serve` did. The
/// embedded mock's thread bounds that wait (`background`'s grace); the foreground `mock` command waits.
pub(super) async fn serve(listener: TcpListener, front: Front, shutdown: impl Future<Output = ()>) {
    let (close_tx, close_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            // Out of descriptors, say: wait for some to close rather than spin on the error.
            Err(_) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Streams write one small chunk per token; Nagle's algorithm would hold them back for the peer's ACK.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, front.clone(), close_rx.clone()));
    }
    drop(listener);
    drop(close_rx);
    let _ = close_tx.send(());
    close_tx.closed().await;
}

async fn connection(mut tcp: TcpStream, front: Front, mut closing: watch::Receiver<()>) {
    let read = match wire::serve(&mut tcp, &front.shared, &front.router, &mut closing).await {
        wire::Ended::Closed => return,
        wire::Ended::HandOff(read) => read,
    };
    let io = TokioIo::new(Prefixed { read, at: 0, tcp });
    // One buffer per connection, written whole: a response is a head and one body frame, and vectored
    // writes would queue them (an allocation per response) for no fewer syscalls.
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().writev(false).serve_connection(io, front));
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = closing.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// A connection handed to hyper: the bytes `wire` read and did not serve come first.
struct Prefixed {
    read: Vec<u8>,
    at: usize,
    tcp: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.at);
            buf.put_slice(&this.read[this.at..this.at + n]);
            this.at += n;
            if this.at == this.read.len() {
                this.read = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Errors of one incoming connection (it was reset before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
