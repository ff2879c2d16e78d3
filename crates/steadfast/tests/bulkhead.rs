//! The bulkhead: admits exactly `max_concurrent` calls and refuses the next at once (no timer)
//! without a queue; a queued call waits at most `max_wait`; a refusal is a local agent fault
//! that a breaker ignores and a fallback answers; the classic readiness mode parks
//! `poll_ready`; the adaptive limit converges on an agent's real capacity; bad configs are
//! typed errors. Every time-dependent test runs on tokio's paused clock.
#![cfg(all(
    feature = "bulkhead",
    feature = "circuit-breaker",
    feature = "fallback"
))]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use steadfast::bulkhead::{
    AdaptiveConfig, BulkheadConfig, BulkheadFull, BulkheadLayer, MAX_CONCURRENT_LIMIT, Readiness,
};
use steadfast::classify::{self, OutcomeKind};
use steadfast::events::Event;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// An agent that takes `latency` per call and counts the calls it saw and how many ran at once.
#[derive(Clone, Default)]
struct Slow {
    latency: Duration,
    calls: Arc<AtomicU32>,
    running: Arc<AtomicU32>,
    most_at_once: Arc<AtomicU32>,
}

impl Slow {
    fn new(latency: Duration) -> Self {
        Slow {
            latency,
            ..Slow::default()
        }
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Slow {
    type Response = u32;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(running, Ordering::SeqCst);
        let (latency, running) = (self.latency, self.running.clone());
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(request)
        })
    }
}

/// Polls `future` once.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    pin!(future).poll(&mut cx)
}

fn is_full(error: &BoxError) -> bool {
    steadfast::error::find::<BulkheadFull>(error.as_ref()).is_some()
}

#[tokio::test(start_paused = true)]
async fn admits_exactly_n_and_refuses_the_next_at_once_without_a_queue() {
    let registry = Registry::new();
    let llama = registry.agent("llama");
    let agent = Slow::new(Duration::from_secs(10));
    let layer = BulkheadLayer::new(&llama, BulkheadConfig::max_concurrent(3).unwrap());
    let mut service = layer.layer(agent.clone());

    let admitted: Vec<_> = (0..3)
        .map(|n| {
            let ready = service.ready();
            assert!(poll_once(ready).is_ready(), "always ready in shed mode");
            service.call(n)
        })
        .collect();
    assert_eq!(layer.handle().in_flight(), 3);

    let before = Instant::now();
    let refused = poll_once(service.call(3));
    let Poll::Ready(Err(error)) = refused else {
        panic!("the fourth call must be refused on its first poll");
    };
    assert!(is_full(&error), "{error}");
    assert_eq!(Instant::now(), before, "refusing waits for nothing");
    assert_eq!(agent.calls(), 3, "the agent never saw the fourth call");
    assert_eq!(registry.counters("llama").unwrap().bulkhead_rejected, 1);

    // One finishes: the next call is admitted.
    let mut admitted = admitted.into_iter();
    assert_eq!(admitted.next().unwrap().await.unwrap(), 0);
    let fifth = service.call(5);
    assert_eq!(layer.handle().in_flight(), 3);
    for call in admitted {
        call.await.unwrap();
    }
    assert_eq!(fifth.await.unwrap(), 5);
    assert_eq!(layer.handle().in_flight(), 0);
    assert_eq!(agent.most_at_once.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_waits_up_to_max_wait_then_is_refused() {
    let config = BulkheadConfig::builder()
        .max_concurrent(1)
        .max_queue(1)
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let agent = Slow::new(Duration::from_secs(60));
    let mut service = BulkheadLayer::new(&Agent::new("llama"), config).layer(agent.clone());
    let holder = tokio::spawn(service.call(0));

    let started = Instant::now();
    let queued = tokio::spawn(service.call(1));
    tokio::task::yield_now().await;
    // The queue holds one: a third call is refused at once.
    let third = poll_once(service.call(2));
    assert!(matches!(&third, Poll::Ready(Err(e)) if is_full(e)));

    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(!queued.is_finished(), "still within its wait");
    let error = queued.await.unwrap().unwrap_err();
    assert!(is_full(&error), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(agent.calls(), 1, "the queued call never reached the agent");
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_takes_the_permit_freed_within_its_wait() {
    let config = BulkheadConfig::builder()
        .max_concurrent(1)
        .max_queue(4)
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let agent = Slow::new(Duration::from_secs(2));
    let layer = BulkheadLayer::new(&Agent::new("llama"), config);
    let mut service = layer.layer(agent.clone());
    let started = Instant::now();
    let first = tokio::spawn(service.call(0));
    let second = tokio::spawn(service.call(1));
    tokio::task::yield_now().await;
    assert_eq!(layer.handle().waiting(), 1);
    assert_eq!(first.await.unwrap().unwrap(), 0);
    assert_eq!(second.await.unwrap().unwrap(), 1);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(4),
        "2 s waiting + 2 s answering"
    );
    assert_eq!(layer.handle().waiting(), 0);
    assert_eq!(agent.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_gives_its_permit_back() {
    let layer = BulkheadLayer::new(
        &Agent::new("llama"),
        BulkheadConfig::max_concurrent(1).unwrap(),
    );
    let mut service = layer.layer(Slow::new(Duration::from_secs(60)));
    let first = service.call(0);
    assert_eq!(layer.handle().in_flight(), 1);
    drop(first); // the caller gave up
    assert_eq!(layer.handle().in_flight(), 0);
    assert!(poll_once(service.call(1)).is_pending(), "admitted, running");
}

#[tokio::test(start_paused = true)]
async fn calls_outliving_their_bulkhead_give_their_permits_back_to_it_not_to_the_next() {
    // An admitted call points at its bulkhead's permits without a counted reference; the
    // permits go to a bulkhead made later only once the last of those calls is done. Each
    // round's bulkhead is dropped empty, so the next round may be given its permits again.
    let old = BulkheadLayer::new(
        &Agent::new("old"),
        BulkheadConfig::max_concurrent(2).unwrap(),
    );
    let mut service = old.layer(Slow::new(Duration::from_secs(10)));
    let mut outliving = vec![service.call(0), service.call(1)];
    drop((service, old));

    for round in 0..3 {
        let new = BulkheadLayer::new(
            &Agent::new("new"),
            BulkheadConfig::max_concurrent(1).unwrap(),
        );
        let handle = new.handle();
        let mut service = new.layer(Slow::new(Duration::from_secs(10)));
        assert_eq!(
            handle.in_flight(),
            0,
            "round {round}: a new bulkhead starts empty"
        );
        let running = service.call(2);
        assert_eq!(handle.in_flight(), 1);
        match round {
            0 => drop(outliving.pop()), // the caller gave up on an old call
            1 => assert_eq!(
                outliving.pop().unwrap().await.unwrap(),
                0,
                "an old call answers"
            ),
            _ => assert!(outliving.is_empty()),
        }
        assert_eq!(
            handle.in_flight(),
            1,
            "round {round}: untouched by the old calls"
        );
        let Poll::Ready(Err(error)) = poll_once(service.call(3)) else {
            panic!("round {round}: the second call must be refused");
        };
        assert!(is_full(&error), "{error}");
        drop(running);
        assert_eq!(handle.in_flight(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_made_after_others_were_dropped_with_calls_in_flight_counts_only_its_own() {
    let mut outliving = Vec::new();
    for n in 0..4 {
        let old = BulkheadLayer::new(
            &Agent::new("old"),
            BulkheadConfig::max_concurrent(2).unwrap(),
        );
        let mut service = old.layer(Slow::new(Duration::from_secs(10)));
        outliving.push(service.call(n));
    }
    let new = BulkheadLayer::new(
        &Agent::new("new"),
        BulkheadConfig::max_concurrent(2).unwrap(),
    );
    let handle = new.handle();
    let mut service = new.layer(Slow::new(Duration::from_secs(10)));
    let mine = [service.call(10), service.call(11)];
    assert_eq!(handle.in_flight(), 2);
    // Every old call ends (dropped, and answered): none of them is this bulkhead's.
    for (n, call) in outliving.into_iter().enumerate() {
        if n % 2 == 0 {
            drop(call);
        } else {
            call.await.unwrap();
        }
    }
    assert_eq!(
        handle.in_flight(),
        2,
        "the old calls gave back nothing here"
    );
    let Poll::Ready(Err(error)) = poll_once(service.call(12)) else {
        panic!("still full");
    };
    assert!(is_full(&error), "{error}");
    for call in mine {
        call.await.unwrap();
    }
    assert_eq!(handle.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_a_local_agent_fault_a_breaker_ignores_and_a_fallback_answers() {
    let registry = Registry::new();
    let llama = registry.agent("llama");
    let hosted = registry.agent("hosted");
    let breaker_config = BreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let agent = Slow::new(Duration::from_secs(10));
    let mut stack = ServiceBuilder::new()
        .layer(FallbackLayer::new(&llama).then(
            &hosted,
            service_fn(|n: u32| async move { Ok::<_, BoxError>(n + 1000) }),
        ))
        .layer(CircuitBreakerLayer::new(&llama, breaker_config))
        .layer(BulkheadLayer::new(
            &llama,
            BulkheadConfig::max_concurrent(1).unwrap(),
        ))
        .service(agent.clone());

    let outcome = classify::error_outcome(&BulkheadFull::default()).unwrap();
    assert_eq!(outcome.kind(), OutcomeKind::AgentFault);
    assert!(outcome.is_local() && outcome.is_unprocessed());
    assert!(!outcome.counts_against_agent());

    let holder = tokio::spawn(stack.ready().await.unwrap().call(1));
    tokio::task::yield_now().await;
    for n in 0..5 {
        let answer = stack.ready().await.unwrap().call(n).await.unwrap();
        assert_eq!(answer, n + 1000, "the fallback answered the refused call");
    }
    assert_eq!(
        registry.breaker("llama").unwrap().state(),
        BreakerState::Closed,
        "five refusals after a one-failure trip rule: the breaker did not count them"
    );
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    let counters = registry.counters("llama").unwrap();
    assert_eq!((counters.bulkhead_rejected, counters.fallbacks), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn readiness_mode_parks_poll_ready_until_a_permit_is_free() {
    let config = BulkheadConfig::builder()
        .max_concurrent(1)
        .readiness(Readiness::WaitInPollReady)
        .build()
        .unwrap();
    let layer = BulkheadLayer::new(&Agent::new("llama"), config);
    let mut first = layer.layer(Slow::new(Duration::from_secs(3)));
    let mut second = first.clone();
    first.ready().await.unwrap();
    assert_eq!(
        layer.handle().in_flight(),
        1,
        "poll_ready reserved the permit"
    );
    let started = Instant::now();
    let call = tokio::spawn(first.call(0));
    second.ready().await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "ready once the first call ended"
    );
    assert_eq!(call.await.unwrap().unwrap(), 0);
    assert_eq!(second.call(1).await.unwrap(), 1);
    assert_eq!(layer.handle().in_flight(), 0);
    // A service that reserved a permit and is dropped gives it back.
    second.ready().await.unwrap();
    assert_eq!(layer.handle().in_flight(), 1);
    drop(second);
    assert_eq!(layer.handle().in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_threads_never_exceed_the_limit() {
    let agent = Slow::new(Duration::ZERO);
    let layer = BulkheadLayer::new(
        &Agent::new("llama"),
        BulkheadConfig::max_concurrent(3).unwrap(),
    );
    let admitted = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut service = layer.layer(agent.clone());
            let admitted = admitted.clone();
            tokio::spawn(async move {
                for n in 0..500 {
                    if service.call(n).await.is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(agent.most_at_once.load(Ordering::SeqCst) <= 3);
    assert_eq!(admitted.load(Ordering::Relaxed), agent.calls());
    assert_eq!(layer.handle().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_registry_snapshot_shows_the_bulkhead() {
    let registry = Registry::new();
    let config = BulkheadConfig::builder()
        .max_concurrent(8)
        .adaptive(AdaptiveConfig::new().min_limit(2).initial_limit(4))
        .build()
        .unwrap();
    let mut service = BulkheadLayer::new(&registry.agent("llama"), config)
        .layer(Slow::new(Duration::from_secs(1)));
    let _running = service.call(0);
    let snapshot = registry.snapshot();
    let bulkhead = snapshot.agents[0].bulkhead.unwrap();
    assert_eq!(
        (
            bulkhead.limit,
            bulkhead.max_concurrent,
            bulkhead.min_limit,
            bulkhead.in_flight
        ),
        (4, 8, Some(2), 1)
    );
    assert!(bulkhead.adaptive);
}

/// A model server that can take `capacity` generations at once and answers 429 to any call
/// beyond that (as vLLM behind a gateway does), else answers after `latency`.
#[derive(Clone)]
struct Capacity {
    capacity: u32,
    latency: Duration,
    running: Arc<AtomicU32>,
}

#[derive(Debug, thiserror::Error)]
#[error("429 too many requests")]
struct TooMany;

impl Service<u32> for Capacity {
    type Response = u32;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let running = self.running.clone();
        if running.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            running.fetch_sub(1, Ordering::SeqCst);
            return Box::pin(async { Err(TooMany.into()) });
        }
        let latency = self.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(request)
        })
    }
}

fn llm_classifier(result: Result<&u32, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(e) if e.downcast_ref::<TooMany>().is_some() => Outcome::rate_limited("429"),
        Err(_) => Outcome::transient("error"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_converges_on_the_agents_capacity() {
    const CAPACITY: u32 = 20;
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let model = registry.agent("llama").classifier(llm_classifier);
    let config = BulkheadConfig::builder()
        .max_concurrent(64)
        .adaptive(AdaptiveConfig::new().min_limit(1))
        .build()
        .unwrap();
    let layer = BulkheadLayer::new(&model, config);
    let agent = Capacity {
        capacity: CAPACITY,
        latency: Duration::from_millis(100),
        running: Arc::default(),
    };
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let mut service = layer.layer(agent.clone());
            tokio::spawn(async move {
                loop {
                    if service.call(0).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    // Let it settle, then sample the limit once a second for a minute.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut samples = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(layer.handle().limit());
    }
    for client in clients {
        client.abort();
    }
    println!("limit once a second: {samples:?}"); // shown with --nocapture
    let mean = f64::from(samples.iter().sum::<u32>()) / 60.0;
    let off = (mean - f64::from(CAPACITY)).abs() / f64::from(CAPACITY);
    assert!(
        off <= 0.2,
        "mean limit {mean:.1} vs capacity {CAPACITY}: {samples:?}"
    );
    let (low, high) = (samples.iter().min().unwrap(), samples.iter().max().unwrap());
    assert!(
        f64::from(*low) >= 0.8 * f64::from(CAPACITY)
            && f64::from(*high) <= 1.2 * f64::from(CAPACITY),
        "every sample within 20 %: {samples:?}"
    );

    let lowered = registry
        .counters("llama")
        .unwrap()
        .concurrency_limit_lowered;
    assert!(lowered > 0);
    let event = std::iter::from_fn(|| events.try_recv())
        .find(|event| matches!(event, Event::ConcurrencyLimitLowered { .. }))
        .expect("a decrease is an event");
    let Event::ConcurrencyLimitLowered {
        from, to, reason, ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(
        (from, to, reason),
        (64, 57, "429"),
        "the first 429 cut 64 by 10 %"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_slower_than_the_threshold_lowers_the_limit() {
    let config = BulkheadConfig::builder()
        .max_concurrent(10)
        .adaptive(AdaptiveConfig::new().latency_threshold(Duration::from_secs(1)))
        .build()
        .unwrap();
    let layer = BulkheadLayer::new(&Agent::new("llama"), config);
    let mut slow = layer.layer(Slow::new(Duration::from_secs(2)));
    slow.call(0).await.unwrap();
    assert_eq!(layer.handle().limit(), 9);
    let mut fast = layer.layer(Slow::new(Duration::from_millis(10)));
    fast.call(0).await.unwrap();
    assert_eq!(layer.handle().limit(), 9, "an idle bulkhead does not grow");
}

#[tokio::test(start_paused = true)]
async fn a_call_is_timed_from_its_first_pending_poll_and_an_answer_at_once_is_never_slow() {
    let config = BulkheadConfig::builder()
        .max_concurrent(10)
        .adaptive(AdaptiveConfig::new().latency_threshold(Duration::from_secs(1)))
        .build()
        .unwrap();
    let layer = BulkheadLayer::new(&Agent::new("llama"), config);
    // Answered at the first poll, though the caller polled it 5 s after the call: no clock read,
    // no "slow" signal (the wait was the caller's, not the agent's).
    let mut at_once = layer.layer(tower::service_fn(|n: u64| async move {
        Ok::<_, steadfast::BoxError>(n)
    }));
    let call = at_once.call(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    call.await.unwrap();
    assert_eq!(layer.handle().limit(), 10);
    // Pending at the first poll: timed from then; 2 s against a 1 s threshold is slow.
    let mut slow = layer.layer(Slow::new(Duration::from_secs(2)));
    slow.call(0).await.unwrap();
    assert_eq!(layer.handle().limit(), 9);
}

#[test]
fn bad_configs_are_typed_errors() {
    let setting = |result: Result<BulkheadConfig, ConfigError>| {
        let error = result.unwrap_err();
        assert_eq!(error.component(), "bulkhead");
        error.setting().to_owned()
    };
    let builder = BulkheadConfig::builder;
    assert_eq!(
        setting(builder().max_concurrent(0).build()),
        "max_concurrent"
    );
    assert_eq!(setting(BulkheadConfig::max_concurrent(0)), "max_concurrent");
    assert_eq!(
        setting(builder().max_concurrent(MAX_CONCURRENT_LIMIT + 1).build()),
        "max_concurrent"
    );
    assert_eq!(
        setting(builder().max_concurrent(u32::MAX).build()),
        "max_concurrent"
    );
    assert_eq!(
        setting(
            builder()
                .max_queue(u32::MAX)
                .max_wait(Duration::from_secs(1))
                .build()
        ),
        "max_queue"
    );
    assert_eq!(
        setting(builder().max_queue(4).max_wait(Duration::MAX).build()),
        "max_wait"
    );
    assert_eq!(
        setting(builder().max_queue(4).max_wait(Duration::ZERO).build()),
        "max_wait"
    );
    assert_eq!(setting(builder().max_queue(4).build()), "max_wait");
    assert_eq!(
        setting(builder().max_wait(Duration::from_secs(1)).build()),
        "max_wait"
    );
    assert_eq!(
        setting(
            builder()
                .readiness(Readiness::WaitInPollReady)
                .max_queue(2)
                .max_wait(Duration::from_secs(1))
                .build()
        ),
        "readiness"
    );
    let adaptive =
        |adaptive: AdaptiveConfig| builder().max_concurrent(10).adaptive(adaptive).build();
    assert_eq!(
        setting(adaptive(AdaptiveConfig::new().min_limit(0))),
        "adaptive.min_limit"
    );
    assert_eq!(
        setting(adaptive(AdaptiveConfig::new().min_limit(11))),
        "adaptive.min_limit"
    );
    assert_eq!(
        setting(adaptive(AdaptiveConfig::new().initial_limit(0))),
        "adaptive.initial_limit"
    );
    assert_eq!(
        setting(adaptive(AdaptiveConfig::new().initial_limit(11))),
        "adaptive.initial_limit"
    );
    for backoff in [f64::NAN, f64::INFINITY, 1.0, 0.0, -0.5, 0.05] {
        assert_eq!(
            setting(adaptive(AdaptiveConfig::new().backoff(backoff))),
            "adaptive.backoff"
        );
    }
    for threshold in [Duration::ZERO, Duration::MAX] {
        assert_eq!(
            setting(adaptive(AdaptiveConfig::new().latency_threshold(threshold))),
            "adaptive.latency_threshold"
        );
    }
    let error = builder()
        .max_queue(4)
        .max_wait(Duration::MAX)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("max_wait"), "{error}");
    assert!(
        builder()
            .max_queue(4)
            .max_wait(Duration::from_secs(2))
            .build()
            .is_ok()
    );
}
