//! A successful primary call through `FallbackLayer` (with alternatives configured) and through
//! `DegradeLayer` allocates nothing, when the request is cheap to clone (`Arc`-backed).
//! Counted with a global allocator (see `support`).
#![cfg(all(feature = "fallback", feature = "degrade"))]

#[path = "support/alloc.rs"]
mod support;

use std::future::ready;
use std::sync::Arc;

use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[test]
fn successful_primary_through_fallback_and_degrade_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backup = service_fn(|prompt: Arc<str>| ready(Ok::<_, BoxError>(prompt.len())));
        // Registered: reporting to the registry costs nothing on a success either.
        let registry = Registry::new();
        let _events = registry.events().subscribe();
        let assistant = registry.agent("assistant");
        let fallback = FallbackLayer::new(&assistant)
            .then(&registry.agent("backup"), backup)
            .then(&registry.agent("spare"), backup);
        // The view is an `Arc` clone: captured on every call, never allocating.
        let degrade =
            DegradeLayer::new(&assistant, |view: &Arc<str>, _: &BoxError| Some(view.len()))
                .view(|prompt: &Arc<str>| prompt.clone());
        let mut agent = degrade.layer(fallback.layer(service_fn(|prompt: Arc<str>| {
            ready(Ok::<_, BoxError>(prompt.len() + 1))
        })));
        let prompt: Arc<str> = Arc::from("what is the capital of France?");
        // Warm up once: lazily initialised statics are not per-call costs.
        agent
            .ready()
            .await
            .unwrap()
            .call(prompt.clone())
            .await
            .unwrap();

        let change = support::allocations_during_async(async || {
            let mut total = 0;
            for _ in 0..10_000 {
                total += agent
                    .ready()
                    .await
                    .unwrap()
                    .call(prompt.clone())
                    .await
                    .unwrap();
            }
            assert_eq!(total, 10_000 * (prompt.len() + 1));
        })
        .await;
        assert_eq!(
            (
                change.allocations,
                change.reallocations,
                change.bytes_allocated
            ),
            (0, 0, 0),
            "the success path must not allocate"
        );
        // Each primary answer was counted (the warm-up, then three runs).
        assert_eq!(
            registry.counters("assistant").unwrap().primary,
            1 + 3 * 10_000
        );
    });
}
