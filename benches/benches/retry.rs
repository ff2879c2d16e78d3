//! The retry layer on a succeeding agent: bare `service_fn` vs steadfast's `BackoffRetry` vs
//! `tower::retry::Retry` with a comparable policy (three retries, a TPS budget, a sleep), in one
//! group so the figures compare directly.
//!
//! Each iteration is `poll_ready` + `call` + one poll of the response future, driven with a
//! no-op waker: the agent answers at once, so what is measured is the middleware alone.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::prelude::*;
use steadfast_benches::{BENCH_ALLOCATOR, CountingAllocator, allocations_per_call, call_now};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

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
    let mut group = c.benchmark_group("retry");

    let mut bare = agent();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_now(&mut bare, black_box(1))).unwrap());
    });

    let mut steadfast =
        BackoffRetryLayer::new(&Agent::new("bench"), RetryConfig::default()).layer(agent());
    group.bench_function("steadfast_retry", |b| {
        b.iter(|| black_box(call_now(&mut steadfast, black_box(1))).unwrap());
    });

    let policy = TowerPolicy {
        retries_left: 3,
        budget: std::sync::Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
    };
    let mut tower_retry = Retry::new(policy, agent());
    println!(
        "allocations per call [retry]: bare {:.2}, steadfast_retry {:.2}, tower_retry {:.2}",
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut bare, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut steadfast, 1))),
        allocations_per_call(GLOBAL, 100_000, || drop(call_now(&mut tower_retry, 1))),
    );
    group.bench_function("tower_retry", |b| {
        b.iter(|| black_box(call_now(&mut tower_retry, black_box(1))).unwrap());
    });

    group.finish();
}

criterion_group!(benches, success_path);
criterion_main!(benches);
