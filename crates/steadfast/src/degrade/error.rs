//! [`Shed`]: a call not attempted because the application is degraded.

use super::level::Level;

/// The call was not attempted: the [`DegradationLevel`](super::DegradationLevel) was at or above
/// the layer's [`shed_at`](super::DegradeLayer::shed_at) level. The degrade function sees this
/// error; when it returns `None`, the caller gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "call not attempted: the application runs at degradation level `{level}`; lower the level (or raise `shed_at`) to call the agent again"
)]
pub struct Shed {
    level: Level,
}

impl Shed {
    pub(crate) fn new(level: Level) -> Self {
        Shed { level }
    }

    /// The level when the call was shed.
    pub fn level(&self) -> Level {
        self.level
    }
}

/// A shed call never reached the agent: an agent-side refusal (not the caller's fault) that an
/// alternative may answer and that is safe to send again later.
impl crate::classify::ClassifyError for Shed {
    fn outcome(&self) -> crate::classify::Outcome {
        crate::classify::Outcome::agent_fault("shed").unprocessed()
    }
}
