//! [`CircuitOpen`]: the fail-fast rejection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::BreakerState;

/// A call refused without reaching the agent, because its breaker is open (or forced open, or
/// half-open with every probe slot taken).
///
/// Downcast it from the [`BoxError`](crate::BoxError) the breaker returns:
///
/// ```
/// use steadfast::circuit_breaker::CircuitOpen;
/// # fn check(err: steadfast::BoxError) {
/// if let Some(open) = err.downcast_ref::<CircuitOpen>() {
///     println!("{} rejected; next probe in {:?}", open.agent(), open.retry_in());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    agent: Arc<str>,
    state: BreakerState,
    retry_in: Option<Duration>,
}

impl CircuitOpen {
    pub(crate) fn new(agent: Arc<str>, state: BreakerState, retry_in: Option<Duration>) -> Self {
        CircuitOpen {
            agent,
            state,
            retry_in,
        }
    }

    /// The agent whose breaker refused the call.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The breaker's state when it refused: `Open`, `ForcedOpen` or `HalfOpen` (probes full).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Time until the breaker admits a probe, when known (`None` while forced open, waiting for
    /// a health check, or half-open with every probe slot taken).
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            BreakerState::ForcedOpen => write!(
                f,
                "circuit for agent `{}` is forced open by an operator; call `force_closed()` or `reset()` to admit calls",
                self.agent
            ),
            BreakerState::HalfOpen => write!(
                f,
                "circuit for agent `{}` is half-open and every probe slot is taken; try again shortly",
                self.agent
            ),
            _ => match self.retry_in {
                Some(wait) => write!(
                    f,
                    "circuit for agent `{}` is open; next probe in {:.3}s",
                    self.agent,
                    wait.as_secs_f64()
                ),
                None => write!(
                    f,
                    "circuit for agent `{}` is open until a health check passes",
                    self.agent
                ),
            },
        }
    }
}

impl std::error::Error for CircuitOpen {}

impl crate::classify::ClassifyError for CircuitOpen {
    /// An agent fault (not retried against this agent, but an alternative may answer) that
    /// never reached the agent, with the time until the next probe as the wait.
    fn outcome(&self) -> crate::classify::Outcome {
        let outcome = crate::classify::Outcome::agent_fault("circuit open").unprocessed();
        match self.retry_in {
            Some(wait) => outcome.with_retry_after(wait),
            None => outcome,
        }
    }
}
