//! The chaos layer under tokio's paused clock.

use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::BoxError;

type Agent = tower::util::BoxCloneService<u32, u32, BoxError>;

fn echo() -> Agent {
    tower::util::BoxCloneService::new(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }))
}

/// The result of each of `calls` calls: `Ok(n)` or the injected error's kind.
async fn outcomes(agent: &mut Agent, calls: u32) -> Vec<Result<u32, &'static str>> {
    let mut results = Vec::new();
    for n in 0..calls {
        let result = agent.ready().await.unwrap().call(n).await;
        results.push(
            result.map_err(|error| match error.downcast_ref::<ChaosError>() {
                Some(error) if error.is_outage() => "outage",
                Some(_) => "injected",
                _ => "other",
            }),
        );
    }
    results
}

fn layered(config: &ChaosConfig) -> (Agent, ChaosHandle) {
    let layer = ChaosLayer::new(&crate::Agent::new("gpt"), config);
    (
        tower::util::BoxCloneService::new(layer.layer(echo())),
        layer.handle(),
    )
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_injects_the_same_faults() {
    let config = ChaosConfig::builder()
        .seed(1234)
        .error_rate(0.5)
        .build()
        .unwrap();
    let (mut first, _) = layered(&config);
    let (mut second, _) = layered(&config);
    let run = outcomes(&mut first, 64).await;
    assert_eq!(run, outcomes(&mut second, 64).await);
    let failures = run.iter().filter(|r| r.is_err()).count();
    assert!((16..=48).contains(&failures), "{failures} of 64 failed");

    let other_seed = ChaosConfig::builder()
        .seed(99)
        .error_rate(0.5)
        .build()
        .unwrap();
    let (mut third, _) = layered(&other_seed);
    assert_ne!(run, outcomes(&mut third, 64).await);
}

#[tokio::test(start_paused = true)]
async fn a_disabled_layer_lets_everything_through_and_counts_nothing() {
    let config = ChaosConfig::builder()
        .enabled(false)
        .error_rate(1.0)
        .build()
        .unwrap();
    let (mut agent, handle) = layered(&config);
    assert_eq!(
        outcomes(&mut agent, 5).await,
        (0..5).map(Ok).collect::<Vec<_>>()
    );
    assert_eq!(handle.injected(), InjectedCounts::default());
    handle.enable();
    assert_eq!(outcomes(&mut agent, 2).await, vec![Err("injected"); 2]);
    assert_eq!(handle.injected().errors, 2);
}

#[tokio::test(start_paused = true)]
async fn rates_change_at_runtime_and_bad_rates_are_refused() {
    let (mut agent, handle) = layered(&ChaosConfig::default());
    assert_eq!(outcomes(&mut agent, 3).await, vec![Ok(0), Ok(1), Ok(2)]);
    handle.set_error_rate(1.0).unwrap();
    assert_eq!(outcomes(&mut agent, 1).await, vec![Err("injected")]);
    assert!(handle.set_error_rate(2.0).is_err());
    assert!((handle.rates().error - 1.0).abs() < f64::EPSILON);
    handle.set_error_rate(0.0).unwrap();
    assert_eq!(outcomes(&mut agent, 1).await, vec![Ok(0)]);
}

#[tokio::test(start_paused = true)]
async fn injected_latency_delays_the_agent_by_the_configured_time() {
    let config = ChaosConfig::builder()
        .latency_rate(1.0)
        .latency(Duration::from_millis(300))
        .build()
        .unwrap();
    let (mut agent, handle) = layered(&config);
    let started = Instant::now();
    assert_eq!(agent.ready().await.unwrap().call(7).await.unwrap(), 7);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    handle.set_latency(Duration::from_secs(2));
    let started = Instant::now();
    agent.ready().await.unwrap().call(7).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(handle.injected().delays, 2);
}

#[tokio::test(start_paused = true)]
async fn the_response_closure_answers_without_calling_the_agent() {
    let config = ChaosConfig::builder().response_rate(1.0).build().unwrap();
    let layer = ChaosLayer::new(&crate::Agent::new("gpt"), &config).responses(|n: &u32| n + 1000);
    let handle = layer.handle();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = calls.clone();
    let mut agent = layer.layer(service_fn(move |n: u32| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { Ok::<_, BoxError>(n) }
    }));
    assert_eq!(agent.ready().await.unwrap().call(5).await.unwrap(), 1005);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(handle.injected().responses, 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_response_closure_the_response_rate_lets_calls_through() {
    let config = ChaosConfig::builder().response_rate(1.0).build().unwrap();
    let (mut agent, handle) = layered(&config);
    assert_eq!(outcomes(&mut agent, 2).await, vec![Ok(0), Ok(1)]);
    assert_eq!(handle.injected().responses, 0);
}

#[tokio::test(start_paused = true)]
async fn a_configured_outage_fails_everything_inside_its_window_only() {
    let config = ChaosConfig::builder()
        .outage(Outage::after(
            Duration::from_secs(10),
            Duration::from_secs(5),
        ))
        .build()
        .unwrap();
    let (mut agent, handle) = layered(&config);
    assert_eq!(outcomes(&mut agent, 1).await, vec![Ok(0)]);
    tokio::time::advance(Duration::from_secs(10)).await;
    let error = agent.ready().await.unwrap().call(1).await.unwrap_err();
    let error = error.downcast_ref::<ChaosError>().expect("a chaos error");
    assert_eq!(error.outage_remaining(), Some(Duration::from_secs(5)));
    assert_eq!(error.agent(), "gpt");
    tokio::time::advance(Duration::from_millis(4999)).await;
    assert_eq!(outcomes(&mut agent, 1).await, vec![Err("outage")]);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(outcomes(&mut agent, 1).await, vec![Ok(0)]);
    assert_eq!(handle.injected().outage_failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_runtime_outage_starts_now_and_can_end_early() {
    let (mut agent, handle) = layered(&ChaosConfig::default());
    handle.start_outage(Duration::from_secs(60));
    assert_eq!(outcomes(&mut agent, 1).await, vec![Err("outage")]);
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(outcomes(&mut agent, 1).await, vec![Err("outage")]);
    handle.end_outage();
    assert_eq!(outcomes(&mut agent, 1).await, vec![Ok(0)]);
    handle.start_outage(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(outcomes(&mut agent, 1).await, vec![Ok(0)]);
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn a_breaker_outside_the_chaos_layer_opens_on_injected_failures() {
    use crate::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
    let gpt = crate::Agent::new("gpt");
    let breaker = CircuitBreakerLayer::new(
        &gpt,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let config = ChaosConfig::builder().error_rate(1.0).build().unwrap();
    let mut agent = tower::ServiceBuilder::new()
        .layer(breaker.clone())
        .layer(ChaosLayer::new(&gpt, &config))
        .service(echo());
    for n in 0..3 {
        assert!(agent.ready().await.unwrap().call(n).await.is_err());
    }
    assert_eq!(breaker.handle().state(), BreakerState::Open);
}
