//! The success path through `BackoffRetry` allocates nothing: counted with a global allocator
//! (see `support`).
#![cfg(feature = "retry")]

#[path = "support/alloc.rs"]
mod support;

use std::future::ready;

use steadfast::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[test]
fn a_first_attempt_that_succeeds_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Registered: reporting to the registry costs nothing on a success either.
        let registry = Registry::new();
        let _events = registry.events().subscribe();
        let mut agent = BackoffRetryLayer::new(&registry.agent("echo"), RetryConfig::default())
            .layer(service_fn(|x: u64| ready(Ok::<_, BoxError>(x))));
        // Warm up once: lazily initialised statics are not per-call costs.
        agent.ready().await.unwrap().call(0).await.unwrap();

        let change = support::allocations_during_async(async || {
            let mut sum = 0;
            for i in 0..10_000 {
                sum += agent.ready().await.unwrap().call(i).await.unwrap();
            }
            assert_eq!(sum, (0..10_000).sum::<u64>());
        })
        .await;
        assert_eq!(
            (
                change.allocations,
                change.reallocations,
                change.bytes_allocated
            ),
            (0, 0, 0),
            "the success path allocated: {change:?}"
        );
    });
}
