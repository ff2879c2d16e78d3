//! The permit count and the AIMD policy: atomics and pure arithmetic, no tokio.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::sync::CachePadded;

/// Set in `in_flight` once the bulkhead is gone; the limit is at most a million, so the bit
/// is never a count, and `try_acquire` sees a count over any limit.
const RETIRED: u32 = 1 << 31;

/// Calls in flight and the limit they are held to. Both live on one line: `in_flight` is
/// written by every call anyway, and `limit` is read by every call and written only when an
/// adaptive limit moves.
#[derive(Debug)]
pub(crate) struct Permits {
    counts: CachePadded<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    in_flight: AtomicU32,
    limit: AtomicU32,
}

impl Permits {
    pub(crate) fn new(limit: u32) -> Self {
        Permits {
            counts: CachePadded(Counts {
                in_flight: AtomicU32::new(0),
                limit: AtomicU32::new(limit),
            }),
        }
    }

    /// Takes a permit if fewer than `limit` calls are in flight. A full bulkhead refuses after
    /// two loads and no write, so refusing in a storm does not bounce the line around.
    ///
    /// `SeqCst` pairs with [`release`](Self::release) and the waiter count: a waiter counts
    /// itself, then tries; a releaser gives back, then reads the count. One of the two sees
    /// the other, so no waiter sleeps through a free permit.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let limit = self.counts.limit.load(Relaxed);
        let mut current = self.counts.in_flight.load(SeqCst);
        loop {
            if current >= limit {
                return false;
            }
            match self
                .counts
                .in_flight
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// Gives a permit back. True when it was the last permit of a bulkhead already
    /// [`retire`](Self::retire)d: the caller then owns the permits again (to reuse them).
    #[inline]
    pub(crate) fn release(&self) -> bool {
        self.counts.in_flight.fetch_sub(1, SeqCst) == RETIRED | 1
    }

    /// Marks the bulkhead gone (no service can take a permit any more). True when no permit
    /// is out: the caller owns the permits again; otherwise the last release will.
    pub(crate) fn retire(&self) -> bool {
        self.counts.in_flight.fetch_or(RETIRED, SeqCst) == 0
    }

    /// Back to new, for another bulkhead: only by the owner `release` or `retire` named.
    pub(crate) fn reset(&self, limit: u32) {
        self.counts.in_flight.store(0, SeqCst);
        self.counts.limit.store(limit, SeqCst);
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.counts.in_flight.load(Relaxed) & !RETIRED
    }

    pub(crate) fn limit(&self) -> u32 {
        self.counts.limit.load(Relaxed)
    }

    /// Moves the limit with `step` (old limit to new); returns `(from, to)` if it changed.
    pub(crate) fn update_limit(&self, step: impl Fn(u32) -> u32) -> Option<(u32, u32)> {
        let mut from = self.counts.limit.load(Relaxed);
        loop {
            let to = step(from);
            if to == from {
                return None;
            }
            match self
                .counts
                .limit
                .compare_exchange_weak(from, to, SeqCst, Relaxed)
            {
                Ok(_) => return Some((from, to)),
                Err(now) => from = now,
            }
        }
    }
}

/// What one completed call says about the agent's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A success, fast enough.
    Success,
    /// Overload: a 429, a 503, a timeout, or a success slower than the threshold.
    Overload(&'static str),
    /// Says nothing about capacity (a caller fault, an agent fault, a local refusal).
    Neutral,
}

/// The limit after an additive increase, at most `max`.
pub(crate) fn increased(limit: u32, max: u32) -> u32 {
    limit.saturating_add(1).min(max)
}

/// The limit after a multiplicative decrease by `backoff` (in `0.1..1`), rounded down and at
/// least `min`. Always below `limit` unless `limit` is already `min`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // backoff < 1, so the product is in 0..limit: it fits
pub(crate) fn decreased(limit: u32, backoff: f64, min: u32) -> u32 {
    let cut = (f64::from(limit) * backoff).floor() as u32;
    cut.min(limit.saturating_sub(1)).max(min)
}

/// The AIMD bookkeeping between calls: successes since the last increase, and the generation
/// (bumped by each decrease) so that a burst of overload answers from one overload lowers the
/// limit once.
#[derive(Debug, Default)]
pub(crate) struct Aimd {
    successes: AtomicU32,
    generation: AtomicU32,
}

/// The adaptive limit's bounds and factor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) backoff: f64,
}

impl Aimd {
    /// The generation a call starting now belongs to.
    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
    }

    /// Applies one call's signal. `in_flight` counts this call. Returns the change when the
    /// limit went down (increases are returned too, with `to > from`).
    pub(crate) fn on_signal(
        &self,
        permits: &Permits,
        bounds: Bounds,
        signal: Signal,
        started_in: u32,
    ) -> Option<(u32, u32)> {
        match signal {
            Signal::Neutral => None,
            Signal::Success => {
                let limit = permits.limit();
                // Grow only while the limit is what holds calls back: an idle bulkhead's
                // successes say nothing about what the agent can take.
                if permits.in_flight().saturating_mul(2) < limit {
                    return None;
                }
                let successes = self.successes.fetch_add(1, Relaxed) + 1;
                if successes < limit {
                    return None;
                }
                self.successes.store(0, Relaxed);
                permits.update_limit(|limit| increased(limit, bounds.max))
            }
            Signal::Overload(_) => {
                // One decrease per generation: the calls in flight when the agent first said
                // "too much" all started under the old limit.
                if self
                    .generation
                    .compare_exchange(started_in, started_in.wrapping_add(1), SeqCst, Relaxed)
                    .is_err()
                {
                    return None;
                }
                self.successes.store(0, Relaxed);
                permits.update_limit(|limit| decreased(limit, bounds.backoff, bounds.min))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BOUNDS: Bounds = Bounds {
        min: 2,
        max: 10,
        backoff: 0.9,
    };

    #[test]
    fn the_permits_are_free_again_exactly_once_after_retirement_and_the_last_release() {
        // Retired with nothing out: free at once.
        let permits = Permits::new(2);
        assert!(permits.retire());

        // Retired with two out: the second release frees them, the first does not.
        let permits = Permits::new(2);
        assert!(permits.try_acquire() && permits.try_acquire());
        assert!(!permits.retire());
        assert_eq!(permits.in_flight(), 2, "the mark is not a count");
        assert!(!permits.try_acquire(), "no permit after retirement");
        assert!(!permits.release());
        assert!(permits.release());

        // Released before retirement: the retirement frees them.
        let permits = Permits::new(1);
        assert!(permits.try_acquire());
        assert!(!permits.release());
        assert!(permits.retire());

        // Reset for the next bulkhead: as new.
        permits.reset(3);
        assert_eq!((permits.in_flight(), permits.limit()), (0, 3));
        assert!(permits.try_acquire() && permits.try_acquire() && permits.try_acquire());
        assert!(!permits.try_acquire());
    }

    #[test]
    fn admits_exactly_the_limit_and_refuses_the_next() {
        let permits = Permits::new(3);
        assert!((0..3).all(|_| permits.try_acquire()));
        assert!(!permits.try_acquire());
        permits.release();
        assert!(permits.try_acquire());
        assert_eq!(permits.in_flight(), 3);
    }

    #[test]
    fn a_decrease_always_lowers_the_limit_until_the_minimum() {
        assert_eq!(decreased(10, 0.9, 1), 9);
        assert_eq!(decreased(2, 0.9, 1), 1);
        assert_eq!(decreased(1, 0.9, 1), 1);
        assert_eq!(decreased(100, 0.5, 1), 50);
        assert_eq!(decreased(5, 0.1, 3), 3);
    }

    #[test]
    fn one_overload_generation_lowers_the_limit_once() {
        let permits = Permits::new(10);
        let aimd = Aimd::default();
        let generation = aimd.generation();
        let overload = Signal::Overload("429");
        assert_eq!(
            aimd.on_signal(&permits, BOUNDS, overload, generation),
            Some((10, 9))
        );
        assert_eq!(aimd.on_signal(&permits, BOUNDS, overload, generation), None);
        let next = aimd.generation();
        assert_eq!(
            aimd.on_signal(&permits, BOUNDS, overload, next),
            Some((9, 8))
        );
    }

    #[test]
    fn successes_raise_the_limit_by_one_per_limit_successes_only_when_busy() {
        let permits = Permits::new(4);
        let aimd = Aimd::default();
        // Idle: one call in flight out of 4.
        assert!(permits.try_acquire());
        for _ in 0..10 {
            assert_eq!(aimd.on_signal(&permits, BOUNDS, Signal::Success, 0), None);
        }
        assert!(permits.try_acquire());
        let changes: Vec<_> = (0..4)
            .filter_map(|_| aimd.on_signal(&permits, BOUNDS, Signal::Success, 0))
            .collect();
        assert_eq!(changes, [(4, 5)]);
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_its_bounds(signals in proptest::collection::vec(0_u8..3, 0..400)) {
            let permits = Permits::new(BOUNDS.max);
            let aimd = Aimd::default();
            for _ in 0..BOUNDS.max { permits.try_acquire(); }
            for signal in signals {
                let signal = match signal {
                    0 => Signal::Success,
                    1 => Signal::Overload("429"),
                    _ => Signal::Neutral,
                };
                aimd.on_signal(&permits, BOUNDS, signal, aimd.generation());
                prop_assert!((BOUNDS.min..=BOUNDS.max).contains(&permits.limit()));
            }
        }
    }
}
