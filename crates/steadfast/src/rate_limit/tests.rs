//! The layer against a counting mock agent, on tokio's paused clock.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::agent::Agent;
use crate::classify::{Outcome, OutcomeKind};
use crate::error::BoxError;

/// Records when each call reached the agent, relative to `start`.
fn recording_agent(
    start: Instant,
    arrivals: Arc<Mutex<Vec<Duration>>>,
    status: u16,
) -> impl Service<
    u64,
    Response = u16,
    Error = BoxError,
    Future = std::future::Ready<Result<u16, BoxError>>,
> + Clone {
    service_fn(move |_tokens: u64| {
        arrivals.lock().unwrap().push(start.elapsed());
        std::future::ready(Ok::<_, BoxError>(status))
    })
}

fn http_like(result: Result<&u16, &BoxError>) -> Outcome {
    match result {
        Ok(429) => Outcome::rate_limited("429")
            .with_retry_after(Duration::from_secs(20))
            .unprocessed(),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_token_quota_admits_exactly_its_tokens_per_minute_over_ten_minutes() {
    const TPM: u64 = 6_000;
    const COST: u64 = 100;
    let start = Instant::now();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let config = RateLimitConfig::builder()
        .tokens_per_minute(TPM)
        .max_wait(Duration::from_secs(600))
        .build()
        .unwrap();
    let agent = RateLimitLayer::new(&Agent::new("gpt"), config)
        .cost(|tokens: &u64| *tokens)
        .layer(recording_agent(start, arrivals.clone(), 200));
    // Twenty callers flooding the agent for ten simulated minutes.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let mut agent = agent.clone();
            tokio::spawn(async move {
                while start.elapsed() < Duration::from_secs(600) {
                    agent.ready().await.unwrap().call(COST).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let arrivals = arrivals.lock().unwrap();
    let mut tokens_per_minute = [0_u64; 10];
    for at in arrivals.iter().filter(|at| at.as_secs() < 600) {
        tokens_per_minute[(at.as_secs() / 60) as usize] += COST;
    }
    // The first minute also spends the full bucket the limiter starts with (burst 1.0).
    assert_eq!(
        tokens_per_minute[0],
        TPM + TPM - COST,
        "{tokens_per_minute:?}"
    );
    for (minute, tokens) in tokens_per_minute.iter().enumerate().skip(1) {
        assert_eq!(*tokens, TPM, "minute {minute}: {tokens_per_minute:?}");
    }
    // And never more than a minute's quota plus the bucket in any sliding minute.
    for (i, at) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|later| **later < *at + Duration::from_secs(60))
            .count() as u64;
        assert!(
            within * COST <= 2 * TPM,
            "{within} calls in the minute from {at:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn after_a_429_with_retry_after_20s_no_call_reaches_the_agent_for_20s() {
    let start = Instant::now();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let throttled = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let agent_throttled = throttled.clone();
    let agent_arrivals = arrivals.clone();
    // Answers 429 (retry after 20 s) to the first call, 200 after.
    let agent = service_fn(move |_: u64| {
        agent_arrivals.lock().unwrap().push(start.elapsed());
        let status = if agent_throttled.swap(false, std::sync::atomic::Ordering::SeqCst) {
            429
        } else {
            200
        };
        std::future::ready(Ok::<u16, BoxError>(status))
    });
    let config = RateLimitConfig::builder()
        .requests_per_minute(600)
        .max_wait(Duration::from_secs(30))
        .build()
        .unwrap();
    let gpt = Agent::new("gpt").classifier(http_like);
    let mut events = gpt.events().subscribe();
    let layer = RateLimitLayer::new(&gpt, config);
    let handle = layer.handle();
    let mut service = layer.layer(agent);
    assert_eq!(service.ready().await.unwrap().call(1).await.unwrap(), 429);
    assert_eq!(handle.paused_for(), Some(Duration::from_secs(20)));
    assert!(
        matches!(
            events.try_recv(),
            Some(crate::events::Event::AgentPaused { pause, .. }) if pause == Duration::from_secs(20)
        ),
        "the pause is an event on the agent's path"
    );

    // One caller a second for the next 30 s: each waits for the pause instead of calling.
    let mut calls = Vec::new();
    for _ in 0..30 {
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut service = service.clone();
        calls.push(tokio::spawn(async move {
            service.ready().await.unwrap().call(1).await
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 200);
    }
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals[0], Duration::ZERO, "the call answered 429");
    assert!(
        arrivals[1..]
            .iter()
            .all(|at| *at >= Duration::from_secs(20)),
        "a call reached the agent during the pause: {arrivals:?}"
    );
    assert_eq!(
        arrivals.len(),
        31,
        "every waiting call went through after the pause"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_longer_than_max_wait_refuses_at_once_without_calling() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let config = RateLimitConfig::builder()
        .requests_per_minute(60)
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let layer = RateLimitLayer::new(&Agent::new("gpt"), config);
    layer.handle().pause(Duration::from_secs(20));
    let mut service = layer.layer(recording_agent(Instant::now(), arrivals.clone(), 200));
    let started = Instant::now();
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "refused without waiting");
    let refused = error.downcast_ref::<RateLimited>().unwrap();
    assert_eq!(refused.limit(), Limit::Paused);
    assert_eq!(refused.wait(), Some(Duration::from_secs(20)));
    assert!(arrivals.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_refusal_classifies_as_an_unprocessed_rate_limit_with_its_wait() {
    let config = RateLimitConfig::builder()
        .requests_per_minute(1)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let mut service = RateLimitLayer::new(&Agent::new("gpt"), config).layer(recording_agent(
        Instant::now(),
        Arc::default(),
        200,
    ));
    service.ready().await.unwrap().call(1).await.unwrap();
    let error = service.ready().await.unwrap().call(1).await.unwrap_err();
    let outcome = crate::classify::error_outcome(error.as_ref()).unwrap();
    assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
    assert!(outcome.is_unprocessed());
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(60)));
    assert!(
        error
            .to_string()
            .contains("requests-per-minute quota of agent `gpt`"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_costing_more_than_a_burst_is_the_callers_fault() {
    let config = RateLimitConfig::builder()
        .tokens_per_minute(1_000)
        .burst(0.5)
        .build()
        .unwrap();
    let mut service = RateLimitLayer::new(&Agent::new("gpt"), config)
        .cost(|tokens: &u64| *tokens)
        .layer(recording_agent(Instant::now(), Arc::default(), 200));
    let error = service.ready().await.unwrap().call(501).await.unwrap_err();
    let refused = error.downcast_ref::<RateLimited>().unwrap();
    assert!(refused.is_too_large());
    let outcome = crate::classify::error_outcome(error.as_ref()).unwrap();
    assert_eq!(outcome.kind(), OutcomeKind::CallerFault);
    assert_eq!(service.ready().await.unwrap().call(500).await.unwrap(), 200);
}

#[tokio::test(start_paused = true)]
async fn the_answers_usage_corrects_the_estimate_both_ways() {
    let config = RateLimitConfig::builder()
        .tokens_per_minute(1_000)
        .build()
        .unwrap();
    // The "agent" answers with the tokens it used: a tenth of the estimate, then 1.8 times it.
    let layer = RateLimitLayer::new(&Agent::new("gpt"), config)
        .cost(|_: &u64| 500)
        .usage(|used: &u64| Some(*used));
    let handle = layer.handle();
    let mut service = layer.layer(service_fn(
        |used: u64| async move { Ok::<_, BoxError>(used) },
    ));
    service.ready().await.unwrap().call(50).await.unwrap();
    assert_eq!(
        handle.available_tokens(),
        Some(950),
        "450 over-estimated tokens given back"
    );
    service.ready().await.unwrap().call(900).await.unwrap();
    assert_eq!(
        handle.available_tokens(),
        Some(50),
        "400 under-estimated tokens charged"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_call_never_reaches_the_agent() {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let config = RateLimitConfig::builder()
        .requests_per_minute(1)
        .max_wait(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut service = RateLimitLayer::new(&Agent::new("gpt"), config).layer(recording_agent(
        Instant::now(),
        arrivals.clone(),
        200,
    ));
    service.ready().await.unwrap().call(1).await.unwrap();
    let waiting = service.ready().await.unwrap().call(1);
    assert!(
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .is_err(),
        "still waiting for its turn at 60 s"
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(arrivals.lock().unwrap().len(), 1);
}

/// Answers 429 (retry after 20 s, with `http_like`) one second after the call.
fn slow_throttled_agent() -> impl Service<
    u64,
    Response = u16,
    Error = BoxError,
    Future = impl Future<Output = Result<u16, BoxError>>,
> + Clone {
    service_fn(|_: u64| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<u16, BoxError>(429)
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_answered_after_its_service_is_dropped_still_pauses_the_agent() {
    // Without a usage reader a call carries the limiter's address, not a counted reference:
    // the pause must reach the quotas the handle (and any other service) still shares.
    let throttled = slow_throttled_agent();
    let config = RateLimitConfig::builder()
        .requests_per_minute(600)
        .build()
        .unwrap();
    let gpt = Agent::new("gpt").classifier(http_like);
    let layer = RateLimitLayer::new(&gpt, config);
    let handle = layer.handle();
    let mut service = layer.layer(throttled);
    let call = service.ready().await.unwrap().call(1);
    drop(service);
    drop(layer);
    assert_eq!(handle.paused_for(), None);
    assert_eq!(call.await.unwrap(), 429);
    assert_eq!(
        handle.paused_for(),
        Some(Duration::from_secs(20)),
        "the answer paused the quotas the handle shares"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_answered_after_the_limiter_is_gone_is_passed_on_unchanged() {
    let config = RateLimitConfig::builder()
        .requests_per_minute(600)
        .build()
        .unwrap();
    let gpt = Agent::new("gpt").classifier(http_like);
    let mut service = RateLimitLayer::new(&gpt, config).layer(slow_throttled_agent());
    let call = service.ready().await.unwrap().call(1);
    drop(service);
    assert_eq!(
        call.await.unwrap(),
        429,
        "nothing left to pause, the answer stands"
    );
}
