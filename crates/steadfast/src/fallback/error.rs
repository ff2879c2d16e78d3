//! [`AllFailed`]: the primary and every alternative failed.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::classify::{ClassifyError, Outcome, OutcomeKind};
use crate::error::BoxError;

/// The primary and every alternative that was tried failed. Carries every attempt's error, in
/// the order tried (the primary first), and the alternatives that were skipped and why.
///
/// Its [`source`](Error::source) is the primary's error, so [`error::find`](crate::error::find)
/// still finds, say, the primary's `CircuitOpen`. It classifies itself: an agent fault, or the
/// caller fault the last alternative refused the request with.
#[derive(Debug)]
pub struct AllFailed {
    agent: Arc<str>,
    attempts: Vec<(Arc<str>, BoxError)>,
    skipped: Vec<Skipped>,
    last: Outcome,
}

impl AllFailed {
    pub(crate) fn new(
        agent: Arc<str>,
        attempts: Vec<(Arc<str>, BoxError)>,
        skipped: Vec<Skipped>,
        last: Outcome,
    ) -> Self {
        AllFailed {
            agent,
            attempts,
            skipped,
            last,
        }
    }

    /// How the last attempt failed.
    pub fn last_outcome(&self) -> Outcome {
        self.last
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
    name: Arc<str>,
    reason: SkipReason,
}

impl Skipped {
    pub(crate) fn new(name: Arc<str>, reason: SkipReason) -> Self {
        Skipped { name, reason }
    }

    /// The alternative's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why it was not called.
    pub fn reason(&self) -> SkipReason {
        self.reason
    }
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

/// A chain that was tried through is an agent fault (so an outer retry does not run it again),
/// unless the last alternative, too, refused the request as the caller's fault: then it stays a
/// caller fault (the request is poison, not the agents).
impl ClassifyError for AllFailed {
    fn outcome(&self) -> Outcome {
        match self.last.kind() {
            OutcomeKind::CallerFault => self.last,
            _ => Outcome::agent_fault("all fallbacks failed"),
        }
    }
}
