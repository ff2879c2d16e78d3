//! Recent latencies of one agent, for percentile delays: two rotating windows of log-linear
//! buckets (four per octave of microseconds, so a percentile is read to within 25 %), atomics
//! only. Writers count into the current window; the percentile is read from the previous one
//! when it saw enough calls (as tower's `hedge` reads its rotating histogram), else from the
//! current one. Pure: every function takes "now" (or its window) explicitly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Nanos;

const BUCKETS: usize = 128;

/// The bucket of a latency: 0..4 for under 4 µs, then four buckets per doubling.
pub(crate) fn bucket_of(latency: Nanos) -> usize {
    let micros = latency / 1_000;
    if micros < 4 {
        return micros as usize;
    }
    let msb = 63 - micros.leading_zeros() as usize;
    let sub = ((micros >> (msb - 2)) & 3) as usize;
    (4 + (msb - 2) * 4 + sub).min(BUCKETS - 1)
}

/// The exclusive upper bound of a bucket, in nanoseconds: a delay read from it is never
/// shorter than the latencies it counted.
pub(crate) fn bucket_upper(bucket: usize) -> Nanos {
    if bucket < 4 {
        return (bucket as u64 + 1) * 1_000;
    }
    let msb = 2 + (bucket - 4) / 4;
    let sub = ((bucket - 4) % 4) as u64;
    ((5 + sub) << (msb - 2)).saturating_mul(1_000)
}

struct Window {
    /// The window's epoch plus one (0: never used).
    epoch: AtomicU64,
    counts: [AtomicU64; BUCKETS],
}

impl Window {
    fn new() -> Self {
        Window {
            epoch: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

pub(crate) struct Latencies {
    window: Nanos,
    windows: [Window; 2],
    /// The newest epoch seen by a caller that read the clock: where an answer that came at
    /// once (and read no clock) is counted.
    seen_epoch: AtomicU64,
}

impl Latencies {
    pub(crate) fn new(window: Duration) -> Self {
        Latencies {
            window: crate::clock::duration_to_nanos(window).max(1),
            windows: [Window::new(), Window::new()],
            seen_epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn epoch_at(&self, now: Nanos) -> u64 {
        let epoch = now / self.window;
        if self.seen_epoch.load(Ordering::Relaxed) < epoch {
            self.seen_epoch.fetch_max(epoch, Ordering::Relaxed);
        }
        epoch
    }

    /// The window of `epoch`, emptied first if it still holds an older one.
    fn window_for(&self, epoch: u64) -> &Window {
        let window = &self.windows[(epoch % 2) as usize];
        let tag = epoch + 1;
        let seen = window.epoch.load(Ordering::Acquire);
        if seen < tag
            && window
                .epoch
                .compare_exchange(seen, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // A latency counted between the exchange and these stores is lost: an estimate.
            for count in &window.counts {
                count.store(0, Ordering::Relaxed);
            }
        }
        window
    }

    /// Counts one call's latency, in the window of `now`.
    pub(crate) fn record(&self, now: Nanos, latency: Nanos) {
        let epoch = self.epoch_at(now);
        self.record_in(epoch, latency);
    }

    /// Counts an answer that came at once (no clock read), in the newest window seen.
    #[inline]
    pub(crate) fn record_immediate(&self) {
        let epoch = self.seen_epoch.load(Ordering::Relaxed);
        self.record_in(epoch, 0);
    }

    fn record_in(&self, epoch: u64, latency: Nanos) {
        let window = &self.windows[(epoch % 2) as usize];
        let window = if window.epoch.load(Ordering::Acquire) == epoch + 1 {
            window
        } else {
            self.window_for(epoch)
        };
        window.counts[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `percentile` of the latencies of the previous window (or, until it saw
    /// `min_samples` calls, of the current one); `None` while neither saw that many.
    pub(crate) fn percentile(
        &self,
        now: Nanos,
        percentile: f64,
        min_samples: u32,
    ) -> Option<Nanos> {
        let epoch = self.epoch_at(now);
        let candidates = [epoch.checked_sub(1), Some(epoch)];
        for candidate in candidates.into_iter().flatten() {
            let window = &self.windows[(candidate % 2) as usize];
            if window.epoch.load(Ordering::Acquire) != candidate + 1 {
                continue;
            }
            let counts: [u64; BUCKETS] =
                std::array::from_fn(|i| window.counts[i].load(Ordering::Relaxed));
            let total: u64 = counts.iter().sum();
            if total < u64::from(min_samples) || total == 0 {
                continue;
            }
            // The smallest bucket at which at least `percentile` % of the calls had answered.
            let rank = ((total as f64) * percentile / 100.0).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return Some(bucket_upper(bucket));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;
    const SECOND: Nanos = 1_000 * MS;

    #[test]
    fn buckets_cover_every_latency_in_order_and_bound_it_from_above() {
        let mut previous = 0;
        for micros in [
            0,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            999,
            1_000,
            12_345,
            1 << 20,
            1 << 33,
            u64::MAX / 1_000,
        ] {
            let latency = micros * 1_000;
            let bucket = bucket_of(latency);
            assert!(bucket >= previous, "{micros} µs");
            previous = bucket;
            if bucket < BUCKETS - 1 {
                assert!(
                    bucket_upper(bucket) > latency,
                    "{micros} µs in bucket {bucket}"
                );
                assert!(
                    bucket_upper(bucket) as f64 <= (latency as f64 * 1.25).max(4_000.0) + 1_000.0,
                    "{micros} µs: bound {}",
                    bucket_upper(bucket)
                );
            }
        }
    }

    #[test]
    fn the_percentile_comes_from_the_previous_window_once_it_has_enough_calls() {
        let latencies = Latencies::new(Duration::from_secs(10));
        for i in 0..100 {
            latencies.record(0, i * 10 * MS); // 0 ms .. 990 ms
        }
        let p90 = latencies.percentile(SECOND, 90.0, 20).unwrap();
        assert!((890 * MS..=1_120 * MS).contains(&p90), "{p90}");
        // Next window: the old latencies are still read until the new window has its own.
        for _ in 0..10 {
            latencies.record(11 * SECOND, 5 * SECOND);
        }
        assert_eq!(latencies.percentile(11 * SECOND, 90.0, 20), Some(p90));
        // Two windows later the old ones are gone; ten calls are too few.
        assert_eq!(latencies.percentile(21 * SECOND, 90.0, 20), None);
        assert!(latencies.percentile(21 * SECOND, 90.0, 10).unwrap() > 5 * SECOND);
    }

    #[test]
    fn answers_that_came_at_once_count_in_the_newest_window_seen() {
        let latencies = Latencies::new(Duration::from_secs(10));
        latencies.record(25 * SECOND, 2 * SECOND);
        for _ in 0..99 {
            latencies.record_immediate();
        }
        assert!(latencies.percentile(25 * SECOND, 50.0, 100).unwrap() <= 1_000);
        assert!(latencies.percentile(25 * SECOND, 99.5, 100).unwrap() > 2 * SECOND);
    }
}
