//! The circuit breaker as a tower layer, under tokio's paused clock.
#![cfg(feature = "circuit-breaker")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use steadfast::circuit_breaker::{
    BreakerConfig, BreakerHandle, BreakerState, CircuitBreakerLayer, CircuitOpen, SlidingWindow,
    TransitionReason,
};
use steadfast::events::Event;
use steadfast::{Agent, BoxError, Outcome, Registry};
use tokio::time::{Instant, advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_test::{assert_request_eq, mock};

type Scripted = tower::util::BoxCloneService<Reply, &'static str, BoxError>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reply {
    Ok,
    Fail,
    BadPrompt,
    Slow(u64),
}

/// An in-process agent that does what each request says.
fn scripted() -> Scripted {
    tower::util::BoxCloneService::new(service_fn(|reply: Reply| async move {
        match reply {
            Reply::Ok => Ok("ok"),
            Reply::Fail => Err::<&'static str, BoxError>("model overloaded".into()),
            Reply::BadPrompt => Err("bad prompt".into()),
            Reply::Slow(millis) => {
                sleep(Duration::from_millis(millis)).await;
                Ok("slow ok")
            }
        }
    }))
}

fn caller_fault_aware(result: Result<&&'static str, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(e) if e.to_string() == "bad prompt" => Outcome::caller_fault("bad prompt"),
        Err(_) => Outcome::transient("overloaded"),
    }
}

fn breaker(
    config: BreakerConfig,
) -> (
    impl Service<Reply, Response = &'static str, Error = BoxError> + Clone,
    BreakerHandle,
) {
    let gpt = Agent::new("gpt").classifier(caller_fault_aware);
    let layer = CircuitBreakerLayer::new(&gpt, config);
    (layer.layer(scripted()), layer.handle())
}

async fn send<S>(service: &mut S, reply: Reply) -> Result<&'static str, BoxError>
where
    S: Service<Reply, Response = &'static str, Error = BoxError>,
{
    service.ready().await?.call(reply).await
}

#[tokio::test(start_paused = true)]
async fn opens_after_five_consecutive_failures_and_fails_fast() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        let err = send(&mut agent, Reply::Fail).await.unwrap_err();
        assert_eq!(err.to_string(), "model overloaded");
    }
    assert_eq!(handle.state(), BreakerState::Open);
    let err = send(&mut agent, Reply::Ok).await.unwrap_err();
    let open = err
        .downcast_ref::<CircuitOpen>()
        .expect("a CircuitOpen rejection");
    assert_eq!(open.agent(), "gpt");
    assert_eq!(open.retry_in(), Some(Duration::from_secs(1)));
    assert_eq!(handle.counts().rejected, 1);
    assert_eq!(handle.counts().failures, 5);
}

#[tokio::test(start_paused = true)]
async fn recovers_through_half_open_probes_after_the_open_time() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    advance(Duration::from_millis(999)).await;
    assert!(
        send(&mut agent, Reply::Ok).await.is_err(),
        "still open at 999 ms"
    );
    advance(Duration::from_millis(1)).await;
    for probe in 0..3 {
        assert_eq!(send(&mut agent, Reply::Ok).await.unwrap(), "ok");
        let expected = if probe < 2 {
            BreakerState::HalfOpen
        } else {
            BreakerState::Closed
        };
        assert_eq!(handle.state(), expected);
    }
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::ProbesSucceeded)
    );
}

#[tokio::test(start_paused = true)]
async fn trips_on_failure_rate_over_a_time_window_and_forgets_old_failures() {
    let config = BreakerConfig::builder()
        .consecutive_failures(0)
        .window(SlidingWindow::Time(Duration::from_secs(10)))
        .min_calls(4)
        .failure_rate_threshold(0.5)
        .build()
        .unwrap();
    let (mut agent, handle) = breaker(config);
    let _ = send(&mut agent, Reply::Fail).await;
    let _ = send(&mut agent, Reply::Fail).await;
    advance(Duration::from_secs(11)).await; // those two age out
    for reply in [Reply::Ok, Reply::Ok, Reply::Fail] {
        let _ = send(&mut agent, reply).await;
    }
    assert_eq!(
        handle.state(),
        BreakerState::Closed,
        "1 of 3 recent calls failed"
    );
    let _ = send(&mut agent, Reply::Fail).await;
    assert_eq!(
        handle.state(),
        BreakerState::Open,
        "2 of 4 recent calls failed"
    );
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::FailureRate)
    );
}

#[tokio::test(start_paused = true)]
async fn trips_on_slow_call_rate() {
    let config = BreakerConfig::builder()
        .window(SlidingWindow::Count(10))
        .min_calls(4)
        .slow_call_threshold(Duration::from_secs(2))
        .slow_call_rate_threshold(0.6)
        .build()
        .unwrap();
    let (mut agent, handle) = breaker(config);
    for reply in [Reply::Slow(3000), Reply::Ok, Reply::Slow(2500)] {
        assert!(send(&mut agent, reply).await.is_ok());
    }
    assert_eq!(handle.state(), BreakerState::Closed);
    assert!(send(&mut agent, Reply::Slow(1999)).await.is_ok());
    assert_eq!(
        handle.state(),
        BreakerState::Closed,
        "1.999 s is not slow: 2 of 4"
    );
    assert!(send(&mut agent, Reply::Slow(2000)).await.is_ok());
    assert_eq!(
        handle.state(),
        BreakerState::Open,
        "3 slow of 5 calls reaches 60 %"
    );
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::SlowCallRate)
    );
    assert_eq!(handle.counts().slow_calls, 3);
}

#[tokio::test(start_paused = true)]
async fn caller_faults_do_not_open_the_circuit() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..50 {
        assert!(send(&mut agent, Reply::BadPrompt).await.is_err());
    }
    assert_eq!(handle.state(), BreakerState::Closed);
    assert_eq!(handle.counts().caller_faults, 50);
    assert_eq!(handle.consecutive_failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn open_time_grows_by_half_on_each_failed_recovery_up_to_the_cap() {
    let config = BreakerConfig::builder()
        .half_open_probes(1)
        .max_open_duration(Duration::from_secs(3))
        .build()
        .unwrap();
    let (mut agent, handle) = breaker(config);
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    let mut seen = vec![];
    for _ in 0..4 {
        let open_for = handle.open_duration().unwrap();
        seen.push(open_for);
        assert_eq!(
            handle.next_probe_at(),
            Some(handle.state_since() + open_for)
        );
        advance(open_for).await;
        assert_eq!(
            send(&mut agent, Reply::Fail).await.unwrap_err().to_string(),
            "model overloaded"
        );
        assert_eq!(handle.state(), BreakerState::Open);
    }
    assert_eq!(
        seen,
        [1000, 1500, 2250, 3000].map(Duration::from_millis).to_vec()
    );
    advance(Duration::from_secs(3)).await;
    assert!(send(&mut agent, Reply::Ok).await.is_ok());
    assert_eq!(handle.state(), BreakerState::Closed);
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    assert_eq!(
        handle.open_duration(),
        Some(Duration::from_secs(1)),
        "growth resets after a clean close"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_at_most_the_configured_concurrent_probes() {
    let (service, mut mock) = mock::pair::<&'static str, &'static str>();
    let layer = CircuitBreakerLayer::new(
        &Agent::new("gpt"),
        BreakerConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    let handle = layer.handle();
    let mut agent = layer.layer(service);
    mock.allow(10);

    let call = agent.ready().await.unwrap().call("trip");
    assert_request_eq!(mock, "trip").send_error("down");
    assert!(call.await.is_err());
    assert_eq!(handle.state(), BreakerState::Open);
    advance(Duration::from_secs(1)).await;

    let mut probes = vec![];
    for _ in 0..3 {
        let mut clone = agent.clone();
        probes.push(clone.ready().await.unwrap().call("probe"));
    }
    let rejected = agent
        .ready()
        .await
        .unwrap()
        .call("one too many")
        .await
        .unwrap_err();
    assert_eq!(
        rejected.downcast_ref::<CircuitOpen>().unwrap().state(),
        BreakerState::HalfOpen
    );
    assert_eq!(handle.probes_in_flight(), 3);
    let mut responses = vec![];
    for _ in 0..3 {
        responses.push(mock.next_request().await.unwrap().1);
    }
    for response in responses {
        response.send_response("fine");
    }
    for probe in probes {
        assert_eq!(probe.await.unwrap(), "fine");
    }
    assert_eq!(handle.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    advance(Duration::from_secs(1)).await;
    assert!(send(&mut agent, Reply::Ok).await.is_ok());
    assert!(send(&mut agent, Reply::Fail).await.is_err());
    assert_eq!(handle.state(), BreakerState::Open);
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::ProbeFailed)
    );
    assert_eq!(handle.open_duration(), Some(Duration::from_millis(1500)));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_releases_its_slot() {
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .half_open_probes(1)
        .build()
        .unwrap();
    let (mut agent, handle) = breaker(config);
    let _ = send(&mut agent, Reply::Fail).await;
    advance(Duration::from_secs(1)).await;
    let probe = agent.ready().await.unwrap().call(Reply::Slow(60_000));
    assert_eq!(handle.probes_in_flight(), 1);
    assert!(
        send(&mut agent, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    drop(probe); // the caller gave up
    assert_eq!(handle.probes_in_flight(), 0);
    assert_eq!(send(&mut agent, Reply::Ok).await.unwrap(), "ok");
    assert_eq!(handle.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_breaker() {
    let (agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        let mut clone = agent.clone();
        let _ = send(&mut clone, Reply::Fail).await;
    }
    let mut other = agent.clone();
    assert!(
        send(&mut other, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    assert_eq!(handle.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_forwards_the_inner_readiness_only() {
    let (service, mut mock) = mock::pair::<&'static str, &'static str>();
    let layer = CircuitBreakerLayer::new(&Agent::new("gpt"), BreakerConfig::default());
    let mut agent = tower_test::mock::Spawn::new(layer.layer(service));
    mock.allow(0);
    assert!(agent.poll_ready().is_pending());
    mock.allow(1);
    assert!(agent.poll_ready().is_ready());
    // Even forced open, readiness is the inner service's: the rejection happens in `call`.
    layer.handle().force_open();
    mock.allow(1);
    assert!(agent.poll_ready().is_ready());
}

#[tokio::test(start_paused = true)]
async fn manual_controls_force_open_force_closed_disable_and_reset() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    handle.force_open();
    let err = send(&mut agent, Reply::Ok).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().unwrap();
    assert_eq!(open.state(), BreakerState::ForcedOpen);
    assert!(err.to_string().contains("forced open by an operator"));
    advance(Duration::from_secs(600)).await;
    assert!(
        send(&mut agent, Reply::Ok).await.is_err(),
        "forced open never times out"
    );
    handle.force_closed();
    assert!(send(&mut agent, Reply::Ok).await.is_ok());
    handle.disable();
    for _ in 0..20 {
        assert_eq!(
            send(&mut agent, Reply::Fail).await.unwrap_err().to_string(),
            "model overloaded"
        );
    }
    assert_eq!(handle.state(), BreakerState::Disabled);
    handle.reset();
    assert_eq!(handle.state(), BreakerState::Closed);
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::Reset)
    );
}

#[tokio::test(start_paused = true)]
async fn health_check_gates_half_open_and_recovery_is_within_cap_plus_interval() {
    let healthy = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU32::new(0));
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .initial_open_duration(Duration::from_secs(60))
        .max_open_duration(Duration::from_secs(60))
        .health_check_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let layer = {
        let (healthy, checks) = (healthy.clone(), checks.clone());
        let gpt = Agent::new("gpt").classifier(caller_fault_aware);
        CircuitBreakerLayer::new(&gpt, config).health_check(move || {
            checks.fetch_add(1, Ordering::SeqCst);
            let healthy = healthy.load(Ordering::SeqCst);
            async move {
                if healthy {
                    Ok(())
                } else {
                    Err::<(), BoxError>("still down".into())
                }
            }
        })
    };
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());
    let _ = send(&mut agent, Reply::Fail).await;
    let opened_at = Instant::now();
    assert!(handle.awaiting_health_check());

    advance(Duration::from_secs(61)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        checks.load(Ordering::SeqCst),
        1,
        "first check when the open time elapsed"
    );
    assert!(
        send(&mut agent, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>(),
        "check failed: stays open"
    );
    assert_eq!(
        handle.next_probe_at(),
        Some(opened_at + Duration::from_secs(70))
    );

    // The agent comes back at t = 75 s; the check at 80 s sees it.
    advance(Duration::from_secs(14)).await;
    healthy.store(true, Ordering::SeqCst);
    let recovered_at = Instant::now();
    let mut watch = handle.watch();
    watch
        .wait_for(|state| *state == BreakerState::HalfOpen)
        .await
        .unwrap();
    let back_after = Instant::now() - recovered_at;
    assert!(
        back_after <= Duration::from_secs(10),
        "back in service {back_after:?} after recovery"
    );
    assert!(Instant::now() - opened_at <= Duration::from_secs(120));
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::HealthCheckPassed)
    );
    for _ in 0..3 {
        assert!(send(&mut agent, Reply::Ok).await.is_ok());
    }
    assert_eq!(handle.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_health_check_counts_as_failed() {
    let checks = Arc::new(AtomicU32::new(0));
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .health_check_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let counted = checks.clone();
    let layer = CircuitBreakerLayer::new(&Agent::new("gpt"), config).health_check(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
    });
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());
    let _ = send(&mut agent, Reply::Fail).await;
    let opened_at = Instant::now();
    for _ in 0..30 {
        advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(handle.state(), BreakerState::Open);
    // Checks at 1 s, 11 s and 21 s, each given up after 2 s: a check that never answers
    // failed, and the next one runs on the 10 s cadence.
    assert_eq!(checks.load(Ordering::SeqCst), 3);
    assert_eq!(
        handle.next_probe_at(),
        Some(opened_at + Duration::from_secs(31))
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_added_after_the_layer_wrapped_services_applies_to_them() {
    let checks = Arc::new(AtomicU32::new(0));
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(&Agent::new("gpt"), config);
    let mut agent = layer.layer(scripted());
    let counted = checks.clone();
    let layer = layer.health_check(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), BoxError>("still down".into()) }
    });
    let _ = send(&mut agent, Reply::Fail).await;
    assert!(layer.handle().awaiting_health_check());
    advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert!(
        send(&mut agent, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>(),
        "the failing check keeps the service's breaker open past its open time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_interval_beyond_the_clock_does_not_kill_the_check_task() {
    // Accepted by the config (only a lower bound applies); the next check is then "never",
    // which must not overflow the clock in the background task.
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .health_check_interval(Duration::MAX)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(&Agent::new("gpt"), config)
        .health_check(|| async { Err::<(), BoxError>("still down".into()) });
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());
    let _ = send(&mut agent, Reply::Fail).await;
    advance(Duration::from_secs(1)).await;
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    // A task that panicked would have left the next check at the one that just failed.
    let next = handle
        .next_probe_at()
        .expect("open: a next check is planned");
    assert!(
        next > Instant::now() + Duration::from_secs(365 * 24 * 3600),
        "next check {:?} from now",
        next - Instant::now()
    );
    assert!(
        send(&mut agent, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
}

#[tokio::test(start_paused = true)]
async fn watchers_see_every_transition() {
    let (mut agent, handle) = breaker(
        BreakerConfig::builder()
            .consecutive_failures(1)
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    let mut watch = handle.watch();
    let _ = send(&mut agent, Reply::Fail).await;
    assert_eq!(*watch.borrow_and_update(), BreakerState::Open);
    advance(Duration::from_secs(1)).await;
    let _ = send(&mut agent, Reply::Ok).await;
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn handle_reports_recent_failures_and_times() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    assert!(handle.last_failure_at().is_none());
    let _ = send(&mut agent, Reply::Ok).await;
    let success_at = Instant::now();
    advance(Duration::from_secs(5)).await;
    let _ = send(&mut agent, Reply::Fail).await;
    let failures = handle.recent_failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].reason, Some("overloaded"));
    assert_eq!(handle.last_failure_at(), Some(Instant::now()));
    assert_eq!(handle.last_success_at(), Some(success_at));
    advance(Duration::from_secs(1)).await;
    let _ = send(&mut agent, Reply::Ok).await;
    assert_eq!(
        handle.last_success_at(),
        Some(Instant::now()),
        "first success after a failure is exact"
    );
}

#[cfg(feature = "serde")]
#[tokio::test(start_paused = true)]
async fn registry_snapshot_serialises_each_agent() {
    let registry = Registry::new();
    let layer = CircuitBreakerLayer::new(
        &registry.agent("gpt").classifier(caller_fault_aware),
        BreakerConfig::default(),
    );
    let _other = CircuitBreakerLayer::new(&registry.agent("claude"), BreakerConfig::default());
    let _no_breaker = registry.agent("mistral");
    let mut agent = layer.layer(scripted());
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    let json: serde_json::Value = serde_json::from_str(&registry.snapshot().to_json()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["health"], "unhealthy");
    let names: Vec<&str> = json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["claude", "gpt", "mistral"]);
    assert_eq!(json["agents"][0]["health"], "healthy");
    assert_eq!(json["agents"][0]["breaker"]["state"], "closed");
    assert_eq!(json["agents"][1]["health"], "unhealthy");
    let gpt = &json["agents"][1]["breaker"];
    assert_eq!(gpt["agent"], "gpt");
    assert_eq!(gpt["state"], "open");
    assert_eq!(gpt["last_transition_reason"], "consecutive_failures");
    assert_eq!(gpt["counts"]["failures"], 5);
    assert_eq!(gpt["recent_failures"][0]["kind"], "transient");
    assert_eq!(gpt["recent_failures"][0]["reason"], "overloaded");
    assert_eq!(gpt["next_probe_in_secs"], 1.0);
    assert_eq!(json["agents"][2]["breaker"], serde_json::Value::Null);
    assert_eq!(json["agents"][2]["health"], "healthy");
    assert!(
        registry
            .breaker("gpt")
            .unwrap()
            .same_breaker(&layer.handle())
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_is_the_agents_whichever_classifier_the_scope_carries() {
    let registry = Registry::new();
    let plain = registry.agent("gpt");
    let classified = registry.agent("gpt").classifier(caller_fault_aware);
    assert!(plain.same_agent(&classified), "one name, one agent");
    let layer = CircuitBreakerLayer::new(&classified, BreakerConfig::default());
    let breaker = plain.breaker().expect("the agent knows its breaker");
    assert!(breaker.same_breaker(&layer.handle()));
    assert_eq!(breaker.name(), "gpt");
    assert!(registry.breaker("claude").is_none(), "no phantom agents");
    assert_eq!(registry.agents(), ["gpt"]);
}

#[tokio::test(start_paused = true)]
async fn a_second_breaker_for_the_same_agent_replaces_the_first_in_the_registry() {
    let registry = Registry::new();
    let gpt = registry.agent("gpt");
    let first = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
    let second = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
    let shown = registry.breaker("gpt").unwrap();
    assert!(shown.same_breaker(&second.handle()));
    assert!(!shown.same_breaker(&first.handle()));
}

#[tokio::test(start_paused = true)]
async fn every_transition_is_an_event_naming_the_state_it_left() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let gpt = registry.agent("gpt").classifier(caller_fault_aware);
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .half_open_probes(1)
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(&gpt, config);
    let mut agent = layer.layer(scripted());
    let _ = send(&mut agent, Reply::Fail).await;
    advance(Duration::from_secs(1)).await;
    send(&mut agent, Reply::Ok).await.unwrap();
    layer.handle().force_open();
    layer.handle().reset();

    let name: Arc<str> = Arc::from("gpt");
    let agent = || name.clone();
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(
        seen,
        [
            Event::CircuitOpened {
                agent: agent(),
                from: BreakerState::Closed,
                state: BreakerState::Open,
                reason: TransitionReason::ConsecutiveFailures,
                open_for: Some(Duration::from_secs(1)),
            },
            Event::AgentUnhealthy {
                agent: agent(),
                reason: "consecutive_failures",
            },
            Event::CircuitHalfOpen {
                agent: agent(),
                from: BreakerState::Open,
                reason: TransitionReason::OpenTimeElapsed,
            },
            Event::CircuitClosed {
                agent: agent(),
                from: BreakerState::HalfOpen,
                state: BreakerState::Closed,
                reason: TransitionReason::ProbesSucceeded,
            },
            Event::AgentRecovered {
                agent: agent(),
                reason: "probes_succeeded",
            },
            Event::CircuitOpened {
                agent: agent(),
                from: BreakerState::Closed,
                state: BreakerState::ForcedOpen,
                reason: TransitionReason::ForcedOpen,
                open_for: None,
            },
            Event::AgentUnhealthy {
                agent: agent(),
                reason: "forced_open",
            },
            Event::CircuitClosed {
                agent: agent(),
                from: BreakerState::ForcedOpen,
                state: BreakerState::Closed,
                reason: TransitionReason::Reset,
            },
            Event::AgentRecovered {
                agent: agent(),
                reason: "reset",
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_classifier_every_err_is_a_failure() {
    let layer = CircuitBreakerLayer::new(&Agent::new("gpt"), BreakerConfig::default());
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::BadPrompt).await;
    }
    assert_eq!(handle.state(), BreakerState::Open);
    assert_eq!(handle.counts().caller_faults, 0);
}

#[tokio::test(start_paused = true)]
async fn a_circuit_open_rejection_classifies_itself_as_an_unprocessed_agent_fault() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    for _ in 0..5 {
        let _ = send(&mut agent, Reply::Fail).await;
    }
    let err = send(&mut agent, Reply::Ok).await.unwrap_err();
    let outcome = steadfast::classify::error_outcome(err.as_ref()).expect("self-classifying");
    assert_eq!(outcome.kind(), steadfast::OutcomeKind::AgentFault);
    assert_eq!(outcome.reason(), Some("circuit open"));
    assert!(outcome.is_unprocessed(), "the agent never saw the call");
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(1)));
    // The breaker's own rejection does not count against the agent a second time.
    assert_eq!(handle.counts().failures, 5);
}

#[tokio::test(start_paused = true)]
async fn open_until_opens_a_closed_breaker_and_announces_a_remote_trip() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let gpt = registry.agent("gpt").classifier(caller_fault_aware);
    let layer = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());

    let until = Instant::now() + Duration::from_secs(4);
    assert!(handle.open_until(until));
    assert_eq!(handle.state(), BreakerState::Open);
    assert_eq!(
        handle.last_transition_reason(),
        Some(TransitionReason::Remote)
    );
    assert_eq!(handle.next_probe_at(), Some(until));
    let Some(Event::CircuitOpened {
        reason, open_for, ..
    }) = events.try_recv()
    else {
        panic!("a remote open is announced");
    };
    assert_eq!(reason, TransitionReason::Remote);
    assert_eq!(open_for, Some(Duration::from_secs(4)));
    assert!(
        send(&mut agent, Reply::Ok)
            .await
            .unwrap_err()
            .is::<CircuitOpen>()
    );
    advance(Duration::from_secs(4)).await;
    assert!(
        send(&mut agent, Reply::Ok).await.is_ok(),
        "a probe at `until`"
    );
    assert_eq!(handle.state(), BreakerState::HalfOpen);
    assert!(handle.close_remote());
    assert_eq!(handle.state(), BreakerState::Closed);
    assert!(!handle.close_remote(), "already closed");
    assert!(
        !handle.open_until(Instant::now()),
        "an open-until in the past opens nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_waits_for_a_probe_time_moved_later() {
    let checks = Arc::new(AtomicU32::new(0));
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .health_check_interval(Duration::from_secs(10))
        .build()
        .unwrap();
    let layer = {
        let checks = checks.clone();
        CircuitBreakerLayer::new(&Agent::new("gpt"), config).health_check(move || {
            checks.fetch_add(1, Ordering::SeqCst);
            async { Ok::<(), BoxError>(()) }
        })
    };
    let handle = layer.handle();
    let mut agent = layer.layer(scripted());
    let _ = send(&mut agent, Reply::Fail).await;
    let opened_at = Instant::now();
    // Another replica holds the fleet's check: this one waits 5 s more.
    assert!(handle.open_until(opened_at + Duration::from_secs(6)));
    advance(Duration::from_millis(1500)).await;
    tokio::task::yield_now().await;
    assert_eq!(checks.load(Ordering::SeqCst), 0, "no check at the old time");
    advance(Duration::from_millis(4600)).await;
    tokio::task::yield_now().await;
    assert_eq!(checks.load(Ordering::SeqCst), 1, "one at the new time");
    assert_eq!(handle.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn failure_recorded_wakes_on_failures_only() {
    let (mut agent, handle) = breaker(BreakerConfig::default());
    let waiter = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.failure_recorded().await })
    };
    tokio::task::yield_now().await;
    for _ in 0..10 {
        assert!(send(&mut agent, Reply::Ok).await.is_ok());
    }
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "successes never signal");
    let _ = send(&mut agent, Reply::Fail).await;
    waiter.await.unwrap();
    assert_eq!(handle.consecutive_failures(), 1);
    // A failure with nobody waiting is kept for the next wait.
    let _ = send(&mut agent, Reply::Fail).await;
    tokio::time::timeout(Duration::from_secs(1), handle.failure_recorded())
        .await
        .expect("the stored wake-up");
}
