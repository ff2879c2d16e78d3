//! When a fan-out is decided: pure counting, tested without futures.

/// What the caller asked for beyond "every required agent answered".
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Threshold {
    /// At least this share of all agents (required and optional) answered, in `(0, 1]`.
    Ratio(f64),
    /// At least this many agents answered (replicated agents: 2 of 3).
    Quorum(usize),
}

impl Threshold {
    /// How many answers out of `total` agents meet the threshold.
    pub(crate) fn needed(self, total: usize) -> usize {
        match self {
            // The epsilon keeps 0.3 * 10 (= 3.0000000000000004) at 3.
            Threshold::Ratio(ratio) => ((ratio * total as f64) - 1e-9).ceil().max(1.0) as usize,
            Threshold::Quorum(quorum) => quorum,
        }
    }
}

/// Counts of a fan-out in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) total: usize,
    pub(crate) required_total: usize,
    pub(crate) answered: usize,
    pub(crate) required_answered: usize,
    pub(crate) failed: usize,
    pub(crate) required_failed: usize,
}

/// The state of a fan-out after a result came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not decided: keep waiting.
    Pending,
    /// Every required agent answered and the threshold is met.
    Succeeded,
    /// A required agent failed.
    RequiredFailed,
    /// Even if every agent still running answered, the threshold could not be met.
    Unreachable,
}

impl Tally {
    pub(crate) fn verdict(&self, threshold: Threshold) -> Verdict {
        if self.required_failed > 0 {
            return Verdict::RequiredFailed;
        }
        let needed = threshold.needed(self.total);
        if self.required_answered == self.required_total && self.answered >= needed {
            return Verdict::Succeeded;
        }
        let running = self.total - self.answered - self.failed;
        if self.answered + running < needed {
            return Verdict::Unreachable;
        }
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ratio_rounds_up_and_needs_at_least_one() {
        assert_eq!(Threshold::Ratio(0.5).needed(4), 2);
        assert_eq!(Threshold::Ratio(0.5).needed(3), 2);
        assert_eq!(Threshold::Ratio(0.3).needed(10), 3);
        assert_eq!(Threshold::Ratio(0.01).needed(3), 1);
        assert_eq!(Threshold::Ratio(1.0).needed(3), 3);
    }

    #[test]
    fn a_required_failure_decides_at_once() {
        let tally = Tally {
            total: 3,
            required_total: 1,
            required_failed: 1,
            failed: 1,
            ..Tally::default()
        };
        assert_eq!(
            tally.verdict(Threshold::Ratio(0.1)),
            Verdict::RequiredFailed
        );
    }

    #[test]
    fn waits_for_required_agents_even_when_the_ratio_is_met() {
        let tally = Tally {
            total: 4,
            required_total: 1,
            answered: 3,
            ..Tally::default()
        };
        assert_eq!(tally.verdict(Threshold::Ratio(0.5)), Verdict::Pending);
    }

    proptest! {
        #[test]
        fn a_finished_fan_out_is_always_decided(
            required_total in 0usize..5,
            optional_total in 0usize..5,
            required_answered_seed in 0usize..5,
            answered_seed in 0usize..5,
            quorum in 1usize..6,
            ratio in 0.01f64..=1.0,
            use_quorum in any::<bool>(),
        ) {
            let total = required_total + optional_total;
            prop_assume!(total > 0);
            let required_answered = required_answered_seed.min(required_total);
            let optional_answered = answered_seed.min(optional_total);
            let tally = Tally {
                total,
                required_total,
                answered: required_answered + optional_answered,
                required_answered,
                failed: total - required_answered - optional_answered,
                required_failed: required_total - required_answered,
            };
            let threshold = if use_quorum { Threshold::Quorum(quorum) } else { Threshold::Ratio(ratio) };
            prop_assert_ne!(tally.verdict(threshold), Verdict::Pending);
        }
    }
}
