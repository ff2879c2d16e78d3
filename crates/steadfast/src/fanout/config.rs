//! Validation errors of a [`Fanout`](super::Fanout).

/// A fan-out that cannot work.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No agents were added.
    #[error("fan-out has no agents; add at least one with `required` or `optional`")]
    NoAgents,
    /// Two agents share a name (results are reported by name).
    #[error("fan-out agent name `{0}` is used twice; give each agent its own name")]
    DuplicateName(String),
    /// The success ratio is not in `(0, 1]`.
    #[error("fan-out success ratio {0} is outside (0, 1]; use e.g. 0.5 for half the agents")]
    Ratio(f64),
    /// The quorum is 0 or larger than the number of agents.
    #[error("fan-out quorum {quorum} cannot be met by {agents} agents; use 1..={agents}")]
    Quorum {
        /// The quorum asked for.
        quorum: usize,
        /// The number of agents.
        agents: usize,
    },
    /// A deadline was zero: the agent could never answer in time.
    #[error("fan-out deadline of agent `{0}` is zero; give it time to answer")]
    ZeroDeadline(String),
}
