//! Shared pieces of the steadfast benchmark harness: allocation counting and a way to drive a
//! service whose futures are ready at once, without a runtime (so the figures are the layers'
//! own cost, not a scheduler's).

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

pub use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::Service;

/// The allocator a bench binary installs so [`allocations_per_call`] can count:
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;
/// ```
pub type CountingAllocator = &'static StatsAlloc<System>;

/// Allocations per call of `f`, averaged over `calls` calls (after a warm-up), counted by the
/// global allocator `global`.
pub fn allocations_per_call(global: CountingAllocator, calls: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let region = Region::new(global);
    for _ in 0..calls {
        f();
    }
    region.change().allocations as f64 / calls as f64
}

/// Calls `service` (readiness, then the response future) with a no-op waker, for services that
/// answer at once; panics if anything is pending, since the figures would then mean nothing.
#[inline]
pub fn call_now<S: Service<R>, R>(service: &mut S, request: R) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => return Err(error),
        Poll::Pending => panic!("benchmarked service was not ready at once"),
    }
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(result) => result,
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
