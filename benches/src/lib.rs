//! Shared pieces of the steadfast benchmark harness: allocation counting and a way to drive a
//! service whose futures are ready at once, without a runtime (so the figures are the layers'
//! own cost, not a scheduler's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use stats_alloc::{Region, StatsAlloc};
use steadfast::dead_letter::{Bytes, DeadLetterLayer, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tower::{Service, ServiceBuilder};

/// The global allocator of every bench binary: the system allocator, counting (with
/// `stats_alloc`) only while [`allocations_per_call`] counts.
///
/// `stats_alloc` counts with four sequentially consistent atomic adds per allocation and free,
/// about 25 ns on an Intel Xeon: left on while criterion timed the rows, every row that allocates
/// paid for the harness's bookkeeping (a rejection's boxed error, each of tower-resilience's
/// boxes), which no user's program pays. Install it with
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;
/// ```
pub struct BenchAllocator {
    counting: AtomicBool,
    stats: StatsAlloc<System>,
}

/// The one [`BenchAllocator`] of a bench binary.
pub static BENCH_ALLOCATOR: BenchAllocator = BenchAllocator {
    counting: AtomicBool::new(false),
    stats: StatsAlloc::system(),
};

/// How a bench binary names its global allocator.
pub type CountingAllocator = &'static BenchAllocator;

impl BenchAllocator {
    fn counting(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }
}

// SAFETY: every method forwards to `System`, directly or through `stats_alloc`'s wrapper of it,
// which only counts; memory from either path is `System`'s, so either path may free it.
#[allow(
    unsafe_code,
    reason = "a global allocator (the harness's, not the library's)"
)]
unsafe impl GlobalAlloc for &'static BenchAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if self.counting() {
                self.stats.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if self.counting() {
                self.stats.dealloc(ptr, layout);
            } else {
                System.dealloc(ptr, layout);
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if self.counting() {
                self.stats.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            if self.counting() {
                self.stats.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

/// Allocations per call of `f`, averaged over `calls` calls (after a warm-up), counted by the
/// global allocator `global` (counting only for these calls).
pub fn allocations_per_call(global: CountingAllocator, calls: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    global.counting.store(true, Ordering::SeqCst);
    let region = Region::new(&global.stats);
    for _ in 0..calls {
        f();
    }
    let allocations = region.change().allocations;
    global.counting.store(false, Ordering::SeqCst);
    allocations as f64 / calls as f64
}

/// Calls `service` (readiness, then the response future) with a no-op waker, for services that
/// answer at once; panics if anything is pending, since the figures would then mean nothing.
#[inline]
pub fn call_now<S: Service<R>, R>(service: &mut S, request: R) -> Result<S::Response, S::Error> {
    ready_now(service)?;
    answer_now(service.call(request))
}

/// Polls `service` for readiness once with a no-op waker; panics if it is not ready at once.
#[inline]
pub fn ready_now<S: Service<R>, R>(service: &mut S) -> Result<(), S::Error> {
    match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(ready) => ready,
        Poll::Pending => panic!("benchmarked service was not ready at once"),
    }
}

/// Polls a response future once with a no-op waker; panics if it did not answer at once.
#[inline]
pub fn answer_now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("benchmarked service did not answer at once"),
    }
}

/// [`call_now`], reduced to whether it answered `Ok`.
#[inline]
pub fn call_once<S: Service<R>, R>(service: &mut S, request: R) -> bool {
    call_now(service, request).is_ok()
}

/// The agent the runtime-driven rows (and `hotpath`) wrap: an in-process service that answers
/// at once.
pub fn agent() -> impl Service<
    u64,
    Response = u64,
    Error = steadfast::BoxError,
    Future = std::future::Ready<Result<u64, steadfast::BoxError>>,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|n: u64| std::future::ready(Ok(n.wrapping_add(1))))
}

/// The same agent written as most in-process agents are, with an `async` block: its answer is
/// computed when the future is polled, not when `call` returns it. Beside [`agent`] it tells
/// what a layer costs over the agent itself: a layer reads [`agent`]'s answer (a
/// `future::Ready`, written a word at a time in `call`) a few instructions after it was
/// written, in a wider load the processor cannot serve from the pending stores, and waits for
/// them; this agent's answer is made in registers at the poll (`rt_async_agent`).
pub fn async_agent() -> impl Service<
    u64,
    Response = u64,
    Error = steadfast::BoxError,
    Future = impl Future<Output = Result<u64, steadfast::BoxError>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|n: u64| async move { Ok::<u64, steadfast::BoxError>(n.wrapping_add(1)) })
}

/// The bounds of an agent the benchmarks wrap ([`agent`], [`async_agent`]).
pub trait BenchAgent:
    Service<u64, Response = u64, Error = BoxError, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<A> BenchAgent for A where
    A: Service<u64, Response = u64, Error = BoxError, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Fallback + retry + breaker over `agent()` (the three layers tower-resilience has too): the
/// 3-layer stack of every bench and of `hotpath`.
pub fn three_layers<A: BenchAgent>(
    primary: &Agent,
    backup: &Agent,
    agent: impl Fn() -> A,
) -> impl Service<u64, Response = u64, Error = BoxError> {
    ServiceBuilder::new()
        .layer(FallbackLayer::new(primary).then(backup, agent()))
        .layer(BackoffRetryLayer::new(primary, RetryConfig::default()))
        .layer(CircuitBreakerLayer::new(primary, BreakerConfig::default()))
        .service(agent())
}

/// steadfast's whole five-layer stack over `agent()` (degrade, dead-letter, fallback, retry,
/// breaker): the 5-layer stack of every bench and of `hotpath`.
pub fn five_layers<A: BenchAgent>(
    primary: &Agent,
    backup: &Agent,
    agent: impl Fn() -> A,
) -> impl Service<u64, Response = u64, Error = BoxError> {
    ServiceBuilder::new()
        .layer(DegradeLayer::new(primary, |(): &(), _: &BoxError| {
            Some(0_u64)
        }))
        .layer(
            DeadLetterLayer::new(primary, MemorySink::new(16))
                .encoder(|request: &u64| Ok::<_, BoxError>(Bytes::from(request.to_string()))),
        )
        .layer(FallbackLayer::new(primary).then(backup, agent()))
        .layer(BackoffRetryLayer::new(primary, RetryConfig::default()))
        .layer(CircuitBreakerLayer::new(primary, BreakerConfig::default()))
        .service(agent())
}

/// An agent that fails every call at once ("down").
pub fn dead_agent() -> impl Service<
    u64,
    Response = u64,
    Error = steadfast::BoxError,
    Future = std::future::Ready<Result<u64, steadfast::BoxError>>,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_: u64| std::future::ready(Err::<u64, steadfast::BoxError>("down".into())))
}

/// The time of the slowest of `workers` (threads that each time their own loop): what a
/// contention row reports, since the work is done only when every thread is done.
pub fn slowest<'scope>(
    workers: impl IntoIterator<Item = std::thread::ScopedJoinHandle<'scope, std::time::Duration>>,
) -> std::time::Duration {
    workers
        .into_iter()
        .map(|worker| worker.join().expect("a benchmark thread panicked"))
        .max()
        .unwrap_or_default()
}
