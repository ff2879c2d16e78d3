//! The retry layer on a succeeding agent: bare `service_fn` vs steadfast's `BackoffRetry` vs
//! `tower::retry::Retry` with a comparable policy (three retries, a TPS budget, a sleep), in one
//! group so the figures compare directly.
//!
//! Each iteration is `poll_ready` + `call` + one poll of the response future, driven with a
//! no-op waker: the agent answers at once, so what is measured is the middleware alone.

use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::prelude::*;
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, service_fn};

fn poll_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the agent answers at once"),
    }
}

fn call<S: Service<u64>>(service: &mut S, request: u64) -> Result<S::Response, S::Error> {
    poll_now(std::future::poll_fn(|cx| service.poll_ready(cx)))?;
    poll_now(service.call(request))
}

fn agent()
-> impl Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>> + Clone
{
    service_fn(|request: u64| ready(Ok(request)))
}

/// tower's retry with what `BackoffRetryLayer`'s defaults do: up to three retries, a budget of
/// 20 % + 10/s over 10 s, a sleep between attempts.
#[derive(Clone)]
struct TowerPolicy {
    retries_left: u32,
    budget: std::sync::Arc<TpsBudget>,
}

impl<E> Policy<u64, u64, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) if self.retries_left > 0 && self.budget.withdraw() => {
                self.retries_left -= 1;
                Some(tokio::time::sleep(Duration::from_millis(500)))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, request: &u64) -> Option<u64> {
        Some(*request)
    }
}

fn success_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/success");

    let mut bare = agent();
    group.bench_function("bare service_fn", |b| {
        b.iter(|| black_box(call(&mut bare, black_box(1))).unwrap());
    });

    let mut steadfast = BackoffRetryLayer::new(RetryConfig::default())
        .named("bench")
        .layer(agent());
    group.bench_function("steadfast BackoffRetry", |b| {
        b.iter(|| black_box(call(&mut steadfast, black_box(1))).unwrap());
    });

    let policy = TowerPolicy {
        retries_left: 3,
        budget: std::sync::Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
    };
    let mut tower_retry = Retry::new(policy, agent());
    group.bench_function("tower::retry::Retry", |b| {
        b.iter(|| black_box(call(&mut tower_retry, black_box(1))).unwrap());
    });

    group.finish();
}

criterion_group!(benches, success_path);
criterion_main!(benches);
