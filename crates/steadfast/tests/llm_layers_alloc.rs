//! The success paths through `RateLimit` and `Hedge` allocate nothing: counted with a global
//! allocator (see `support`).
#![cfg(all(feature = "rate-limit", feature = "hedge"))]

#[path = "support/alloc.rs"]
mod support;

use std::future::ready;
use std::time::Duration;

use steadfast::hedge::{HedgeConfig, HedgeLayer};
use steadfast::prelude::*;
use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

async fn assert_no_allocations<S>(mut agent: S)
where
    S: Service<u64, Response = u64, Error = BoxError>,
{
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
}

#[test]
fn a_call_the_quotas_admit_at_once_allocates_nothing() {
    runtime().block_on(async {
        let registry = Registry::new();
        let config = RateLimitConfig::builder()
            .requests_per_minute(u32::MAX)
            .tokens_per_minute(u64::MAX)
            .build()
            .unwrap();
        let agent = RateLimitLayer::new(&registry.agent("gpt"), config)
            .cost(|n: &u64| *n)
            .usage(|n: &u64| Some(*n / 2))
            .layer(service_fn(|x: u64| ready(Ok::<_, BoxError>(x))));
        assert_no_allocations(agent).await;
    });
}

#[test]
fn a_hedged_call_answered_at_once_allocates_nothing() {
    runtime().block_on(async {
        let registry = Registry::new();
        let config = HedgeConfig::builder()
            .delay(Duration::from_millis(50))
            .build()
            .unwrap();
        let agent = HedgeLayer::new(&registry.agent("gpt"), config)
            .layer(service_fn(|x: u64| ready(Ok::<_, BoxError>(x))));
        assert_no_allocations(agent).await;
    });
}

#[test]
fn a_hedged_call_answered_before_the_delay_allocates_nothing() {
    runtime().block_on(async {
        let registry = Registry::new();
        // A percentile delay: the latencies are recorded, the timer armed, and no hedge sent.
        let config = HedgeConfig::builder()
            .percentile(99.0)
            .min_samples(1)
            .min_delay(Duration::from_secs(5))
            .build()
            .unwrap();
        let agent = HedgeLayer::new(&registry.agent("gpt"), config).layer(service_fn(
            |x: u64| async move {
                // Pending once, as a real agent call is at its first poll.
                tokio::task::yield_now().await;
                Ok::<_, BoxError>(x)
            },
        ));
        assert_no_allocations(agent).await;
    });
}

#[test]
fn a_call_hedged_to_an_alternative_answered_before_the_delay_allocates_nothing() {
    runtime().block_on(async {
        let registry = Registry::new();
        let config = HedgeConfig::builder()
            .delay(Duration::from_secs(5))
            .build()
            .unwrap();
        let agent = HedgeLayer::new(&registry.agent("gpt"), config)
            .to(
                &registry.agent("claude"),
                service_fn(|x: u64| ready(Ok::<_, BoxError>(x))),
            )
            .layer(service_fn(|x: u64| async move {
                tokio::task::yield_now().await;
                Ok::<_, BoxError>(x)
            }));
        assert_no_allocations(agent).await;
    });
}
