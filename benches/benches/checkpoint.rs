//! CheckpointLayer: a step answered from its checkpoint (hit) and a step run and stored (miss),
//! beside the bare call; the memory store isolates the layer's own cost, the SQLite store adds
//! a real lookup (a hit reads; it never writes).
//!
//! `cargo bench -p steadfast-benches --bench checkpoint -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::checkpoint::{
    CheckpointLayer, CheckpointStore, FnCodec, MemoryCheckpointStore, StepKey,
};
use steadfast::{Agent, BoxError};
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call};
use steadfast_sqlite::SqliteCheckpointStore;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn llm()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + 'static {
    service_fn(|n: u64| async move { Ok::<u64, BoxError>(n.wrapping_add(1)) })
}

type Encode = fn(&u64) -> Result<Vec<u8>, BoxError>;
type Decode = fn(&[u8]) -> Result<u64, BoxError>;

#[allow(clippy::trivially_copy_pass_by_ref, clippy::unnecessary_wraps)] // the codec's signature
fn encode(n: &u64) -> Result<Vec<u8>, BoxError> {
    Ok(n.to_le_bytes().to_vec())
}

fn decode(bytes: &[u8]) -> Result<u64, BoxError> {
    Ok(u64::from_le_bytes(bytes.try_into()?))
}

fn codec() -> FnCodec<Encode, Decode> {
    FnCodec::new(encode, decode)
}

/// Every request is the same step (after the first call: always a hit).
fn same_step(
    store: impl CheckpointStore,
) -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    CheckpointLayer::new(
        &Agent::new("bench"),
        store,
        |_: &u64| StepKey::new("wf", "plan").ok(),
        codec(),
    )
    .layer(llm())
}

/// Every request is a new step (always a miss: claim, call, encode, store).
fn new_step(
    store: impl CheckpointStore,
) -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    let next = Arc::new(AtomicU64::new(0));
    CheckpointLayer::new(
        &Agent::new("bench"),
        store,
        move |_: &u64| StepKey::new("wf", next.fetch_add(1, Ordering::Relaxed).to_string()).ok(),
        codec(),
    )
    .layer(llm())
}

fn checkpoint(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("checkpoint");

    let bare = llm();
    group.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.clone().oneshot(black_box(7))).unwrap());
    });

    let hit = same_step(MemoryCheckpointStore::new());
    rt.block_on(hit.clone().oneshot(7)).unwrap();
    // Counted through the same `block_on` loop as the timings (the runtime's own share is in
    // the bare row).
    println!(
        "allocations per call [checkpoint]: bare {:.2}, steadfast_hit_memory {:.2}",
        allocations_per_call(GLOBAL, 10_000, || {
            rt.block_on(bare.clone().oneshot(7)).unwrap();
        }),
        allocations_per_call(GLOBAL, 10_000, || {
            rt.block_on(hit.clone().oneshot(7)).unwrap();
        }),
    );
    group.bench_function("steadfast_hit_memory", |b| {
        b.iter(|| rt.block_on(hit.clone().oneshot(black_box(7))).unwrap());
    });

    // A fresh store every 10,000 calls, so the map does not grow through the run (the reset
    // is not timed).
    group.bench_function("steadfast_miss_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(10_000);
                let miss = new_step(MemoryCheckpointStore::new());
                let started = Instant::now();
                for _ in 0..batch {
                    rt.block_on(miss.clone().oneshot(black_box(7))).unwrap();
                }
                total += started.elapsed();
                left -= batch;
            }
            total
        });
    });

    let tmp = tempfile::tempdir().unwrap();
    let sqlite = SqliteCheckpointStore::open(tmp.path()).unwrap();
    let hit = same_step(sqlite);
    rt.block_on(hit.clone().oneshot(7)).unwrap();
    group.bench_function("steadfast_hit_sqlite", |b| {
        b.iter(|| rt.block_on(hit.clone().oneshot(black_box(7))).unwrap());
    });
    group.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
