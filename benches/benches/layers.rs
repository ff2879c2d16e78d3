//! Each steadfast layer on the happy path, side by side with the bare service in the same run.
//!
//! `cargo bench -p steadfast-benches --bench layers`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::BoxError;
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast_benches::{CountingAllocator, allocations_per_call, call_once};
use tower::{Layer, service_fn};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn agent() -> impl tower::Service<
    u64,
    Response = u64,
    Error = BoxError,
    Future = std::future::Ready<Result<u64, BoxError>>,
> + Clone {
    service_fn(|n: u64| std::future::ready(Ok::<_, BoxError>(n.wrapping_add(1))))
}

fn circuit_breaker(c: &mut Criterion) {
    let mut bare = agent();
    let layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("bench");
    let mut closed = layer.layer(agent());
    let open_layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("bench-open");
    open_layer.handle().force_open();
    let mut open = open_layer.layer(agent());

    println!(
        "allocations per call [circuit_breaker]: bare {:.2}, closed {:.2}, open_rejection {:.2}",
        allocations_per_call(100_000, || {
            call_once(&mut bare, 1);
        }),
        allocations_per_call(100_000, || {
            call_once(&mut closed, 1);
        }),
        allocations_per_call(100_000, || {
            call_once(&mut open, 1);
        }),
    );

    let mut group = c.benchmark_group("circuit_breaker");
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    group.bench_function("closed", |b| {
        b.iter(|| call_once(&mut closed, black_box(1)));
    });
    group.bench_function("open_rejection", |b| {
        b.iter(|| call_once(&mut open, black_box(1)));
    });
    group.finish();
}

criterion_group!(benches, circuit_breaker);
criterion_main!(benches);
