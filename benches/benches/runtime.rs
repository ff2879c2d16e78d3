//! The hot path measured the way an application drives it: on a current-thread tokio runtime,
//! `ready().await` then `call().await` over an in-process agent that answers at once, many
//! calls inside one `block_on` (so the runtime's entry cost is not in the figure). Every row of
//! a group is driven the same way, in the same run, beside the peers a user would pick instead
//! (tower's own `Retry`, `RateLimit` and `Hedge`, tower-resilience, failsafe). The last groups run with a Prometheus
//! recorder installed, as production does.
//!
//! `cargo bench -p steadfast-benches --bench runtime`

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast_benches::{
    BENCH_ALLOCATOR, BenchAgent, CountingAllocator, agent, allocations_per_call, async_agent,
    dead_agent, five_layers, slowest, three_layers,
};
use tower::retry::budget::{Budget, TpsBudget};
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerError;

#[global_allocator]
static GLOBAL: CountingAllocator = &BENCH_ALLOCATOR;

type CbError = CircuitBreakerError<BoxError>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One call as an application makes it.
async fn drive<S>(service: &mut S, request: u64) -> bool
where
    S: Service<u64, Response = u64>,
{
    match service.ready().await {
        Ok(ready) => ready.call(request).await.is_ok(),
        Err(_) => false,
    }
}

/// `iters` calls on `runtime`, timed inside one `block_on`.
fn timed<S>(runtime: &tokio::runtime::Runtime, service: &mut S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
{
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

/// Allocations per call of one driven call.
fn allocs<S>(runtime: &tokio::runtime::Runtime, service: &mut S) -> f64
where
    S: Service<u64, Response = u64>,
{
    allocations_per_call(GLOBAL, 50_000, || {
        runtime.block_on(async {
            drive(service, 1).await;
        });
    }) - allocations_per_call(GLOBAL, 50_000, || runtime.block_on(async {}))
}

/// failsafe has no tower layer: its documented use is wrapping each call's future.
fn failsafe_breaker<B, S>(
    breaker: B,
    mut inner: S,
) -> impl Service<u64, Response = u64, Error = failsafe::Error<BoxError>> + Clone
where
    B: failsafe::futures::CircuitBreaker + Clone,
    S: Service<u64, Response = u64, Error = BoxError, Future = Ready<Result<u64, BoxError>>>
        + Clone,
{
    service_fn(move |n: u64| breaker.call(inner.call(n)))
}

/// tower's retry with what `BackoffRetryLayer`'s defaults do: three retries, optionally a
/// budget of 20 % + 10/s over 10 s, a sleep between attempts.
#[derive(Clone)]
struct TowerPolicy {
    retries_left: u32,
    budget: Option<std::sync::Arc<TpsBudget>>,
}

impl<E> Policy<u64, u64, E> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                if let Some(budget) = &self.budget {
                    budget.deposit();
                }
                None
            }
            Err(_)
                if self.retries_left > 0
                    && self.budget.as_ref().is_none_or(|budget| budget.withdraw()) =>
            {
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

fn tower_retry<A: BenchAgent>(
    budget: bool,
    agent: A,
) -> impl Service<u64, Response = u64, Error = BoxError> + Clone {
    let policy = TowerPolicy {
        retries_left: 3,
        budget: budget
            .then(|| std::sync::Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))),
    };
    Retry::new(policy, agent)
}

/// Trips a breaker the way production does: by failures, not by force.
fn tripped_breaker(
    runtime: &tokio::runtime::Runtime,
) -> impl Service<u64, Response = u64, Error = BoxError> {
    let layer = CircuitBreakerLayer::new(
        &Agent::new("tripped"),
        BreakerConfig::builder()
            .max_open_duration(Duration::from_mins(2))
            .initial_open_duration(Duration::from_mins(2))
            .build()
            .unwrap(),
    );
    let mut tripping = layer.layer(dead_agent());
    runtime.block_on(async {
        for _ in 0..5 {
            drive(&mut tripping, 0).await;
        }
    });
    assert_eq!(
        layer.handle().state(),
        steadfast::circuit_breaker::BreakerState::Open
    );
    layer.layer(agent())
}

fn breaker(c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let mut steadfast =
        CircuitBreakerLayer::new(&Agent::new("bench"), BreakerConfig::default()).layer(agent());
    let mut failsafe = failsafe_breaker(failsafe::Config::new().build(), agent());
    let mut resilience = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .unwrap()
        .layer(agent());
    println!(
        "allocations per call [rt_breaker]: bare {:.2}, steadfast_closed {:.2}, failsafe_closed {:.2}, tower_resilience_closed {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut steadfast),
        allocs(&runtime, &mut failsafe),
        allocs(&runtime, &mut resilience),
    );
    let mut group = c.benchmark_group("rt_breaker");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_closed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("failsafe_closed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut failsafe, n));
    });
    group.bench_function("tower_resilience_closed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

fn rejection(c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let mut tripped = tripped_breaker(&runtime);
    let forced_layer = CircuitBreakerLayer::new(&Agent::new("forced"), BreakerConfig::default());
    forced_layer.handle().force_open();
    let mut forced = forced_layer.layer(agent());
    let failsafe_policy = failsafe::Config::new().build();
    let mut failsafe_tripping = failsafe_breaker(failsafe_policy.clone(), dead_agent());
    runtime.block_on(async {
        for _ in 0..100 {
            drive(&mut failsafe_tripping, 0).await;
        }
    });
    assert!(!failsafe_policy.is_call_permitted());
    let mut failsafe = failsafe_breaker(failsafe_policy, agent());
    // Every row must refuse, or its figure means nothing.
    runtime.block_on(async {
        assert!(!drive(&mut tripped, 1).await && !drive(&mut forced, 1).await);
        assert!(!drive(&mut failsafe, 1).await);
    });
    println!(
        "allocations per call [rt_rejection]: steadfast_open_tripped {:.2}, steadfast_open_forced {:.2}, failsafe_open_tripped {:.2}",
        allocs(&runtime, &mut tripped),
        allocs(&runtime, &mut forced),
        allocs(&runtime, &mut failsafe),
    );
    let mut group = c.benchmark_group("rt_rejection");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_open_tripped", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tripped, n));
    });
    group.bench_function("steadfast_open_forced", |b| {
        b.iter_custom(|n| timed(&runtime, &mut forced, n));
    });
    group.bench_function("failsafe_open_tripped", |b| {
        b.iter_custom(|n| timed(&runtime, &mut failsafe, n));
    });
    group.finish();
}

fn retry(c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let mut steadfast =
        BackoffRetryLayer::new(&Agent::new("bench"), RetryConfig::default()).layer(agent());
    let mut tower_plain = tower_retry(false, agent());
    let mut tower_budget = tower_retry(true, agent());
    let mut resilience = tower_resilience::retry::RetryLayer::<u64, u64, BoxError>::builder()
        .max_attempts(4)
        .exponential_backoff(Duration::from_millis(500))
        .build()
        .layer(agent());
    println!(
        "allocations per call [rt_retry]: bare {:.2}, steadfast_retry {:.2}, tower_retry {:.2}, tower_retry_budget {:.2}, tower_resilience_retry {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut steadfast),
        allocs(&runtime, &mut tower_plain),
        allocs(&runtime, &mut tower_budget),
        allocs(&runtime, &mut resilience),
    );
    let mut group = c.benchmark_group("rt_retry");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("tower_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_plain, n));
    });
    group.bench_function("tower_retry_budget", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_budget, n));
    });
    group.bench_function("tower_resilience_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

/// Fallback + retry + breaker (the three layers both libraries have), and steadfast's whole
/// five-layer stack.
fn stacks(name: &str, c: &mut Criterion) {
    let runtime = runtime();
    let mut bare = agent();
    let registry = Registry::new();
    let (primary, backup) = (registry.agent("primary"), registry.agent("backup"));
    let mut three = three_layers(&primary, &backup, agent);
    let mut five = five_layers(&primary, &backup, agent);
    let mut resilience = ServiceBuilder::new()
        .layer(tower_resilience::fallback::FallbackLayer::<u64, u64, CbError>::value(0))
        .layer(
            tower_resilience::retry::RetryLayer::<u64, u64, CbError>::builder()
                .max_attempts(4)
                .exponential_backoff(Duration::from_millis(500))
                .build(),
        )
        .layer(
            tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                .build()
                .unwrap(),
        )
        .service(agent());
    runtime.block_on(async {
        assert!(drive(&mut three, 1).await && drive(&mut five, 1).await);
        assert!(drive(&mut resilience, 1).await);
    });
    println!(
        "allocations per call [{name}]: bare {:.2}, steadfast_fallback_retry_breaker {:.2}, steadfast_full_stack {:.2}, tower_resilience_fallback_retry_breaker {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut three),
        allocs(&runtime, &mut five),
        allocs(&runtime, &mut resilience),
    );
    let mut group = c.benchmark_group(name);
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_fallback_retry_breaker", |b| {
        b.iter_custom(|n| timed(&runtime, &mut three, n));
    });
    group.bench_function("steadfast_full_stack", |b| {
        b.iter_custom(|n| timed(&runtime, &mut five, n));
    });
    group.bench_function("tower_resilience_fallback_retry_breaker", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

fn stack(c: &mut Criterion) {
    stacks("rt_stack", c);
}

/// The goal rows over [`async_agent`], an agent that answers when polled (as one written with
/// an `async` block does): what a layer costs without the stalled reload of [`agent`]'s ready
/// answer (see `async_agent`). Not the goals' rows, which keep [`agent`].
fn async_agent_group(c: &mut Criterion) {
    let runtime = runtime();
    let registry = Registry::new();
    let (primary, backup) = (registry.agent("primary"), registry.agent("backup"));
    let mut bare = async_agent();
    let mut breaker = CircuitBreakerLayer::new(&Agent::new("bench"), BreakerConfig::default())
        .layer(async_agent());
    let mut retry =
        BackoffRetryLayer::new(&Agent::new("bench"), RetryConfig::default()).layer(async_agent());
    let mut fallback = FallbackLayer::new(&primary)
        .then(&backup, async_agent())
        .layer(async_agent());
    let mut tower_plain = tower_retry(false, async_agent());
    let mut three = three_layers(&primary, &backup, async_agent);
    let mut five = five_layers(&primary, &backup, async_agent);
    runtime.block_on(async {
        assert!(drive(&mut three, 1).await && drive(&mut five, 1).await);
    });
    println!(
        "allocations per call [rt_async_agent]: bare {:.2}, steadfast_closed {:.2}, steadfast_retry {:.2}, steadfast_fallback {:.2}, steadfast_fallback_retry_breaker {:.2}, steadfast_full_stack {:.2}, tower_retry {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut breaker),
        allocs(&runtime, &mut retry),
        allocs(&runtime, &mut fallback),
        allocs(&runtime, &mut three),
        allocs(&runtime, &mut five),
        allocs(&runtime, &mut tower_plain),
    );
    let mut group = c.benchmark_group("rt_async_agent");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_closed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut breaker, n));
    });
    group.bench_function("steadfast_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut retry, n));
    });
    group.bench_function("steadfast_fallback", |b| {
        b.iter_custom(|n| timed(&runtime, &mut fallback, n));
    });
    group.bench_function("steadfast_fallback_retry_breaker", |b| {
        b.iter_custom(|n| timed(&runtime, &mut three, n));
    });
    group.bench_function("steadfast_full_stack", |b| {
        b.iter_custom(|n| timed(&runtime, &mut five, n));
    });
    group.bench_function("tower_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_plain, n));
    });
    group.finish();
}

/// A way to make one thread's timed loop: `iters` calls on a service of its own (sharing what
/// its maker shares), on a current-thread runtime of its own.
type MakeLoop = dyn Fn() -> Box<dyn FnMut(u64) -> Duration + Send> + Sync;

/// `iters` calls on each of `threads` new threads started together, each pinned to a core of
/// its own (where the machine has that many), so that what is measured is the code on two
/// cores and not where the scheduler first put a new thread: the slowest thread's time.
fn on_threads(threads: usize, iters: u64, make: &MakeLoop) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|index| {
                let mut run = make();
                let barrier = &barrier;
                let core = (cores.len() >= threads).then(|| cores[index]);
                scope.spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    barrier.wait();
                    run(iters)
                })
            })
            .collect();
        slowest(workers)
    })
}

/// Throughput of two threads over one, measured in pairs close in time (one thread, then two,
/// `PAIRS` times): the median pair's ratio, and the lowest and highest. The machine's two
/// cores share a host: measured as two separate criterion rows, a busy spell of the host lands
/// on one row and moved the bare agent's ratio between 1.03x and 1.98x from run to run; within
/// a pair it slows both halves or shows as one outlying pair.
fn paired_scaling(make: &MakeLoop) -> (f64, f64, f64) {
    const PAIRS: usize = 31;
    const CALLS: u64 = 1_000_000;
    let mut ratios: Vec<f64> = (0..PAIRS)
        .map(|_| {
            let one = on_threads(1, CALLS, make);
            let two = on_threads(2, CALLS, make);
            2.0 * one.as_secs_f64() / two.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[PAIRS / 2], ratios[0], ratios[PAIRS - 1])
}

/// One breaker shared by two threads, each with its own current-thread runtime: throughput
/// against one thread. Each iteration is one call on each thread, so `two_threads` taking the
/// same time per iteration as `one_thread` is perfect scaling (a throughput ratio of 2.0). The
/// same ratio is also measured in pairs ([`paired_scaling`]) and printed for the report.
fn contention(c: &mut Criterion) {
    let layer = CircuitBreakerLayer::new(&Agent::new("shared"), BreakerConfig::default());
    let mut group = c.benchmark_group("rt_contention");
    let mut paired = Vec::new();
    for (name, shared) in [("steadfast", true), ("bare", false)] {
        let layer = layer.clone();
        let make = move || -> Box<dyn FnMut(u64) -> Duration + Send> {
            let runtime = runtime();
            if shared {
                let mut service = layer.layer(agent());
                Box::new(move |iters| timed(&runtime, &mut service, iters))
            } else {
                let mut service = agent();
                Box::new(move |iters| timed(&runtime, &mut service, iters))
            }
        };
        let (median, low, high) = paired_scaling(&make);
        paired.push(format!("{name} {median:.2} ({low:.2}-{high:.2})"));
        group.bench_function(format!("{name}_one_thread"), |b| {
            let run = make();
            b.iter_custom(run);
        });
        group.bench_function(format!("{name}_two_threads"), |b| {
            b.iter_custom(|iters| on_threads(2, iters, &make));
        });
    }
    group.finish();
    println!(
        "paired scaling [rt_contention]: {} (two threads' calls per second over one thread's; median of 31 pairs, lowest-highest)",
        paired.join(", ")
    );
}

/// The rate limiter's success path (a quota far from spent): steadfast with a request quota (what
/// tower's `RateLimit` and tower-resilience's limiter do) and with both LLM quotas and a cost
/// function, beside the peers.
fn rate_limit(c: &mut Criterion) {
    use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
    let runtime = runtime();
    let mut bare = agent();
    let requests = RateLimitConfig::builder()
        .requests_per_minute(u32::MAX)
        .build()
        .unwrap();
    let mut steadfast = RateLimitLayer::new(&Agent::new("bench"), requests).layer(agent());
    let both = RateLimitConfig::builder()
        .requests_per_minute(u32::MAX)
        .tokens_per_minute(u64::MAX)
        .build()
        .unwrap();
    let mut steadfast_tokens = RateLimitLayer::new(&Agent::new("bench"), both)
        .cost(|n: &u64| *n + 100)
        .layer(agent());
    // The same allowance (far more than the loop makes) for every row. tower's limiter and
    // tower-resilience's make their timers when built: inside the runtime.
    let entered = runtime.enter();
    let mut tower_limit =
        tower::limit::RateLimitLayer::new(u64::MAX / 2, Duration::from_mins(1)).layer(agent());
    let mut resilience = tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(usize::MAX / 2)
        .refresh_period(Duration::from_mins(1))
        .timeout_duration(Duration::ZERO)
        .build()
        .unwrap()
        .layer(agent());
    drop(entered);
    runtime.block_on(async {
        assert!(drive(&mut steadfast, 1).await && drive(&mut steadfast_tokens, 1).await);
        assert!(drive(&mut tower_limit, 1).await && drive(&mut resilience, 1).await);
    });
    println!(
        "allocations per call [rt_rate_limit]: bare {:.2}, steadfast_rate_limit {:.2}, steadfast_rate_limit_rpm_tpm {:.2}, tower_rate_limit {:.2}, tower_resilience_rate_limit {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut steadfast),
        allocs(&runtime, &mut steadfast_tokens),
        allocs(&runtime, &mut tower_limit),
        allocs(&runtime, &mut resilience),
    );
    let mut group = c.benchmark_group("rt_rate_limit");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_rate_limit", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("steadfast_rate_limit_rpm_tpm", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast_tokens, n));
    });
    group.bench_function("tower_rate_limit", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_limit, n));
    });
    group.bench_function("tower_resilience_rate_limit", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

/// tower's hedge policy: every request may be hedged (a `u64` clones freely).
#[derive(Clone)]
struct HedgeAll;

impl tower::hedge::Policy<u64> for HedgeAll {
    fn clone_request(&self, request: &u64) -> Option<u64> {
        Some(*request)
    }

    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

/// The agent for tower-resilience's hedge, whose error type must be `Clone`.
fn infallible_agent() -> impl Service<
    u64,
    Response = u64,
    Error = std::convert::Infallible,
    Future = Ready<Result<u64, std::convert::Infallible>>,
> + Clone
+ Send
+ Sync
+ 'static {
    service_fn(|n: u64| ready(Ok(n.wrapping_add(1))))
}

/// Hedging on (a delay is known), the agent answering at once: what every call that needs no
/// hedge pays.
fn hedge(c: &mut Criterion) {
    use steadfast::hedge::{HedgeConfig, HedgeLayer};
    let runtime = runtime();
    let mut bare = agent();
    let fixed = HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut steadfast = HedgeLayer::new(&Agent::new("bench"), fixed).layer(agent());
    let percentile = HedgeConfig::builder()
        .percentile(90.0)
        .min_samples(1)
        .build()
        .unwrap();
    let mut steadfast_percentile = HedgeLayer::new(&Agent::new("bench"), percentile).layer(agent());
    // Hedges to another agent: what a call that needs no hedge pays for having one.
    let to_alternative = HedgeConfig::builder()
        .delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut steadfast_alternative = HedgeLayer::new(&Agent::new("bench"), to_alternative)
        .to(&Agent::new("bench-backup"), agent())
        .layer(agent());
    // tower's hedge with its histogram already past `min_data_points`, so hedging is on.
    let mut tower_hedge = tower::hedge::Hedge::new_with_mock_latencies(
        agent(),
        HedgeAll,
        10,
        0.9,
        Duration::from_secs(10),
        &[50; 100],
    );
    let mut resilience = tower_resilience::hedge::HedgeLayer::builder()
        .delay(Duration::from_millis(50))
        .max_hedged_attempts(2)
        .build()
        .layer(infallible_agent());
    runtime.block_on(async {
        assert!(drive(&mut steadfast, 1).await && drive(&mut steadfast_percentile, 1).await);
        assert!(drive(&mut steadfast_alternative, 1).await);
        assert!(drive(&mut tower_hedge, 1).await && drive(&mut resilience, 1).await);
    });
    println!(
        "allocations per call [rt_hedge]: bare {:.2}, steadfast_hedge {:.2}, steadfast_hedge_percentile {:.2}, steadfast_hedge_to_alternative {:.2}, tower_hedge {:.2}, tower_resilience_hedge {:.2}",
        allocs(&runtime, &mut bare),
        allocs(&runtime, &mut steadfast),
        allocs(&runtime, &mut steadfast_percentile),
        allocs(&runtime, &mut steadfast_alternative),
        allocs(&runtime, &mut tower_hedge),
        allocs(&runtime, &mut resilience),
    );
    let mut group = c.benchmark_group("rt_hedge");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_hedge", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast, n));
    });
    group.bench_function("steadfast_hedge_percentile", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast_percentile, n));
    });
    group.bench_function("steadfast_hedge_to_alternative", |b| {
        b.iter_custom(|n| timed(&runtime, &mut steadfast_alternative, n));
    });
    group.bench_function("tower_hedge", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tower_hedge, n));
    });
    group.bench_function("tower_resilience_hedge", |b| {
        b.iter_custom(|n| timed(&runtime, &mut resilience, n));
    });
    group.finish();
}

/// The same groups with a Prometheus recorder installed before the agents are made, as in
/// production (the earlier groups ran with none: their metric handles are no-ops).
///
/// With its upkeep running, as `PrometheusBuilder::install` runs it: every 5 s (its default)
/// the samples histograms have taken are drained into their distributions. Without it, as
/// before, every sample of every row stayed in memory (three per retry call, hundreds of
/// megabytes a row), and `perf` put 6 % of the retry row on the kernel zeroing fresh pages.
fn recorded(c: &mut Criterion) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let upkeep = Upkeep::start(recorder.handle());
    metrics::set_global_recorder(recorder).expect("no recorder installed yet");
    let runtime = runtime();
    let mut bare = agent();
    let mut closed =
        CircuitBreakerLayer::new(&Agent::new("recorded"), BreakerConfig::default()).layer(agent());
    let mut retrying =
        BackoffRetryLayer::new(&Agent::new("recorded"), RetryConfig::default()).layer(agent());
    let mut tripped = tripped_breaker(&runtime);
    println!(
        "allocations per call [rt_recorded]: steadfast_closed {:.2}, steadfast_retry {:.2}, steadfast_open_tripped {:.2}",
        allocs(&runtime, &mut closed),
        allocs(&runtime, &mut retrying),
        allocs(&runtime, &mut tripped),
    );
    let mut group = c.benchmark_group("rt_recorded");
    group.bench_function("bare", |b| b.iter_custom(|n| timed(&runtime, &mut bare, n)));
    group.bench_function("steadfast_closed", |b| {
        b.iter_custom(|n| timed(&runtime, &mut closed, n));
    });
    group.bench_function("steadfast_retry", |b| {
        b.iter_custom(|n| timed(&runtime, &mut retrying, n));
    });
    group.bench_function("steadfast_open_tripped", |b| {
        b.iter_custom(|n| timed(&runtime, &mut tripped, n));
    });
    group.finish();
    stacks("rt_recorded_stack", c);
    upkeep.stop();
}

/// A thread running a Prometheus recorder's upkeep every 5 s, until stopped.
struct Upkeep {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Upkeep {
    fn start(handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(5))
            {
                handle.run_upkeep();
            }
        });
        Upkeep { stop, thread }
    }

    fn stop(self) {
        drop(self.stop);
        self.thread
            .join()
            .expect("the upkeep thread does not panic");
    }
}

criterion_group!(
    benches,
    breaker,
    rejection,
    retry,
    rate_limit,
    hedge,
    stack,
    async_agent_group,
    contention,
    recorded
);
criterion_main!(benches);
