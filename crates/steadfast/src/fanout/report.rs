//! What a fan-out returns: who answered, who failed and why, who was cancelled.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BoxError;

/// A successful fan-out: every required agent answered and the threshold was met.
#[derive(Debug)]
pub struct FanoutReport<Res> {
    /// The answers, in the order they arrived.
    pub answered: Vec<Answer<Res>>,
    /// The agents that failed before the outcome was decided.
    pub failed: Vec<AgentFailure>,
    /// The agents still running when the outcome was decided: their calls were dropped.
    pub cancelled: Vec<Arc<str>>,
    /// Optional agents not called because the application was degraded.
    pub skipped: Vec<Arc<str>>,
}

impl<Res> FanoutReport<Res> {
    /// The answer of `agent`, if it answered.
    pub fn answer_of(&self, agent: &str) -> Option<&Res> {
        self.answered
            .iter()
            .find(|answer| &*answer.agent == agent)
            .map(|answer| &answer.response)
    }
}

/// One agent's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer<Res> {
    /// The agent's name.
    pub agent: Arc<str>,
    /// Whether it was required.
    pub required: bool,
    /// What it answered.
    pub response: Res,
}

/// One agent that did not answer, and why.
#[derive(Debug)]
pub struct AgentFailure {
    /// The agent's name.
    pub agent: Arc<str>,
    /// Whether it was required.
    pub required: bool,
    /// Why it failed.
    pub reason: FailureReason,
}

/// Why an agent of a fan-out did not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureReason {
    /// It returned an error.
    Error(BoxError),
    /// It did not answer within its deadline.
    TimedOut(Duration),
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::Error(error) => write!(f, "{error}"),
            FailureReason::TimedOut(deadline) => write!(f, "no answer within {deadline:?}"),
        }
    }
}

/// Why a fan-out failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutFailure {
    /// A required agent failed.
    RequiredFailed {
        /// Its name.
        agent: Arc<str>,
    },
    /// Too few agents answered (or could still answer) to meet the threshold.
    BelowThreshold {
        /// How many answered.
        answered: usize,
        /// How many were needed.
        needed: usize,
    },
}

/// A fan-out that did not succeed. Keeps the names of the agents that answered (their answers
/// are dropped), every failure with its reason, and the agents cancelled once it was decided.
/// Its `source()` is the error of the first failure that was an error.
#[derive(Debug)]
pub struct FanoutError {
    failure: FanoutFailure,
    answered: Vec<Arc<str>>,
    failed: Vec<AgentFailure>,
    cancelled: Vec<Arc<str>>,
    skipped: Vec<Arc<str>>,
}

impl FanoutError {
    pub(crate) fn new(
        failure: FanoutFailure,
        answered: Vec<Arc<str>>,
        failed: Vec<AgentFailure>,
        cancelled: Vec<Arc<str>>,
        skipped: Vec<Arc<str>>,
    ) -> Self {
        FanoutError {
            failure,
            answered,
            failed,
            cancelled,
            skipped,
        }
    }

    /// Why the fan-out failed.
    pub fn failure(&self) -> &FanoutFailure {
        &self.failure
    }

    /// The agents that answered before the fan-out gave up.
    pub fn answered(&self) -> &[Arc<str>] {
        &self.answered
    }

    /// The agents that failed, and why.
    pub fn failed(&self) -> &[AgentFailure] {
        &self.failed
    }

    /// The agents still running when the fan-out decided (their calls were dropped).
    pub fn cancelled(&self) -> &[Arc<str>] {
        &self.cancelled
    }

    /// The optional agents not called because of the degradation level.
    pub fn skipped(&self) -> &[Arc<str>] {
        &self.skipped
    }
}

/// A failed fan-out is an agent fault: the agents could not give enough answers, and an outer
/// retry would call every one of them again.
impl crate::classify::ClassifyError for FanoutError {
    fn outcome(&self) -> crate::classify::Outcome {
        crate::classify::Outcome::agent_fault("fan-out failed")
    }
}

impl fmt::Display for FanoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            FanoutFailure::RequiredFailed { agent } => {
                write!(f, "fan-out failed: required agent `{agent}` did not answer")?;
            }
            FanoutFailure::BelowThreshold { answered, needed } => write!(
                f,
                "fan-out failed: {answered} agent(s) answered, {needed} needed"
            )?,
        }
        for (i, failure) in self.failed.iter().enumerate() {
            let sep = if i == 0 { " (" } else { "; " };
            write!(f, "{sep}`{}`: {}", failure.agent, failure.reason)?;
        }
        if !self.failed.is_empty() {
            f.write_str(")")?;
        }
        f.write_str("; make agents optional, lower the threshold, or extend the deadlines")
    }
}

impl Error for FanoutError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.failed
            .iter()
            .find_map(|failure| match &failure.reason {
                FailureReason::Error(error) => Some(error.as_ref() as &(dyn Error + 'static)),
                FailureReason::TimedOut(_) => None,
            })
    }
}
