//! Runs one hot-path row many times, for profilers that count (`valgrind --tool=callgrind`,
//! `perf record`): `cargo run --release -p steadfast-benches --bin hotpath -- <row> <calls>`.
//! Rows: bare, breaker, breaker_two_threads (two threads on one breaker), bare_two_threads, retry, fallback, degrade, dead_letter, stack3, stack5, rejection,
//! retry_rejection (retry over an open breaker), hop (the primary fails, the fallback answers),
//! degraded (everything fails, degrade answers), rate_limit (a request quota),
//! rate_limit_tpm (requests and tokens, with a cost function), tower_rate_limit (tower's
//! `RateLimit`), bulkhead, bulkhead_full (a refusal), adaptive (the AIMD limit),
//! tower_concurrency (tower's `ConcurrencyLimit`); and async_bare, async_breaker, async_retry,
//! async_fallback, async_stack3, async_stack5: those rows over an agent written with an `async`
//! block (`steadfast_benches::async_agent`), which answers when polled.

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use steadfast::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadLayer};
use steadfast::dead_letter::{Bytes, DeadLetterLayer, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
use steadfast_benches::{BenchAgent, agent, async_agent, dead_agent, five_layers, three_layers};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn run<S: Service<u64, Response = u64>>(calls: u64, mut service: S) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..calls {
            let Ok(ready) = service.ready().await else {
                continue;
            };
            black_box(ready.call(black_box(1)).await.ok());
        }
    });
}

fn row(name: &str, calls: u64) {
    let registry = Registry::new();
    let (primary, backup) = (registry.agent("primary"), registry.agent("backup"));
    if let Some(layers) = name.strip_prefix("async_") {
        assert!(
            layered(layers, calls, &primary, &backup, async_agent),
            "unknown row `{name}`"
        );
        return;
    }
    if layered(name, calls, &primary, &backup, agent) {
        return;
    }
    match name {
        // Two threads, each with its own runtime and service, on one breaker (the contention
        // row): `perf record` shows which line the threads still share.
        "breaker_two_threads" => {
            let layer = CircuitBreakerLayer::new(&primary, BreakerConfig::default());
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    let service = layer.layer(agent());
                    scope.spawn(move || run(calls, service));
                }
            });
        }
        "bare_two_threads" => std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(move || run(calls, agent()));
            }
        }),
        "rejection" => {
            let layer = CircuitBreakerLayer::new(&primary, BreakerConfig::default());
            layer.handle().force_open();
            run(calls, layer.layer(agent()));
        }
        "degrade" => run(
            calls,
            DegradeLayer::new(&primary, |(): &(), _: &BoxError| Some(0_u64)).layer(agent()),
        ),
        "dead_letter" => run(
            calls,
            DeadLetterLayer::new(&primary, MemorySink::new(16))
                .encoder(|request: &u64| Ok::<_, BoxError>(Bytes::from(request.to_string())))
                .layer(agent()),
        ),
        "hop" => run(
            calls,
            FallbackLayer::new(&primary)
                .then(&backup, agent())
                .layer(dead_agent()),
        ),
        "degraded" => run(
            calls,
            ServiceBuilder::new()
                .layer(DegradeLayer::new(&primary, |(): &(), _: &BoxError| {
                    Some(0_u64)
                }))
                .layer(FallbackLayer::new(&primary).then(&backup, dead_agent()))
                .service(dead_agent()),
        ),
        "retry_rejection" => {
            let layer = CircuitBreakerLayer::new(&primary, BreakerConfig::default());
            layer.handle().force_open();
            run(
                calls,
                ServiceBuilder::new()
                    .layer(BackoffRetryLayer::new(&primary, RetryConfig::default()))
                    .layer(layer)
                    .service(agent()),
            );
        }
        other if llm_row(other, calls, &primary) => {}
        other => panic!("unknown row `{other}`"),
    }
}

/// The rows that run over either agent (`async_<row>` over [`async_agent`]); false for a name
/// that is none of them.
fn layered<A: BenchAgent>(
    name: &str,
    calls: u64,
    primary: &Agent,
    backup: &Agent,
    agent: impl Fn() -> A,
) -> bool {
    match name {
        "bare" => run(calls, agent()),
        "breaker" => run(
            calls,
            CircuitBreakerLayer::new(primary, BreakerConfig::default()).layer(agent()),
        ),
        "retry" => run(
            calls,
            BackoffRetryLayer::new(primary, RetryConfig::default()).layer(agent()),
        ),
        "fallback" => run(
            calls,
            FallbackLayer::new(primary)
                .then(backup, agent())
                .layer(agent()),
        ),
        "stack3" => run(calls, three_layers(primary, backup, agent)),
        "stack5" => run(calls, five_layers(primary, backup, agent)),
        _ => return false,
    }
    true
}

/// The issue-20 rows (rate limiter, bulkhead, adaptive limit, and tower's equivalents); false
/// for a name that is none of them.
fn llm_row(name: &str, calls: u64, primary: &Agent) -> bool {
    match name {
        "rate_limit" => run(
            calls,
            RateLimitLayer::new(
                primary,
                RateLimitConfig::builder()
                    .requests_per_minute(u32::MAX)
                    .build()
                    .unwrap(),
            )
            .layer(agent()),
        ),
        "rate_limit_tpm" => run(
            calls,
            RateLimitLayer::new(
                primary,
                RateLimitConfig::builder()
                    .requests_per_minute(u32::MAX)
                    .tokens_per_minute(u64::MAX)
                    .build()
                    .unwrap(),
            )
            .cost(|n: &u64| *n + 100)
            .layer(agent()),
        ),
        "tower_rate_limit" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _entered = runtime.enter();
            run(
                calls,
                tower::limit::RateLimitLayer::new(u64::MAX / 2, Duration::from_mins(1))
                    .layer(agent()),
            );
        }
        "bulkhead" => run(
            calls,
            BulkheadLayer::new(primary, BulkheadConfig::max_concurrent(64).unwrap()).layer(agent()),
        ),
        "bulkhead_full" => {
            let layer = BulkheadLayer::new(primary, BulkheadConfig::max_concurrent(1).unwrap());
            let mut holder = layer.layer(tower::service_fn(|n: u64| async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<u64, BoxError>(n)
            }));
            let held = holder.call(0);
            let mut held = Box::pin(held);
            let waker = std::task::Waker::noop();
            assert!(
                held.as_mut()
                    .poll(&mut std::task::Context::from_waker(waker))
                    .is_pending()
            );
            run(calls, holder);
        }
        "adaptive" => run(
            calls,
            BulkheadLayer::new(
                primary,
                BulkheadConfig::builder()
                    .max_concurrent(100)
                    .adaptive(
                        AdaptiveConfig::new()
                            .initial_limit(10)
                            .min_limit(1)
                            .latency_threshold(Duration::from_millis(100)),
                    )
                    .build()
                    .unwrap(),
            )
            .layer(agent()),
        ),
        "tower_concurrency" => run(calls, tower::limit::ConcurrencyLimit::new(agent(), 64)),
        _ => return false,
    }
    true
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "breaker".into());
    let calls: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let _ = Duration::ZERO;
    row(&name, calls);
}
