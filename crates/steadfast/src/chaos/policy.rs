//! Pure decisions: the seeded random sequence and which fault a draw picks.

use super::config::Rates;

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Reaches the agent untouched.
    None,
    /// Fails with an injected error.
    Error,
    /// Answered by the response closure.
    Response,
    /// Delayed, then reaches the agent.
    Latency,
}

/// The fault a draw in `[0, 1)` picks: the rates are laid end to end (error, response,
/// latency) and the draw falls in one band or past them all.
pub(crate) fn pick(draw: f64, rates: Rates) -> Fault {
    let mut edge = rates.error;
    if draw < edge {
        return Fault::Error;
    }
    edge += rates.response;
    if draw < edge {
        return Fault::Response;
    }
    edge += rates.latency;
    if draw < edge {
        return Fault::Latency;
    }
    Fault::None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rng::{GOLDEN_GAMMA as GAMMA, mix, unit};

    fn rates(error: f64, response: f64, latency: f64) -> Rates {
        Rates {
            error,
            response,
            latency,
        }
    }

    #[test]
    fn a_zero_rate_never_fires_and_a_full_rate_always_does() {
        for bits in [0, 1, u64::MAX / 2, u64::MAX] {
            let draw = unit(mix(bits));
            assert_eq!(pick(draw, Rates::NONE), Fault::None);
            assert_eq!(pick(draw, rates(1.0, 0.0, 0.0)), Fault::Error);
            assert_eq!(pick(draw, rates(0.0, 0.0, 1.0)), Fault::Latency);
        }
    }

    #[test]
    fn the_seeded_sequence_hits_each_rate_within_two_percent() {
        let rates = rates(0.2, 0.1, 0.3);
        let mut counts = [0u32; 4];
        let mut state = 42u64;
        for _ in 0..20_000 {
            state = state.wrapping_add(GAMMA);
            let fault = pick(unit(mix(state)), rates);
            counts[fault as usize] += 1;
        }
        let share = |count: u32| f64::from(count) / 20_000.0;
        assert!(
            (share(counts[Fault::Error as usize]) - 0.2).abs() < 0.02,
            "{counts:?}"
        );
        assert!(
            (share(counts[Fault::Response as usize]) - 0.1).abs() < 0.02,
            "{counts:?}"
        );
        assert!(
            (share(counts[Fault::Latency as usize]) - 0.3).abs() < 0.02,
            "{counts:?}"
        );
    }

    proptest! {
        #[test]
        fn draws_stay_in_the_unit_interval(bits in any::<u64>()) {
            let draw = unit(mix(bits));
            prop_assert!((0.0..1.0).contains(&draw));
        }

        #[test]
        fn a_fault_fires_only_when_the_draw_is_under_the_sum_of_rates(
            draw in 0.0f64..1.0,
            error in 0.0f64..0.34,
            response in 0.0f64..0.33,
            latency in 0.0f64..0.33,
        ) {
            let fault = pick(draw, rates(error, response, latency));
            prop_assert_eq!(fault == Fault::None, draw >= error + response + latency);
            if draw < error {
                prop_assert_eq!(fault, Fault::Error);
            }
        }
    }
}
