//! Time as seen by the layers: tokio's clock (so `start_paused` tests control it), turned into
//! nanoseconds since a per-breaker origin so it fits in an atomic.

use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds since an [`Origin`]; `u64` covers 584 years.
pub(crate) type Nanos = u64;

/// The start of a call that is not timed (no slow-call threshold, no recorder for durations).
#[allow(dead_code)] // used by the breaker and retry features
pub(crate) const NOT_TIMED: Nanos = Nanos::MAX;

/// A fixed point in time that atomics can measure from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin(Instant);

impl Origin {
    pub(crate) fn now() -> Self {
        Origin(Instant::now())
    }

    /// Nanoseconds from the origin to now.
    pub(crate) fn elapsed(self) -> Nanos {
        duration_to_nanos(self.0.elapsed())
    }

    /// Nanoseconds from the origin to `at` (0 if `at` is earlier).
    #[inline]
    pub(crate) fn nanos_at(self, at: Instant) -> Nanos {
        duration_to_nanos(at.saturating_duration_since(self.0))
    }

    /// The instant `nanos` after the origin.
    pub(crate) fn instant_at(self, nanos: Nanos) -> Instant {
        self.0 + Duration::from_nanos(nanos)
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
