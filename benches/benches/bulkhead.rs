//! The bulkhead (issue 20): its success path, a full bulkhead's refusal and the adaptive (AIMD)
//! limit, beside tower's own `ConcurrencyLimit` (alone and under `LoadShed`) and
//! tower-resilience's bulkhead and adaptive limiter, in the same run. Two loops, as in the
//! other files: `bulkhead*` groups poll once with a no-op waker and no runtime (the layers'
//! own code; peers whose futures need a runtime are left out there), `rt_bulkhead*` groups
//! drive `ready().await` then `call().await` on a current-thread runtime.
//!
//! `cargo bench -p steadfast-benches --bench bulkhead`

use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadLayer};
use steadfast::{Agent, BoxError};
use steadfast_benches::{
    BENCH_ALLOCATOR, CountingAllocator, agent, allocations_per_call, call_once,
};
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::{Layer, Service, ServiceExt, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

/// Permits in every row's limit: far above the one call in flight, so every row admits.
const PERMITS: u32 = 64;

/// An agent whose call `0` never answers (it holds a permit for the full rows); any other call
/// answers at once.
fn holding_agent() -> impl Service<
    u64,
    Response = u64,
    Error = BoxError,
    Future = Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>>,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(
        |n: u64| -> Pin<Box<dyn Future<Output = Result<u64, BoxError>> + Send>> {
            if n == 0 {
                Box::pin(std::future::pending())
            } else {
                Box::pin(ready(Ok(n)))
            }
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn drive<S: Service<u64, Response = u64>>(service: &mut S, request: u64) -> bool {
    match service.ready().await {
        Ok(ready) => ready.call(request).await.is_ok(),
        Err(_) => false,
    }
}

fn timed<S: Service<u64, Response = u64>>(
    runtime: &tokio::runtime::Runtime,
    service: &mut S,
    iters: u64,
) -> Duration {
    runtime.block_on(async {
        // Wall time of the loop: tokio's clock is for the library.
        #[allow(clippy::disallowed_types)]
        let started = std::time::Instant::now();
        for _ in 0..iters {
            black_box(drive(service, black_box(1)).await);
        }
        started.elapsed()
    })
}

fn rt_allocs<S: Service<u64, Response = u64>>(
    runtime: &tokio::runtime::Runtime,
    service: &mut S,
) -> f64 {
    allocations_per_call(GLOBAL, 20_000, || {
        runtime.block_on(async {
            drive(service, 1).await;
        });
    }) - allocations_per_call(GLOBAL, 20_000, || runtime.block_on(async {}))
}

/// Polls `future` once on `runtime` (to start a call that then holds its permit).
fn start<F: Future + Unpin>(runtime: &tokio::runtime::Runtime, future: &mut F) {
    runtime.block_on(std::future::poll_fn(|cx: &mut Context<'_>| {
        assert!(
            Pin::new(&mut *future).poll(cx).is_pending(),
            "the held call must not end"
        );
        Poll::Ready(())
    }));
}

fn steadfast_bulkhead() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    BulkheadLayer::new(
        &Agent::new("bench"),
        BulkheadConfig::max_concurrent(PERMITS).unwrap(),
    )
    .layer(agent())
}

fn steadfast_adaptive() -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    let config = BulkheadConfig::builder()
        .max_concurrent(100)
        .adaptive(
            AdaptiveConfig::new()
                .initial_limit(10)
                .min_limit(1)
                .latency_threshold(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    BulkheadLayer::new(&Agent::new("bench-adaptive"), config).layer(agent())
}

/// Without a runtime: steadfast and tower (whose futures answer at once).
fn bulkhead(c: &mut Criterion) {
    let mut bare = agent();
    let mut steadfast = steadfast_bulkhead();
    let mut adaptive = steadfast_adaptive();
    let mut tower_limit = ConcurrencyLimit::new(agent(), PERMITS as usize);
    let mut tower_shed = LoadShed::new(ConcurrencyLimit::new(agent(), PERMITS as usize));
    assert!(
        call_once(&mut steadfast, 1)
            && call_once(&mut adaptive, 1)
            && call_once(&mut tower_limit, 1)
            && call_once(&mut tower_shed, 1)
    );

    // Full: one permit, held by a call that never ends.
    let full_layer = BulkheadLayer::new(
        &Agent::new("bench-full"),
        BulkheadConfig::max_concurrent(1).unwrap(),
    );
    let mut steadfast_full = full_layer.layer(holding_agent());
    let _held = steadfast_full.call(0);
    let mut tower_full = LoadShed::new(ConcurrencyLimit::new(holding_agent(), 1));
    let mut holder = tower_full.clone();
    assert!(
        call_once_ready(&mut holder),
        "the holder reserved the permit"
    );
    assert!(!call_once(&mut steadfast_full, 1) && !call_once(&mut tower_full, 1));

    let allocs = |service: &mut dyn FnMut()| allocations_per_call(GLOBAL, 100_000, service);
    println!(
        "allocations per call [bulkhead]: bare {:.2}, steadfast_bulkhead {:.2}, steadfast_bulkhead_adaptive {:.2}, tower_concurrency_limit {:.2}, tower_concurrency_limit_load_shed {:.2}, steadfast_bulkhead_full {:.2}, tower_load_shed_full {:.2}",
        allocs(&mut || {
            call_once(&mut bare, 1);
        }),
        allocs(&mut || {
            call_once(&mut steadfast, 1);
        }),
        allocs(&mut || {
            call_once(&mut adaptive, 1);
        }),
        allocs(&mut || {
            call_once(&mut tower_limit, 1);
        }),
        allocs(&mut || {
            call_once(&mut tower_shed, 1);
        }),
        allocs(&mut || {
            call_once(&mut steadfast_full, 1);
        }),
        allocs(&mut || {
            call_once(&mut tower_full, 1);
        }),
    );

    let mut group = c.benchmark_group("bulkhead");
    group.bench_function("bare", |b| b.iter(|| call_once(&mut bare, black_box(1))));
    group.bench_function("steadfast_bulkhead", |b| {
        b.iter(|| call_once(&mut steadfast, black_box(1)));
    });
    group.bench_function("steadfast_bulkhead_adaptive", |b| {
        b.iter(|| call_once(&mut adaptive, black_box(1)));
    });
    group.bench_function("tower_concurrency_limit", |b| {
        b.iter(|| call_once(&mut tower_limit, black_box(1)));
    });
    group.bench_function("tower_concurrency_limit_load_shed", |b| {
        b.iter(|| call_once(&mut tower_shed, black_box(1)));
    });
    group.bench_function("steadfast_bulkhead_full", |b| {
        b.iter(|| call_once(&mut steadfast_full, black_box(1)));
    });
    group.bench_function("tower_load_shed_full", |b| {
        b.iter(|| call_once(&mut tower_full, black_box(1)));
    });
    group.finish();
}

/// `poll_ready` only (it reserves the permit in tower's limit); the service is kept.
fn call_once_ready<S: Service<u64>>(service: &mut S) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(())))
}

/// On a runtime, with tower-resilience's bulkhead and adaptive limiter beside.
fn rt_bulkhead(c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let mut steadfast = steadfast_bulkhead();
    let mut adaptive = steadfast_adaptive();
    let mut tower_limit = ConcurrencyLimit::new(agent(), PERMITS as usize);
    let mut tower_shed = LoadShed::new(ConcurrencyLimit::new(agent(), PERMITS as usize));
    let mut resilience = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(PERMITS as usize)
        .build()
        .unwrap()
        .layer(agent());
    let mut resilience_adaptive = tower_resilience::adaptive::AdaptiveLimiterLayer::new(
        tower_resilience::adaptive::Aimd::builder()
            .initial_limit(10)
            .min_limit(1)
            .max_limit(100)
            .latency_threshold(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .layer(agent());
    runtime.block_on(async {
        assert!(drive(&mut steadfast, 1).await && drive(&mut adaptive, 1).await);
        assert!(drive(&mut tower_limit, 1).await && drive(&mut tower_shed, 1).await);
        assert!(drive(&mut resilience, 1).await && drive(&mut resilience_adaptive, 1).await);
    });
    println!(
        "allocations per call [rt_bulkhead]: bare {:.2}, steadfast_bulkhead {:.2}, steadfast_bulkhead_adaptive {:.2}, tower_concurrency_limit {:.2}, tower_concurrency_limit_load_shed {:.2}, tower_resilience_bulkhead {:.2}, tower_resilience_bulkhead_adaptive {:.2}",
        rt_allocs(&runtime, &mut bare),
        rt_allocs(&runtime, &mut steadfast),
        rt_allocs(&runtime, &mut adaptive),
        rt_allocs(&runtime, &mut tower_limit),
        rt_allocs(&runtime, &mut tower_shed),
        rt_allocs(&runtime, &mut resilience),
        rt_allocs(&runtime, &mut resilience_adaptive),
    );
    let mut group = c.benchmark_group("rt_bulkhead");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_bulkhead", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("steadfast_bulkhead_adaptive", |b| {
        b.iter_custom(|n| timed(&runtime, &mut adaptive, n));
    });
    group.bench_function("tower_concurrency_limit", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_limit, n));
    });
    group.bench_function("tower_concurrency_limit_load_shed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_shed, n));
    });
    group.bench_function("tower_resilience_bulkhead", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.bench_function("tower_resilience_bulkhead_adaptive", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience_adaptive, n));
    });
    group.finish();
}

/// A full bulkhead's refusal on a runtime. tower-resilience's `reject_when_full` parks on a
/// timer tick (about 1 ms a refusal), so its row takes a while.
fn rt_bulkhead_full(c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let layer = BulkheadLayer::new(
        &Agent::new("bench-rt-full"),
        BulkheadConfig::max_concurrent(1).unwrap(),
    );
    let mut steadfast = layer.layer(holding_agent());
    let _held = steadfast.call(0);
    let mut tower = LoadShed::new(ConcurrencyLimit::new(holding_agent(), 1));
    let mut tower_holder = tower.clone();
    assert!(call_once_ready(&mut tower_holder));
    let mut resilience = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(1)
        .reject_when_full()
        .build()
        .unwrap()
        .layer(holding_agent());
    let mut resilience_held = resilience.call(0);
    start(&runtime, &mut resilience_held);
    runtime.block_on(async {
        assert!(!drive(&mut steadfast, 1).await, "steadfast refuses");
        assert!(!drive(&mut tower, 1).await, "tower sheds");
        assert!(!drive(&mut resilience, 1).await, "tower-resilience refuses");
    });
    println!(
        "allocations per call [rt_bulkhead_full]: steadfast_bulkhead_full {:.2}, tower_load_shed_full {:.2}",
        rt_allocs(&runtime, &mut steadfast),
        rt_allocs(&runtime, &mut tower),
    );
    let mut group = c.benchmark_group("rt_bulkhead_full");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_bulkhead_full", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("tower_load_shed_full", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower, n));
    });
    group.bench_function("tower_resilience_bulkhead_full", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

criterion_group!(benches, bulkhead, rt_bulkhead, rt_bulkhead_full);
criterion_main!(benches);
