//! [`AllFailed`]: the primary and every alternative failed.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::classify::Outcome;
use crate::error::BoxError;

/// The primary and every alternative that was tried failed. Carries every attempt's error, in
/// the order tried (the primary first), and the alternatives that were skipped and why.
///
/// Its [`source`](Error::source) is the primary's error, so
/// [`classify_known_error`](crate::classify::classify_known_error) and
/// [`error::find`](crate::error::find) still see, say, the primary's `CircuitOpen`.
#[derive(Debug)]
pub struct AllFailed {
    agent: Arc<str>,
    attempts: Vec<(Arc<str>, BoxError)>,
    skipped: Vec<Skipped>,
}

impl AllFailed {
    pub(crate) fn new(
        agent: Arc<str>,
        attempts: Vec<(Arc<str>, BoxError)>,
        skipped: Vec<Skipped>,
    ) -> Self {
        AllFailed {
            agent,
            attempts,
            skipped,
        }
    }

    /// The agent (the fallback layer's name) the call was for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Every attempt as `(name, error)`, primary first, in the order tried.
    pub fn attempts(&self) -> &[(Arc<str>, BoxError)] {
        &self.attempts
    }

    /// Takes the attempts out.
    pub fn into_attempts(self) -> Vec<(Arc<str>, BoxError)> {
        self.attempts
    }

    /// Alternatives that were not called, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}

impl fmt::Display for AllFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "every answer for agent `{}` failed ({} attempt{}",
            self.agent,
            self.attempts.len(),
            if self.attempts.len() == 1 { "" } else { "s" }
        )?;
        for (i, (name, error)) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}`{name}`: {error}")?;
        }
        f.write_str(")")?;
        if !self.skipped.is_empty() {
            f.write_str(", skipped")?;
            for (i, skipped) in self.skipped.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}`{}` ({})", skipped.name, skipped.reason)?;
            }
        }
        f.write_str("; check the agents' health, or end the chain with a cache or a static answer")
    }
}

impl Error for AllFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.attempts
            .first()
            .map(|(_, error)| error.as_ref() as &(dyn Error + 'static))
    }
}

/// An alternative the fallback layer did not call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The alternative's name.
    pub name: Arc<str>,
    /// Why it was not called.
    pub reason: SkipReason,
}

/// Why an alternative was not called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// Its circuit breaker was open (or forced open).
    BreakerOpen,
    /// The failure was a caller fault and the alternative does not declare it handles it.
    CallerFaultNotHandled,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::BreakerOpen => "breaker open",
            SkipReason::CallerFaultNotHandled => "does not handle this caller fault",
        })
    }
}

/// An agent answered `Ok`, but its classifier judged the answer a failure (an HTTP 503, say);
/// recorded as that attempt's error in [`AllFailed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the agent answered, but the answer was classified as a failure: {outcome}")]
pub struct UnsuccessfulResponse {
    outcome: Outcome,
}

impl UnsuccessfulResponse {
    pub(crate) fn new(outcome: Outcome) -> Self {
        UnsuccessfulResponse { outcome }
    }

    /// How the answer was classified.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
}
