//! Every public config and builder, swept with extreme values: each one builds, or is refused
//! with a `ConfigError` naming the setting; and what builds runs a call without panicking.
//! `Duration::MAX` means "no limit" wherever a duration limits waiting.
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "chaos",
    feature = "fanout",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::time::Duration;

use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::chaos::{ChaosConfig, ChaosLayer, Outage};
use steadfast::circuit_breaker::SlidingWindow;
use steadfast::dead_letter::{MemorySink, Replay};
use steadfast::events::EventBus;
use steadfast::fanout::Fanout;
use steadfast::prelude::*;
use steadfast::registry::HealthPolicy;
use steadfast::retry::RetryBudget;
use steadfast::shutdown::{Shutdown, ShutdownLayer};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const DURATIONS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_secs(1),
    Duration::from_secs(u64::MAX),
    Duration::MAX,
];
const FLOATS: [f64; 10] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -0.0,
    -1.0,
    1e-300,
    0.5,
    1e300,
    f64::MIN_POSITIVE,
];
const COUNTS: [u32; 4] = [0, 1, 10_001, u32::MAX];

/// A refusal must name the setting it refuses.
fn named<T>(result: Result<T, ConfigError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            assert!(!error.setting().is_empty(), "{error:?}");
            assert!(error.to_string().contains(error.setting()), "{error}");
            None
        }
    }
}

async fn call_through_breaker(config: BreakerConfig) {
    let agent = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&Agent::new("gpt"), config))
        .service(service_fn(|fail: bool| async move {
            if fail {
                Err::<(), BoxError>("down".into())
            } else {
                Ok(())
            }
        }));
    for fail in [true, true, true, true, true, false] {
        let _ = agent.clone().oneshot(fail).await;
    }
    tokio::time::advance(Duration::from_secs(121)).await;
    let _ = agent.oneshot(false).await;
}

#[tokio::test(start_paused = true)]
async fn breaker_config_sweep() {
    for duration in DURATIONS {
        let builders = [
            BreakerConfig::builder().slow_call_threshold(duration),
            BreakerConfig::builder().initial_open_duration(duration),
            BreakerConfig::builder().max_open_duration(duration),
            BreakerConfig::builder().health_check_interval(duration),
            BreakerConfig::builder().health_check_timeout(duration),
            BreakerConfig::builder().window(SlidingWindow::Time(duration)),
        ];
        for builder in builders {
            if let Some(config) = named(builder.build()) {
                call_through_breaker(config).await;
            }
        }
    }
    for value in FLOATS {
        let builders = [
            BreakerConfig::builder().failure_rate_threshold(value),
            BreakerConfig::builder().slow_call_rate_threshold(value),
            BreakerConfig::builder().open_duration_multiplier(value),
        ];
        for builder in builders {
            if let Some(config) = named(builder.build()) {
                call_through_breaker(config).await;
            }
        }
    }
    for count in COUNTS {
        let builders = [
            BreakerConfig::builder().consecutive_failures(count),
            BreakerConfig::builder().min_calls(count),
            BreakerConfig::builder().half_open_probes(count),
            BreakerConfig::builder().success_threshold(count),
            BreakerConfig::builder().window(SlidingWindow::Count(count)),
            BreakerConfig::builder().recent_failures(count as usize),
        ];
        for builder in builders {
            if let Some(config) = named(builder.build()) {
                call_through_breaker(config).await;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_config_and_budget_sweep() {
    let mut configs = Vec::new();
    for duration in DURATIONS {
        configs.extend([
            RetryConfig::builder().base(duration).build(),
            RetryConfig::builder().max_backoff(duration).build(),
            RetryConfig::builder()
                .base(duration)
                .max_backoff(Duration::MAX)
                .build(),
            RetryConfig::builder().max_retry_after(duration).build(),
            RetryConfig::builder().deadline(duration).build(),
            RetryConfig::builder().budget_ttl(duration).build(),
        ]);
        let _ = named(RetryBudget::new(0.2, 10, duration));
    }
    for value in FLOATS {
        configs.extend([
            RetryConfig::builder().multiplier(value).build(),
            RetryConfig::builder().budget_ratio(value).build(),
        ]);
        let _ = named(RetryBudget::new(value, u32::MAX, Duration::from_secs(10)));
    }
    for count in COUNTS {
        configs.extend([
            RetryConfig::builder().max_retries(count).build(),
            RetryConfig::builder().budget_min_per_sec(count).build(),
        ]);
    }
    for config in configs.into_iter().filter_map(named) {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        let agent =
            BackoffRetryLayer::new(&Agent::new("gpt"), config).layer(service_fn(move |(): ()| {
                let first = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err::<(), BoxError>("down".into())
                    } else {
                        Ok(())
                    }
                }
            }));
        let _ = tokio::time::timeout(Duration::from_secs(3_600), agent.oneshot(())).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_centuries_under_no_cap_is_no_retry_not_a_panic() {
    let config = RetryConfig::builder()
        .max_retry_after(Duration::MAX)
        .deadline(Duration::MAX)
        .build()
        .unwrap();
    let gpt = Agent::new("gpt").classifier(|result: Result<&(), &BoxError>| match result {
        Ok(()) => Outcome::success(),
        Err(_) => Outcome::rate_limited("429").with_retry_after(Duration::MAX),
    });
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let agent = BackoffRetryLayer::new(&gpt, config).layer(service_fn(move |(): ()| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Err::<(), BoxError>("429".into()) }
    }));
    assert!(agent.oneshot(()).await.is_err());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn cache_chaos_fanout_and_the_rest_sweep() {
    for duration in DURATIONS {
        for builder in [
            CacheConfig::builder().ttl(duration),
            CacheConfig::builder().max_stale(duration),
        ] {
            if let Some(config) = named(builder.build()) {
                let cache = ResponseCache::new(config, |n: &u32| Some(*n));
                cache.insert(&1, 1);
                tokio::time::advance(Duration::from_secs(1)).await;
                let _ = cache.get(&1);
            }
        }
        let chaos = ChaosConfig::builder()
            .error_rate(0.2)
            .latency_rate(0.2)
            .latency(duration)
            .outage(Outage::after(duration, duration))
            .build()
            .unwrap();
        let handle = ChaosLayer::new(&Agent::new("gpt"), &chaos).handle();
        handle.start_outage(duration);
        handle.set_latency(duration);
        let agent = ChaosLayer::new(&Agent::new("gpt"), &chaos)
            .layer(service_fn(|(): ()| async { Ok::<_, BoxError>(()) }));
        let _ = tokio::time::timeout(Duration::from_secs(1), agent.oneshot(())).await;

        let fanout = Fanout::builder()
            .required(
                &Agent::new("a"),
                service_fn(|(): ()| async { Ok::<_, BoxError>(()) }),
            )
            .deadline(duration)
            .build();
        if let Some(fanout) = named(fanout) {
            let _ = tokio::time::timeout(Duration::from_secs(1), fanout.call(())).await;
        }

        let shutdown = Shutdown::new();
        let _agent = ShutdownLayer::new(&Agent::new("gpt"), &shutdown)
            .layer(service_fn(|(): ()| async { Ok::<_, BoxError>(()) }));
        let report = shutdown.drain_with_grace(duration, duration).await;
        assert_eq!(report.cancelled, 0);
    }
    for count in [0usize, 1, usize::MAX] {
        for builder in [
            CacheConfig::builder().max_entries(count),
            CacheConfig::builder().max_bytes(count),
            CacheConfig::builder().max_entries(count).max_bytes(count),
        ] {
            if let Some(config) = named(builder.build()) {
                let cache =
                    ResponseCache::with_size(config, |n: &u32| Some(*n), |s: &String| s.len());
                cache.insert(&1, "x".repeat(64));
                let _ = cache.get(&1);
            }
        }
        let bus = EventBus::new(count);
        let _receiver = bus.subscribe();
        let _registry = Registry::with_policy(HealthPolicy::default(), count);
    }
    for value in FLOATS {
        for builder in [
            ChaosConfig::builder().error_rate(value),
            ChaosConfig::builder().response_rate(value),
            ChaosConfig::builder().latency_rate(value),
        ] {
            let _ = named(builder.build());
        }
        let ratio = Fanout::builder()
            .required(
                &Agent::new("a"),
                service_fn(|(): ()| async { Ok::<_, BoxError>(()) }),
            )
            .success_ratio(value)
            .build();
        let _ = named(ratio);
        let _ = HealthPolicy::default().degraded_failure_rate(value);
        let sink = MemorySink::new(1);
        let _ = named(Replay::new(&sink).rate_per_second(value));
    }
    for quorum in [0usize, 1, 2, usize::MAX] {
        let fanout = Fanout::builder()
            .required(
                &Agent::new("a"),
                service_fn(|(): ()| async { Ok::<_, BoxError>(()) }),
            )
            .quorum(quorum)
            .build();
        let _ = named(fanout);
    }
}
