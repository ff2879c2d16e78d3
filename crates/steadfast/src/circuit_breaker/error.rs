//! [`CircuitOpen`]: the fail-fast rejection.

use std::fmt;
use std::time::Duration;

use crate::clock::Nanos;
use crate::sync::Local;

use super::BreakerState;
use super::shared::Shared;

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
///
/// Refusing is the breaker's busiest path during an outage, so the error is made without
/// reading the clock or touching a count other threads write: it keeps the breaker (through
/// this thread's reference) and the instant probes are due, and works the wait out when asked.
#[derive(Clone)]
pub struct CircuitOpen {
    breaker: Local<Shared>,
    state: BreakerState,
    probe_at: Option<Nanos>,
}

impl CircuitOpen {
    pub(crate) fn new(
        breaker: Local<Shared>,
        state: BreakerState,
        probe_at: Option<Nanos>,
    ) -> Self {
        CircuitOpen {
            breaker,
            state,
            probe_at,
        }
    }

    /// The agent whose breaker refused the call.
    pub fn agent(&self) -> &str {
        &self.breaker.name
    }

    /// The breaker's state when it refused: `Open`, `ForcedOpen` or `HalfOpen` (probes full).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Time from now until the breaker admits a probe (or, with a health check, runs the
    /// next check): zero once that time has come. `None` while forced open, or half-open with
    /// every probe slot taken. Each call reads the clock.
    pub fn retry_in(&self) -> Option<Duration> {
        self.probe_at
            .map(|at| Duration::from_nanos(at.saturating_sub(self.breaker.now())))
    }
}

impl PartialEq for CircuitOpen {
    /// The same agent, state and probe time (two refusals of one open period are equal).
    fn eq(&self, other: &Self) -> bool {
        self.agent() == other.agent()
            && self.state == other.state
            && self.probe_at == other.probe_at
    }
}

impl Eq for CircuitOpen {}

impl fmt::Debug for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitOpen")
            .field("agent", &self.agent())
            .field("state", &self.state)
            .field("retry_in", &self.retry_in())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            BreakerState::ForcedOpen => write!(
                f,
                "circuit for agent `{}` is forced open by an operator; call `force_closed()` or `reset()` to admit calls",
                self.agent()
            ),
            BreakerState::HalfOpen => write!(
                f,
                "circuit for agent `{}` is half-open and every probe slot is taken; try again shortly",
                self.agent()
            ),
            _ => match self.retry_in() {
                Some(wait) => write!(
                    f,
                    "circuit for agent `{}` is open; next probe in {:.3}s",
                    self.agent(),
                    wait.as_secs_f64()
                ),
                None => write!(
                    f,
                    "circuit for agent `{}` is open until a health check passes",
                    self.agent()
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
        match self.retry_in() {
            Some(wait) => outcome.with_retry_after(wait),
            None => outcome,
        }
    }
}
