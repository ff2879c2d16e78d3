//! Time as seen by the layers: tokio's clock (so `start_paused` tests control it), turned into
//! nanoseconds since a per-breaker origin so it fits in an atomic.

use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds since an [`Origin`]; `u64` covers 584 years.
pub(crate) type Nanos = u64;

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

    /// Nanoseconds from the origin to `instant` (0 if before it), for callers that already read
    /// the clock.
    pub(crate) fn nanos_at(self, instant: Instant) -> Nanos {
        duration_to_nanos(instant.saturating_duration_since(self.0))
    }

    /// The instant `nanos` after the origin.
    pub(crate) fn instant_at(self, nanos: Nanos) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// Saturating conversion, so a silly configured duration cannot wrap.
pub(crate) fn duration_to_nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
