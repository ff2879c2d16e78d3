//! Every layer's response future stays small: futures are moved on every call (into the
//! caller's state machine, through `Oneshot`, between layers), so their size is time. The
//! bounds below are today's sizes plus a little slack; a change that grows a future past them
//! should box what only a failing call needs, as retry does with its timer.
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter",
    feature = "bulkhead",
    feature = "rate-limit",
    feature = "hedge"
))]

use std::future::{Ready, ready};
use std::mem::size_of_val;

use steadfast::dead_letter::{Bytes, DeadLetterLayer, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::hedge::{HedgeConfig, HedgeLayer};
use steadfast::prelude::*;
use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
use tower::{Layer, Service, ServiceBuilder, service_fn};

fn agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|n: u64| ready(Ok(n)))
}

/// The size of the future `service` returns for one call.
fn future_size<S: Service<u64>>(mut service: S) -> usize {
    let future = service.call(1);
    size_of_val(&future)
}

#[test]
fn each_layer_future_stays_small() {
    let primary = Agent::new("primary");
    let backup = Agent::new("backup");
    let bare = future_size(agent());
    let sizes = [
        (
            "breaker",
            future_size(
                CircuitBreakerLayer::new(&primary, BreakerConfig::default()).layer(agent()),
            ),
            56,
        ),
        (
            "retry",
            future_size(BackoffRetryLayer::new(&primary, RetryConfig::default()).layer(agent())),
            96,
        ),
        (
            "fallback",
            future_size(
                FallbackLayer::new(&primary)
                    .then(&backup, agent())
                    .layer(agent()),
            ),
            56,
        ),
        (
            "degrade",
            future_size(
                DegradeLayer::new(&primary, |(): &(), _: &BoxError| Some(0_u64)).layer(agent()),
            ),
            40,
        ),
        (
            "dead letter",
            future_size(
                DeadLetterLayer::new(&primary, MemorySink::new(4))
                    .encoder(|n: &u64| Ok::<_, BoxError>(Bytes::from(n.to_string())))
                    .layer(agent()),
            ),
            56,
        ),
        (
            "bulkhead",
            future_size(BulkheadLayer::new(&primary, BulkheadConfig::default()).layer(agent())),
            56,
        ),
        (
            "rate limit",
            future_size(
                RateLimitLayer::new(
                    &primary,
                    RateLimitConfig::builder()
                        .requests_per_minute(600)
                        .build()
                        .unwrap(),
                )
                .layer(agent()),
            ),
            48,
        ),
        (
            // Carries its timer inline (a call that outlasts its first poll arms it, and boxing
            // it would allocate on every real agent call) and a clone of the request and service.
            "hedge",
            future_size(HedgeLayer::new(&primary, HedgeConfig::default()).layer(agent())),
            264,
        ),
        (
            "breaker + retry + fallback",
            future_size(
                ServiceBuilder::new()
                    .layer(FallbackLayer::new(&primary).then(&backup, agent()))
                    .layer(BackoffRetryLayer::new(&primary, RetryConfig::default()))
                    .layer(CircuitBreakerLayer::new(&primary, BreakerConfig::default()))
                    .service(agent()),
            ),
            152,
        ),
    ];
    let report: Vec<String> = sizes
        .iter()
        .map(|(name, size, _)| format!("{name}: {size} B (bare {bare} B)"))
        .collect();
    println!("{report:#?}"); // shown with --nocapture
    for (name, size, bound) in sizes {
        assert!(
            size <= bound,
            "the {name} future grew to {size} B (bound {bound} B): {report:#?}"
        );
    }
}
