//! Errors the chaos layer injects.

use std::time::Duration;

/// A failure injected by a [`ChaosLayer`](super::ChaosLayer): the agent was never called.
/// Classified as a transient failure by the default classifier, like a real outage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// A random fault at the configured error rate.
    #[error(
        "chaos: injected failure for agent `{agent}` (turn it off with ChaosHandle::disable or \
         STEADFAST_CHAOS=off)"
    )]
    Injected {
        /// The agent.
        agent: String,
    },
    /// The call fell in an outage window.
    #[error(
        "chaos: agent `{agent}` is in an injected outage for {remaining:?} more (end it with \
         ChaosHandle::end_outage)"
    )]
    Outage {
        /// The agent.
        agent: String,
        /// Time left in the window.
        remaining: Duration,
    },
}
