//! [`RateLimited`]: the limiter refused a call rather than let it collect a 429.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{ClassifyError, Outcome};

use super::state::Limit;

/// The client-side rate limit refused a call: admitting it would have taken longer than the
/// layer's `max_wait` (or its cost exceeds a whole burst, or the agent's pause outlasts the
/// wait allowed). Nothing was sent.
///
/// It classifies itself as rate-limited, unprocessed, with the wait that would have been
/// needed as its `retry_after`: an outer fallback may answer from another agent, an outer
/// retry layer may retry after that wait (within its `max_retry_after`), and since the limiter
/// sits outside the circuit breaker, the breaker never counts it (the agent did nothing wrong).
#[derive(Clone, Debug)]
pub struct RateLimited {
    agent: Arc<str>,
    limit: Limit,
    wait: Option<Duration>,
}

impl RateLimited {
    pub(crate) fn new(agent: Arc<str>, limit: Limit, wait: Option<Duration>) -> Self {
        RateLimited { agent, limit, wait }
    }

    /// The agent whose quota refused the call.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Which quota refused it.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// How long admitting the call would have taken; `None` when it never could be (its cost
    /// exceeds a whole burst).
    pub fn wait(&self) -> Option<Duration> {
        self.wait
    }

    /// Whether the call costs more than a whole burst, so it can never be admitted.
    pub fn is_too_large(&self) -> bool {
        self.wait.is_none()
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.limit, self.wait) {
            (Limit::Paused, Some(wait)) => write!(
                f,
                "agent `{}` asked for a pause of {:.3}s more, longer than this call may wait: raise max_wait or try another agent",
                self.agent,
                wait.as_secs_f64()
            ),
            (limit, Some(wait)) => write!(
                f,
                "client-side {limit}-per-minute quota of agent `{}` is spent: the call would wait {:.3}s, longer than max_wait",
                self.agent,
                wait.as_secs_f64()
            ),
            (limit, None) => write!(
                f,
                "call to agent `{}` costs more {limit} than one burst of its quota holds: raise burst or the quota, or shorten the request",
                self.agent
            ),
        }
    }
}

impl std::error::Error for RateLimited {}

impl ClassifyError for RateLimited {
    fn outcome(&self) -> Outcome {
        // Refused on this side, from the limiter's own accounting: `local`, so no breaker
        // counts it, wherever the limiter sits in the stack.
        let outcome = Outcome::rate_limited("client rate limit").local();
        match self.wait {
            Some(wait) => outcome.with_retry_after(wait),
            // A call too large for the quota will never pass: the caller's fault.
            None => Outcome::caller_fault("larger than the rate limit").local(),
        }
    }
}

pub(crate) fn register() {
    crate::classify::register::<RateLimited>();
}
