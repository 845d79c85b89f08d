//! Where a response body goes as it arrives: the `BodySink` seam between a transport and whatever reads the
//! body (an SSE parser in `llm`, or the plain sinks here), modelled on ripgrep's `Sink`. A transport feeds frames
//! in order and says when the body ended; it never learns what the sink makes of them.

use std::time::Instant;

use super::{Head, human_bytes};
use crate::metrics::ErrorKind;

/// Why a sink refused a body or stopped reading it: the failure recorded for the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Consumes the body of a response whose status the step expects.
pub trait BodySink {
    /// The kind of a failure to read this body at all (cut short, an encoding that was not asked for): a stream
    /// parser says `Stream`, so that a cut stream counts as one whatever the status.
    fn failure_kind(&self) -> ErrorKind {
        ErrorKind::Body
    }

    /// The head arrived: accept the body (and its size limit, `max_body`) or refuse it before any byte is read.
    fn begin(&mut self, head: &Head<'_>, max_body: usize) -> Result<(), SinkError>;

    /// The next frame. `sent` is when the request was sent: a sink that measures time reads the clock here, one
    /// that does not pays nothing for it.
    fn data(&mut self, chunk: &[u8], sent: Instant) -> Result<(), SinkError>;

    /// The body ended cleanly.
    fn end(&mut self) -> Result<(), SinkError>;
}

/// Never reads a body: the type of a `Reading` that has no sink of its own.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl BodySink for Discard {
    fn begin(&mut self, _: &Head<'_>, _: usize) -> Result<(), SinkError> {
        Ok(())
    }

    fn data(&mut self, _: &[u8], _: Instant) -> Result<(), SinkError> {
        Ok(())
    }

    fn end(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps the whole body in a caller's buffer, up to `max_body` bytes; a larger body fails the exchange.
#[derive(Debug)]
pub struct KeepBody<'a> {
    buf: &'a mut Vec<u8>,
    max_body: usize,
}

impl<'a> KeepBody<'a> {
    pub fn new(buf: &'a mut Vec<u8>, max_body: usize) -> Self {
        KeepBody { buf, max_body }
    }
}

impl BodySink for KeepBody<'_> {
    fn begin(&mut self, _: &Head<'_>, max_body: usize) -> Result<(), SinkError> {
        self.max_body = max_body;
        Ok(())
    }

    fn data(&mut self, chunk: &[u8], _: Instant) -> Result<(), SinkError> {
        if self.buf.len().saturating_add(chunk.len()) > self.max_body {
            let message = format!("body larger than max_body ({}): reading stopped", human_bytes(self.max_body));
            return Err(SinkError { kind: ErrorKind::Body, message });
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn end(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
