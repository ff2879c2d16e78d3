//! [`Exponential`]: the one exponential backoff of the crate (retry waits, a breaker's growing
//! open time, a sink's reconnect delay): `base x multiplier^(n-1)`, capped, never panicking.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::backoff::Exponential;
//!
//! let backoff = Exponential::new(Duration::from_millis(500), 2.0, Duration::from_secs(8));
//! let waits: Vec<_> = (1..=6).map(|n| backoff.delay(n)).collect();
//! assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000].map(Duration::from_millis));
//! assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(8));
//! ```

use std::time::Duration;

/// Exponential growth from `base` by `multiplier` per step, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    base: Duration,
    multiplier: f64,
    max: Duration,
}

impl Exponential {
    /// `base` for the first step, times `multiplier` each further step, never over `max`. A
    /// multiplier below 1 or not finite is taken as 1 (a constant delay), so any input is safe.
    pub const fn new(base: Duration, multiplier: f64, max: Duration) -> Self {
        Exponential {
            base,
            multiplier,
            max,
        }
    }

    /// The delay of step `n` (the first step is 1; 0 is taken as 1).
    pub fn delay(&self, n: u32) -> Duration {
        // Beyond a few hundred steps every finite multiplier > 1 has reached any cap.
        let exponent = n.saturating_sub(1).min(1_000) as i32;
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let secs = self.base.as_secs_f64() * multiplier.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        Duration::try_from_secs_f64(secs).map_or(self.max, |delay| delay.min(self.max))
    }

    /// The first step's delay.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The cap.
    pub const fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_bad_multiplier_gives_a_constant_delay() {
        for multiplier in [f64::NAN, 0.5, f64::NEG_INFINITY] {
            let backoff = Exponential::new(Duration::from_secs(1), multiplier, Duration::MAX);
            assert_eq!(backoff.delay(10), Duration::from_secs(1));
        }
    }

    proptest! {
        #[test]
        fn never_exceeds_the_cap_nor_panics(
            base_ms in 0u64..u64::MAX, multiplier in proptest::num::f64::ANY, max_ms in 0u64..u64::MAX, n in 0u32..u32::MAX,
        ) {
            let max = Duration::from_millis(max_ms);
            let delay = Exponential::new(Duration::from_millis(base_ms), multiplier, max).delay(n);
            prop_assert!(delay <= max);
        }
    }
}
