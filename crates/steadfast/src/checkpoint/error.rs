//! Errors of the checkpoint layer.

use std::time::Duration;

use crate::classify::{ClassifyError, Outcome};
use crate::error::BoxError;

use super::key::StepKey;
use super::store::StoreError;

/// Another caller (in this process or another replica) was running the step and did not store
/// its answer within the layer's [`wait`](super::CheckpointLayer::wait). The agent was not
/// called by this caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "step `{key}` is being run by another caller (lease ends in {:.1}s); waited {:.1}s for its answer: try again later, or raise the checkpoint layer's wait",
    lease_remaining.as_secs_f64(),
    waited.as_secs_f64()
)]
pub struct InProgress {
    pub(crate) key: StepKey,
    pub(crate) waited: Duration,
    pub(crate) lease_remaining: Duration,
}

impl InProgress {
    /// The step.
    pub fn key(&self) -> &StepKey {
        &self.key
    }

    /// How long this caller waited.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// The checkpoint layer failed around a call: the store was unreachable, or the answer could
/// not be encoded or decoded. The source says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed. When this happens after the agent answered, the answer was NOT stored
    /// (the step will run again on resume) and is not returned either: the caller cannot
    /// assume it is durable.
    #[error("checkpoint store failed for step `{key}` while {action}: {source}")]
    Store {
        /// The step.
        key: StepKey,
        /// `claiming the step`, `storing the answer`, ...
        action: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The codec could not encode the agent's answer: it was not stored.
    #[error("cannot encode the answer of step `{key}` for the checkpoint store: {source}")]
    Encode {
        /// The step.
        key: StepKey,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
    /// The stored answer could not be decoded (written by another codec or version): run
    /// `steadfast checkpoints forget` on the workflow to run its steps again.
    #[error("cannot decode the stored answer of step `{key}`: {source}")]
    Decode {
        /// The step.
        key: StepKey,
        /// The codec's error.
        #[source]
        source: BoxError,
    },
}

/// Nobody called the agent: not its fault; worth retrying later.
impl ClassifyError for InProgress {
    fn outcome(&self) -> Outcome {
        Outcome::transient("checkpoint in progress").local()
    }
}

/// The checkpoint store, not the agent, failed.
impl ClassifyError for CheckpointError {
    fn outcome(&self) -> Outcome {
        Outcome::agent_fault("checkpoint store")
    }
}
