//! Errors of the shutdown layer.

use std::sync::Arc;
use std::time::Duration;

use crate::classify::{ClassifyError, Outcome};

/// A call refused because the process is shutting down ([`Shutdown::drain`](super::Shutdown::drain)
/// or [`Shutdown::close`](super::Shutdown::close) was called). The agent was never called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not calling agent `{agent}`: this process is shutting down and admits no new calls; send \
     the request to another instance or retry after the restart"
)]
pub struct ShuttingDown {
    agent: Arc<str>,
}

impl ShuttingDown {
    pub(crate) fn new(agent: Arc<str>) -> Self {
        ShuttingDown { agent }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }
}

/// A call still running when the drain deadline passed, cancelled (its future dropped). The
/// same [`CancelledCall`] went to the shutdown hook; a dead-letter layer outside this one can
/// record the request with reason `"shutdown"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "call to agent `{agent}` cancelled by shutdown after running {:.3}s: the drain \
     deadline passed; record the request (dead-letter it) and replay it after the restart",
    in_flight_for.as_secs_f64()
)]
pub struct CancelledByShutdown {
    agent: Arc<str>,
    in_flight_for: Duration,
}

impl CancelledByShutdown {
    pub(crate) fn new(agent: Arc<str>, in_flight_for: Duration) -> Self {
        CancelledByShutdown {
            agent,
            in_flight_for,
        }
    }

    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// How long the call had been running (since its first poll that had to wait).
    pub fn in_flight_for(&self) -> Duration {
        self.in_flight_for
    }
}

/// What the shutdown hook learns about a cancelled call.
pub type CancelledCall = CancelledByShutdown;

/// Refused before the agent was called: never retried against this process (it is going
/// away), never held against the agent; a dead-letter layer keeps the request.
impl ClassifyError for ShuttingDown {
    fn outcome(&self) -> Outcome {
        Outcome::agent_fault("shutting down").unprocessed()
    }
}

/// Cancelled mid-call: the agent may have acted on it, so it is not "unprocessed".
impl ClassifyError for CancelledByShutdown {
    fn outcome(&self) -> Outcome {
        Outcome::agent_fault("shutdown")
    }
}
