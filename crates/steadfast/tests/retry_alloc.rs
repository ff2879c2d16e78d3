//! The success path through `BackoffRetry` allocates nothing: counted with a global allocator.
//! (One test in this binary, so no other test's allocations are counted.)
#![cfg(feature = "retry")]

use std::alloc::System;
use std::future::ready;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use steadfast::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

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
        let mut agent = BackoffRetryLayer::new(RetryConfig::default())
            .named("echo")
            .register(&registry)
            .layer(service_fn(|x: u64| ready(Ok::<_, BoxError>(x))));
        // Warm up once: lazily initialised statics are not per-call costs.
        agent.ready().await.unwrap().call(0).await.unwrap();

        let region = Region::new(GLOBAL);
        let mut sum = 0;
        for i in 0..10_000 {
            sum += agent.ready().await.unwrap().call(i).await.unwrap();
        }
        let change = region.change();
        assert_eq!(sum, (0..10_000).sum::<u64>());
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
