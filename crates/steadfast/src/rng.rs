//! The one random number generator of the crate: SplitMix64 behind one atomic.
//!
//! Jitter and fault injection need draws that are (a) seedable, so a test replays the exact
//! waits and faults, (b) shared by every clone of a layer across threads, and (c) lock-free on
//! the call path. `rand`'s generators are seedable but not `Sync`: sharing one would need a
//! mutex, and per-thread generators would lose the replayable sequence. SplitMix64 advances its
//! state by a constant, so one relaxed `fetch_add` hands each caller its own draw; the output
//! mix is Steele, Lea and Flood's (2014), the same as `rand`'s `SplitMix64`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A lock-free SplitMix64 generator.
#[derive(Debug)]
pub(crate) struct SplitMix {
    state: AtomicU64,
}

pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    /// A seed that differs per process and per call, without a `rand` dependency: std's
    /// `RandomState` is keyed from the OS once per thread and stepped per call.
    pub(crate) fn random_seed() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5EED);
        hasher.finish()
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA))
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_unit(&self) -> f64 {
        unit(self.next_u64())
    }
}

pub(crate) fn mix(state: u64) -> u64 {
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A draw in `[0, 1)` from 53 random bits.
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_sequence() {
        let a = SplitMix::new(7);
        let b = SplitMix::new(7);
        let first: Vec<_> = (0..8).map(|_| a.next_u64()).collect();
        let second: Vec<_> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(first, second);
        assert_ne!(first[0], first[1]);
    }

    #[test]
    fn units_stay_in_range() {
        let rng = SplitMix::new(1);
        assert!(
            (0..10_000)
                .map(|_| rng.next_unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
    }
}
