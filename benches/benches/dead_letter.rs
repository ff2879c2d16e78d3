//! DeadLetterLayer on the success path against the bare service. (The store's append
//! throughput is `benches/dlq_store.rs`.)
//!
//! `cargo bench -p steadfast-benches --bench dead_letter -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::dead_letter::{Bytes, DeadLetterLayer, MemorySink};
use steadfast::{Agent, BoxError};
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_now};
use tower::{Layer, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn success_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("dead_letter");
    let agent = || service_fn(|prompt: u64| async move { Ok::<u64, BoxError>(prompt + 1) });

    let mut bare = agent();
    let mut layered = DeadLetterLayer::new(&Agent::new("bench"), MemorySink::new(16))
        .encoder(|prompt: &u64| Ok::<_, BoxError>(Bytes::from(prompt.to_string())))
        .layer(agent());
    println!(
        "allocations per call [dead_letter]: bare {:.2}, steadfast_dead_letter {:.2}",
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut bare, 7))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut layered, 7))),
    );

    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, black_box(7)).unwrap());
    });

    // What a per-call `Arc` costs (a clone and a drop: two locked instructions). The future
    // must own a handle on the sink for the failure path; through `sync::Spread` it pays only
    // the drop's subtraction (the clone is counted without an atomic).
    let shared = std::sync::Arc::new(0u64);
    group.bench_function("arc_clone_drop_floor", |b| {
        b.iter(|| drop(black_box(std::sync::Arc::clone(&shared))));
    });

    group.bench_function("steadfast_dead_letter", |b| {
        b.iter(|| call_now(&mut layered, black_box(7)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, success_path);
criterion_main!(benches);
