//! The circuit breaker on the happy path and when open (and the LLM layers' success paths), side by side with the bare service and
//! the peers users would pick instead (tower-resilience, failsafe), in the same run.
//!
//! `cargo bench -p steadfast-benches --bench layers`

use std::future::{Ready, ready};
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::{Agent, BoxError};
use steadfast_benches::{
    BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_once, slowest,
};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

/// The agent every row wraps (the same in every bench file): answers at once.
fn agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|n: u64| ready(Ok(n.wrapping_add(1))))
}

/// An agent that is down: used only to trip a breaker that cannot be forced open.
fn dead_agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|_: u64| ready(Err::<u64, BoxError>("down".into())))
}

/// failsafe has no tower layer: its documented use is wrapping each call's future.
fn failsafe_breaker<B, S>(
    breaker: B,
    mut inner: S,
) -> impl Service<u64, Response = u64, Error = failsafe::Error<BoxError>> + Clone
where
    B: failsafe::futures::CircuitBreaker + Clone,
    S: Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>>
        + Clone,
{
    service_fn(move |n: u64| breaker.call(inner.call(n)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn circuit_breaker(c: &mut Criterion) {
    let mut bare = agent();
    let mut steadfast_closed =
        CircuitBreakerLayer::new(&Agent::new("bench"), BreakerConfig::default()).layer(agent());
    let open_layer = CircuitBreakerLayer::new(&Agent::new("bench-open"), BreakerConfig::default());
    open_layer.handle().force_open();
    let mut steadfast_open = open_layer.layer(agent());

    let mut resilience_closed = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .unwrap()
        .layer(agent());
    let (layer, handle) = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build_with_handle()
        .unwrap();
    runtime().block_on(handle.force_open());
    let mut resilience_open = layer.layer(agent());

    let mut failsafe_closed = failsafe_breaker(failsafe::Config::new().build(), agent());
    let tripped = failsafe::Config::new().build();
    let mut tripping = failsafe_breaker(tripped.clone(), dead_agent());
    for _ in 0..100 {
        call_once(&mut tripping, 0);
    }
    assert!(
        !tripped.is_call_permitted(),
        "failsafe opens after repeated failures"
    );
    let mut failsafe_open = failsafe_breaker(tripped, agent());

    // Every row must do what its name says, or the figures mean nothing.
    assert!(
        call_once(&mut steadfast_closed, 1)
            && call_once(&mut resilience_closed, 1)
            && call_once(&mut failsafe_closed, 1)
    );
    assert!(
        !call_once(&mut steadfast_open, 1)
            && !call_once(&mut resilience_open, 1)
            && !call_once(&mut failsafe_open, 1)
    );

    let allocs = |service: &mut dyn FnMut()| allocations_per_call(GLOBAL, 100_000, service);
    println!(
        "allocations per call [circuit_breaker]: bare {:.2}, steadfast_closed {:.2}, tower_resilience_closed {:.2}, failsafe_closed {:.2}, steadfast_open_rejection {:.2}, tower_resilience_open_rejection {:.2}, failsafe_open_rejection {:.2}",
        allocs(&mut || {
            call_once(&mut bare, 1);
        }),
        allocs(&mut || {
            call_once(&mut steadfast_closed, 1);
        }),
        allocs(&mut || {
            call_once(&mut resilience_closed, 1);
        }),
        allocs(&mut || {
            call_once(&mut failsafe_closed, 1);
        }),
        allocs(&mut || {
            call_once(&mut steadfast_open, 1);
        }),
        allocs(&mut || {
            call_once(&mut resilience_open, 1);
        }),
        allocs(&mut || {
            call_once(&mut failsafe_open, 1);
        }),
    );

    let mut group = c.benchmark_group("circuit_breaker");
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    group.bench_function("steadfast_closed", |b| {
        b.iter(|| call_once(&mut steadfast_closed, black_box(1)));
    });
    group.bench_function("tower_resilience_closed", |b| {
        b.iter(|| call_once(&mut resilience_closed, black_box(1)));
    });
    group.bench_function("failsafe_closed", |b| {
        b.iter(|| call_once(&mut failsafe_closed, black_box(1)));
    });
    group.bench_function("steadfast_open_rejection", |b| {
        b.iter(|| call_once(&mut steadfast_open, black_box(1)));
    });
    group.bench_function("tower_resilience_open_rejection", |b| {
        b.iter(|| call_once(&mut resilience_open, black_box(1)));
    });
    group.bench_function("failsafe_open_rejection", |b| {
        b.iter(|| call_once(&mut failsafe_open, black_box(1)));
    });
    group.finish();
}

/// The LLM layers' own code on the success path, without a runtime: a rate limiter whose quotas
/// are far from spent (requests only, and requests plus tokens with a cost function), and a
/// hedge whose agent answers before the delay (no timer is made).
fn llm_layers(c: &mut Criterion) {
    use std::time::Duration;
    use steadfast::hedge::{HedgeConfig, HedgeLayer};
    use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
    let mut bare = agent();
    let requests = RateLimitConfig::builder()
        .requests_per_minute(u32::MAX)
        .build()
        .unwrap();
    let mut rate_limit = RateLimitLayer::new(&Agent::new("bench"), requests).layer(agent());
    let both = RateLimitConfig::builder()
        .requests_per_minute(u32::MAX)
        .tokens_per_minute(u64::MAX)
        .build()
        .unwrap();
    let mut rate_limit_tokens = RateLimitLayer::new(&Agent::new("bench"), both)
        .cost(|n: &u64| *n + 100)
        .layer(agent());
    let fixed = HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut hedge = HedgeLayer::new(&Agent::new("bench"), fixed).layer(agent());
    assert!(
        call_once(&mut rate_limit, 1)
            && call_once(&mut rate_limit_tokens, 1)
            && call_once(&mut hedge, 1)
    );
    let allocs = |service: &mut dyn FnMut()| allocations_per_call(GLOBAL, 100_000, service);
    println!(
        "allocations per call [llm_layers]: bare {:.2}, steadfast_rate_limit {:.2}, steadfast_rate_limit_rpm_tpm {:.2}, steadfast_hedge {:.2}",
        allocs(&mut || {
            call_once(&mut bare, 1);
        }),
        allocs(&mut || {
            call_once(&mut rate_limit, 1);
        }),
        allocs(&mut || {
            call_once(&mut rate_limit_tokens, 1);
        }),
        allocs(&mut || {
            call_once(&mut hedge, 1);
        }),
    );
    let mut group = c.benchmark_group("llm_layers");
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    group.bench_function("steadfast_rate_limit", |b| {
        b.iter(|| call_once(&mut rate_limit, black_box(1)));
    });
    group.bench_function("steadfast_rate_limit_rpm_tpm", |b| {
        b.iter(|| call_once(&mut rate_limit_tokens, black_box(1)));
    });
    group.bench_function("steadfast_hedge", |b| {
        b.iter(|| call_once(&mut hedge, black_box(1)));
    });
    group.finish();
}

/// One breaker shared by two threads: does the shared state scale, or serialise the callers?
/// Each iteration is one call on each thread, so `two_threads` at the same time per iteration as
/// `one_thread` means perfect scaling (throughput ratio 2.0).
fn contention(c: &mut Criterion) {
    let layer = CircuitBreakerLayer::new(&Agent::new("shared"), BreakerConfig::default());
    let mut group = c.benchmark_group("contention");
    group.bench_function("one_thread", |b| {
        let mut service = layer.layer(agent());
        b.iter(|| call_once(&mut service, black_box(1)));
    });
    group.bench_function("two_threads", |b| {
        b.iter_custom(|iters| {
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        let mut service = layer.layer(agent());
                        let barrier = &barrier;
                        scope.spawn(move || {
                            barrier.wait();
                            // Wall time of real threads: tokio's clock is for the library.
                            #[allow(clippy::disallowed_types)]
                            let started = std::time::Instant::now();
                            for _ in 0..iters {
                                call_once(&mut service, black_box(1));
                            }
                            started.elapsed()
                        })
                    })
                    .collect();
                slowest(workers)
            })
        });
    });
    group.finish();
}

criterion_group!(benches, circuit_breaker, llm_layers, contention);
criterion_main!(benches);
