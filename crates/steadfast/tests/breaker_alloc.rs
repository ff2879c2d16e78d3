//! The success path through a closed breaker allocates nothing, counted with a global allocator
//! (see `support`).
#![cfg(feature = "circuit-breaker")]

#[path = "support/alloc.rs"]
mod support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer, SlidingWindow};
use steadfast::{BoxError, Outcome, Registry};
use tower::{Layer, Service, service_fn};

fn call_ready<S: Service<u32>>(service: &mut S, request: u32) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    assert!(matches!(future.poll(&mut cx), Poll::Ready(Ok(_))));
}

#[test]
fn closed_breaker_success_path_allocates_nothing() {
    let configs = [
        ("default (count window)", BreakerConfig::default()),
        (
            "time window + slow-call tracking",
            BreakerConfig::builder()
                .window(SlidingWindow::Time(Duration::from_secs(30)))
                .slow_call_threshold(Duration::from_secs(5))
                .build()
                .unwrap(),
        ),
    ];
    // Registered, with a subscriber on the bus: the agent's event path costs nothing on a
    // success either.
    let registry = Registry::new();
    let _events = registry.events().subscribe();
    for (name, config) in configs {
        let agent = service_fn(|n: u32| std::future::ready(Ok::<_, BoxError>(n + 1)));
        let plain = CircuitBreakerLayer::new(&registry.agent("alloc"), config.clone());
        let mut plain = plain.layer(agent);
        // The agent's own classifier (a closure) judges every call.
        let classified =
            registry
                .agent("alloc-classified")
                .classifier(|result: Result<&u32, &BoxError>| match result {
                    Ok(n) if *n == u32::MAX => Outcome::transient("no answer"),
                    Ok(_) => Outcome::success(),
                    Err(_) => Outcome::transient("error"),
                });
        let mut classified = CircuitBreakerLayer::new(&classified, config).layer(agent);
        // Warm up: lazily initialised statics (tracing, metrics, thread-locals) may allocate once.
        for n in 0..200 {
            call_ready(&mut plain, n);
            call_ready(&mut classified, n);
        }
        let change = support::allocations_during(|| {
            for n in 0..10_000 {
                call_ready(&mut plain, n);
                call_ready(&mut classified, n);
            }
        });
        assert_eq!(
            (change.allocations, change.reallocations),
            (0, 0),
            "{name}: the success path allocated: {change:?}"
        );
    }
    // Guard the guard: were counting broken, the assertion above would pass vacuously.
    let change = support::allocations_during(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert_eq!(change.allocations, 1);
}
