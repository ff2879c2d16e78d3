//! The errors a [`BackoffRetry`](super) returns when it stops retrying. Each keeps the last
//! attempt's error as its `source()`.

use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

/// Every allowed attempt failed.
#[derive(Debug)]
pub struct RetriesExhausted {
    agent: std::sync::Arc<str>,
    attempts: u32,
    last: BoxError,
}

impl RetriesExhausted {
    /// Builds the error.
    pub fn new(agent: impl Into<std::sync::Arc<str>>, attempts: u32, last: BoxError) -> Self {
        RetriesExhausted {
            agent: agent.into(),
            attempts,
            last,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn last(&self) -> &BoxError {
        &self.last
    }

    /// Unwraps the last attempt's error.
    pub fn into_last(self) -> BoxError {
        self.last
    }
}

impl fmt::Display for RetriesExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "agent `{}` failed after {} attempts; last error: {}",
            self.agent, self.attempts, self.last
        )
    }
}

impl std::error::Error for RetriesExhausted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.last.as_ref())
    }
}

/// The retry budget is spent: retrying now would multiply the load on a struggling agent.
#[derive(Debug)]
pub struct BudgetExhausted {
    agent: std::sync::Arc<str>,
    attempts: u32,
    last: BoxError,
}

impl BudgetExhausted {
    /// Builds the error.
    pub fn new(agent: impl Into<std::sync::Arc<str>>, attempts: u32, last: BoxError) -> Self {
        BudgetExhausted {
            agent: agent.into(),
            attempts,
            last,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Attempts made before the budget refused another.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn last(&self) -> &BoxError {
        &self.last
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry budget exhausted for agent `{}` after {} attempts; last error: {}",
            self.agent, self.attempts, self.last
        )
    }
}

impl std::error::Error for BudgetExhausted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.last.as_ref())
    }
}

/// The overall deadline passed, or the next wait would pass it.
#[derive(Debug)]
pub struct DeadlineExceeded {
    agent: std::sync::Arc<str>,
    attempts: u32,
    deadline: Duration,
    last: Option<BoxError>,
}

impl DeadlineExceeded {
    /// Builds the error.
    pub fn new(
        agent: impl Into<std::sync::Arc<str>>,
        attempts: u32,
        deadline: Duration,
        last: Option<BoxError>,
    ) -> Self {
        DeadlineExceeded {
            agent: agent.into(),
            attempts,
            deadline,
            last,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Attempts made within the deadline.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The deadline that was configured.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The last attempt's error, if an attempt completed.
    pub fn last(&self) -> Option<&BoxError> {
        self.last.as_ref()
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline of {:?} for agent `{}` exceeded after {} attempts",
            self.deadline, self.agent, self.attempts
        )?;
        if let Some(last) = &self.last {
            write!(f, "; last error: {last}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeadlineExceeded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// How many attempts the error says were made: the retry layer's errors know; anything else
/// (an error that never went through a retry layer) counts as one attempt.
pub fn attempts_of(error: &(dyn std::error::Error + 'static)) -> u32 {
    use crate::error::find;
    find::<RetriesExhausted>(error)
        .map(RetriesExhausted::attempts)
        .or_else(|| find::<BudgetExhausted>(error).map(BudgetExhausted::attempts))
        .or_else(|| find::<DeadlineExceeded>(error).map(DeadlineExceeded::attempts))
        .unwrap_or(1)
}

/// The retry layer's stops are agent faults: an outer retry must not multiply them (retrying a
/// retry layer that gave up is how amplification starts), and an outer fallback acts on them.
impl crate::classify::ClassifyError for RetriesExhausted {
    fn outcome(&self) -> crate::classify::Outcome {
        crate::classify::Outcome::agent_fault("retries exhausted")
    }
}

impl crate::classify::ClassifyError for BudgetExhausted {
    fn outcome(&self) -> crate::classify::Outcome {
        crate::classify::Outcome::agent_fault("retry budget exhausted")
    }
}

impl crate::classify::ClassifyError for DeadlineExceeded {
    fn outcome(&self) -> crate::classify::Outcome {
        crate::classify::Outcome::agent_fault("deadline exceeded")
    }
}

/// Registers the retry layer's errors as self-classifying (see [`crate::classify::register`]).
pub(crate) fn register() {
    crate::classify::register::<RetriesExhausted>();
    crate::classify::register::<BudgetExhausted>();
    crate::classify::register::<DeadlineExceeded>();
}
