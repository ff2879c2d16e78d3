//! A stack's state, and the services it keeps (retry's clone of the inner service, fallback's
//! alternatives), goes as soon as its last service and its last call in flight are gone, on
//! whichever threads they end (`sync::Spread`'s deferred reference count).

use std::sync::Arc;

use steadfast::dead_letter::{DeadLetterLayer, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tokio::sync::Notify;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A call for `0` says it has arrived, then waits to be let through.
#[derive(Default)]
struct Gate {
    arrived: Notify,
    open: Notify,
}

/// An agent whose every clone holds `kept`; a call for `0` waits at `gate`.
fn agent(
    kept: &Arc<()>,
    gate: &Arc<Gate>,
) -> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    let (kept, gate) = (kept.clone(), gate.clone());
    service_fn(move |request: u64| {
        let _ = &kept;
        let gate = gate.clone();
        async move {
            if request == 0 {
                gate.arrived.notify_one();
                gate.open.notified().await;
            }
            Ok::<_, BoxError>(request)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_and_the_services_it_keeps_go_with_its_last_service_and_last_call() {
    let kept = Arc::new(());
    let gate = Arc::new(Gate::default());
    let registry = Registry::new();
    let (primary, backup) = (registry.agent("primary"), registry.agent("backup"));
    let stack = ServiceBuilder::new()
        .layer(DegradeLayer::new(&primary, |(): &(), _: &BoxError| {
            Some(0_u64)
        }))
        .layer(DeadLetterLayer::new(&primary, MemorySink::new(16)))
        .layer(FallbackLayer::new(&primary).then(&backup, agent(&kept, &gate)))
        .layer(BackoffRetryLayer::new(&primary, RetryConfig::default()))
        .layer(CircuitBreakerLayer::new(&primary, BreakerConfig::default()))
        .service(agent(&kept, &gate));

    // Calls on both worker threads, each through its own clone (as axum's router makes them),
    // more of them than a service hands out before it adds its calls to the count.
    let calls: Vec<_> = (1..=400_u64)
        .map(|request| tokio::spawn(stack.clone().oneshot(request)))
        .collect();
    for (request, call) in (1..).zip(calls) {
        assert_eq!(call.await.unwrap().unwrap(), request);
    }
    let mut reused = stack.clone();
    for request in 1..=200_u64 {
        let answer = reused.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(answer, request);
    }

    let in_flight = tokio::spawn(stack.clone().oneshot(0));
    gate.arrived.notified().await;
    drop((stack, reused));
    assert!(
        Arc::strong_count(&kept) > 1,
        "the call in flight still holds the stack's state and the services it keeps"
    );
    gate.open.notify_one();
    assert_eq!(in_flight.await.unwrap().unwrap(), 0);
    assert_eq!(
        Arc::strong_count(&kept),
        1,
        "every clone of the agent went with the last call"
    );
}
