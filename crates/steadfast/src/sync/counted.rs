//! [`Spread`] and [`Local`]: a layer's shared state, handed to each call with one atomic
//! read-modify-write instead of two.
//!
//! A response future must own what it reads when the call completes (tower's futures outlive
//! their service: `ServiceExt::oneshot` drops the service as soon as it has called it), so every
//! layer's future holds a counted reference to the layer's state. An `Arc` clone and its drop
//! are two locked instructions per layer per call; `perf` put 60 % of a closed breaker's call and
//! 40 to 48 % of the 3- and 5-layer stacks' calls on them (Intel Xeon; each costs more than the
//! rest of a layer's work there).
//!
//! A call is *handed out* by a service through `&mut self`, so no other thread can be handing
//! out calls from the same service at that moment: the service counts what it hands out in a
//! plain field and adds it to the shared count only every [`PUBLISH_EVERY`] calls and when it is
//! dropped. Only the *return* (a [`Local`] dropped, on whatever thread its future ended) is an
//! atomic subtraction. Each attached service, and each thread's entry of the state's table, holds
//! a [`PRESENCE`] in the count, far more than its unpublished calls can take off, so the count
//! cannot reach zero while any of them is there; once they have all gone, every call has been
//! added, and the count reaches zero exactly when the last call returns. Whoever brings it to
//! zero frees it, as with an `Arc`: the state is released as soon as its last service and its
//! last call are gone, on whatever thread that happens.
//!
//! Measured with `benches/src/bin/hotpath.rs` (Intel Xeon, minimum of alternated runs): the
//! 3-layer stack went from 91.5 to 76.6 ns a call, the 5-layer one from 141 to 112 ns. With no
//! count at all (an unsound experiment, not kept) they took 53 and 80 ns: the return's locked
//! subtraction is most of what is left of the floor. A count biased to one thread (no atomic for
//! the calls that end on the thread that counts them) would remove it too, but a thread cannot
//! see another's plain count: the state would stay alive until each thread that called it ran
//! again, and a dead-letter sink's files, or the connection pool of the service retry keeps,
//! would stay open after the stack holding the last reference was dropped. Not done.
//!
//! Asymmetric fences (Linux `membarrier`) answer that objection, and the count's own memory
//! needs no epochs: the owner thread's returns are a plain load and store into a count only it
//! writes, then a read of the balance; whoever gives back the last presence, and every return
//! after that, runs `membarrier` before it sums; the owner thread's registry (a thread-local
//! list) keeps the memory of the counts it owns until it sees their state gone or exits. That
//! was built (`benches/experiments/biased-count.patch`; the module's tests pass, also under
//! Miri) and measured on an AMD EPYC host: no gain on the rows it was for, and the rejections
//! 16 to 24 ns slower (`benches/analysis.md`, "The count biased to its thread"). On an Intel
//! Xeon host it gained what it was for (the 3- and 5-layer stacks about 23 ns a call each in
//! criterion), and cost a stack built per request (as `steadfast-http`'s reqwest
//! middleware builds one) what rules it out: each state dropped with a call still in flight is
//! settled by that call, and when the call ends on another thread (a task resumed on another
//! worker) the settle is a `membarrier`, which interrupts every core running a thread of the
//! process. `per_request cross` (`benches/src/bin/per_request.rs`) went from 2.9 to 9.0 µs a
//! request on two cores (medians of five alternated runs), and took 52 to 62 µs before a settler
//! on the owner thread skipped the system call (`benches/analysis.md`, "The biased count on a
//! Xeon host"). Not done.
//!
//! The one module of the crate with `unsafe` code: the count is a raw pointer that each holder
//! of a share may dereference and the holder of the last share frees, since the standard
//! library has no reference count whose increments can be deferred. Every `unsafe` block says
//! why its share is held, and `.ci/run` runs this module's tests under Miri (`cargo miri`).
#![allow(
    unsafe_code,
    reason = "a reference count whose increments a service defers (module doc); tested under Miri"
)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering, fence};

use thread_local::ThreadLocal;

use super::CachePadded;

/// What each attached service, and each thread's entry of a state's table, adds to the count
/// while it is there: 2^32, above anything its unpublished calls can take off (fewer than
/// [`PUBLISH_EVERY`]). 2^31 of them fit in the count at once: services attached to one thread's
/// count at the same time, each at least a few bytes, so more than the memory of any machine.
const PRESENCE: i64 = 1 << 32;

/// A service adds the calls it handed out to the count every this many calls (one atomic add,
/// amortized to nothing).
#[cfg(not(test))]
const PUBLISH_EVERY: u32 = 1 << 16;
/// Small under test, so that the tests cross it.
#[cfg(test)]
const PUBLISH_EVERY: u32 = 3;

/// The count and the state, on a line of their own (each thread's calls have their own count, so
/// two threads' returns never write one line).
struct Count<T> {
    /// The presences of the table's entry and of the attached services, plus the calls added,
    /// minus the calls returned.
    balance: AtomicI64,
    value: Arc<T>,
}

/// A share of a [`Count`]: the table's entry of one thread (one presence), an attached service
/// (one presence and its unpublished calls) or a call (one).
type CountPtr<T> = NonNull<CachePadded<Count<T>>>;

fn new_count<T>(value: Arc<T>) -> CountPtr<T> {
    NonNull::from(Box::leak(Box::new(CachePadded(Count {
        balance: AtomicI64::new(PRESENCE),
        value,
    }))))
}

/// The count behind `ptr`.
///
/// # Safety
/// The caller holds a share of it (the count is freed only when every share is given back).
unsafe fn count<'a, T>(ptr: CountPtr<T>) -> &'a Count<T> {
    // SAFETY: a share is held, so the count has not been freed (caller's contract).
    unsafe { &ptr.as_ref().0 }
}

/// Adds to the count of a share the caller holds (a service publishing its calls, a call
/// cloned, a service attaching). Never frees: the caller's share keeps the count above zero.
///
/// # Safety
/// The caller holds a share of the count.
unsafe fn add<T>(ptr: CountPtr<T>, calls: i64) {
    // SAFETY: the caller's share keeps the count alive.
    let count = unsafe { count(ptr) };
    // Relaxed, as `Arc::clone`: a share is already held, so nothing can be freed meanwhile.
    count.balance.fetch_add(calls, Ordering::Relaxed);
}

/// Gives back `shares` (a positive amount) of the count, freeing it if that was the last.
///
/// # Safety
/// The caller holds at least that much of the count and does not use `ptr` afterwards.
unsafe fn give_back<T>(ptr: CountPtr<T>, shares: i64) {
    // SAFETY: the caller's share keeps the count alive until this subtraction.
    let count = unsafe { count(ptr) };
    // As `Arc`'s drop: release what this holder did with the state, and acquire what every
    // other holder did before freeing it.
    if count.balance.fetch_sub(shares, Ordering::Release) != shares {
        return;
    }
    fence(Ordering::Acquire);
    // SAFETY: the balance reached zero: every share has been given back (each presence
    // covered its service's unpublished calls until the service published them), so nothing
    // refers to the count any more, and it was made by `Box::leak` in `new_count`.
    drop(unsafe { Box::from_raw(ptr.as_ptr()) });
}

/// A layer's shared state, handed to each call with one atomic subtraction (module doc).
///
/// Each thread has its own count of the state (an entry of the state's table, made on the
/// thread's first call: one small allocation per thread, never per call), and each service uses
/// the count of the thread it first ran on: a service is called through `&mut self`, so one
/// service is never used by two threads at once, and its calls write a line no other thread's
/// services write. (A service that moves to another thread keeps its count: still correct,
/// merely shared with the services of its first thread.) A clone starts detached, so cloning
/// stays one reference-count increment and no allocation, which matters because tower services
/// are cloned per request (axum's router does).
pub(crate) struct Spread<T> {
    hub: Arc<Hub<T>>,
    /// The count this service hands its calls out of, once it has made a call.
    attached: Option<Attached<T>>,
}

struct Hub<T> {
    shared: Arc<T>,
    counts: ThreadLocal<Entry<T>>,
}

/// A thread's count, as the state's table holds it: one presence, given back when the table
/// goes.
struct Entry<T>(CountPtr<T>);

// SAFETY: an entry is a share of a count of an `Arc<T>`, and the count itself is atomic. Entries
// reach another thread only inside their `Hub` (`ThreadLocal` needs its entries `Send`), and a
// `Hub` holds the `Arc<T>` itself, so it is `Send` or `Sync` only when `T: Send + Sync`, as the
// `Arc` would be: for any other `T`, every entry stays on the one thread that has the hub.
unsafe impl<T> Send for Entry<T> {}

impl<T> Drop for Entry<T> {
    fn drop(&mut self) {
        // SAFETY: the entry holds one presence, and is dropped once.
        unsafe { give_back(self.0, PRESENCE) }
    }
}

/// A service's hold on a count: one presence, and the calls it handed out since it last added
/// them.
struct Attached<T> {
    count: CountPtr<T>,
    unpublished: u32,
}

// SAFETY: as `Entry`: a share of a count of an `Arc<T>`; `unpublished` is a plain field that
// only `&mut self` changes.
unsafe impl<T: Send + Sync> Send for Attached<T> {}
// SAFETY: `&Attached` only reads the pointer.
unsafe impl<T: Send + Sync> Sync for Attached<T> {}

impl<T> Attached<T> {
    #[inline]
    fn hand_out(&mut self) -> Local<T> {
        self.unpublished += 1;
        if self.unpublished == PUBLISH_EVERY {
            self.publish();
        }
        // The call's share is covered by this service's presence until published.
        Local {
            count: self.count,
            _state: PhantomData,
        }
    }

    #[cold]
    fn publish(&mut self) {
        // SAFETY: this service holds a presence in the count.
        unsafe { add(self.count, i64::from(self.unpublished)) };
        self.unpublished = 0;
    }
}

impl<T> Drop for Attached<T> {
    fn drop(&mut self) {
        // The calls handed out since the last publication join the count as the presence that
        // covered them leaves: the count reaches zero only once they have returned too.
        // SAFETY: this service holds a presence, given back once, here.
        unsafe { give_back(self.count, PRESENCE - i64::from(self.unpublished)) }
    }
}

impl<T> Spread<T> {
    pub(crate) fn new(value: T) -> Self {
        Spread::from_arc(Arc::new(value))
    }

    pub(crate) fn from_arc(shared: Arc<T>) -> Self {
        Spread {
            hub: Arc::new(Hub {
                shared,
                counts: ThreadLocal::new(),
            }),
            attached: None,
        }
    }

    /// The state, as a plain `Arc` (for what outlives a call: handles, background tasks).
    pub(crate) fn arc(&self) -> &Arc<T> {
        &self.hub.shared
    }

    /// A reference for one call: no atomic instruction (the service adds its calls to the
    /// count in batches).
    #[inline]
    pub(crate) fn local(&mut self) -> Local<T> {
        match &mut self.attached {
            Some(attached) => attached.hand_out(),
            None => self.attach(),
        }
    }

    #[cold]
    fn attach(&mut self) -> Local<T> {
        let hub = &*self.hub;
        let entry = hub.counts.get_or(|| Entry(new_count(hub.shared.clone())));
        // SAFETY: the table's entry holds a presence while `hub` (borrowed here) lives; the one
        // added here keeps the count alive for this service after that.
        unsafe { add(entry.0, PRESENCE) };
        self.attached
            .insert(Attached {
                count: entry.0,
                unpublished: 0,
            })
            .hand_out()
    }
}

impl<T> Clone for Spread<T> {
    fn clone(&self) -> Self {
        Spread {
            hub: self.hub.clone(),
            attached: None,
        }
    }
}

impl<T> Deref for Spread<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.hub.shared
    }
}

impl<T: fmt::Debug> fmt::Debug for Spread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// One call's reference to a [`Spread`]'s state: dropping it is one atomic subtraction.
pub(crate) struct Local<T> {
    count: CountPtr<T>,
    _state: PhantomData<Arc<T>>,
}

// SAFETY: a `Local` owns a share of a count of an `Arc<T>` and gives access to `&T` only, as
// that `Arc` would: sendable and shareable when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Local<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Local<T> {}

impl<T> Local<T> {
    /// The state, as a plain `Arc`.
    pub(crate) fn arc(&self) -> &Arc<T> {
        // SAFETY: this call holds a share of the count until it is dropped, and the borrow
        // does not outlive `self`.
        unsafe { &count(self.count).value }
    }

    /// Whether two calls share one count (tests).
    #[cfg(test)]
    pub(crate) fn same_count(&self, other: &Self) -> bool {
        self.count == other.count
    }
}

impl<T> Clone for Local<T> {
    fn clone(&self) -> Self {
        // SAFETY: `self` holds a share; the new one is added before it exists.
        unsafe { add(self.count, 1) };
        Local {
            count: self.count,
            _state: PhantomData,
        }
    }
}

impl<T> Drop for Local<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this call holds one share, given back once, here.
        unsafe { give_back(self.count, 1) }
    }
}

impl<T> Deref for Local<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.arc()
    }
}

impl<T: fmt::Debug> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Sets its flag when dropped: the state was released.
    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn flagged() -> (Spread<Flag>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        (Spread::new(Flag(dropped.clone())), dropped)
    }

    fn released(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }

    #[test]
    fn a_call_in_flight_keeps_the_state_after_every_spread_is_gone() {
        let (mut spread, dropped) = flagged();
        let mut other = spread.clone();
        let call = spread.local();
        let from_another_thread =
            std::thread::scope(|scope| scope.spawn(|| other.local()).join().unwrap());
        drop(spread);
        drop(other);
        assert!(!released(&dropped), "two calls still hold the state");
        drop(call);
        assert!(!released(&dropped), "one call still holds the state");
        drop(from_another_thread);
        assert!(released(&dropped), "the last reference freed it");
    }

    #[test]
    fn the_state_goes_with_its_last_service_when_no_call_is_in_flight() {
        let (mut spread, dropped) = flagged();
        for _ in 0..=PUBLISH_EVERY * 2 {
            drop(spread.local());
        }
        let clone = spread.clone();
        drop(spread);
        assert!(!released(&dropped), "a clone still holds it");
        drop(clone);
        assert!(released(&dropped), "released at once, on this thread");
    }

    #[test]
    fn calls_handed_out_before_and_after_a_publication_all_keep_the_state() {
        // Every split of the calls around the batch boundary: the ones published and the ones
        // the service still held unpublished when it was dropped.
        for held in 0..=PUBLISH_EVERY * 2 + 1 {
            let (mut spread, dropped) = flagged();
            let calls: Vec<_> = (0..held).map(|_| spread.local()).collect();
            drop(spread);
            for (left, call) in (0..held).rev().zip(calls) {
                assert!(!released(&dropped), "{held} calls: released early");
                drop(call);
                assert_eq!(released(&dropped), left == 0, "{held} calls, {left} left");
            }
            assert!(released(&dropped), "{held} calls: never released");
        }
    }

    #[test]
    fn calls_returned_before_their_service_publishes_them_do_not_release_the_state() {
        let (mut spread, dropped) = flagged();
        // Returned before the service adds them: the balance goes under the presences, never
        // to zero.
        for _ in 0..PUBLISH_EVERY - 1 {
            drop(spread.local());
        }
        let kept = spread.local();
        assert!(!released(&dropped));
        drop(spread);
        assert!(!released(&dropped), "the call in flight holds it");
        drop(kept);
        assert!(released(&dropped));
    }

    #[test]
    fn calls_ended_on_other_threads_and_cloned_calls_are_counted() {
        let (mut spread, dropped) = flagged();
        let calls: Vec<_> = (0..PUBLISH_EVERY * 3).map(|_| spread.local()).collect();
        let cloned = calls[0].clone();
        let mut moved = spread.clone();
        drop(moved.local());
        drop(spread);
        std::thread::scope(|scope| {
            let mut calls = calls.into_iter();
            let first: Vec<_> = calls.by_ref().take(4).collect();
            let rest: Vec<_> = calls.collect();
            scope.spawn(move || drop(first));
            scope.spawn(move || drop(rest));
            // A service moved to a thread it never ran on keeps its first thread's count,
            // and gives its presence back to it from there.
            scope.spawn(|| {
                let call = moved.local();
                assert!(call.same_count(&cloned), "its first thread's count");
                drop(moved);
                drop(call);
            });
        });
        assert!(!released(&dropped), "the cloned call still holds it");
        drop(cloned);
        assert!(released(&dropped));
    }

    #[test]
    fn services_on_one_thread_share_a_count_and_other_threads_have_their_own() {
        let mut spread = Spread::new(7_u32);
        let mut clone = spread.clone();
        let here = spread.local();
        assert!(
            here.same_count(&spread.local()),
            "a service keeps its count"
        );
        assert!(here.same_count(&clone.local()), "one count per thread");
        let mut moved = spread.clone();
        let there = std::thread::scope(|scope| scope.spawn(|| moved.local()).join().unwrap());
        assert!(!here.same_count(&there), "another thread has its own");
        assert!(Arc::ptr_eq(here.arc(), there.arc()), "over the same state");
        assert_eq!((*here, *there), (7, 7));
    }

    #[test]
    fn many_threads_calling_and_dropping_release_the_state_exactly_once() {
        let (spread, dropped) = flagged();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let mut service = spread.clone();
                scope.spawn(move || {
                    let mut kept = Vec::new();
                    for call in 0..(PUBLISH_EVERY * 2 + thread) {
                        let local = service.local();
                        if call % 2 == 0 {
                            kept.push(local);
                        }
                    }
                    drop(service);
                    drop(kept);
                });
            }
        });
        assert!(!released(&dropped), "the first service still holds it");
        drop(spread);
        assert!(released(&dropped));
    }
}
