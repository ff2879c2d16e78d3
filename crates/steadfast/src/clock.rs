//! Time as seen by the layers: tokio's clock (so `start_paused` tests control it), turned into
//! nanoseconds since a per-breaker origin so it fits in an atomic.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds since an [`Origin`]; `u64` covers 584 years.
pub(crate) type Nanos = u64;

/// The start of a call that is not timed (no slow-call threshold, no recorder for durations).
#[allow(dead_code)] // used by the breaker and retry features
pub(crate) const NOT_TIMED: Nanos = Nanos::MAX;

/// A fixed point in time that atomics can measure from.
///
/// Turning an instant into nanoseconds since the origin runs on every call of some layers (the
/// rate limiter's quotas), and std's `Instant::duration_since` is an out-of-line subtraction of
/// two (seconds, nanoseconds) pairs with its checks, its `Result` and `Duration::new`'s
/// normalisation: about 55 instructions, a fifth of a rate-limited call. `Instant` has no
/// accessor for its value, but it does implement `Hash`, and on Linux, macOS and Windows it
/// hashes exactly that pair (seconds as a 64-bit integer, then nanoseconds as a 32-bit one).
/// The origin keeps its own pair, read through a [`Hasher`] that records instead of hashing,
/// and [`nanos_at`](Self::nanos_at) subtracts in 64-bit arithmetic, inline. What an
/// instant hashes is not documented, so the pair is used only after a check when the origin
/// is made: an instant a known duration later must give exactly that many nanoseconds.
/// Anything else (another platform, another std) keeps `duration_since`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    instant: Instant,
    /// The origin as (seconds, nanoseconds), if instants were checked to hash as such.
    parts: Option<(i64, u32)>,
}

/// Records what an instant hashes, expecting one 64-bit integer then one 32-bit one.
#[derive(Default)]
struct Parts {
    seconds: Option<i64>,
    nanos: Option<u32>,
    unexpected: bool,
}

impl Parts {
    #[inline]
    fn of(at: Instant) -> Option<(i64, u32)> {
        let mut parts = Parts::default();
        at.hash(&mut parts);
        match parts {
            Parts {
                seconds: Some(seconds),
                nanos: Some(nanos),
                unexpected: false,
            } if nanos < 1_000_000_000 => Some((seconds, nanos)),
            _ => None,
        }
    }
}

impl Hasher for Parts {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, _bytes: &[u8]) {
        self.unexpected = true;
    }

    #[inline]
    fn write_i64(&mut self, seconds: i64) {
        self.unexpected |= self.seconds.is_some() || self.nanos.is_some();
        self.seconds = Some(seconds);
    }

    #[inline]
    fn write_u64(&mut self, seconds: u64) {
        match i64::try_from(seconds) {
            Ok(seconds) => self.write_i64(seconds),
            Err(_) => self.unexpected = true,
        }
    }

    #[inline]
    fn write_u32(&mut self, nanos: u32) {
        self.unexpected |= self.seconds.is_none() || self.nanos.is_some();
        self.nanos = Some(nanos);
    }
}

impl Origin {
    pub(crate) fn now() -> Self {
        Origin::at(Instant::now())
    }

    fn at(instant: Instant) -> Self {
        let slow = Origin {
            instant,
            parts: None,
        };
        let fast = Origin {
            instant,
            parts: Parts::of(instant),
        };
        // Checked across a change of second and with a nanosecond part that borrows.
        let checks = [1, 999_999_999, 1_750_000_000, 86_400_000_000_123];
        let agrees = fast.parts.is_some()
            && checks.iter().all(|&nanos| {
                let at = instant + Duration::from_nanos(nanos);
                fast.fast_nanos_at(at) == Some(nanos) && slow.slow_nanos_at(at) == nanos
            });
        if agrees { fast } else { slow }
    }

    /// Nanoseconds from the origin to now.
    pub(crate) fn elapsed(self) -> Nanos {
        self.nanos_at(Instant::now())
    }

    /// Nanoseconds from the origin to `at` (0 if `at` is earlier).
    #[inline]
    pub(crate) fn nanos_at(self, at: Instant) -> Nanos {
        match self.fast_nanos_at(at) {
            Some(nanos) => nanos,
            None => self.slow_nanos_at(at),
        }
    }

    /// From the two (seconds, nanoseconds) pairs, in 64-bit arithmetic; `None` if the pairs
    /// are not known or the difference does not fit (292 years).
    #[inline]
    fn fast_nanos_at(self, at: Instant) -> Option<Nanos> {
        let (origin_seconds, origin_nanos) = self.parts?;
        let (seconds, nanos) = Parts::of(at)?;
        let nanos = seconds
            .checked_sub(origin_seconds)?
            .checked_mul(1_000_000_000)?
            .checked_add(i64::from(nanos) - i64::from(origin_nanos))?;
        Some(u64::try_from(nanos).unwrap_or(0))
    }

    fn slow_nanos_at(self, at: Instant) -> Nanos {
        duration_to_nanos(at.saturating_duration_since(self.instant))
    }

    /// The instant `nanos` after the origin.
    pub(crate) fn instant_at(self, nanos: Nanos) -> Instant {
        self.instant + Duration::from_nanos(nanos)
    }
}

/// Saturating conversion, so a silly configured duration cannot wrap. In 64-bit arithmetic
/// (not `as_nanos`'s 128-bit product): it runs on every rate-limited call.
#[inline]
pub(crate) fn duration_to_nanos(duration: Duration) -> Nanos {
    duration
        .as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|nanos| nanos.checked_add(u64::from(duration.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_convert_through_their_parts_on_this_platform() {
        let origin = Origin::now();
        assert!(
            origin.parts.is_some(),
            "Instant hashes as (seconds, nanoseconds) here: the cheap conversion is in use"
        );
    }

    #[test]
    fn both_conversions_agree_before_after_and_across_seconds() {
        let origin = Origin::now();
        let slow = Origin {
            parts: None,
            ..origin
        };
        for nanos in [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            3_600_000_000_017,
        ] {
            let at = origin.instant + Duration::from_nanos(nanos);
            assert_eq!(origin.nanos_at(at), nanos);
            assert_eq!(slow.nanos_at(at), nanos);
        }
        if let Some(earlier) = origin
            .instant
            .checked_sub(Duration::from_nanos(1_500_000_001))
        {
            assert_eq!(origin.nanos_at(earlier), 0, "an earlier instant is 0");
            assert_eq!(slow.nanos_at(earlier), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_paused_clock_moves_the_conversion() {
        let origin = Origin::now();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(origin.elapsed(), 1_500_000_000);
        assert_eq!(origin.nanos_at(origin.instant_at(42)), 42);
    }
}
