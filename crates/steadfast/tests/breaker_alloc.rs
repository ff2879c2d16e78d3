//! The success path through a closed breaker allocates nothing (a counting global allocator
//! watches this test's thread only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer, SlidingWindow};
use tower::{Layer, Service, service_fn};

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates every operation to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn call_ready<S: Service<u32>>(service: &mut S, request: u32) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    assert!(matches!(future.poll(&mut cx), Poll::Ready(Ok(_))));
}

fn assert_no_allocation(config: BreakerConfig) {
    let agent = service_fn(|n: u32| std::future::ready(Ok::<_, steadfast::BoxError>(n + 1)));
    let mut breaker = CircuitBreakerLayer::new(config).named("alloc").layer(agent);
    // Warm up: lazily initialised statics (tracing, metrics) may allocate once.
    for n in 0..200 {
        call_ready(&mut breaker, n);
    }
    let allocations = allocations_during(|| {
        for n in 0..10_000 {
            call_ready(&mut breaker, n);
        }
    });
    assert_eq!(allocations, 0, "allocations on 10,000 successful calls");
}

#[test]
fn closed_breaker_success_path_allocates_nothing() {
    assert_no_allocation(BreakerConfig::default());
}

#[test]
fn time_window_and_slow_call_tracking_allocate_nothing_either() {
    assert_no_allocation(
        BreakerConfig::builder()
            .window(SlidingWindow::Time(std::time::Duration::from_secs(30)))
            .slow_call_threshold(std::time::Duration::from_secs(5))
            .build()
            .unwrap(),
    );
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the guard: were counting broken, the tests above would pass vacuously.
    let allocations = allocations_during(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert_eq!(allocations, 1);
}
