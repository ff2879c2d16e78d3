//! The success path through a bulkhead allocates nothing, plain or adaptive (counted with a
//! global allocator, see `support`), and neither does refusing a call when it is full.
#![cfg(feature = "bulkhead")]

#[path = "support/alloc.rs"]
mod support;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadLayer};
use steadfast::{BoxError, Registry};
use tower::{Layer, Service, service_fn};

fn call_ready<S: Service<u32>>(service: &mut S, request: u32) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    matches!(future.poll(&mut cx), Poll::Ready(Ok(_)))
}

#[test]
fn bulkhead_success_and_refusal_allocate_nothing() {
    let registry = Registry::new();
    let _events = registry.events().subscribe();
    let configs = [
        ("plain", BulkheadConfig::max_concurrent(4).unwrap()),
        (
            "adaptive, timed",
            BulkheadConfig::builder()
                .max_concurrent(4)
                .adaptive(AdaptiveConfig::new().latency_threshold(Duration::from_secs(5)))
                .build()
                .unwrap(),
        ),
    ];
    for (name, config) in configs {
        let agent = service_fn(|n: u32| std::future::ready(Ok::<_, BoxError>(n + 1)));
        let layer = BulkheadLayer::new(&registry.agent(name), config);
        let mut service = layer.layer(agent);
        for n in 0..200 {
            assert!(call_ready(&mut service, n));
        }
        let change = support::allocations_during(|| {
            for n in 0..1_000 {
                assert!(call_ready(&mut service, n));
            }
        });
        assert_eq!(
            change.allocations, 0,
            "{name}: success path allocated: {change:?}"
        );
    }

    // Full: four calls hold the permits; refusing the fifth allocates nothing either.
    let layer = BulkheadLayer::new(
        &registry.agent("full"),
        BulkheadConfig::max_concurrent(4).unwrap(),
    );
    let pending = service_fn(|_: u32| std::future::pending::<Result<u32, BoxError>>());
    let mut service = layer.layer(pending);
    let _held: Vec<_> = (0..4).map(|n| service.call(n)).collect();
    for n in 0..200 {
        assert!(!call_ready(&mut service, n));
    }
    let change = support::allocations_during(|| {
        for n in 0..1_000 {
            assert!(!call_ready(&mut service, n));
        }
    });
    assert_eq!(change.allocations, 0, "refusal allocated: {change:?}");
    assert_eq!(registry.counters("full").unwrap().bulkhead_rejected, 3_200);
}
