//! Body framing: a content-length count, chunked decoding (sizes by httparse, trailers skipped within a bound)
//! or everything until the server closes. Pure over the unread bytes, so the connection feeds it and hands the
//! data out as slices of its read buffer.

use std::io;

use httparse::Status;

use super::head::Framing;

/// Longest chunk-size line (extensions included) and longest trailer section accepted.
const MAX_CHUNK_LINE: usize = 4 << 10;
const MAX_TRAILERS: usize = 16 << 10;

#[derive(Debug)]
pub(in crate::client) enum FrameError {
    /// Bytes that are not a valid body encoding (a bad chunk size, a missing CRLF, endless trailers).
    Invalid(&'static str),
    /// The connection ended before the body did.
    Closed,
    Io(io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers(usize),
    Close,
    Done,
}

/// What the decoder makes of the unread bytes.
pub(super) enum Step {
    /// The first `n` bytes are body data.
    Data(usize),
    /// The first `n` bytes are framing.
    Skip(usize),
    /// More bytes are needed.
    More,
    End,
}

#[derive(Debug)]
pub(in crate::client) struct Decoder {
    state: State,
}

impl Decoder {
    pub(in crate::client) fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Decoder { state }
    }

    pub(super) fn ends_at_close(&self) -> bool {
        self.state == State::Close
    }

    pub(super) fn finish(&mut self) {
        self.state = State::Done;
    }

    pub(super) fn step(&mut self, buf: &[u8]) -> Result<Step, FrameError> {
        let avail = buf.len() as u64;
        Ok(match self.state {
            State::Done | State::Length(0) => {
                self.state = State::Done;
                Step::End
            }
            _ if buf.is_empty() => Step::More,
            State::Length(n) => {
                let take = n.min(avail);
                self.state = State::Length(n - take);
                Step::Data(take as usize)
            }
            State::ChunkData(n) => {
                let take = n.min(avail);
                self.state = if take == n { State::ChunkEnd } else { State::ChunkData(n - take) };
                Step::Data(take as usize)
            }
            State::Close => Step::Data(buf.len()),
            State::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(Status::Complete((used, size))) => {
                    self.state = if size == 0 { State::Trailers(0) } else { State::ChunkData(size) };
                    Step::Skip(used)
                }
                Ok(Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    return Err(FrameError::Invalid("chunk size line too long"));
                }
                Ok(Status::Partial) => Step::More,
                Err(_) => return Err(FrameError::Invalid("invalid chunk size line")),
            },
            State::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Step::Skip(2)
                }
                [b'\r'] => Step::More,
                _ => return Err(FrameError::Invalid("invalid chunk body: no CRLF after the data")),
            },
            State::Trailers(seen) => match buf.iter().position(|&b| b == b'\n') {
                // An empty line ends the trailer section (and the body).
                Some(i) if buf[..i].trim_ascii().is_empty() => {
                    self.state = State::Done;
                    Step::Skip(i + 1)
                }
                Some(i) if seen + i < MAX_TRAILERS => {
                    self.state = State::Trailers(seen + i + 1);
                    Step::Skip(i + 1)
                }
                None if seen + buf.len() < MAX_TRAILERS => Step::More,
                _ => return Err(FrameError::Invalid("chunked trailers too large")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `raw` fed in pieces of `piece` bytes: the body, or the error.
    fn decode(framing: Framing, raw: &[u8], piece: usize) -> Result<(Vec<u8>, bool), FrameError> {
        let mut d = Decoder::new(framing);
        let (mut out, mut unread, mut fed) = (Vec::new(), Vec::new(), 0);
        loop {
            match d.step(&unread)? {
                Step::Data(n) => out.extend(unread.drain(..n)),
                Step::Skip(n) => drop(unread.drain(..n)),
                Step::End => return Ok((out, true)),
                Step::More if fed < raw.len() => {
                    let end = (fed + piece).min(raw.len());
                    unread.extend_from_slice(&raw[fed..end]);
                    fed = end;
                }
                Step::More => return Ok((out, false)),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_splits() {
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, 100] {
            let (body, ended) = decode(Framing::Chunked, raw, piece).unwrap();
            assert_eq!((body.as_slice(), ended), (&b"hello, world"[..], true), "pieces of {piece}");
        }
        let (body, ended) = decode(Framing::Length(4), b"abcdef", 3).unwrap();
        assert_eq!((body.as_slice(), ended), (&b"abcd"[..], true));
        let (body, ended) = decode(Framing::Chunked, b"5\r\nhel", 2).unwrap();
        assert_eq!((body.as_slice(), ended), (&b"hel"[..], false), "a cut body is not ended");
    }

    #[test]
    fn broken_chunking_is_invalid() {
        for raw in [&b"zz\r\nhello\r\n"[..], b"5\r\nhelloXX0\r\n\r\n", b"ffffffffffffffffff\r\n"] {
            assert!(matches!(decode(Framing::Chunked, raw, 4), Err(FrameError::Invalid(_))), "{raw:?}");
        }
        let mut endless = b"0\r\n".to_vec();
        endless.resize(MAX_TRAILERS * 2, b'a');
        assert!(matches!(decode(Framing::Chunked, &endless, 1000), Err(FrameError::Invalid(_))));
        let long_line = vec![b'1'; MAX_CHUNK_LINE + 10];
        assert!(matches!(decode(Framing::Chunked, &long_line, 1000), Err(FrameError::Invalid(_))));
    }
}
