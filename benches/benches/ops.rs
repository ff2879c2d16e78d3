//! The operability layers on the happy path (chaos off and on at zero rates, shutdown
//! tracking) and event emission, side by side with the bare service in the same run.
//!
//! `cargo bench -p steadfast-benches --bench ops`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::chaos::{ChaosConfig, ChaosLayer};
use steadfast::events::{Event, EventBus};
use steadfast::shutdown::{Shutdown, ShutdownLayer};
use steadfast::{Agent, BoxError};
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_once};
use tower::{Layer, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

fn agent() -> impl tower::Service<
    u64,
    Response = u64,
    Error = BoxError,
    Future = std::future::Ready<Result<u64, BoxError>>,
> + Clone {
    service_fn(|n: u64| std::future::ready(Ok::<_, BoxError>(n.wrapping_add(1))))
}

fn ops(c: &mut Criterion) {
    let mut bare = agent();
    let bench = Agent::new("bench");
    let off = ChaosConfig::builder().enabled(false).build().unwrap();
    let mut chaos_off = ChaosLayer::new(&bench, &off).layer(agent());
    let on = ChaosConfig::builder().seed(1).build().unwrap();
    let mut chaos_on = ChaosLayer::new(&bench, &on).layer(agent());
    let shutdown = Shutdown::new();
    let mut tracked = ShutdownLayer::new(&bench, &shutdown).layer(agent());
    let bus = EventBus::new(1024);
    let _subscriber = bus.subscribe();
    let agent_name: Arc<str> = Arc::from("bench");
    let event = || Event::RetriesExhausted {
        agent: agent_name.clone(),
        attempts: 3,
        reason: Some("timeout"),
    };

    println!(
        "allocations per call [ops]: bare {:.2}, chaos_off {:.2}, chaos_on_zero_rates {:.2}, \
         shutdown_tracked {:.2}, event_emit_one_subscriber {:.2}",
        allocations_per_call(GLOBAL, 100_000, || {
            call_once(&mut bare, 1);
        }),
        allocations_per_call(GLOBAL, 100_000, || {
            call_once(&mut chaos_off, 1);
        }),
        allocations_per_call(GLOBAL, 100_000, || {
            call_once(&mut chaos_on, 1);
        }),
        allocations_per_call(GLOBAL, 100_000, || {
            call_once(&mut tracked, 1);
        }),
        allocations_per_call(GLOBAL, 100_000, || bus.emit(event())),
    );

    let mut group = c.benchmark_group("ops");
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    group.bench_function("chaos_off", |b| {
        b.iter(|| call_once(&mut chaos_off, black_box(1)));
    });
    group.bench_function("chaos_on_zero_rates", |b| {
        b.iter(|| call_once(&mut chaos_on, black_box(1)));
    });
    group.bench_function("shutdown_tracked", |b| {
        b.iter(|| call_once(&mut tracked, black_box(1)));
    });
    group.bench_function("event_emit_one_subscriber", |b| {
        b.iter(|| bus.emit(black_box(event())));
    });
    group.finish();
}

criterion_group!(benches, ops);
criterion_main!(benches);
