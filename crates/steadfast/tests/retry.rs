//! Behaviour of `BackoffRetryLayer`, on tokio's paused clock.
#![cfg(feature = "retry")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::classify::{Classify, Outcome, OutcomeKind};
use steadfast::events::Event;
use steadfast::prelude::*;
use steadfast::retry::{attempts_of, count_attempts, remaining};
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

type Log = Arc<Mutex<Vec<Duration>>>;

/// An agent that fails its first `failures` calls with `error`, then answers; it logs when
/// each call arrived (since `start`).
fn agent(
    failures: usize,
    error: &'static str,
    start: Instant,
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone,
    Log,
) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let service = service_fn(move |request: u32| {
        let mut calls = seen.lock().unwrap();
        calls.push(start.elapsed());
        let fail = calls.len() <= failures;
        async move {
            if fail {
                Err::<u32, BoxError>(error.into())
            } else {
                Ok(request)
            }
        }
    });
    (service, log)
}

fn calls(log: &Log) -> Vec<Duration> {
    log.lock().unwrap().clone()
}

fn ms(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|&v| Duration::from_millis(v)).collect()
}

fn no_jitter() -> RetryConfig {
    RetryConfig::builder().jitter(Jitter::None).build().unwrap()
}

/// A retry layer for an agent of its own, classified by the default classifier.
fn retry(config: RetryConfig) -> BackoffRetryLayer<DefaultClassifier> {
    BackoffRetryLayer::new(&Agent::new("gpt"), config)
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_exponential_backoff() {
    let (inner, log) = agent(3, "reset", Instant::now());
    let service = retry(no_jitter()).layer_to(inner);
    let (reply, attempts) = count_attempts(service.oneshot(7)).await;
    assert_eq!(reply.unwrap(), 7);
    assert_eq!(attempts, Some(4));
    assert_eq!(calls(&log), ms(&[0, 500, 1500, 3500]));
}

#[tokio::test(start_paused = true)]
async fn a_seeded_jitter_replays_the_same_waits() {
    let config = RetryConfig::builder().jitter(Jitter::Full).build().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (inner, log) = agent(3, "reset", Instant::now());
        let service = retry(config.clone()).seed(42).layer_to(inner);
        service.oneshot(1).await.unwrap();
        runs.push(calls(&log));
    }
    assert_eq!(runs[0], runs[1]);
    // Full jitter: each wait is within [0, base x 2^n].
    let waits: Vec<_> = runs[0]
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    for (wait, cap) in waits.iter().zip([500, 1000, 2000]) {
        assert!(*wait <= Duration::from_millis(cap), "{waits:?}");
    }
    assert_ne!(waits, ms(&[500, 1000, 2000]), "the waits were jittered");

    let (inner, log) = agent(3, "reset", Instant::now());
    retry(config)
        .seed(43)
        .layer_to(inner)
        .oneshot(1)
        .await
        .unwrap();
    assert_ne!(calls(&log), runs[0], "another seed, other waits");
}

#[tokio::test(start_paused = true)]
async fn equal_and_decorrelated_jitter_stay_in_their_ranges() {
    for jitter in [Jitter::Equal, Jitter::Decorrelated] {
        let config = RetryConfig::builder().jitter(jitter).build().unwrap();
        let (inner, log) = agent(3, "reset", Instant::now());
        let service = retry(config).seed(7).layer_to(inner);
        service.oneshot(1).await.unwrap();
        let log = calls(&log);
        let waits: Vec<_> = log.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
        assert_eq!(waits.len(), 3);
        let base = Duration::from_millis(500);
        let mut previous = Duration::ZERO;
        for (retry, wait) in waits.iter().enumerate() {
            let exp = base * (1 << retry);
            match jitter {
                Jitter::Equal => assert!(*wait >= exp / 2 && *wait <= exp, "{waits:?}"),
                // Uniform in [base, 3 x previous wait] (the first "previous" is the base).
                _ => assert!(
                    *wait >= base && *wait <= previous.max(base) * 3,
                    "{waits:?}"
                ),
            }
            previous = *wait;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_replaces_the_computed_backoff() {
    let (inner, log) = agent(1, "slow down", Instant::now());
    let classifier = |result: Result<&u32, &BoxError>| match result {
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::rate_limited("429").with_retry_after(Duration::from_secs(2)),
    };
    let service = BackoffRetryLayer::new(&Agent::new("gpt").classifier(classifier), no_jitter())
        .layer_to(inner);
    assert_eq!(service.oneshot(3).await.unwrap(), 3);
    assert_eq!(calls(&log), ms(&[0, 2000]));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_over_the_cap_returns_the_error_at_once() {
    let start = Instant::now();
    let (inner, log) = agent(5, "quota window", start);
    let classifier = |result: Result<&u32, &BoxError>| match result {
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::rate_limited("429").with_retry_after(Duration::from_secs(3600)),
    };
    let service = BackoffRetryLayer::new(&Agent::new("gpt").classifier(classifier), no_jitter())
        .layer_to(inner);
    let err = service.oneshot(3).await.unwrap_err();
    assert_eq!(err.to_string(), "quota window");
    assert_eq!(calls(&log).len(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO, "no useless sleep");
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_not_started() {
    let start = Instant::now();
    let (inner, log) = agent(5, "reset", start);
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .deadline(Duration::from_millis(1200))
        .build()
        .unwrap();
    let service = retry(config).layer_to(inner);
    let err = service.oneshot(3).await.unwrap_err();
    let exceeded = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("deadline error");
    assert_eq!(exceeded.attempts(), 2);
    assert_eq!(exceeded.deadline(), Duration::from_millis(1200));
    assert_eq!(
        std::error::Error::source(exceeded).unwrap().to_string(),
        "reset"
    );
    // Attempts at 0 and 500 ms; the next wait (1 s) would end past 1.2 s: stop at 500 ms.
    assert_eq!(calls(&log), ms(&[0, 500]));
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_in_flight() {
    let start = Instant::now();
    let slow = service_fn(|()| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, BoxError>(())
    });
    let config = RetryConfig::builder()
        .deadline(Duration::from_secs(3))
        .build()
        .unwrap();
    let err = retry(config).layer_to(slow).oneshot(()).await.unwrap_err();
    let exceeded = err.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.attempts(), 1);
    assert!(exceeded.last().is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_still_holds_after_a_wait_between_attempts() {
    let start = Instant::now();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let first_fails_then_hangs = service_fn(move |()| {
        let call = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if call == 0 {
                return Err::<(), BoxError>("reset".into());
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    });
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .deadline(Duration::from_secs(3))
        .build()
        .unwrap();
    let err = retry(config)
        .layer_to(first_fails_then_hangs)
        .oneshot(())
        .await
        .unwrap_err();
    let exceeded = err.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.attempts(), 2);
    assert_eq!(exceeded.last().unwrap().to_string(), "reset");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn inner_layers_see_the_time_left_before_the_deadline() {
    let seen: Arc<Mutex<Vec<Option<Duration>>>> = Arc::default();
    let record = seen.clone();
    let inner = service_fn(move |()| {
        record.lock().unwrap().push(remaining());
        let record = record.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            record.lock().unwrap().push(remaining());
            Err::<(), BoxError>("reset".into())
        }
    });
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .max_retries(1)
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let _ = retry(config).layer_to(inner).oneshot(()).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [10_000, 9_900, 9_400, 9_300]
            .map(|ms| Some(Duration::from_millis(ms)))
            .to_vec()
    );
    assert_eq!(remaining(), None, "nothing leaks outside the call");
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_keeps_the_last_error_and_the_attempt_count() {
    let (inner, log) = agent(100, "model overloaded", Instant::now());
    let service = BackoffRetryLayer::new(&Agent::new("claude"), no_jitter()).layer_to(inner);
    let err = service.oneshot(1).await.unwrap_err();
    let exhausted = err.downcast_ref::<RetriesExhausted>().unwrap();
    assert_eq!(exhausted.attempts(), 4);
    assert_eq!(exhausted.agent(), "claude");
    assert_eq!(exhausted.last().to_string(), "model overloaded");
    assert_eq!(attempts_of(err.as_ref()), 4);
    assert_eq!(calls(&log).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn agent_and_caller_faults_are_returned_at_once() {
    for outcome in [
        Outcome::caller_fault("400"),
        Outcome::agent_fault("401"),
        Outcome::rate_limited("quota exhausted"),
    ] {
        let (inner, log) = agent(5, "refused", Instant::now());
        let classifier =
            move |result: Result<&u32, &BoxError>| result.map_or(outcome, |_| Outcome::success());
        let service =
            BackoffRetryLayer::new(&Agent::new("gpt").classifier(classifier), no_jitter())
                .layer_to(inner);
        let err = service.oneshot(1).await.unwrap_err();
        assert_eq!(err.to_string(), "refused", "{outcome}");
        assert_eq!(calls(&log).len(), 1, "{outcome}");
    }
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn a_circuit_open_rejection_is_never_retried_whatever_the_classifier_says() {
    use steadfast::circuit_breaker::CircuitOpen;
    let (inner, log) = agent(100, "down", Instant::now());
    let always_retry = |_: Result<&u32, &BoxError>| Outcome::transient("anything");
    let gpt = Agent::new("gpt").classifier(always_retry);
    let breaker = CircuitBreakerLayer::new(
        &gpt,
        BreakerConfig::builder()
            .consecutive_failures(2)
            .build()
            .unwrap(),
    );
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .base(Duration::from_millis(100))
        .build()
        .unwrap();
    let service = BackoffRetryLayer::new(&gpt, config)
        .retry_on(|_: &Outcome| true)
        .layer_to(breaker.layer_to(inner));
    let start = Instant::now();
    let (result, attempts) = count_attempts(service.oneshot(1)).await;
    let err = result.unwrap_err();
    // Two real attempts trip the breaker; the third is rejected and returned as it is.
    assert!(err.downcast_ref::<CircuitOpen>().is_some(), "{err}");
    assert_eq!(attempts, Some(3));
    assert_eq!(calls(&log).len(), 2);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "waits of 100 and 200 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_response_is_returned_as_it_is_when_retrying_stops() {
    let (inner, log) = agent(0, "", Instant::now());
    // The agent answers 503 (as an `Ok`), always.
    let inner = inner.map_response(|_| 503u32);
    let classifier = |result: Result<&u32, &BoxError>| match result {
        Ok(503) => Outcome::transient("503"),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    };
    let service = BackoffRetryLayer::new(&Agent::new("gpt").classifier(classifier), no_jitter())
        .layer_to(inner);
    assert_eq!(service.oneshot(1).await.unwrap(), 503);
    assert_eq!(calls(&log).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_on_can_retry_a_rate_limit_without_a_known_wait() {
    let (inner, log) = agent(1, "429", Instant::now());
    let classifier = |result: Result<&u32, &BoxError>| {
        result.map_or(Outcome::rate_limited("429"), |_| Outcome::success())
    };
    let service = BackoffRetryLayer::new(&Agent::new("gpt").classifier(classifier), no_jitter())
        .retry_on(|outcome: &Outcome| outcome.kind() == OutcomeKind::RateLimited)
        .layer_to(inner);
    assert_eq!(service.oneshot(1).await.unwrap(), 1);
    assert_eq!(calls(&log), ms(&[0, 500]));
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm_against_a_dead_agent() {
    let (inner, log) = agent(usize::MAX, "connection refused", Instant::now());
    let registry = Registry::new();
    let service = BackoffRetryLayer::new(&registry.agent("dead"), RetryConfig::default())
        .seed(1)
        .layer_to(inner);
    let mut tasks = tokio::task::JoinSet::new();
    for request in 0..1_000 {
        tasks.spawn(service.clone().oneshot(request));
    }
    let (mut budget_exhausted, mut exhausted) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let err = result.unwrap().unwrap_err();
        if err.downcast_ref::<BudgetExhausted>().is_some() {
            budget_exhausted += 1;
        } else if err.downcast_ref::<RetriesExhausted>().is_some() {
            exhausted += 1;
        }
    }
    let attempts = calls(&log).len();
    // 1,000 first attempts + 20 % of them + a floor of 10 per second over the ~4 s of retries.
    assert!(
        (1_200..=1_250).contains(&attempts),
        "{attempts} attempts for 1,000 requests"
    );
    assert_eq!(budget_exhausted + exhausted, 1_000);
    assert!(budget_exhausted > 900, "{budget_exhausted}");
    let counters = registry.counters("dead").unwrap();
    assert_eq!(counters.retries as usize, attempts - 1_000);
    assert_eq!(counters.retry_budget_exhausted, budget_exhausted);
    assert_eq!(counters.retries_exhausted, exhausted);
}

#[tokio::test(start_paused = true)]
async fn clones_of_a_service_share_one_budget() {
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .max_retries(1)
        .budget_ratio(0.0)
        .budget_min_per_sec(1)
        .build()
        .unwrap();
    let (inner, log) = agent(usize::MAX, "down", Instant::now());
    let first = retry(config).layer_to(inner);
    let second = first.clone();
    let err = first.oneshot(1).await.unwrap_err();
    assert!(err.downcast_ref::<RetriesExhausted>().is_some(), "{err}");
    // Same second: the one floor retry is spent.
    tokio::time::advance(Duration::from_millis(100)).await;
    let err = second.oneshot(1).await.unwrap_err();
    assert!(err.downcast_ref::<BudgetExhausted>().is_some(), "{err}");
    assert_eq!(calls(&log).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn layers_given_the_same_budget_share_it() -> Result<(), ConfigError> {
    let budget = RetryBudget::new(0.0, 1, Duration::from_secs(10))?;
    let (inner, log) = agent(usize::MAX, "down", Instant::now());
    let layer = |name: &'static str| {
        BackoffRetryLayer::new(&Agent::new(name), no_jitter()).budget(budget.clone())
    };
    let a = layer("route-a").layer_to(inner.clone());
    let b = layer("route-b").layer_to(inner);
    let (a, b) = tokio::join!(a.oneshot(1), b.oneshot(2));
    let errors = [a.unwrap_err(), b.unwrap_err()];
    // One floor retry between them in the first second: one route gets it, the other is
    // refused at once; the retried one is refused its second retry, still in that second.
    for err in &errors {
        assert!(err.downcast_ref::<BudgetExhausted>().is_some(), "{err}");
    }
    let mut attempts: Vec<u32> = errors.iter().map(|err| attempts_of(err.as_ref())).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(calls(&log).len(), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_cancels_the_pending_wait() {
    let (inner, log) = agent(usize::MAX, "reset", Instant::now());
    let service = retry(no_jitter()).layer_to(inner);
    let mut future = Box::pin(service.oneshot(1));
    assert!(futures_poll_once(&mut future).await.is_none());
    assert_eq!(calls(&log).len(), 1);
    drop(future);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(calls(&log).len(), 1, "no attempt after the caller left");
}

#[tokio::test(start_paused = true)]
async fn zero_max_retries_sends_once_and_wraps_the_error() {
    let config = RetryConfig::builder().max_retries(0).build().unwrap();
    let (inner, log) = agent(1, "reset", Instant::now());
    let err = retry(config).layer_to(inner).oneshot(1).await.unwrap_err();
    assert_eq!(attempts_of(err.as_ref()), 1);
    assert!(err.downcast_ref::<RetriesExhausted>().is_some());
    assert_eq!(calls(&log).len(), 1);
}

/// A request that says whether it may be sent twice (an HTTP method, in effect).
#[derive(Clone, Copy, Debug)]
enum Method {
    Get,
    Post,
}

/// Classifies like an HTTP client would: a refused connection never reached the agent; any
/// other error may have. Notes whether the request is idempotent.
#[derive(Clone, Copy)]
struct MethodAware;

impl Classify<Method, &'static str> for MethodAware {
    type Memo = bool;

    fn note(&self, request: &Method) -> bool {
        matches!(request, Method::Get)
    }

    fn classify(&self, _idempotent: &bool, result: Result<&&'static str, &BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::success(),
            Err(error) if error.to_string() == "connection refused" => {
                Outcome::transient("connection refused").unprocessed()
            }
            Err(_) => Outcome::transient("timeout"),
        }
    }

    fn is_idempotent(&self, idempotent: &bool) -> bool {
        *idempotent
    }
}

/// Fails its first call with `error`, then answers; counts calls.
fn fails_once(
    error: &'static str,
    calls: &Arc<std::sync::atomic::AtomicU32>,
) -> impl Service<Method, Response = &'static str, Error = BoxError, Future: Send> + Clone {
    let calls = calls.clone();
    service_fn(move |_: Method| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if call == 0 {
                Err::<&'static str, BoxError>(error.into())
            } else {
                Ok("done")
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_request_is_retried_only_after_a_failure_that_never_reached_the_agent() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let registry = Registry::new();
    let gpt = registry.agent("gpt").classifier(MethodAware);
    let layer = BackoffRetryLayer::new(&gpt, no_jitter());
    for (method, error, retried) in [
        (Method::Post, "timed out after sending", false),
        (Method::Post, "connection refused", true),
        (Method::Get, "timed out after sending", true),
        (Method::Get, "connection refused", true),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let service = layer.clone().layer_to(fails_once(error, &calls));
        let case = format!("{method:?} after `{error}`");
        let (result, attempts) = count_attempts(service.oneshot(method)).await;
        if retried {
            assert_eq!(result.unwrap(), "done", "{case}");
            assert_eq!(calls.load(Ordering::SeqCst), 2, "{case}");
            assert_eq!(attempts, Some(2), "{case}");
        } else {
            // Returned as it is, not as RetriesExhausted: no retry was ever allowed.
            assert_eq!(result.unwrap_err().to_string(), error, "{case}");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{case}");
            assert_eq!(attempts, Some(1), "{case}");
        }
    }
    assert_eq!(registry.counters("gpt").unwrap().retries, 3);
}

#[tokio::test(start_paused = true)]
async fn every_decision_is_one_event_and_one_count_on_the_agent() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let gpt = registry.agent("gpt");

    // Two retries, then the retries run out.
    let (inner, _) = agent(usize::MAX, "reset", Instant::now());
    let config = RetryConfig::builder()
        .jitter(Jitter::None)
        .max_retries(2)
        .build()
        .unwrap();
    let err = BackoffRetryLayer::new(&gpt, config)
        .layer_to(inner)
        .oneshot(1)
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<RetriesExhausted>().is_some(), "{err}");

    // The budget refuses the first retry.
    let (inner, _) = agent(usize::MAX, "reset", Instant::now());
    let err = BackoffRetryLayer::new(&gpt, no_jitter())
        .budget(RetryBudget::new(0.0, 0, Duration::from_secs(10)).unwrap())
        .layer_to(inner)
        .oneshot(1)
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<BudgetExhausted>().is_some(), "{err}");

    // The deadline passes during the first attempt.
    let slow = service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<u32, BoxError>(0)
    });
    let config = RetryConfig::builder()
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = BackoffRetryLayer::new(&gpt, config)
        .layer_to(slow)
        .oneshot(1)
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<DeadlineExceeded>().is_some(), "{err}");

    let name: Arc<str> = Arc::from("gpt");
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(
        seen,
        [
            Event::RetryScheduled {
                agent: name.clone(),
                attempt: 2,
                delay: Duration::from_millis(500),
                reason: Some("error"),
            },
            Event::RetryScheduled {
                agent: name.clone(),
                attempt: 3,
                delay: Duration::from_secs(1),
                reason: Some("error"),
            },
            Event::RetriesExhausted {
                agent: name.clone(),
                attempts: 3,
                reason: Some("error"),
            },
            Event::RetryBudgetExhausted {
                agent: name.clone(),
                attempts: 1,
            },
            Event::DeadlineExceeded {
                agent: name.clone(),
                attempts: 1,
            },
        ]
    );
    let counters = registry.counters("gpt").unwrap();
    assert_eq!(
        (
            counters.retries,
            counters.retries_exhausted,
            counters.retry_budget_exhausted,
            counters.deadlines_exceeded
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(gpt.counters(), counters, "the agent and the registry agree");
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_clock_can_hold_is_not_a_panic() {
    // An agent may ask for any wait: with `max_retry_after` lifted, the layer honours it if
    // the clock can hold it, and otherwise stops at once, as for a wait over the limit.
    let asking = |wait: Duration| {
        move |result: Result<&u32, &BoxError>| match result {
            Ok(_) => Outcome::success(),
            Err(_) => Outcome::rate_limited("429").with_retry_after(wait),
        }
    };
    let honours_any_wait = RetryConfig::builder()
        .max_retry_after(Duration::MAX)
        .build()
        .unwrap();
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let start = Instant::now();
    let (inner, log) = agent(1, "later", start);
    let gpt = Agent::new("gpt").classifier(asking(century));
    let service = BackoffRetryLayer::new(&gpt, honours_any_wait.clone()).layer_to(inner);
    assert_eq!(service.oneshot(5).await.unwrap(), 5);
    assert_eq!(
        calls(&log),
        [Duration::ZERO, century],
        "a century, as asked"
    );

    // A computed backoff with no cap reaches an unrepresentable wait too.
    let uncapped = RetryConfig::builder()
        .jitter(Jitter::None)
        .base(Duration::MAX)
        .max_backoff(Duration::MAX)
        .build()
        .unwrap();
    let gpt = Agent::new("gpt").classifier(asking(Duration::MAX));
    let (inner, asked_log) = agent(1, "later", Instant::now());
    let (uncapped_inner, uncapped_log) = agent(1, "later", Instant::now());
    let cases = [
        (
            "Retry-After",
            tower::util::BoxService::new(
                BackoffRetryLayer::new(&gpt, honours_any_wait).layer_to(inner),
            ),
            asked_log,
        ),
        (
            "backoff",
            tower::util::BoxService::new(retry(uncapped).layer_to(uncapped_inner)),
            uncapped_log,
        ),
    ];
    for (case, service, log) in cases {
        let start = Instant::now();
        let (result, attempts) = count_attempts(service.oneshot(5)).await;
        let error = result.unwrap_err();
        assert_eq!(
            error.to_string(),
            "later",
            "{case}: the agent's error, as it is"
        );
        assert_eq!(attempts, Some(1), "{case}");
        assert_eq!(calls(&log).len(), 1, "{case}");
        assert_eq!(start.elapsed(), Duration::ZERO, "{case}: no wait started");
    }
}

/// Polls a future once; `None` if it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// `layer.layer(inner)` with the layer first, so tests read outer to inner.
trait LayerTo<S>: tower::Layer<S> + Sized {
    fn layer_to(self, inner: S) -> Self::Service {
        self.layer(inner)
    }
}
impl<S, L: tower::Layer<S>> LayerTo<S> for L {}

/// A service that counts its clones and fails the calls whose request is odd.
#[derive(Debug)]
struct Counted {
    clones: Arc<std::sync::atomic::AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Counted {
            clones: self.clones.clone(),
        }
    }
}

impl Service<u32> for Counted {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        std::future::ready(if request % 2 == 1 {
            Err("reset".into())
        } else {
            Ok(request)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_successful_call_clones_nothing_and_a_retried_one_clones_the_service_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = RetryConfig::builder()
        .max_retries(2)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let mut service = retry(config).layer_to(Counted {
        clones: clones.clone(),
    });
    let at_layer = clones.load(Relaxed);
    assert_eq!(at_layer, 1, "the layer keeps one clone to retry through");
    for request in (0..200).step_by(2) {
        assert_eq!(
            service.ready().await.unwrap().call(request).await.unwrap(),
            request
        );
    }
    assert_eq!(
        clones.load(Relaxed),
        at_layer,
        "no clone per successful call"
    );
    for _ in 0..3 {
        let error = service.ready().await.unwrap().call(1).await.unwrap_err();
        assert_eq!(attempts_of(&*error), 3, "{error}");
    }
    assert_eq!(
        clones.load(Relaxed),
        at_layer + 3,
        "one clone per retried call, whatever its number of retries"
    );
}
