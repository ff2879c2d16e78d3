//! The closed-circuit success path with fleet sync on (a `steadfast-redis` fleet connected to
//! the Redis at `STEADFAST_REDIS_URL`, default redis://127.0.0.1:6379, keeping the breaker in
//! sync from a background runtime) beside the same breaker without it, in the same run. Fleet
//! sync watches state changes and failures only, so the two rows should be the same.
//!
//! `cargo bench -p steadfast-benches --bench fleet`

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::{BoxError, Registry};
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_once};
use steadfast_redis::{Fleet, FleetConfig};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

/// The agent every row wraps (the same in every bench file): answers at once.
fn agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|n: u64| ready(Ok(n.wrapping_add(1))))
}

fn fleet_sync(c: &mut Criterion) {
    let mut unsynced =
        CircuitBreakerLayer::new(&Registry::new().agent("bench"), BreakerConfig::default())
            .layer(agent());

    // The fleet's tasks run on their own runtime, as a server's would beside its callers.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::new(&registry.agent("bench"), BreakerConfig::default());
    let prefix = format!("bench-fleet-{}", std::process::id());
    let config = FleetConfig::from_env(prefix).expect("a valid STEADFAST_REDIS_URL");
    let fleet = background.block_on(async {
        let fleet = Fleet::start(config, registry.events());
        fleet.sync(&layer.handle());
        fleet.wait_connected(Duration::from_secs(2)).await;
        fleet
    });
    if !fleet.connected() {
        eprintln!(
            "fleet_sync: Redis unreachable; the synced row measures a replica whose fleet is down"
        );
    }
    let mut synced = layer.layer(agent());

    assert!(call_once(&mut unsynced, 1) && call_once(&mut synced, 1));

    let allocs = |service: &mut dyn FnMut()| allocations_per_call(GLOBAL, 100_000, service);
    println!(
        "allocations per call [fleet_sync]: steadfast_closed {:.2}, steadfast_closed_fleet_sync {:.2}",
        allocs(&mut || {
            call_once(&mut unsynced, 1);
        }),
        allocs(&mut || {
            call_once(&mut synced, 1);
        }),
    );

    let mut group = c.benchmark_group("fleet_sync");
    group.bench_function("steadfast_closed", |b| {
        b.iter(|| call_once(&mut unsynced, black_box(1)));
    });
    group.bench_function("steadfast_closed_fleet_sync", |b| {
        b.iter(|| call_once(&mut synced, black_box(1)));
    });
    group.finish();
    assert_eq!(
        layer.handle().state(),
        steadfast::circuit_breaker::BreakerState::Closed
    );
    drop(fleet);
}

criterion_group!(benches, fleet_sync);
criterion_main!(benches);
