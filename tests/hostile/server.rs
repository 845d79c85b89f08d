//! A deliberately broken HTTP server on 127.0.0.1: raw TCP, one thread per connection, so that every fault can be
//! placed at the exact byte where a real server or proxy breaks. Endless modes stop when the client goes away or the
//! server is dropped; nothing is ever allocated in proportion to what is sent (the 1 GB bodies are generated).

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every way the server misbehaves. Each has a test in `transport.rs` or `content.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept, then close at once without reading.
    CloseOnAccept,
    /// Read the request, then close without a byte.
    CloseAfterRequest,
    /// Close in the middle of the status line.
    CloseMidStatus,
    /// Close in the middle of the header section.
    CloseMidHeaders,
    /// `content-length: 1000`, 10 bytes, close.
    CloseMidBody,
    /// SO_LINGER 0 and close right after accept: the client sees a TCP reset.
    ResetOnAccept,
    /// Head and part of the body, then a reset.
    ResetMidBody,
    /// Read the request and never answer.
    StallHeaders,
    /// Head and part of the body, then silence.
    StallBody,
    /// The response one byte every 200 ms, forever.
    Slowloris,
    /// A valid event stream that never ends.
    EndlessSse,
    /// 500, 502, 503 in turn.
    Storm5xx,
    /// 429 with this `Retry-After` value.
    RetryAfter(&'static str),
    /// 429 with this `retry-after-ms` value.
    RetryAfterMs(&'static str),
    /// 401 for every request.
    Unauthorized,
    /// 400 with an OpenAI-style "unknown model" error.
    UnknownModel,
    /// A status line that is not HTTP.
    GarbageStatus,
    /// A header line without a colon.
    InvalidHeader,
    /// A chunked body whose chunk size is not hexadecimal.
    BadChunkSize,
    /// One SSE line of 16 MiB.
    HugeSseLine,
    /// SSE lines without the `data:` field name.
    SseNoDataPrefix,
    /// A chunk whose data is not JSON.
    SseInvalidJson,
    /// A clean end of body without `[DONE]`.
    SseMissingDone,
    /// `[DONE]` twice, then more data.
    SseDoneTwice,
    /// A valid stream with these line endings.
    SseLineEnd(&'static str),
    /// A valid stream written in 1–3 byte TCP writes with chunk boundaries inside events.
    SseOddSplits,
    /// A 200 with a 1 GiB JSON-ish body, generated as it is sent.
    GigabyteBody,
    /// A 500 with a 1 GiB body.
    GigabyteErrorBody,
    /// 302 to the same path (a `followed` query marks a client that followed it).
    RedirectLoop,
    /// A gzip-encoded JSON body although the client asked for no encoding.
    Gzip,
    /// The request's bearer token echoed back: as the served model, upper-cased, JSON-escaped, cut at 200 chars.
    EchoSecrets,
    /// A chat completion whose served model is new every time.
    NewModelEachResponse,
    /// Escape sequences in error bodies and served-model names.
    Ansi,
    /// A header section of 2 MiB.
    HugeHeaders,
    /// A `content-length` beyond u64.
    AbsurdContentLength,
}

/// What the server saw.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    /// Requests that carried the redirect's `followed` marker.
    pub followed: AtomicU64,
}

pub struct Hostile {
    pub port: u16,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start(mode: Mode) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stats.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = conn else { continue };
                let n = st.connections.fetch_add(1, Ordering::SeqCst);
                match mode {
                    // Inline: a client reconnecting in a loop must not make a thread per attempt.
                    Mode::CloseOnAccept => drop(s),
                    Mode::ResetOnAccept => reset(s),
                    _ => {
                        let (st, sp) = (st.clone(), sp.clone());
                        std::thread::spawn(move || serve(s, mode, n, &Ctx { stats: st, stop: sp }));
                    }
                }
            }
        });
        Hostile { port, stats, stop, accept: Some(accept) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// A port nothing listens on (bound once, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Ctx {
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

struct Request {
    path: String,
    bearer: String,
}

/// Serves one connection: requests are answered in turn (keep-alive) until the mode ends the connection.
fn serve(mut s: TcpStream, mode: Mode, conn: u64, ctx: &Ctx) {
    let _ = s.set_nodelay(true);
    let mut seq = conn;
    while let Some(req) = read_request(&mut s, ctx) {
        ctx.stats.requests.fetch_add(1, Ordering::SeqCst);
        if req.path.contains("followed") {
            ctx.stats.followed.fetch_add(1, Ordering::SeqCst);
        }
        if !respond(&mut s, mode, seq, &req, ctx) {
            return;
        }
        seq += 1 << 20; // a different number per response, even across connections
    }
}

/// Answers one request; false when the connection is finished with.
fn respond(s: &mut TcpStream, mode: Mode, seq: u64, req: &Request, ctx: &Ctx) -> bool {
    match mode {
        Mode::CloseOnAccept | Mode::ResetOnAccept | Mode::CloseAfterRequest => false,
        Mode::CloseMidStatus => last(s, b"HTTP/1.1 20"),
        Mode::CloseMidHeaders => last(s, b"HTTP/1.1 200 OK\r\ncontent-type: applic"),
        Mode::CloseMidBody => last(s, b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"partial\":"),
        Mode::ResetMidBody => {
            put(s, b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n{\"partial\":");
            std::thread::sleep(Duration::from_millis(20));
            reset(s.try_clone().unwrap());
            false
        }
        Mode::StallHeaders => hold(s, ctx),
        Mode::StallBody => put(s, b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"partial\":") && hold(s, ctx),
        Mode::Slowloris => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
            for b in head.iter().chain(std::iter::repeat(&b'a')) {
                if ctx.stopped() || !put(s, &[*b]) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        }
        Mode::EndlessSse => {
            put(s, SSE_HEAD.as_bytes());
            while !ctx.stopped() && chunk(s, &sse_token("m", "tok")) {
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        }
        Mode::Storm5xx => {
            let status =
                ["500 Internal Server Error", "502 Bad Gateway", "503 Service Unavailable"][(seq % 3) as usize];
            simple(s, status, &[], "{\"error\":\"storm\"}")
        }
        Mode::RetryAfter(v) => simple(s, "429 Too Many Requests", &[("retry-after", v)], "{\"error\":\"slow down\"}"),
        Mode::RetryAfterMs(v) => {
            simple(s, "429 Too Many Requests", &[("retry-after-ms", v)], "{\"error\":\"slow down\"}")
        }
        Mode::Unauthorized => simple(s, "401 Unauthorized", &[], "{\"error\":{\"message\":\"invalid api key\"}}"),
        Mode::UnknownModel => simple(
            s,
            "400 Bad Request",
            &[],
            "{\"error\":{\"message\":\"The model `gpt-nope` does not exist\",\"code\":\"model_not_found\"}}",
        ),
        Mode::GarbageStatus => last(s, b"HTTPX/9.9 banana split\r\n\r\nhello"),
        Mode::InvalidHeader => last(s, b"HTTP/1.1 200 OK\r\nthis line has no colon\r\ncontent-length: 2\r\n\r\n{}"),
        Mode::BadChunkSize => last(s, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        Mode::HugeSseLine => {
            if !put(s, SSE_HEAD.as_bytes()) || !chunk(s, b"data: {\"pad\":\"") {
                return false;
            }
            let block = vec![b'x'; 64 << 10];
            for _ in 0..257 {
                if ctx.stopped() || !chunk(s, &block) {
                    return false;
                }
            }
            chunk(s, b"\"}\n\n") && chunk(s, b"data: [DONE]\n\n") && put(s, b"0\r\n\r\n")
        }
        Mode::SseNoDataPrefix => {
            let body = sse_body("m", "\n").replace("data: ", "");
            sse(s, body.as_bytes())
        }
        Mode::SseInvalidJson => sse(s, b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}\n\ndata: [DONE]\n\n"),
        Mode::SseMissingDone => {
            let body = sse_body("m", "\n").replace("data: [DONE]\n\n", "");
            sse(s, body.as_bytes())
        }
        Mode::SseDoneTwice => {
            let body =
                format!("{}data: [DONE]\n\n{}", sse_body("m", "\n"), String::from_utf8_lossy(&sse_token("m", "after")));
            sse(s, body.as_bytes())
        }
        Mode::SseLineEnd(eol) => sse(s, sse_body("m", eol).as_bytes()),
        Mode::SseOddSplits => {
            let body = sse_body("m", "\n");
            let mut wire = SSE_HEAD.as_bytes().to_vec();
            for piece in body.as_bytes().chunks(7) {
                wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut rest = &wire[..];
            let mut n = 0usize;
            while !rest.is_empty() {
                let take = (1 + n % 3).min(rest.len());
                if !put(s, &rest[..take]) {
                    return false;
                }
                rest = &rest[take..];
                n += 1;
                if n % 16 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            true
        }
        Mode::GigabyteBody => gigabyte(s, "200 OK", ctx),
        Mode::GigabyteErrorBody => gigabyte(s, "500 Internal Server Error", ctx),
        Mode::RedirectLoop => {
            let to = format!("{}?followed=1", req.path.split('?').next().unwrap_or("/"));
            simple(s, "302 Found", &[("location", &to)], "")
        }
        Mode::Gzip => {
            let body = gzip_stored(&completion("m", "hi"));
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            put(s, head.as_bytes()) && put(s, &body)
        }
        Mode::EchoSecrets => {
            let secret = &req.bearer;
            match seq % 4 {
                0 => simple(s, "200 OK", &[], &completion(secret, "hi")),
                1 => simple(s, "500 Internal Server Error", &[], &format!("invalid key {}", secret.to_uppercase())),
                2 => {
                    let escaped: String = secret.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
                    simple(s, "500 Internal Server Error", &[], &format!("{{\"error\":\"bad key {escaped}\"}}"))
                }
                _ => {
                    // The secret straddles the 200-character excerpt limit.
                    let pad = "p".repeat(200 - secret.len() / 2);
                    simple(s, "500 Internal Server Error", &[], &format!("{pad}{secret}"))
                }
            }
        }
        Mode::NewModelEachResponse => {
            let model = format!("model-{seq:016x}-{}", "z".repeat(200));
            simple(s, "200 OK", &[], &completion(&model, "hi"))
        }
        Mode::Ansi => {
            if seq % 2 == 0 {
                simple(s, "200 OK", &[], &completion("\u{1b}[31mevil\u{1b}[0m\u{7}", "hi"))
            } else {
                simple(s, "500 Internal Server Error", &[], "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}[31mboom\u{9b}1m")
            }
        }
        Mode::HugeHeaders => {
            if !put(s, b"HTTP/1.1 200 OK\r\n") {
                return false;
            }
            let line = format!("x-pad: {}\r\n", "h".repeat(1000));
            for _ in 0..2048 {
                if !put(s, line.as_bytes()) {
                    return false;
                }
            }
            last(s, b"content-length: 2\r\n\r\n{}")
        }
        Mode::AbsurdContentLength => {
            last(s, b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999999\r\n\r\n{}")
        }
    }
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn sse_token(model: &str, text: &str) -> Vec<u8> {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":null}}]}}\n\n"
    )
    .into_bytes()
}

/// A complete, valid completion stream with `eol` as every line ending.
fn sse_body(model: &str, eol: &str) -> String {
    let mut b = String::new();
    for t in ["Hel", "lo"] {
        b.push_str(&String::from_utf8(sse_token(model, t)).unwrap());
    }
    b.push_str(&format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}}}\n\n"
    ));
    b.push_str("data: [DONE]\n\n");
    b.replace('\n', eol)
}

fn completion(model: &str, text: &str) -> String {
    let model = serde_json::to_string(model).unwrap();
    format!(
        "{{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":{model},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}}}"
    )
}

/// A whole event-stream response in one chunk, then the terminating chunk.
fn sse(s: &mut TcpStream, body: &[u8]) -> bool {
    put(s, SSE_HEAD.as_bytes()) && chunk(s, body) && put(s, b"0\r\n\r\n")
}

fn simple(s: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) -> bool {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    put(s, head.as_bytes()) && put(s, body.as_bytes())
}

/// 1 GiB announced and sent in 64 KiB writes of one reused buffer, until the client stops reading.
fn gigabyte(s: &mut TcpStream, status: &str, ctx: &Ctx) -> bool {
    const TOTAL: usize = 1 << 30;
    let head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {TOTAL}\r\n\r\n");
    if !put(s, head.as_bytes()) || !put(s, b"{\"pad\":\"") {
        return false;
    }
    let block = vec![b'x'; 64 << 10];
    let mut left = TOTAL - 8;
    while left > 0 {
        let n = left.min(block.len());
        if ctx.stopped() || !put(s, &block[..n]) {
            return false;
        }
        left -= n;
    }
    true
}

fn chunk(s: &mut TcpStream, data: &[u8]) -> bool {
    put(s, format!("{:x}\r\n", data.len()).as_bytes()) && put(s, data) && put(s, b"\r\n")
}

/// Sends the last bytes of a connection, which then closes.
fn last(s: &mut TcpStream, data: &[u8]) -> bool {
    put(s, data);
    false
}

fn put(s: &mut TcpStream, data: &[u8]) -> bool {
    s.write_all(data).and_then(|_| s.flush()).is_ok()
}

/// Sends nothing until the client closes or the server stops (at most a minute).
fn hold(s: &mut TcpStream, ctx: &Ctx) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !ctx.stopped() && start.elapsed() < Duration::from_secs(60) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut | IoKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    false
}

/// Closes with SO_LINGER 0, which makes the kernel send RST instead of FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a correctly sized `linger` value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// Reads one request head (and its content-length body); None when the client is gone or the server stops.
fn read_request(s: &mut TcpStream, ctx: &Ctx) -> Option<Request> {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if ctx.stopped() || buf.len() > 1 << 20 {
            return None;
        }
        match s.read(&mut tmp) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut | IoKind::Interrupted) => {}
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let bearer = header("authorization").map(|v| v.trim_start_matches("Bearer ").to_string()).unwrap_or_default();
    let mut have = buf.len() - head_end;
    while have < length {
        match s.read(&mut tmp) {
            Ok(0) => return None,
            Ok(n) => have += n,
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut | IoKind::Interrupted) => {
                if ctx.stopped() {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    Some(Request { path, bearer })
}

/// A gzip member holding `text` in one stored (uncompressed) deflate block: valid gzip without a compressor.
fn gzip_stored(text: &str) -> Vec<u8> {
    let data = text.as_bytes();
    let len = data.len() as u16;
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
