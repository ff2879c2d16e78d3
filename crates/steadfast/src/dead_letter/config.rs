//! [`DeadLetterPolicy`]: which final outcomes are dead-lettered.

use crate::classify::OutcomeKind;

/// The set of outcome kinds that are dead-lettered. Default: every failure, caller faults
/// included (a request no agent accepts is "poison" worth keeping for a human).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterPolicy {
    kinds: u8,
}

const fn bit(kind: OutcomeKind) -> u8 {
    1 << kind as u8
}

impl DeadLetterPolicy {
    /// Every failure kind.
    pub const fn all_failures() -> Self {
        DeadLetterPolicy {
            kinds: bit(OutcomeKind::Transient)
                | bit(OutcomeKind::RateLimited)
                | bit(OutcomeKind::AgentFault)
                | bit(OutcomeKind::CallerFault),
        }
    }

    /// Nothing (the layer passes every failure through).
    pub const fn none() -> Self {
        DeadLetterPolicy { kinds: 0 }
    }

    /// Also dead-letter `kind` (`Success` is ignored).
    pub const fn with(self, kind: OutcomeKind) -> Self {
        if matches!(kind, OutcomeKind::Success) {
            return self;
        }
        DeadLetterPolicy {
            kinds: self.kinds | bit(kind),
        }
    }

    /// Do not dead-letter `kind`.
    pub const fn without(self, kind: OutcomeKind) -> Self {
        DeadLetterPolicy {
            kinds: self.kinds & !bit(kind),
        }
    }

    /// Whether a failure of this kind is dead-lettered.
    pub const fn covers(self, kind: OutcomeKind) -> bool {
        self.kinds & bit(kind) != 0
    }
}

impl Default for DeadLetterPolicy {
    fn default() -> Self {
        DeadLetterPolicy::all_failures()
    }
}

impl std::fmt::Debug for DeadLetterPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(OutcomeKind::ALL.iter().filter(|k| self.covers(**k)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_covers_every_failure_and_never_success() {
        let policy = DeadLetterPolicy::default();
        for kind in OutcomeKind::ALL {
            assert_eq!(
                policy.covers(kind),
                kind != OutcomeKind::Success,
                "{kind:?}"
            );
        }
        assert!(
            !DeadLetterPolicy::none()
                .with(OutcomeKind::Success)
                .covers(OutcomeKind::Success)
        );
    }

    #[test]
    fn kinds_can_be_left_out() {
        let policy = DeadLetterPolicy::default().without(OutcomeKind::CallerFault);
        assert!(!policy.covers(OutcomeKind::CallerFault));
        assert!(policy.covers(OutcomeKind::Transient));
    }
}
