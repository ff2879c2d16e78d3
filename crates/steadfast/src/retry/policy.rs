//! Pure retry decisions: how long to wait before retry `n`, and whether to retry at all. No
//! clock, no timer: the future feeds in what it saw.

use std::time::Duration;

use crate::backoff::Exponential;
use crate::classify::{Outcome, OutcomeKind};

use super::config::{Jitter, RetryConfig};

/// The wait before retry number `retry` (the first retry is 1), given the previous wait (for
/// decorrelated jitter) and a uniform sample in `[0, 1)`.
pub(crate) fn backoff(config: &RetryConfig, retry: u32, previous: Duration, unit: f64) -> Duration {
    let cap = config.max_backoff.as_secs_f64();
    let base = config.base.as_secs_f64();
    let exp = Exponential::new(config.base, config.multiplier, config.max_backoff)
        .delay(retry)
        .as_secs_f64();
    let secs = match config.jitter {
        Jitter::None => exp,
        Jitter::Full => exp * unit,
        Jitter::Equal => exp / 2.0 + exp / 2.0 * unit,
        Jitter::Decorrelated => {
            let upper = (previous.as_secs_f64().max(base) * 3.0).min(cap);
            (base + (upper - base).max(0.0) * unit).min(cap)
        }
    };
    Duration::try_from_secs_f64(secs).unwrap_or(config.max_backoff)
}

/// What to do after a failed attempt, before the budget and the clock are consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Give the result back as it is: not retryable.
    GiveUp,
    /// Every allowed attempt was made.
    Exhausted,
    /// The agent asked for a wait longer than `max_retry_after`.
    WaitTooLong,
    /// Retry after this wait (`true`: the agent asked for it).
    Retry(Duration, bool),
}

/// Decides on a failed attempt. `retryable` is the classifier's (or `retry_on`'s) verdict; a
/// `CircuitOpen` and every agent or caller fault are never retried, whatever it says.
pub(crate) fn decide(
    config: &RetryConfig,
    outcome: Outcome,
    retryable: bool,
    attempts: u32,
    computed: impl FnOnce() -> Duration,
) -> Verdict {
    let eligible = matches!(
        outcome.kind(),
        OutcomeKind::Transient | OutcomeKind::RateLimited
    );
    if !(eligible && retryable) {
        return Verdict::GiveUp;
    }
    if attempts > config.max_retries {
        return Verdict::Exhausted;
    }
    match outcome.retry_after() {
        Some(wait) if wait > config.max_retry_after => Verdict::WaitTooLong,
        Some(wait) => Verdict::Retry(wait, true),
        None => Verdict::Retry(computed(), false),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn config(jitter: Jitter) -> RetryConfig {
        RetryConfig::builder().jitter(jitter).build().unwrap()
    }

    #[test]
    fn backoff_without_jitter_doubles_up_to_the_cap() {
        let config = config(Jitter::None);
        let waits: Vec<_> = (1..=7)
            .map(|n| backoff(&config, n, Duration::ZERO, 0.5).as_millis())
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn full_and_equal_jitter_scale_the_exponential_wait() {
        let full = config(Jitter::Full);
        assert_eq!(backoff(&full, 2, Duration::ZERO, 0.0), Duration::ZERO);
        assert_eq!(
            backoff(&full, 2, Duration::ZERO, 0.5),
            Duration::from_millis(500)
        );
        let equal = config(Jitter::Equal);
        assert_eq!(
            backoff(&equal, 2, Duration::ZERO, 0.0),
            Duration::from_millis(500)
        );
        assert_eq!(
            backoff(&equal, 2, Duration::ZERO, 0.5),
            Duration::from_millis(750)
        );
    }

    #[test]
    fn agent_and_caller_faults_are_never_retried_even_if_asked() {
        let config = RetryConfig::default();
        for outcome in [
            Outcome::agent_fault("circuit open"),
            Outcome::caller_fault("400"),
        ] {
            assert_eq!(
                decide(&config, outcome, true, 1, || Duration::ZERO),
                Verdict::GiveUp
            );
        }
    }

    #[test]
    fn a_retry_after_over_the_cap_stops_at_once() {
        let config = RetryConfig::default();
        let outcome = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(61));
        assert_eq!(
            decide(&config, outcome, true, 1, || Duration::ZERO),
            Verdict::WaitTooLong
        );
        let outcome = Outcome::rate_limited("429").with_retry_after(Duration::from_secs(2));
        assert_eq!(
            decide(&config, outcome, true, 1, || Duration::ZERO),
            Verdict::Retry(Duration::from_secs(2), true)
        );
        assert_eq!(
            decide(&config, outcome, true, 4, || Duration::ZERO),
            Verdict::Exhausted
        );
    }

    proptest! {
        #[test]
        fn every_wait_stays_within_zero_and_the_cap(
            retry in 0u32..200,
            previous_ms in 0u64..100_000,
            unit in 0.0f64..1.0,
            jitter in prop_oneof![
                Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Decorrelated), Just(Jitter::None)
            ],
        ) {
            let config = config(jitter);
            let wait = backoff(&config, retry, Duration::from_millis(previous_ms), unit);
            prop_assert!(wait <= config.max_backoff());
            if jitter == Jitter::Decorrelated {
                prop_assert!(wait >= config.base());
            }
        }
    }
}
