//! The errors a [`DeadLetter`](super::DeadLetter) call returns after a final failure.

use std::fmt;

use crate::error::BoxError;

use super::id::DeadLetterId;
use super::sink::SinkError;

/// The call failed and its request is safely stored: the sink confirmed record `id` durable.
/// `source()` is the original error.
#[derive(Debug)]
pub struct DeadLettered {
    id: DeadLetterId,
    agent: std::sync::Arc<str>,
    source: BoxError,
}

impl DeadLettered {
    pub(crate) fn new(id: DeadLetterId, agent: std::sync::Arc<str>, source: BoxError) -> Self {
        DeadLettered { id, agent, source }
    }

    /// The stored record's id (replay or inspect it with `steadfast dlq show <id>`).
    pub fn id(&self) -> DeadLetterId {
        self.id
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The original error.
    pub fn original(&self) -> &BoxError {
        &self.source
    }

    /// Unwraps the original error.
    pub fn into_original(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for DeadLettered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "agent `{}` failed and the request was dead-lettered as {}: {}",
            self.agent, self.id, self.source
        )
    }
}

impl std::error::Error for DeadLettered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The call failed AND the request could not be dead-lettered: it is NOT stored anywhere. Holds
/// both errors; `source()` is the original error, [`sink_error`](Self::sink_error) says why
/// the sink refused.
#[derive(Debug)]
pub struct DeadLetterFailed {
    agent: std::sync::Arc<str>,
    source: BoxError,
    sink_error: SinkError,
}

impl DeadLetterFailed {
    pub(crate) fn new(agent: std::sync::Arc<str>, source: BoxError, sink_error: SinkError) -> Self {
        DeadLetterFailed {
            agent,
            source,
            sink_error,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The original error.
    pub fn original(&self) -> &BoxError {
        &self.source
    }

    /// Why the sink did not store the record.
    pub fn sink_error(&self) -> &SinkError {
        &self.sink_error
    }
}

impl fmt::Display for DeadLetterFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "agent `{}` failed ({}) and the request could NOT be dead-lettered ({}): it is lost unless the caller keeps it",
            self.agent, self.source, self.sink_error
        )
    }
}

impl std::error::Error for DeadLetterFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
