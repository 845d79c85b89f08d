//! The last response head of a connection, kept to recognize the next one when it is the same bytes. A server
//! answering static content sends one head for every response of a second (only `date` moves), and parsing it
//! again was a fifth of a tiny GET's instructions. The same bytes parse the same: httparse reads nothing past
//! the head's end, and what `head::parse` makes of it depends on those bytes and on whether the request was a
//! HEAD, which is kept with it.

use httparse::Header;

use super::head::{Head, Meta};

/// Heads longer than this, or with more headers than [`MAX_FIELDS`], are not kept: what a connection keeps
/// stays small whatever the server sends.
const MAX_BYTES: usize = 512;
pub(super) const MAX_FIELDS: usize = 16;
/// A connection whose heads differ this many times in a row (a request id, a per-response header) stops
/// keeping them: the copy would be paid for nothing.
const GIVE_UP: u8 = 16;

#[derive(Default)]
pub(super) struct Memo {
    /// The head's bytes, valid UTF-8 (a head with other bytes in a value is not kept).
    bytes: Vec<u8>,
    /// What it parsed to, and whether it answered a HEAD request; `None` when nothing is kept.
    meta: Option<(Meta, bool)>,
    /// Each header's name and value as byte ranges of `bytes`.
    fields: Vec<[u16; 4]>,
    misses: u8,
}

impl Memo {
    /// When `buf` opens with the kept head and the request is of the same kind: the head's length, and the
    /// head itself with its headers in `out`, borrowed from `buf` as a parse would have left them.
    pub(super) fn recall<'b>(
        &self,
        buf: &'b [u8],
        head_request: bool,
        out: &'b mut [Header<'b>; MAX_FIELDS],
    ) -> Option<(usize, Head<'b>)> {
        let (meta, kind) = self.meta?;
        if kind != head_request || !buf.starts_with(&self.bytes) {
            return None;
        }
        // One check of the whole head, where checking each name was as dear as the rest of the recall.
        let text = std::str::from_utf8(buf.get(..self.bytes.len())?).ok()?;
        for (slot, &[name, name_end, value, value_end]) in out.iter_mut().zip(&self.fields) {
            slot.name = text.get(usize::from(name)..usize::from(name_end))?;
            slot.value = buf.get(usize::from(value)..usize::from(value_end))?;
        }
        Some((self.bytes.len(), Head { meta, headers: out.get(..self.fields.len())? }))
    }

    /// After a head of `n` bytes was parsed from `buf` (it was not the kept one): keep it instead.
    pub(super) fn keep(&mut self, buf: &[u8], n: usize, head: &Head<'_>, head_request: bool) {
        self.meta = None;
        self.misses = self.misses.saturating_add(1);
        if self.misses > GIVE_UP {
            self.bytes = Vec::new();
            self.fields = Vec::new();
            return;
        }
        let Some(bytes) = buf.get(..n).filter(|b| b.len() <= MAX_BYTES && std::str::from_utf8(b).is_ok()) else {
            return;
        };
        if head.headers.len() > MAX_FIELDS {
            return;
        }
        // Where each header lies in the head; all of them do, as httparse borrowed them from it.
        let base = buf.as_ptr() as usize;
        let at = |s: &[u8]| -> Option<[u16; 2]> {
            let start = (s.as_ptr() as usize).checked_sub(base)?;
            let end = start.checked_add(s.len()).filter(|&e| e <= n)?;
            Some([u16::try_from(start).ok()?, u16::try_from(end).ok()?])
        };
        self.fields.clear();
        for h in head.headers {
            let (Some([name, name_end]), Some([value, value_end])) = (at(h.name.as_bytes()), at(h.value)) else {
                return;
            };
            self.fields.push([name, name_end, value, value_end]);
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.meta = Some((head.meta, head_request));
    }

    /// The head at the start of the buffer was the kept one.
    pub(super) fn hit(&mut self) {
        self.misses = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use super::*;
    use crate::client::h1::head::{self, Framing, MAX_HEADERS};

    /// What a head reads as: length, status, framing, keep-alive, and its headers in order.
    type Reading = (usize, u16, Framing, bool, Vec<(String, Vec<u8>)>);

    fn reading(n: usize, h: &Head<'_>) -> Reading {
        let fields = h.headers.iter().map(|f| (f.name.to_owned(), f.value.to_vec())).collect();
        (n, h.meta.status, h.meta.framing, h.meta.keep_alive, fields)
    }

    /// Reads the head at the start of `buf` as a connection does: recalled when it is the kept one (`true`),
    /// else parsed and kept.
    fn read(memo: &mut Memo, buf: &[u8], head_request: bool) -> (Reading, bool) {
        let mut recalled = [httparse::EMPTY_HEADER; MAX_FIELDS];
        if let Some((n, h)) = memo.recall(buf, head_request, &mut recalled) {
            memo.hit();
            return (reading(n, &h), true);
        }
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let (n, h) = head::parse(buf, &mut headers, head_request).unwrap().unwrap();
        memo.keep(buf, n, &h, head_request);
        (reading(n, &h), false)
    }

    fn parsed(buf: &[u8], head_request: bool) -> Reading {
        read(&mut Memo::default(), buf, head_request).0
    }

    const NGINX: &str = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 04 Dec 2026 18:49:14 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n";

    #[test]
    fn the_same_head_is_recalled_as_it_parses_and_another_is_parsed_and_kept() {
        let mut memo = Memo::default();
        let next_second = NGINX.replace("18:49:14", "18:49:15");
        for (head, recalled) in [(NGINX, false), (NGINX, true), (&next_second, false), (&next_second, true)] {
            // The body behind the head, and then some, as in a read buffer.
            let buf = format!("{head}okHTTP/1.1 200 OK\r\n");
            let (got, was) = read(&mut memo, buf.as_bytes(), false);
            assert_eq!(was, recalled, "{head}");
            assert_eq!(got, parsed(buf.as_bytes(), false));
            assert_eq!((got.0, got.2, got.4.len()), (head.len(), Framing::Length(2), 5));
        }
        // A HEAD request's answer has no body whatever the head says: the same bytes are not recalled for it.
        let (got, was) = read(&mut memo, next_second.as_bytes(), true);
        assert!(!was);
        assert_eq!(got.2, Framing::Empty);
        assert!(read(&mut memo, next_second.as_bytes(), true).1);
        assert!(!read(&mut memo, next_second.as_bytes(), false).1);
    }

    #[test]
    fn heads_that_differ_every_time_stop_being_kept() {
        let mut memo = Memo::default();
        let head = |i: u32| format!("HTTP/1.1 200 OK\r\nx-request-id: {i}\r\ncontent-length: 0\r\n\r\n");
        for i in 0..40 {
            assert!(!read(&mut memo, head(i).as_bytes(), false).1);
            assert_eq!(memo.meta.is_some(), i < u32::from(GIVE_UP), "{i}");
        }
        assert_eq!((memo.bytes.capacity(), memo.fields.capacity()), (0, 0));
        // Given up: not even a repeated head is kept any more.
        assert!(!read(&mut memo, head(1).as_bytes(), false).1);
        assert!(!read(&mut memo, head(1).as_bytes(), false).1);
        // A hit clears the count: a head that moves now and then (`date`) is kept for good.
        let mut memo = Memo::default();
        for i in 0..40 {
            assert!(!read(&mut memo, head(i).as_bytes(), false).1);
            assert!(read(&mut memo, head(i).as_bytes(), false).1, "{i}");
        }
    }

    #[test]
    fn large_heads_many_headers_and_bytes_beyond_utf8_are_not_kept() {
        let long = format!("HTTP/1.1 200 OK\r\nx-pad: {}\r\ncontent-length: 0\r\n\r\n", "a".repeat(MAX_BYTES));
        let many = format!("HTTP/1.1 200 OK\r\n{}content-length: 0\r\n\r\n", "x-a: 1\r\n".repeat(MAX_FIELDS));
        let latin1 = b"HTTP/1.1 200 OK\r\nx-name: caf\xe9\r\ncontent-length: 0\r\n\r\n".to_vec();
        for head in [long.into_bytes(), many.into_bytes(), latin1] {
            let mut memo = Memo::default();
            assert!(!read(&mut memo, &head, false).1);
            assert!(!read(&mut memo, &head, false).1, "{}", String::from_utf8_lossy(&head));
        }
    }
}
