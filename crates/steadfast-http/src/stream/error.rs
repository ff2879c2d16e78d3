//! [`StreamError`]: why a streamed answer failed, classified, with what had been delivered.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast::classify::ClassifyError;
use steadfast::{BoxError, Outcome};

use crate::reason;

/// How much of an in-band error's payload is kept: the provider's own words, enough for a log
/// line, never a whole body.
const SHOWN: usize = 512;

/// What a stream had delivered when it ended or failed: bytes, and for server-sent events the
/// events completed (ended by their blank line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Data bytes received from the agent and handed on.
    pub bytes: u64,
    /// Complete SSE events among them (`0` when the body is not scanned as SSE).
    pub events: u64,
}

/// What went wrong with a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// No data byte within the first-byte deadline.
    FirstByteTimeout,
    /// Silence longer than the idle timeout after the stream had started.
    Stalled,
    /// The stream's total deadline passed.
    DeadlineExceeded,
    /// The agent sent an error event in the stream (OpenAI's `error` object, Anthropic's
    /// `event: error`).
    InBand,
    /// The body failed (connection reset, closed early, ...): see `source()`.
    Body,
}

/// A streamed answer failed: what happened, what it means for the agent ([`outcome`]), and
/// how much had been delivered ([`delivered`]).
///
/// Before the first byte (a [`StreamGuard`](super::StreamGuard) returns it as the call's error)
/// it is an ordinary failure: retry and fallback act on it. After the first byte the body
/// returns it from `poll_frame`: the caller has the bytes of [`delivered`] and nothing was
/// restarted. It classifies itself ([`ClassifyError`]) as [`outcome`] says.
///
/// [`outcome`]: Self::outcome
/// [`delivered`]: Self::delivered
#[derive(Debug)]
pub struct StreamError {
    kind: StreamErrorKind,
    outcome: Outcome,
    delivered: Delivered,
    waited: Option<Duration>,
    agent: Option<Arc<str>>,
    detail: Option<String>,
    source: Option<BoxError>,
}

impl StreamError {
    pub(crate) fn new(kind: StreamErrorKind, outcome: Outcome, delivered: Delivered) -> Self {
        StreamError {
            kind,
            outcome,
            delivered,
            waited: None,
            agent: None,
            detail: None,
            source: None,
        }
    }

    pub(crate) fn timeout(kind: StreamErrorKind, delivered: Delivered, waited: Duration) -> Self {
        let reason = match kind {
            StreamErrorKind::FirstByteTimeout => reason::FIRST_BYTE_TIMEOUT,
            StreamErrorKind::Stalled => reason::STREAM_STALLED,
            _ => reason::STREAM_DEADLINE,
        };
        let mut error = StreamError::new(kind, Outcome::transient(reason), delivered);
        error.waited = Some(waited);
        error
    }

    pub(crate) fn body(source: BoxError, delivered: Delivered) -> Self {
        let outcome = crate::classify_error(source.as_ref());
        let mut error = StreamError::new(StreamErrorKind::Body, outcome, delivered);
        error.source = Some(source);
        error
    }

    pub(crate) fn in_band(outcome: Outcome, payload: &[u8], delivered: Delivered) -> Self {
        let mut error = StreamError::new(StreamErrorKind::InBand, outcome, delivered);
        let shown = &payload[..payload.len().min(SHOWN)];
        error.detail = Some(String::from_utf8_lossy(shown).into_owned());
        error
    }

    pub(crate) fn for_agent(mut self, agent: Option<&Arc<str>>) -> Self {
        self.agent = agent.cloned();
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> StreamErrorKind {
        self.kind
    }

    /// What it means for the agent (the same vocabulary as every other failure).
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// What had been delivered when it failed.
    pub fn delivered(&self) -> Delivered {
        self.delivered
    }

    /// Whether the caller had already been handed bytes of this stream (the failure is
    /// mid-stream and nothing may restart it silently).
    pub fn is_mid_stream(&self) -> bool {
        self.delivered.bytes > 0
    }

    /// The agent's name, when the stream was guarded by a layer that knows it.
    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    /// The error event's payload (at most 512 bytes of it), for an in-band error.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.agent {
            Some(agent) => write!(f, "stream from agent `{agent}` failed")?,
            None => f.write_str("stream failed")?,
        }
        if self.delivered.bytes == 0 {
            f.write_str(" before its first byte")?;
        } else {
            write!(
                f,
                " after {} bytes ({} complete events) were delivered",
                self.delivered.bytes, self.delivered.events
            )?;
        }
        let waited = self.waited.map_or(0.0, |waited| waited.as_secs_f64());
        match self.kind {
            StreamErrorKind::FirstByteTimeout => write!(
                f,
                ": no data within the first-byte deadline ({waited:.3}s); the agent may be overloaded or the deadline too short for this model"
            ),
            StreamErrorKind::Stalled => write!(
                f,
                ": no data for {waited:.3}s (the idle timeout); the connection is stuck"
            ),
            StreamErrorKind::DeadlineExceeded => {
                write!(f, ": still running at its total deadline ({waited:.3}s)")
            }
            StreamErrorKind::InBand => write!(
                f,
                ": the agent sent an error event ({}): {}",
                self.outcome,
                self.detail.as_deref().unwrap_or("")
            ),
            StreamErrorKind::Body => write!(f, ": the body failed ({})", self.outcome),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl ClassifyError for StreamError {
    fn outcome(&self) -> Outcome {
        self.outcome
    }
}
