//! Small concurrency helpers for the hot paths: a cache-line pad and a sharded counter, so that
//! threads calling the same agent do not fight over one cache line.

use std::cell::Cell;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Aligns `T` to 128 bytes (two cache lines, as adjacent-line prefetchers pair them) so that a
/// field written on every call does not share its line with fields other threads read.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

const SHARDS: usize = 8;

/// A counter incremented on every call by many threads: each thread adds to its own shard (an
/// uncontended atomic), readers sum the shards.
#[derive(Debug, Default)]
pub(crate) struct ShardedCounter {
    shards: [CachePadded<AtomicU64>; SHARDS],
}

#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Const-initialised, so reading it is a plain thread-local load with no lazy-init check;
    // `usize::MAX` marks a thread that has not been given a shard yet.
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        let index = shard.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT.fetch_add(1, Relaxed) % SHARDS;
        shard.set(index);
        index
    })
}

impl ShardedCounter {
    /// Adds one; returns this thread's shard count before it (for cheap sampling).
    #[inline]
    pub(crate) fn increment(&self) -> u64 {
        self.shards[shard_index()].fetch_add(1, Relaxed)
    }

    pub(crate) fn sum(&self) -> u64 {
        self.shards.iter().map(|shard| shard.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_increments_from_every_thread() {
        let counter = std::sync::Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        counter.increment();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.sum(), 12_000);
    }
}
