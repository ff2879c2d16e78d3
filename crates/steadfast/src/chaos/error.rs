//! [`ChaosError`]: the error the chaos layer injects.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An injected failure: a random one, or a call during an injected outage. The agent was never
/// called. It classifies itself as a transient failure that never reached the agent, so the
/// layers around react to it as to a refused connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosError {
    agent: Arc<str>,
    outage_remaining: Option<Duration>,
}

impl ChaosError {
    pub(crate) fn injected(agent: Arc<str>) -> Self {
        ChaosError {
            agent,
            outage_remaining: None,
        }
    }

    pub(crate) fn outage(agent: Arc<str>, remaining: Duration) -> Self {
        ChaosError {
            agent,
            outage_remaining: Some(remaining),
        }
    }

    /// The agent the fault was injected for.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Whether the call fell in an injected outage (rather than a random fault).
    pub fn is_outage(&self) -> bool {
        self.outage_remaining.is_some()
    }

    /// During an outage, how long it still lasts.
    pub fn outage_remaining(&self) -> Option<Duration> {
        self.outage_remaining
    }
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outage_remaining {
            None => write!(
                f,
                "chaos: injected failure for agent `{}` (turn it off with ChaosHandle::disable or STEADFAST_CHAOS=off)",
                self.agent
            ),
            Some(remaining) => write!(
                f,
                "chaos: agent `{}` is in an injected outage for {:.3}s more (end it with ChaosHandle::end_outage)",
                self.agent,
                remaining.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for ChaosError {}

impl crate::classify::ClassifyError for ChaosError {
    fn outcome(&self) -> crate::classify::Outcome {
        let reason = if self.is_outage() {
            "chaos outage"
        } else {
            "chaos"
        };
        crate::classify::Outcome::transient(reason).unprocessed()
    }
}
