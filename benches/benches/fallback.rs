//! Fallback and degrade layers on a succeeding primary vs the bare agent, and the cost of one
//! fallback hop when the primary fails, in groups so the figures compare directly.
//!
//! Each iteration is `poll_ready` + `call` + one poll of the response future, driven with a
//! no-op waker: the agents answer at once, so what is measured is the middleware alone.

use std::error::Error;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tower::{Layer, Service, service_fn};

fn poll_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the agents answer at once"),
    }
}

fn call<S: Service<u64>>(service: &mut S, request: u64) -> Result<S::Response, S::Error> {
    poll_now(std::future::poll_fn(|cx| service.poll_ready(cx)))?;
    poll_now(service.call(request))
}

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

fn fallback_layer() -> FallbackLayer<u64, u64> {
    FallbackLayer::new()
        .named("primary")
        .then_named("cheap-model", agent())
        .then_named("spare", agent())
}

fn success_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("fallback/success");

    let mut bare = agent();
    group.bench_function("bare service_fn", |b| {
        b.iter(|| black_box(call(&mut bare, black_box(1))).unwrap());
    });

    // The floor of any layer whose future keeps shared state for its failure path: one `Arc`
    // clone and drop per call (two uncontended atomic read-modify-writes).
    let shared = std::sync::Arc::new(0_u64);
    group.bench_function("bare + Arc clone/drop (floor)", |b| {
        b.iter(|| {
            let keep = black_box(&shared).clone();
            let answer = black_box(call(&mut bare, black_box(1))).unwrap();
            drop(keep);
            answer
        });
    });

    let mut fallback = fallback_layer().layer(agent());
    group.bench_function("FallbackLayer (2 alternatives)", |b| {
        b.iter(|| black_box(call(&mut fallback, black_box(1))).unwrap());
    });

    let mut degrade = DegradeLayer::new(|(): &(), _: &BoxError| Some(0_u64)).layer(agent());
    group.bench_function("DegradeLayer", |b| {
        b.iter(|| black_box(call(&mut degrade, black_box(1))).unwrap());
    });

    let mut both = DegradeLayer::new(|(): &(), _: &BoxError| Some(0_u64))
        .layer(fallback_layer().layer(agent()));
    group.bench_function("DegradeLayer + FallbackLayer", |b| {
        b.iter(|| black_box(call(&mut both, black_box(1))).unwrap());
    });

    let config = CacheConfig::builder()
        .ttl(Duration::from_mins(1))
        .build()
        .unwrap();
    let cache = ResponseCache::new(config, |request: &u64| Some(*request));
    let mut cached = fallback_layer().then_cache(cache).layer(agent());
    group.bench_function("FallbackLayer + ResponseCache feed", |b| {
        b.iter(|| black_box(call(&mut cached, black_box(1))).unwrap());
    });

    group.finish();
}

fn hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("fallback/hop");

    let mut bare = agent();
    group.bench_function("bare service_fn", |b| {
        b.iter(|| black_box(call(&mut bare, black_box(1))).unwrap());
    });

    let mut hop = fallback_layer().layer(failing_agent());
    group.bench_function("primary fails, first alternative answers", |b| {
        b.iter(|| black_box(call(&mut hop, black_box(1))).unwrap());
    });

    let mut degraded =
        DegradeLayer::new(|(): &(), _: &BoxError| Some(0_u64)).layer(failing_agent());
    group.bench_function("primary fails, degraded answer", |b| {
        b.iter(|| black_box(call(&mut degraded, black_box(1))).unwrap());
    });

    group.finish();
}

criterion_group!(benches, success_path, hop);
criterion_main!(benches);
