//! HTTP/1.1 on one connection, run in the calling user's task: the request is written from a reused buffer,
//! the head is parsed by httparse in place, and the body is handed out as slices of the read buffer. No
//! connection task, no channel, no response `HeaderMap`: a user costs its socket, a few KiB of buffer and its
//! own future (hyper's client cost a spawned task, a oneshot per request and a header map per response).

mod frame;
mod head;
mod memo;
mod stream;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

pub(super) use frame::{Decoder, FrameError};
pub use head::Head;
pub(super) use head::{Framing, HeadError, Meta};
pub(super) use stream::Stream;

/// The read buffer a connection starts with and returns to after a response that needed more.
const READ_BUF: usize = 4 << 10;
/// Largest read buffer a body grows it to (reads of a large body then take fewer syscalls).
const MAX_READ_BUF: usize = 64 << 10;

pub(super) struct Conn {
    io: Stream,
    /// Bytes `pos..len()` are read but not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// Reads so far: an exchange whose body needed none after its head reuses the head's clock read.
    reads: u32,
    /// The last head, to recognize the next when it is the same bytes.
    memo: memo::Memo,
}

impl Conn {
    pub(super) fn new(io: Stream) -> Conn {
        Conn { io, buf: Vec::with_capacity(READ_BUF), pos: 0, reads: 0, memo: memo::Memo::default() }
    }

    pub(super) fn reads(&self) -> u32 {
        self.reads
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` unread bytes as used. They stay in place until the next read, so a frame handed out as a range
    /// stays valid until then.
    fn consume(&mut self, n: usize) -> Range<usize> {
        let start = self.pos;
        self.pos += n;
        start..self.pos
    }

    pub(super) fn slice(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Reads more bytes behind the unread ones; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.len() == self.buf.capacity() {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            } else {
                // Only a head (or a chunk-size line) larger than the buffer gets here; both are bounded.
                self.buf.reserve(self.buf.capacity().max(READ_BUF));
            }
        }
        self.reads = self.reads.wrapping_add(1);
        let room = self.buf.capacity() - self.buf.len();
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == room && self.buf.capacity() < MAX_READ_BUF {
            self.buf.reserve(self.buf.capacity());
        }
        Ok(n)
    }

    /// Whether the connection can carry another request: nothing unread, and the peer has neither closed it
    /// nor sent anything unasked (checked without waiting, as hyper's `ready()` did).
    pub(super) async fn reusable(&mut self) -> bool {
        if self.pos != self.buf.len() {
            return false;
        }
        if let Stream::Plain(s) = &self.io {
            // Reads only if the socket is marked readable (a close or bytes unasked): on a quiet connection, no
            // syscall and no waker registered, which the poll below costs.
            let mut one = [0u8; 1];
            return matches!(s.try_read(&mut one), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        }
        poll_fn(|cx| {
            let mut one = [0u8; 1];
            let mut rb = ReadBuf::new(&mut one);
            Poll::Ready(matches!(Pin::new(&mut self.io).poll_read(cx, &mut rb), Poll::Pending))
        })
        .await
    }

    /// After an exchange: a buffer grown by a large head or body goes back to its usual size.
    pub(super) fn settle(&mut self) {
        if self.buf.capacity() > READ_BUF && self.pos == self.buf.len() {
            self.buf = Vec::with_capacity(READ_BUF);
            self.pos = 0;
        }
    }

    /// Writes the serialized head and the body: one plain write when there is no separate body (the caller
    /// puts a small one in the head's buffer), else one vectored write, so a large body is not copied.
    pub(super) async fn send(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut off = 0;
        while off < head.len() + body.len() {
            let n = match head.get(off..) {
                // A request without a body is one plain write: cheaper in the kernel than a vectored one.
                Some(h) if !h.is_empty() && body.is_empty() => self.io.write(h).await?,
                Some(h) if !h.is_empty() => self.io.write_vectored(&[IoSlice::new(h), IoSlice::new(body)]).await?,
                _ => self.io.write(&body[off - head.len()..]).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            off += n;
        }
        self.io.flush().await
    }

    /// Reads the final response head (1xx interim responses are skipped) and hands it to `on_head` while its
    /// headers are still borrowed from the read buffer.
    pub(super) async fn read_head<R>(
        &mut self,
        head_request: bool,
        mut on_head: impl FnMut(&Head<'_>) -> R,
    ) -> Result<(Meta, R), HeadError> {
        loop {
            if let Some(done) = self.try_head(head_request, &mut on_head)? {
                return Ok(done);
            }
            match self.fill().await {
                Ok(0) => return Err(HeadError::Closed),
                Ok(_) => {}
                Err(e) => return Err(HeadError::Io(e)),
            }
        }
    }

    fn try_head<R>(
        &mut self,
        head_request: bool,
        on_head: &mut impl FnMut(&Head<'_>) -> R,
    ) -> Result<Option<(Meta, R)>, HeadError> {
        loop {
            // Asked first on an empty buffer (before the response is read): nothing to parse yet.
            if self.pos == self.buf.len() {
                return Ok(None);
            }
            let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; head::MAX_HEADERS];
            let mut recalled = [httparse::EMPTY_HEADER; memo::MAX_FIELDS];
            let unread = &self.buf[self.pos..];
            let (n, head) = match self.memo.recall(unread, head_request, &mut recalled) {
                Some(known) => {
                    self.memo.hit();
                    known
                }
                None => {
                    let Some((n, head)) = head::parse(unread, &mut headers, head_request)? else {
                        return Ok(None);
                    };
                    if !head.interim() {
                        self.memo.keep(unread, n, &head, head_request);
                    }
                    (n, head)
                }
            };
            if head.interim() {
                self.consume(n);
                continue;
            }
            let r = on_head(&head);
            let meta = head.meta;
            self.consume(n);
            return Ok(Some((meta, r)));
        }
    }

    /// The next piece of the body as a range of the read buffer ([`Conn::slice`]), or `None` at its end.
    pub(super) async fn frame(&mut self, d: &mut Decoder) -> Result<Option<Range<usize>>, FrameError> {
        loop {
            match d.step(self.unread())? {
                frame::Step::Data(n) => return Ok(Some(self.consume(n))),
                frame::Step::Skip(n) => {
                    self.consume(n);
                }
                frame::Step::End => return Ok(None),
                frame::Step::More => match self.fill().await {
                    Ok(0) if d.ends_at_close() => {
                        d.finish();
                        return Ok(None);
                    }
                    Ok(0) => return Err(FrameError::Closed),
                    Ok(_) => {}
                    Err(e) => return Err(FrameError::Io(e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::client::{ClientFactory, Reading};

    /// A body far larger than a socket write goes out whole behind its head (vectored writes resumed where the
    /// kernel stopped), and a second request on the same client is answered as well.
    #[tokio::test]
    async fn a_large_request_body_is_sent_whole() {
        let mock = crate::mock::spawn(crate::mock::MockConfig::default(), ([127, 0, 0, 1], 0).into()).unwrap();
        let factory = ClientFactory::new(&mock.base_url(), false, Duration::from_secs(1)).unwrap();
        let mut client = factory.build();
        let body: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut buf = Vec::new();
        for _ in 0..2 {
            buf.clear();
            let req = http::Request::post("/v1/echo")
                .header(http::header::HOST, factory.host_header().clone())
                .body(Bytes::from(body.clone()))
                .unwrap();
            let reading = Reading { buf: Some(&mut buf), keep: true, max_body: 2 << 20, ..Default::default() };
            let ex = client.exchange(&req, Duration::from_secs(10), reading).await.unwrap();
            assert_eq!(ex.status, 200);
            assert!(buf == body, "echoed {} bytes", buf.len());
        }
        mock.shutdown();
    }
}
