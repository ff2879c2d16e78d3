//! The layer against scripted mock agents, on tokio's paused clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::agent::Agent;
use crate::error::BoxError;

/// What the mock agent saw: when each call arrived, and when each was dropped unfinished.
#[derive(Default)]
struct Seen {
    arrivals: Vec<Duration>,
    cancelled: Vec<(u32, Duration)>,
}

/// Marks a call cancelled if its future is dropped before it answered.
struct Cancellation {
    call: u32,
    start: Instant,
    seen: Arc<Mutex<Seen>>,
    answered: bool,
}

impl Drop for Cancellation {
    fn drop(&mut self) {
        if !self.answered {
            self.seen
                .lock()
                .unwrap()
                .cancelled
                .push((self.call, self.start.elapsed()));
        }
    }
}

/// A mock agent: call `n` (from 1) takes `latency(n)`, then answers `Ok(n)` or, if
/// `fails(n)`, an error.
fn scripted(
    start: Instant,
    seen: Arc<Mutex<Seen>>,
    latency: impl Fn(u32) -> Duration + Clone + Send + 'static,
    fails: impl Fn(u32) -> bool + Clone + Send + 'static,
) -> impl tower::Service<
    &'static str,
    Response = u32,
    Error = BoxError,
    Future = impl Future<Output = Result<u32, BoxError>> + Send,
> + Clone {
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |_: &'static str| {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        seen.lock().unwrap().arrivals.push(start.elapsed());
        let wait = latency(call);
        let failed = fails(call);
        let guard = Cancellation {
            call,
            start,
            seen: seen.clone(),
            answered: false,
        };
        async move {
            let mut guard = guard;
            tokio::time::sleep(wait).await;
            guard.answered = true;
            if failed {
                Err::<u32, BoxError>(format!("call {call} failed").into())
            } else {
                Ok(call)
            }
        }
    })
}

/// [`answered_by`], reduced to the attempt number.
async fn answered_attempt<F: Future>(future: F) -> (F::Output, Option<u32>) {
    let (output, answered) = answered_by(future).await;
    (output, answered.map(|answered| answered.attempt()))
}

fn fixed(delay_secs: u64) -> HedgeConfig {
    HedgeConfig::builder()
        .delay(Duration::from_secs(delay_secs))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hedge_fires_exactly_at_the_delay_and_the_slower_attempt_is_cancelled() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(
        start,
        seen.clone(),
        |call| Duration::from_secs(if call == 1 { 10 } else { 1 }),
        |_| false,
    );
    let gpt = Agent::new("gpt");
    let mut events = gpt.events().subscribe();
    let service = HedgeLayer::new(&gpt, fixed(2)).layer(agent);
    let (reply, attempt) = answered_attempt(service.oneshot("hi")).await;
    assert_eq!(reply.unwrap(), 2, "the hedge's answer");
    assert!(matches!(
        events.try_recv(),
        Some(crate::events::Event::HedgeSent { attempt: 2, after, .. }) if after == Duration::from_secs(2)
    ));
    assert_eq!(attempt, Some(2));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.arrivals,
        [Duration::ZERO, Duration::from_secs(2)],
        "the hedge went exactly at the delay"
    );
    assert_eq!(
        seen.cancelled,
        [(1, Duration::from_secs(3))],
        "the first attempt was dropped the moment the hedge answered"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_delay_sends_no_hedge() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_secs(1), |_| false);
    let service = HedgeLayer::new(&Agent::new("gpt"), fixed(2)).layer(agent);
    let (reply, attempt) = answered_attempt(service.oneshot("hi")).await;
    assert_eq!((reply.unwrap(), attempt), (1, Some(1)));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(seen.lock().unwrap().arrivals, [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn hedging_stops_when_the_budget_is_spent() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_secs(5), |_| false);
    // Hedges may add 40 % to the load, and no floor: five requests earn two hedges.
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(1))
        .budget_ratio(0.4)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let layer = HedgeLayer::new(&Agent::new("gpt"), config);
    let budget = layer.hedge_budget();
    let service = layer.layer(agent);
    let calls: Vec<_> = (0..5)
        .map(|_| tokio::spawn(answered_attempt(service.clone().oneshot("hi"))))
        .collect();
    let mut attempts = Vec::new();
    for call in calls {
        let (reply, attempt) = call.await.unwrap();
        reply.unwrap();
        attempts.push(attempt.unwrap());
    }
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.arrivals.len(),
        7,
        "five requests and two hedges: {:?}",
        seen.arrivals
    );
    assert_eq!(
        seen.arrivals
            .iter()
            .filter(|at| **at == Duration::from_secs(1))
            .count(),
        2
    );
    assert_eq!(
        budget.counts(),
        (5, 2),
        "five requests deposited, two hedges withdrawn"
    );
    // Every call took the full 5 s (hedges sent at 1 s answer at 6 s), so the first attempts won.
    assert!(attempts.iter().all(|attempt| *attempt == 1), "{attempts:?}");
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_hedges_per_request() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_secs(60), |_| false);
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(1))
        .max_hedges(2)
        .budget_min_per_sec(100)
        .build()
        .unwrap();
    let service = HedgeLayer::new(&Agent::new("gpt"), config).layer(agent);
    let (reply, attempt) = answered_attempt(service.oneshot("hi")).await;
    assert_eq!((reply.unwrap(), attempt), (1, Some(1)));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.arrivals,
        [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(2)
        ]
    );
    assert_eq!(
        seen.cancelled.len(),
        2,
        "both hedges cancelled when the first answered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_waits_for_the_hedge_still_running() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    // The first fails at 3 s, after the hedge went at 2 s; the hedge answers at 4 s.
    let agent = scripted(
        start,
        seen.clone(),
        |call| Duration::from_secs(if call == 1 { 3 } else { 2 }),
        |call| call == 1,
    );
    let service = HedgeLayer::new(&Agent::new("gpt"), fixed(2)).layer(agent);
    let (reply, attempt) = answered_attempt(service.oneshot("hi")).await;
    assert_eq!((reply.unwrap(), attempt), (2, Some(2)));
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_delay_is_returned_at_once_without_a_hedge() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_secs(1), |_| true);
    let service = HedgeLayer::new(&Agent::new("gpt"), fixed(2)).layer(agent);
    let error = service.oneshot("hi").await.unwrap_err();
    assert_eq!(error.to_string(), "call 1 failed");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(seen.lock().unwrap().arrivals.len(), 1);
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn no_hedge_goes_to_an_open_circuit() {
    use crate::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_secs(5), |_| false);
    let gpt = Agent::new("gpt");
    let breaker = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
    let service = HedgeLayer::new(&gpt, fixed(2)).layer(breaker.layer(agent));
    let call = tokio::spawn(answered_attempt(service.oneshot("hi")));
    tokio::time::sleep(Duration::from_secs(1)).await;
    gpt.breaker().unwrap().force_open();
    let (reply, attempt) = call.await.unwrap();
    assert_eq!((reply.unwrap(), attempt), (1, Some(1)));
    assert_eq!(
        seen.lock().unwrap().arrivals,
        [Duration::ZERO],
        "no hedge at 2 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_follows_the_agents_recent_latencies() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    // Twenty calls of 100 ms, then one stuck for a minute.
    let agent = scripted(
        start,
        seen.clone(),
        |call| Duration::from_millis(if call == 21 { 60_000 } else { 100 }),
        |_| false,
    );
    let config = HedgeConfig::builder()
        .percentile(95.0)
        .min_samples(20)
        .build()
        .unwrap();
    let service = HedgeLayer::new(&Agent::new("gpt"), config).layer(agent);
    for _ in 0..20 {
        let (_, attempt) = answered_attempt(service.clone().oneshot("warm up")).await;
        assert_eq!(attempt, Some(1), "no hedging before min_samples calls");
    }
    assert_eq!(seen.lock().unwrap().arrivals.len(), 20);
    let slow_start = start.elapsed();
    let (reply, attempt) = answered_attempt(service.oneshot("stuck")).await;
    assert_eq!((reply.unwrap(), attempt), (22, Some(2)));
    let seen = seen.lock().unwrap();
    let hedge_after = seen.arrivals[21].saturating_sub(slow_start);
    // p95 of 100 ms, read from a bucket no more than 25 % wide.
    assert!(
        hedge_after > Duration::from_millis(100) && hedge_after <= Duration::from_millis(125),
        "{hedge_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_shared_with_a_retry_layer_is_only_drawn_from() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let agent = scripted(start, seen.clone(), |_| Duration::from_millis(1), |_| false);
    let gpt = Agent::new("gpt");
    let retry = crate::retry::BackoffRetryLayer::new(&gpt, crate::retry::RetryConfig::default());
    let hedge = HedgeLayer::new(&gpt, fixed(1)).budget(retry.retry_budget());
    let service = retry.layer(hedge.layer(agent));
    for _ in 0..3 {
        service.clone().oneshot("hi").await.unwrap();
    }
    assert_eq!(
        retry.retry_budget().counts(),
        (3, 0),
        "the retry layer counted each request once; the hedge layer added none"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hedge_to_the_alternative_fires_exactly_at_the_delay_and_the_primary_is_cancelled() {
    let start = Instant::now();
    let (primary_seen, backup_seen) = (
        Arc::new(Mutex::new(Seen::default())),
        Arc::new(Mutex::new(Seen::default())),
    );
    let primary = scripted(
        start,
        primary_seen.clone(),
        |_| Duration::from_secs(10),
        |_| false,
    );
    let backup_agent = scripted(
        start,
        backup_seen.clone(),
        |_| Duration::from_secs(1),
        |_| false,
    );
    let (gpt, claude) = (Agent::new("gpt"), Agent::new("claude"));
    // No floor: every hedge taken shows in the budget's counts.
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(2))
        .budget_ratio(1.0)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let layer = HedgeLayer::new(&gpt, config).to(&claude, backup_agent);
    assert_eq!(layer.target().names(), ["claude"]);
    let budget = layer.hedge_budget();
    let service = layer.layer(primary);
    let (reply, answered) = answered_by(service.oneshot("hi")).await;
    assert_eq!(reply.unwrap(), 1, "the alternative's first call answered");
    let answered = answered.unwrap();
    assert_eq!((answered.attempt(), answered.agent()), (2, "claude"));
    assert!(answered.is_hedge());
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(
        primary_seen.lock().unwrap().arrivals,
        [Duration::ZERO],
        "no hedge went to the primary"
    );
    assert_eq!(
        backup_seen.lock().unwrap().arrivals,
        [Duration::from_secs(2)],
        "the hedge reached the alternative exactly at the delay"
    );
    assert_eq!(
        primary_seen.lock().unwrap().cancelled,
        [(1, Duration::from_secs(3))],
        "the primary saw its call cancelled the moment the alternative answered"
    );
    assert_eq!(
        budget.counts(),
        (1, 1),
        "the hedge was taken from the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slower_alternative_is_cancelled_when_the_primary_answers_first() {
    let start = Instant::now();
    let (primary_seen, backup_seen) = (
        Arc::new(Mutex::new(Seen::default())),
        Arc::new(Mutex::new(Seen::default())),
    );
    let primary = scripted(
        start,
        primary_seen.clone(),
        |_| Duration::from_secs(3),
        |_| false,
    );
    let backup_agent = scripted(
        start,
        backup_seen.clone(),
        |_| Duration::from_secs(30),
        |_| false,
    );
    let service = HedgeLayer::new(&Agent::new("gpt"), fixed(2))
        .to(&Agent::new("claude"), backup_agent)
        .layer(primary);
    let (reply, answered) = answered_by(service.oneshot("hi")).await;
    assert_eq!(reply.unwrap(), 1);
    let answered = answered.unwrap();
    assert_eq!((answered.attempt(), answered.agent()), (1, "gpt"));
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(
        backup_seen.lock().unwrap().cancelled,
        [(1, Duration::from_secs(3))],
        "the alternative saw its call cancelled when the primary answered"
    );
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn an_alternative_whose_circuit_is_open_is_skipped_for_the_next_one() {
    use crate::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
    let start = Instant::now();
    let seen: [Arc<Mutex<Seen>>; 3] = Default::default();
    let primary = scripted(
        start,
        seen[0].clone(),
        |_| Duration::from_secs(5),
        |_| false,
    );
    let (gpt, claude, gemini) = (
        Agent::new("gpt"),
        Agent::new("claude"),
        Agent::new("gemini"),
    );
    let claude_service =
        CircuitBreakerLayer::new(&claude, BreakerConfig::default()).layer(scripted(
            start,
            seen[1].clone(),
            |_| Duration::from_secs(1),
            |_| false,
        ));
    let gemini_service =
        CircuitBreakerLayer::new(&gemini, BreakerConfig::default()).layer(scripted(
            start,
            seen[2].clone(),
            |_| Duration::from_secs(1),
            |_| false,
        ));
    claude.breaker().unwrap().force_open();
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(2))
        .budget_ratio(1000.0)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let layer = HedgeLayer::new(&gpt, config)
        .to(&claude, claude_service)
        .to(&gemini, gemini_service);
    assert_eq!(layer.target().names(), ["claude", "gemini"]);
    let budget = layer.hedge_budget();
    let service = layer.layer(primary);

    let (reply, answered) = answered_by(service.clone().oneshot("hi")).await;
    assert_eq!(reply.unwrap(), 1);
    assert_eq!(answered.unwrap().agent(), "gemini");
    assert!(
        seen[1].lock().unwrap().arrivals.is_empty(),
        "nothing reached the open circuit"
    );
    assert_eq!(seen[2].lock().unwrap().arrivals, [Duration::from_secs(2)]);

    // Every alternative open: no hedge at all, and none taken from the budget.
    assert_eq!(budget.counts(), (1, 1));
    gemini.breaker().unwrap().force_open();
    let restarted = Instant::now();
    let (reply, answered) = answered_by(service.oneshot("again")).await;
    assert_eq!(reply.unwrap(), 2, "the primary's second call answered");
    assert_eq!(answered.unwrap().agent(), "gpt");
    assert_eq!(restarted.elapsed(), Duration::from_secs(5));
    assert!(seen[1].lock().unwrap().arrivals.is_empty());
    assert_eq!(seen[2].lock().unwrap().arrivals.len(), 1);
    assert_eq!(
        budget.counts(),
        (2, 1),
        "no hedge was taken from the budget when every alternative was open"
    );
}

#[tokio::test(start_paused = true)]
async fn hedges_to_alternatives_follow_their_order_up_to_max_hedges() {
    let start = Instant::now();
    let seen: [Arc<Mutex<Seen>>; 3] = Default::default();
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(1))
        .max_hedges(4)
        .budget_ratio(1000.0)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let layer = HedgeLayer::new(&Agent::new("gpt"), config)
        .to(
            &Agent::new("claude"),
            scripted(
                start,
                seen[1].clone(),
                |_| Duration::from_secs(60),
                |_| false,
            ),
        )
        .to(
            &Agent::new("gemini"),
            scripted(
                start,
                seen[2].clone(),
                |_| Duration::from_secs(60),
                |_| false,
            ),
        );
    let budget = layer.hedge_budget();
    let service = layer.layer(scripted(
        start,
        seen[0].clone(),
        |_| Duration::from_secs(5),
        |_| false,
    ));
    let (reply, answered) = answered_by(service.oneshot("hi")).await;
    assert_eq!((reply.unwrap(), answered.unwrap().attempt()), (1, 1));
    assert_eq!(seen[0].lock().unwrap().arrivals, [Duration::ZERO]);
    assert_eq!(seen[1].lock().unwrap().arrivals, [Duration::from_secs(1)]);
    assert_eq!(seen[2].lock().unwrap().arrivals, [Duration::from_secs(2)]);
    assert_eq!(
        budget.counts(),
        (1, 2),
        "one hedge per alternative, though max_hedges allowed four"
    );
    for agent in &seen[1..] {
        assert_eq!(agent.lock().unwrap().cancelled.len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn hedging_to_the_alternative_stops_when_the_budget_is_spent() {
    let start = Instant::now();
    let (primary_seen, backup_seen) = (
        Arc::new(Mutex::new(Seen::default())),
        Arc::new(Mutex::new(Seen::default())),
    );
    let config = HedgeConfig::builder()
        .delay(Duration::from_secs(1))
        .budget_ratio(0.4)
        .budget_min_per_sec(0)
        .build()
        .unwrap();
    let service = HedgeLayer::new(&Agent::new("gpt"), config)
        .to(
            &Agent::new("claude"),
            scripted(
                start,
                backup_seen.clone(),
                |_| Duration::from_secs(1),
                |_| false,
            ),
        )
        .layer(scripted(
            start,
            primary_seen.clone(),
            |_| Duration::from_secs(5),
            |_| false,
        ));
    let calls: Vec<_> = (0..5)
        .map(|_| tokio::spawn(answered_by(service.clone().oneshot("hi"))))
        .collect();
    let mut agents = Vec::new();
    for call in calls {
        let (reply, answered) = call.await.unwrap();
        reply.unwrap();
        agents.push(answered.unwrap().agent().to_owned());
    }
    assert_eq!(
        backup_seen.lock().unwrap().arrivals.len(),
        2,
        "five requests earn two hedges"
    );
    assert_eq!(agents.iter().filter(|agent| *agent == "claude").count(), 2);
    assert_eq!(primary_seen.lock().unwrap().cancelled.len(), 2);
}
