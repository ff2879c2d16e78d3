//! The whole stack on the happy path: steadfast's five layers (degrade, dead-letter, fallback,
//! retry, circuit breaker) against the closest stack tower-resilience offers (fallback, retry,
//! circuit breaker) and the bare service, in one run.
//!
//! `cargo bench -p steadfast-benches --bench stack`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::prelude::*;
use steadfast_benches::{
    BENCH_ALLOCATOR, CountingAllocator, agent, allocations_per_call, call_now, five_layers,
};
use tower::ServiceBuilder;
use tower_resilience::circuitbreaker::CircuitBreakerError;

/// tower-resilience's breaker error, which its retry and fallback layers carry.
type CbError = CircuitBreakerError<BoxError>;

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn stacks(c: &mut Criterion) {
    let mut bare = agent();

    let registry = Registry::new();
    let (bench, backup) = (registry.agent("bench"), registry.agent("backup"));
    let mut steadfast = five_layers(&bench, &backup, agent);

    let mut resilience = ServiceBuilder::new()
        .layer(tower_resilience::fallback::FallbackLayer::<u64, u64, CbError>::value(0))
        .layer(
            tower_resilience::retry::RetryLayer::<u64, u64, CbError>::builder()
                .max_attempts(4)
                .exponential_backoff(Duration::from_millis(500))
                .build(),
        )
        .layer(
            tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                .build()
                .unwrap(),
        )
        .service(agent());

    // Every row must answer, or its figure means nothing.
    assert_eq!(call_now(&mut steadfast, 1).unwrap(), 2);
    assert_eq!(call_now(&mut resilience, 1).unwrap(), 2);

    println!(
        "allocations per call [stack]: bare {:.2}, steadfast_stack {:.2}, tower_resilience_stack {:.2}",
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut bare, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut steadfast, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut resilience, 1))),
    );

    let mut group = c.benchmark_group("stack");
    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, black_box(1)).unwrap());
    });
    group.bench_function("steadfast_stack", |b| {
        b.iter(|| call_now(&mut steadfast, black_box(1)).unwrap());
    });
    group.bench_function("tower_resilience_stack", |b| {
        b.iter(|| call_now(&mut resilience, black_box(1)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, stacks);
criterion_main!(benches);
