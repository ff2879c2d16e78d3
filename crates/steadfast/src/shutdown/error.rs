//! Errors of the shutdown layer.

use std::sync::Arc;
use std::time::Duration;

/// A call refused because the process is shutting down ([`Shutdown::drain`](super::Shutdown::drain)
/// or [`Shutdown::close`](super::Shutdown::close) was called). The agent was never called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not calling agent `{agent}`: this process is shutting down and admits no new calls; send \
     the request to another instance or retry after the restart"
)]
#[non_exhaustive]
pub struct ShuttingDown {
    /// The agent.
    pub agent: Arc<str>,
}

/// A call still running when the drain deadline passed, cancelled (its future dropped). The
/// same [`CancelledCall`] went to the shutdown hook; a dead-letter layer outside this one can
/// record the request with reason `"shutdown"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "call to agent `{agent}` cancelled by shutdown after running {in_flight_for:?}: the drain \
     deadline passed; record the request (dead-letter it) and replay it after the restart"
)]
#[non_exhaustive]
pub struct CancelledByShutdown {
    /// The agent.
    pub agent: Arc<str>,
    /// How long the call had been running (since its first poll that had to wait).
    pub in_flight_for: Duration,
}

/// What the shutdown hook learns about a cancelled call.
pub type CancelledCall = CancelledByShutdown;
