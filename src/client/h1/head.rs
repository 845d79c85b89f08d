//! The response head: parsed by httparse into a stack array, then read for what the exchange needs (status,
//! body framing per RFC 9112 §6.3, keep-alive). Limits and their classification follow hyper 1.x, which this
//! replaces: more than 100 headers, or a head over ~400 KiB, is a protocol error.

use std::io;
use std::mem::MaybeUninit;

use httparse::{Header, Status};

/// hyper's `DEFAULT_MAX_HEADERS`.
pub(super) const MAX_HEADERS: usize = 100;
/// hyper's `DEFAULT_MAX_BUFFER_SIZE`: a head that does not fit is refused.
const MAX_HEAD: usize = 8192 + 4096 * 100;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::client) enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or `content-length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// Read until the server closes; the connection cannot be reused.
    Close,
}

/// What of a head outlives the read buffer it was parsed from.
#[derive(Debug, Clone, Copy)]
pub(in crate::client) struct Meta {
    pub status: u16,
    pub framing: Framing,
    /// The server allows another request on this connection.
    pub keep_alive: bool,
    /// The first `content-encoding` is other than `identity`.
    pub encoded: bool,
}

/// A response head as parsed, its headers borrowed from the read buffer: what a [`BodySink`] is shown before
/// the body (no header map is built for it).
///
/// [`BodySink`]: crate::client::BodySink
pub struct Head<'a> {
    pub(in crate::client) meta: Meta,
    pub(in crate::client) headers: &'a [Header<'a>],
}

impl<'a> Head<'a> {
    pub fn status(&self) -> u16 {
        self.meta.status
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    /// The coding the body was sent in, other than `identity` (allocated only when a server sends one).
    pub(in crate::client) fn encoding(&self) -> Option<String> {
        if !self.meta.encoded {
            return None;
        }
        Some(String::from_utf8_lossy(self.get("content-encoding")?).into_owned())
    }

    /// A 1xx other than 101: an interim response, skipped.
    pub(super) fn interim(&self) -> bool {
        (100..200).contains(&self.meta.status) && self.meta.status != 101
    }
}

#[derive(Debug)]
pub(in crate::client) enum HeadError {
    /// Bytes that are not an HTTP/1.1 response head.
    Invalid(String),
    /// The connection ended before the head did.
    Closed,
    Io(io::Error),
}

/// Parses a complete head at the start of `buf`: `None` while it is incomplete.
pub(super) fn parse<'b>(
    buf: &'b [u8],
    headers: &'b mut [MaybeUninit<Header<'b>>; MAX_HEADERS],
    head_request: bool,
) -> Result<Option<(usize, Head<'b>)>, HeadError> {
    // Uninitialised slots: a head is parsed once per response, and zeroing 100 slots each time cost more than
    // parsing a small head.
    let mut resp = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, headers) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() > MAX_HEAD => return Err(too_large()),
        Ok(Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Invalid(format!("invalid HTTP response head: {e}"))),
    };
    if n > MAX_HEAD {
        return Err(too_large());
    }
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let headers: &'b [Header<'b>] = resp.headers;
    let meta = meta(status, http10, headers, head_request)?;
    Ok(Some((n, Head { meta, headers })))
}

fn too_large() -> HeadError {
    HeadError::Invalid("message head is too large".into())
}

/// Body framing (RFC 9112 §6.3) and keep-alive from the head.
fn meta(status: u16, http10: bool, headers: &[Header<'_>], head_request: bool) -> Result<Meta, HeadError> {
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let (mut close, mut keep) = (false, false);
    let mut encoded = None;
    for h in headers {
        let name = h.name.as_bytes();
        // Most headers are passed over on their length alone.
        match name.len() {
            17 if folds_to(name, b"transfer-encoding") => {
                // Only the last coding decides: `gzip, chunked` is chunked, `chunked, gzip` is read to close.
                let last = tokens(h.value).last().unwrap_or(b"");
                chunked = Some(folds_to(last, b"chunked"));
            }
            14 if folds_to(name, b"content-length") => {
                for t in tokens(h.value) {
                    let n = content_length(t)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HeadError::Invalid("conflicting content-length headers".into()));
                    }
                    length = Some(n);
                }
            }
            10 if folds_to(name, b"connection") => {
                for t in tokens(h.value) {
                    close |= folds_to(t, b"close");
                    keep |= folds_to(t, b"keep-alive");
                }
            }
            16 if encoded.is_none() && folds_to(name, b"content-encoding") => {
                encoded = Some(!folds_to(h.value, b"identity"));
            }
            _ => {}
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    let keep_alive = (if http10 { keep } else { !close })
        && framing != Framing::Close
        && status != 101
        // Both headers: a smuggling hint; the length is ignored and the connection not trusted again.
        && !(chunked.is_some() && length.is_some());
    Ok(Meta { status, framing, keep_alive, encoded: encoded.unwrap_or(false) })
}

/// `b` is `lower` (lowercase letters and dashes) in any ASCII case. OR-ing 0x20 folds case exactly for such
/// a target: the one other byte it maps onto a letter is that letter's capital, and onto a dash, CR, which
/// httparse lets into no name or value. Branch-free, unlike `eq_ignore_ascii_case`, which was a tenth of the
/// client's instructions per request on a small response.
fn folds_to(b: &[u8], lower: &[u8]) -> bool {
    b.len() == lower.len() && b.iter().zip(lower).fold(0, |d, (&x, &l)| d | ((x | 0x20) ^ l)) == 0
}

/// The comma-separated, trimmed, non-empty items of a header value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

fn content_length(t: &[u8]) -> Result<u64, HeadError> {
    let invalid = || HeadError::Invalid("invalid content-length header".into());
    if !t.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    t.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0'))).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8], head_request: bool) -> Result<Option<Meta>, HeadError> {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        Ok(parse(raw, &mut headers, head_request)?.map(|(_, h)| h.meta))
    }

    fn framing(raw: &str) -> (Framing, bool) {
        let m = head(raw.as_bytes(), false).unwrap().unwrap();
        (m.framing, m.keep_alive)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"), (Framing::Length(5), true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n"), (Framing::Length(5), true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"), (Framing::Chunked, true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"), (Framing::Close, false));
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), (Framing::Close, false));
        assert_eq!(framing("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"), (Framing::Empty, true));
        assert_eq!(framing("HTTP/1.1 304 Not Modified\r\n\r\n"), (Framing::Empty, true));
        assert!(!framing("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n").1);
        assert!(!framing("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").1);
        assert!(framing("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n").1);
        let both = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(framing(both), (Framing::Chunked, false));
        let m = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).unwrap().unwrap();
        assert_eq!(m.framing, Framing::Empty, "a HEAD response has no body");
    }

    #[test]
    fn names_and_tokens_match_in_any_case_and_nothing_else() {
        assert_eq!(framing("HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 5\r\n\r\n"), (Framing::Length(5), true));
        assert_eq!(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"), (Framing::Chunked, true));
        assert!(!framing("HTTP/1.1 200 OK\r\nConnection: CLOSE\r\ncontent-length: 1\r\n\r\n").1);
        // Same length, one byte off: not the header.
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent_length: 5\r\n\r\n"), (Framing::Close, false));
        assert_eq!(framing("HTTP/1.1 200 OK\r\ncontent-lengtH: 5\r\n\r\n"), (Framing::Length(5), true));
        assert!(folds_to(b"Content-Length", b"content-length") && !folds_to(b"content-lengt", b"content-length"));
        // The one byte folding takes for a dash is CR, which httparse lets into no name.
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent\rlength: 5\r\n\r\n", false).is_err());
        let encoded = |raw: &str| head(raw.as_bytes(), false).unwrap().unwrap().encoded;
        assert!(encoded("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\ncontent-length: 1\r\n\r\n"));
        assert!(!encoded("HTTP/1.1 200 OK\r\ncontent-encoding: IDENTITY\r\ncontent-length: 1\r\n\r\n"));
        assert!(!encoded("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n"));
        let first =
            "HTTP/1.1 200 OK\r\ncontent-encoding: identity\r\ncontent-encoding: br\r\ncontent-length: 1\r\n\r\n";
        assert!(!encoded(first), "the first content-encoding decides, as before");
    }

    #[test]
    fn bad_lengths_and_oversized_heads_are_invalid() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551616\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n",
        ] {
            assert!(matches!(head(raw.as_bytes(), false), Err(HeadError::Invalid(_))), "{raw}");
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(head(&many, false), Err(HeadError::Invalid(_))), "101 headers");
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        assert!(matches!(head(&big, false), Err(HeadError::Invalid(_))), "an endless head");
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap().is_none(), "incomplete");
    }
}
