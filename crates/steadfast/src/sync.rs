//! Small concurrency helpers for the hot paths: a cache-line pad, a per-thread counter and a
//! shared pointer whose per-call references cost one atomic instruction ([`Spread`], in
//! `counted`), so that threads calling the same agent do not fight over one cache line, and a
//! call takes no locked instruction it can avoid.

use std::fmt;
use std::ops::Deref;
#[cfg(feature = "rate-limit")]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use thread_local::ThreadLocal;

mod counted;

#[allow(
    unused_imports,
    reason = "every layer that keeps state uses them; a build with no such layer has none"
)]
pub(crate) use counted::{Local, Spread};

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

/// A monotonic counter incremented on every call by many threads, with no atomic
/// read-modify-write on the path: each thread owns a cell of its own (made on the thread's
/// first increment, from the `thread_local` crate) and is its only writer, so an increment is
/// a plain load and store; readers sum the cells.
///
/// A locked add (what a shared atomic counter, sharded or not, and an `Arc` clone take) costs
/// about 5 ns on the machines of `docs/benchmarks.md` even when no other thread touches the
/// line, and it was the largest single cost of a call through a breaker. Exact: no two threads ever write one
/// cell (a thread's cell passes to a later thread only after the first has exited, through
/// the crate's id allocator, which orders the two). It cannot be reset, since a reset from
/// another thread would race the owner's store (the retry budget tags its per-thread slots
/// with their time window instead).
#[derive(Default)]
pub(crate) struct PerThreadCounter {
    cells: ThreadLocal<CachePadded<AtomicU64>>,
}

impl PerThreadCounter {
    /// Adds one; returns this thread's count before it (for cheap sampling).
    #[inline]
    pub(crate) fn increment(&self) -> u64 {
        let cell = this_thread(&self.cells);
        let before = cell.load(Relaxed);
        cell.store(before + 1, Relaxed);
        before
    }

    pub(crate) fn sum(&self) -> u64 {
        self.cells.iter().map(|cell| cell.load(Relaxed)).sum()
    }
}

impl fmt::Debug for PerThreadCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PerThreadCounter")
            .field(&self.sum())
            .finish()
    }
}

/// The latest of the values many threads record (a time of day, a high-water mark), with no
/// shared line written: each thread stores into a cell of its own and readers take the
/// largest. A shared atomic stored every few dozen calls by each of two threads made the line
/// it sat on move between their cores at every store, and every call of the other thread
/// that read a field of that line then missed its cache: the breaker's `last_success` cost two
/// threads sharing a breaker about a tenth of their throughput.
#[derive(Default)]
pub(crate) struct PerThreadLatest {
    cells: ThreadLocal<CachePadded<AtomicU64>>,
}

impl PerThreadLatest {
    /// Records `value` for this thread (kept only if above this thread's last).
    #[inline]
    pub(crate) fn record(&self, value: u64) {
        let cell = this_thread(&self.cells);
        if cell.load(Relaxed) < value {
            cell.store(value, Relaxed);
        }
    }

    /// The largest value any thread recorded (0: none).
    pub(crate) fn latest(&self) -> u64 {
        self.cells
            .iter()
            .map(|cell| cell.load(Relaxed))
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Debug for PerThreadLatest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PerThreadLatest")
            .field(&self.latest())
            .finish()
    }
}

/// This thread's entry of `cells`, made on the thread's first use. The lookup is written out
/// so that it inlines (`ThreadLocal::get_or_default` stayed a call on the hot path).
#[inline]
pub(crate) fn this_thread<T: Send + Default>(cells: &ThreadLocal<T>) -> &T {
    match cells.get() {
        Some(cell) => cell,
        None => first_use(cells),
    }
}

#[cold]
#[inline(never)]
fn first_use<T: Send + Default>(cells: &ThreadLocal<T>) -> &T {
    cells.get_or_default()
}

/// A way back to a shared state that a call can carry without counting a reference: a number,
/// never reused, that a process-wide table maps to a weak reference.
///
/// A [`Local`] costs a call two atomic read-modify-writes (the increment when the call starts,
/// the decrement when its future is dropped), about a third of a rate-limited call's own time.
/// A call that needs its layer's state only on a rare path (a rate-limited answer pausing the
/// agent) carries an `Address` instead: copying it is free, and the rare path pays a lock and
/// an upgrade to [`find`](Address::find) the state, or learns that it is gone.
#[cfg(feature = "rate-limit")]
pub(crate) struct Address<T> {
    id: std::num::NonZeroU64,
    _state: std::marker::PhantomData<fn() -> Arc<T>>,
}

#[cfg(feature = "rate-limit")]
type AddressTable = std::sync::Mutex<
    std::collections::BTreeMap<u64, std::sync::Weak<dyn std::any::Any + Send + Sync>>,
>;

/// Every listed state, by address. Touched when a state is made or dropped, and on rare paths.
#[cfg(feature = "rate-limit")]
static ADDRESSES: AddressTable = std::sync::Mutex::new(std::collections::BTreeMap::new());

#[cfg(feature = "rate-limit")]
fn addresses() -> std::sync::MutexGuard<
    'static,
    std::collections::BTreeMap<u64, std::sync::Weak<dyn std::any::Any + Send + Sync>>,
> {
    // A panic while the table was locked cannot leave it half-updated (one insert or remove).
    ADDRESSES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(feature = "rate-limit")]
impl<T> Clone for Address<T> {
    fn clone(&self) -> Self {
        *self
    }
}

#[cfg(feature = "rate-limit")]
impl<T> Copy for Address<T> {}

#[cfg(feature = "rate-limit")]
impl<T: std::any::Any + Send + Sync> Address<T> {
    /// The state, if it still lives.
    pub(crate) fn find(self) -> Option<Arc<T>> {
        let state = addresses().get(&self.id.get())?.upgrade()?;
        state.downcast::<T>().ok()
    }
}

#[cfg(feature = "rate-limit")]
impl<T> fmt::Debug for Address<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.id)
    }
}

/// A state's entry in the table of [`Address`]es: a field of the state (made with
/// `Arc::new_cyclic`), so the state is listed exactly as long as it lives.
#[cfg(feature = "rate-limit")]
pub(crate) struct Listing<T> {
    address: Address<T>,
}

#[cfg(feature = "rate-limit")]
impl<T: std::any::Any + Send + Sync> Listing<T> {
    pub(crate) fn new(state: std::sync::Weak<T>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        // 2^64 states at one per nanosecond take 584 years: never reused, never zero.
        let id = std::num::NonZeroU64::new(NEXT.fetch_add(1, Relaxed))
            .unwrap_or(std::num::NonZeroU64::MAX);
        addresses().insert(id.get(), state);
        Listing {
            address: Address {
                id,
                _state: std::marker::PhantomData,
            },
        }
    }

    pub(crate) fn address(&self) -> Address<T> {
        self.address
    }
}

#[cfg(feature = "rate-limit")]
impl<T> Drop for Listing<T> {
    fn drop(&mut self) {
        addresses().remove(&self.address.id.get());
    }
}

#[cfg(feature = "rate-limit")]
impl<T> fmt::Debug for Listing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.address, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_is_the_largest_any_thread_recorded_and_a_thread_never_goes_back() {
        let latest = PerThreadLatest::default();
        assert_eq!(latest.latest(), 0, "nothing recorded");
        latest.record(5);
        std::thread::scope(|scope| {
            scope.spawn(|| latest.record(9)).join().unwrap();
            scope.spawn(|| latest.record(7)).join().unwrap();
        });
        assert_eq!(latest.latest(), 9, "another thread's later value");
        latest.record(3);
        assert_eq!(latest.latest(), 9, "an earlier value changes nothing");
        latest.record(12);
        assert_eq!(latest.latest(), 12);
    }

    #[cfg(feature = "rate-limit")]
    #[test]
    fn an_address_finds_its_state_while_it_lives_and_nothing_after() {
        struct State {
            listing: Listing<State>,
            value: u32,
        }
        let state = Arc::new_cyclic(|weak| State {
            listing: Listing::new(weak.clone()),
            value: 7,
        });
        let address = state.listing.address();
        let other = Arc::new_cyclic(|weak| State {
            listing: Listing::new(weak.clone()),
            value: 8,
        });
        assert_eq!(address.find().map(|found| found.value), Some(7));
        assert_eq!(
            other.listing.address().find().map(|found| found.value),
            Some(8)
        );
        let found = address.find().unwrap();
        drop(state);
        assert!(
            address.find().is_some(),
            "a found state is a counted reference"
        );
        drop(found);
        assert!(address.find().is_none(), "gone with its last reference");
        assert!(
            !addresses().contains_key(&address.id.get()),
            "and unlisted, so the table does not grow"
        );
        assert_eq!(
            other.listing.address().find().map(|found| found.value),
            Some(8)
        );
    }

    #[test]
    fn per_thread_counter_sums_every_thread_exactly() {
        let counter = std::sync::Arc::new(PerThreadCounter::default());
        assert_eq!(counter.increment(), 0);
        assert_eq!(
            counter.increment(),
            1,
            "this thread's count before the increment"
        );
        // More threads than shards, some ending before others start (their cells are reused).
        for round in 0..3 {
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
            assert_eq!(counter.sum(), 2 + 12_000 * (round + 1));
        }
    }
}
