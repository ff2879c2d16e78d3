//! Lock-free sliding windows of call outcomes.
//!
//! Both windows are updated with a couple of relaxed atomic operations per call and read (summed)
//! only when a failure or slow call asks "should this trip?". They are statistics, not ledgers:
//! a reset racing a concurrent record may count that one call in the new period, which no trip
//! decision is sensitive to.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::clock::{Nanos, duration_to_nanos};
use crate::sync::CachePadded;

use super::config::SlidingWindow;

/// What the window holds right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WindowStats {
    /// Calls recorded (caller faults are never recorded).
    pub(crate) calls: u32,
    /// Of which failed.
    pub(crate) failures: u32,
    /// Of which were slow (successful or not).
    pub(crate) slow: u32,
}

impl WindowStats {
    pub(crate) fn failure_rate(self) -> f64 {
        ratio(self.failures, self.calls)
    }

    pub(crate) fn slow_rate(self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

#[allow(clippy::large_enum_variant)] // one window per breaker: size is irrelevant, padding is the point
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(size) => Window::Count(CountWindow::new(size)),
            SlidingWindow::Time(span) => Window::Time(TimeWindow::new(span)),
        }
    }

    /// Whether recording needs the current time (only the time-based window does).
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    #[inline]
    pub(crate) fn record(&self, failed: bool, slow: bool, now: Nanos) {
        match self {
            Window::Count(window) => window.record(failed, slow),
            Window::Time(window) => window.record(failed, slow, now),
        }
    }

    pub(crate) fn stats(&self, now: Nanos) -> WindowStats {
        match self {
            Window::Count(window) => window.stats(),
            Window::Time(window) => window.stats(now),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(window) => window.reset(),
            Window::Time(window) => window.reset(),
        }
    }
}

const EMPTY: u8 = 0;
const RECORDED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

/// The last `n` outcomes in a ring. Every slot change goes through `swap`, so the totals are
/// adjusted by exactly the difference between the old and the new outcome and stay exact under
/// concurrent writers.
///
/// A success arriving while the ring is full of successes changes nothing the window reports
/// (it replaces the oldest success with a new one), so it is not written at all: a healthy
/// agent's calls only *read* the window, and threads calling it do not contend on the ring.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    /// `u64::MAX / len + 1`: turns `position % len` into two multiplications (Lemire's fastmod),
    /// since a division on every call would cost more than the rest of the hot path.
    fastmod: u64,
    /// Written only while the window holds failures or slow calls.
    position: CachePadded<AtomicU64>,
    filled: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl CountWindow {
    fn new(size: u32) -> Self {
        let size = size.max(1);
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(EMPTY)).collect(),
            fastmod: (u64::MAX / u64::from(size)).wrapping_add(1),
            position: CachePadded(AtomicU64::new(0)),
            filled: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    /// `position % len` for a 32-bit position.
    #[inline]
    fn slot_index(&self, position: u64) -> usize {
        let low = self.fastmod.wrapping_mul(u64::from(position as u32));
        ((u128::from(low) * self.slots.len() as u128) >> 64) as usize
    }

    /// Records one outcome.
    #[inline]
    fn record(&self, failed: bool, slow: bool) {
        if !failed
            && !slow
            && self.failures.load(Relaxed) == 0
            && self.slow.load(Relaxed) == 0
            && self.filled.load(Relaxed) as usize == self.slots.len()
        {
            return;
        }
        let position = self.position.fetch_add(1, Relaxed);
        let new = RECORDED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let slot = &self.slots[self.slot_index(position)];
        // In steady state the slot already holds this outcome: a plain load, no write.
        if slot.load(Relaxed) != new {
            let old = slot.swap(new, Relaxed);
            if old != new {
                self.account(old, new);
            }
        }
    }

    fn account(&self, old: u8, new: u8) {
        if old == EMPTY {
            self.filled.fetch_add(1, Relaxed);
        } else if new == EMPTY {
            self.filled.fetch_sub(1, Relaxed);
        }
        adjust(&self.failures, old & FAILED != 0, new & FAILED != 0);
        adjust(&self.slow, old & SLOW != 0, new & SLOW != 0);
    }

    fn stats(&self) -> WindowStats {
        WindowStats {
            calls: self.filled.load(Relaxed),
            failures: self.failures.load(Relaxed),
            slow: self.slow.load(Relaxed),
        }
    }

    fn reset(&self) {
        for slot in &*self.slots {
            let old = slot.swap(EMPTY, Relaxed);
            if old != EMPTY {
                self.account(old, EMPTY);
            }
        }
    }
}

fn adjust(counter: &AtomicU32, was: bool, is: bool) {
    match (was, is) {
        (false, true) => {
            counter.fetch_add(1, Relaxed);
        }
        (true, false) => {
            counter.fetch_sub(1, Relaxed);
        }
        _ => {}
    }
}

const TIME_BUCKETS: u64 = 10;

/// The outcomes of the last `span`, in ten buckets of `span / 10`. A bucket is claimed for its
/// period by the first writer that sees it stale (compare-exchange on its period number).
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    bucket_nanos: Nanos,
}

#[derive(Default)]
struct Bucket {
    /// Period number + 1 (0: never used).
    period: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl TimeWindow {
    fn new(span: Duration) -> Self {
        TimeWindow {
            buckets: (0..TIME_BUCKETS).map(|_| Bucket::default()).collect(),
            bucket_nanos: (duration_to_nanos(span) / TIME_BUCKETS).max(1),
        }
    }

    fn record(&self, failed: bool, slow: bool, now: Nanos) {
        let period = now / self.bucket_nanos;
        let bucket = &self.buckets[(period % TIME_BUCKETS) as usize];
        let seen = bucket.period.load(Relaxed);
        if seen != period + 1
            && bucket
                .period
                .compare_exchange(seen, period + 1, Relaxed, Relaxed)
                .is_ok()
        {
            bucket.calls.store(0, Relaxed);
            bucket.failures.store(0, Relaxed);
            bucket.slow.store(0, Relaxed);
        }
        bucket.calls.fetch_add(1, Relaxed);
        if failed {
            bucket.failures.fetch_add(1, Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Relaxed);
        }
    }

    fn stats(&self, now: Nanos) -> WindowStats {
        let current = now / self.bucket_nanos;
        let mut stats = WindowStats::default();
        for bucket in &*self.buckets {
            let stored = bucket.period.load(Relaxed);
            if stored == 0 {
                continue;
            }
            let period = stored - 1;
            if period <= current && current - period < TIME_BUCKETS {
                stats.calls += bucket.calls.load(Relaxed);
                stats.failures += bucket.failures.load(Relaxed);
                stats.slow += bucket.slow.load(Relaxed);
            }
        }
        stats
    }

    fn reset(&self) {
        for bucket in &*self.buckets {
            bucket.period.store(0, Relaxed);
            bucket.calls.store(0, Relaxed);
            bucket.failures.store(0, Relaxed);
            bucket.slow.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Nanos = 1_000_000_000;

    #[test]
    fn count_window_keeps_exactly_the_last_n_outcomes() {
        let window = Window::new(SlidingWindow::Count(4));
        for failed in [true, true, false, false] {
            window.record(failed, false, 0);
        }
        assert_eq!(
            window.stats(0),
            WindowStats {
                calls: 4,
                failures: 2,
                slow: 0
            }
        );
        // Two successes push both failures out.
        window.record(false, true, 0);
        window.record(false, false, 0);
        assert_eq!(
            window.stats(0),
            WindowStats {
                calls: 4,
                failures: 0,
                slow: 1
            }
        );
        window.reset();
        assert_eq!(window.stats(0), WindowStats::default());
    }

    #[test]
    fn fastmod_matches_the_remainder() {
        for size in [1u32, 2, 3, 7, 50, 64, 100, 4096, 10_000] {
            let window = CountWindow::new(size);
            for position in (0..100_000u64).chain([u64::from(u32::MAX) - 1, u64::from(u32::MAX)]) {
                assert_eq!(
                    window.slot_index(position),
                    ((position as u32) % size) as usize,
                    "{position} % {size}"
                );
            }
        }
    }

    #[test]
    fn count_window_stays_exact_under_concurrent_writers() {
        let window = std::sync::Arc::new(CountWindow::new(64));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let window = window.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        window.record((i + t) % 3 == 0, false);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let stats = window.stats();
        let actual_failures = window
            .slots
            .iter()
            .filter(|slot| slot.load(Relaxed) & FAILED != 0)
            .count() as u32;
        assert_eq!(stats.calls, 64);
        assert_eq!(stats.failures, actual_failures);
    }

    #[test]
    fn time_window_forgets_outcomes_older_than_its_span() {
        let window = Window::new(SlidingWindow::Time(Duration::from_secs(10)));
        window.record(true, false, 0);
        window.record(true, false, 5 * SEC);
        window.record(false, false, 9 * SEC);
        assert_eq!(window.stats(9 * SEC).calls, 3);
        assert_eq!(window.stats(9 * SEC).failures, 2);
        // At 10.5 s the first bucket [0, 1) s has left the window.
        assert_eq!(
            window.stats(10 * SEC + SEC / 2),
            WindowStats {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // Long after, nothing is left, and a reused bucket starts from zero.
        assert_eq!(window.stats(100 * SEC), WindowStats::default());
        window.record(false, false, 100 * SEC);
        assert_eq!(
            window.stats(100 * SEC),
            WindowStats {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
    }
}
