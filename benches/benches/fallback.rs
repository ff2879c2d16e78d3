//! Fallback and degrade layers on a succeeding primary vs the bare agent, and the cost of one
//! fallback hop when the primary fails, in groups so the figures compare directly.
//!
//! Each iteration is `poll_ready` + `call` + one poll of the response future, driven with a
//! no-op waker: the agents answer at once, so what is measured is the middleware alone.

use std::error::Error;
use std::fmt;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_now};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|request: u64| ready(Ok(request)))
}

/// A zero-sized error: boxing it does not allocate, so the hop figure is the layer's own cost.
#[derive(Debug)]
struct Down;

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("down")
    }
}

impl Error for Down {}

fn failing_agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|_: u64| ready(Err(BoxError::from(Box::new(Down)))))
}

/// A fallback layer for `primary` with two alternatives, in a registry of its own (so each
/// row's layer has its own agents, as before).
fn fallback_layer() -> FallbackLayer<u64, u64, DefaultClassifier> {
    let registry = Registry::new();
    FallbackLayer::new(&registry.agent("primary"))
        .then(&registry.agent("cheap-model"), agent())
        .then(&registry.agent("spare"), agent())
}

fn success_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("fallback_and_degrade");

    let mut bare = agent();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_now(&mut bare, black_box(1))).unwrap());
    });

    // What a per-call `Arc` costs (a clone and a drop: two uncontended atomic
    // read-modify-writes). A layer whose future keeps shared state for its failure path pays
    // only the drop's subtraction, through `sync::Spread`.
    let shared = std::sync::Arc::new(0_u64);
    group.bench_function("arc_clone_drop_floor", |b| {
        b.iter(|| {
            let keep = black_box(&shared).clone();
            let answer = black_box(call_now(&mut bare, black_box(1))).unwrap();
            drop(keep);
            answer
        });
    });

    let mut fallback = fallback_layer().layer(agent());
    group.bench_function("steadfast_fallback", |b| {
        b.iter(|| black_box(call_now(&mut fallback, black_box(1))).unwrap());
    });

    // Each degrade row has its own closure, so its own future type, as on main: sharing one
    // degrader between this row and the failing one below made LLVM stop inlining the shared
    // `poll` (about 10 ns here), and the row measured an inlining decision, not the layer.
    let mut degrade =
        DegradeLayer::new(&Agent::new("primary"), |(): &(), _: &BoxError| Some(0_u64))
            .layer(agent());
    group.bench_function("steadfast_degrade", |b| {
        b.iter(|| black_box(call_now(&mut degrade, black_box(1))).unwrap());
    });

    let mut both = DegradeLayer::new(&Agent::new("primary"), |(): &(), _: &BoxError| Some(0_u64))
        .layer(fallback_layer().layer(agent()));
    group.bench_function("steadfast_degrade_and_fallback", |b| {
        b.iter(|| black_box(call_now(&mut both, black_box(1))).unwrap());
    });

    let config = CacheConfig::builder()
        .ttl(Duration::from_mins(1))
        .build()
        .unwrap();
    let cache = ResponseCache::new(config, |request: &u64| Some(*request));
    let mut cached = fallback_layer().then_cache(cache).layer(agent());
    println!(
        "allocations per call [fallback_and_degrade]: bare {:.2}, steadfast_fallback {:.2}, steadfast_degrade {:.2}, steadfast_degrade_and_fallback {:.2}, steadfast_fallback_with_cache_feed {:.2}",
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut bare, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut fallback, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut degrade, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut both, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut cached, 1))),
    );
    group.bench_function("steadfast_fallback_with_cache_feed", |b| {
        b.iter(|| black_box(call_now(&mut cached, black_box(1))).unwrap());
    });

    group.finish();
}

fn hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("fallback_hop");

    let mut bare = agent();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_now(&mut bare, black_box(1))).unwrap());
    });

    let mut hop = fallback_layer().layer(failing_agent());
    group.bench_function("steadfast_fallback_hop", |b| {
        b.iter(|| black_box(call_now(&mut hop, black_box(1))).unwrap());
    });

    let mut degraded =
        DegradeLayer::new(&Agent::new("primary"), |(): &(), _: &BoxError| Some(0_u64))
            .layer(failing_agent());
    println!(
        "allocations per call [fallback_hop]: bare {:.2}, steadfast_fallback_hop {:.2}, steadfast_degraded_answer {:.2}",
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut bare, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut hop, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut degraded, 1))),
    );
    group.bench_function("steadfast_degraded_answer", |b| {
        b.iter(|| black_box(call_now(&mut degraded, black_box(1))).unwrap());
    });

    group.finish();
}

criterion_group!(benches, success_path, hop);
criterion_main!(benches);
