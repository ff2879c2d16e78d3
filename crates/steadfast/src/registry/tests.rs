use super::*;

#[test]
fn the_same_name_gives_the_same_agent_and_no_other_agent_appears() {
    let registry = Registry::new();
    let first = registry.agent("tool");
    let second = registry
        .agent("tool")
        .classifier(|_: Result<&(), &crate::BoxError>| crate::Outcome::success());
    assert!(first.same_agent(&second));
    assert_eq!(registry.agents(), ["tool"]);
    assert_eq!(registry.counters("tool"), Some(CountersSnapshot::default()));
    assert_eq!(registry.counters("nobody"), None);
    assert_eq!(registry.agent_health("tool"), Some(Health::Healthy));
    assert_eq!(registry.agent_health("nobody"), None);
}

#[test]
fn an_agent_of_its_own_is_in_no_other_registry() {
    let registry = Registry::new();
    let lone = crate::Agent::new("lone");
    assert_eq!(lone.name(), "lone");
    assert!(registry.agents().is_empty());
}

#[test]
fn an_empty_registry_is_healthy() {
    assert_eq!(Registry::new().health(), Health::Healthy);
}

#[test]
fn a_nan_degraded_rate_falls_back_to_the_default() {
    let policy = HealthPolicy::default().degraded_failure_rate(f64::NAN);
    assert!((policy.degraded_failure_rate - 0.1).abs() < f64::EPSILON);
    let policy = HealthPolicy::default().degraded_failure_rate(3.0);
    assert!((policy.degraded_failure_rate - 1.0).abs() < f64::EPSILON);
}

#[cfg(feature = "circuit-breaker")]
mod with_breakers {
    use std::time::Duration;

    use proptest::prelude::*;
    use tower::{Layer, Service, ServiceExt, service_fn};

    use super::*;
    use crate::BoxError;
    use crate::circuit_breaker::{BreakerConfig, CircuitBreakerLayer, TransitionReason};
    use crate::events::Event;

    type Agent = tower::util::BoxCloneService<bool, &'static str, BoxError>;
    use crate::Agent as AgentScope;

    /// A breaker named `name` in `registry` tripping on two failures in a row, over an agent
    /// that fails when asked to.
    fn agent(registry: &Registry, name: &str) -> (Agent, BreakerHandle) {
        let config = BreakerConfig::builder()
            .consecutive_failures(2)
            .min_calls(4)
            .window(crate::circuit_breaker::SlidingWindow::Count(10))
            .build()
            .unwrap();
        let layer = CircuitBreakerLayer::new(&registry.agent(name.to_owned()), config);
        let inner = service_fn(|fail: bool| async move {
            if fail {
                Err::<&'static str, BoxError>("overloaded".into())
            } else {
                Ok("ok")
            }
        });
        (
            tower::util::BoxCloneService::new(layer.layer(inner)),
            layer.handle(),
        )
    }

    async fn call(agent: &mut Agent, fail: bool) {
        let _ = agent.ready().await.unwrap().call(fail).await;
    }

    #[test]
    fn health_follows_the_documented_table() {
        let policy = HealthPolicy::default();
        assert_eq!(
            policy.health_of(BreakerState::Open, None),
            Health::Unhealthy
        );
        assert_eq!(
            policy.health_of(BreakerState::ForcedOpen, Some(0.0)),
            Health::Unhealthy
        );
        assert_eq!(
            policy.health_of(BreakerState::HalfOpen, None),
            Health::Degraded
        );
        assert_eq!(
            policy.health_of(BreakerState::Disabled, Some(1.0)),
            Health::Healthy
        );
        assert_eq!(
            policy.health_of(BreakerState::Closed, None),
            Health::Healthy
        );
        assert_eq!(
            policy.health_of(BreakerState::Closed, Some(0.09)),
            Health::Healthy
        );
        assert_eq!(
            policy.health_of(BreakerState::Closed, Some(0.1)),
            Health::Degraded
        );
    }

    proptest! {
        #[test]
        fn an_open_breaker_is_always_unhealthy_and_a_closed_one_never(
            rate in proptest::option::of(0.0f64..=1.0),
            threshold in 0.0f64..=1.0,
        ) {
            let policy = HealthPolicy::default().degraded_failure_rate(threshold);
            prop_assert_eq!(policy.health_of(BreakerState::Open, rate), Health::Unhealthy);
            prop_assert_ne!(policy.health_of(BreakerState::Closed, rate), Health::Unhealthy);
            let degraded = policy.health_of(BreakerState::Closed, rate) == Health::Degraded;
            prop_assert_eq!(degraded, rate.is_some_and(|r| r > 0.0 && r >= threshold));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn health_moves_from_healthy_to_degraded_to_unhealthy_and_back() {
        let registry = Registry::new();
        let (mut gpt, handle) = agent(&registry, "gpt");
        let (_claude, _) = agent(&registry, "claude");
        for fail in [false, false, false, true] {
            call(&mut gpt, fail).await;
        }
        // One failure in four calls: 25 % is over the 10 % degraded threshold.
        assert_eq!(registry.agent_health("gpt"), Some(Health::Degraded));
        assert_eq!(registry.health(), Health::Degraded);
        call(&mut gpt, true).await;
        assert_eq!(handle.state(), BreakerState::Open);
        assert_eq!(registry.agent_health("gpt"), Some(Health::Unhealthy));
        assert_eq!(registry.agent_health("claude"), Some(Health::Healthy));
        assert_eq!(registry.snapshot().health, Health::Unhealthy);

        tokio::time::advance(Duration::from_secs(1)).await;
        call(&mut gpt, false).await;
        assert_eq!(registry.agent_health("gpt"), Some(Health::Degraded));
        call(&mut gpt, false).await;
        call(&mut gpt, false).await;
        assert_eq!(handle.state(), BreakerState::Closed);
        assert_eq!(registry.health(), Health::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn registered_breakers_publish_their_transitions_in_order() {
        let registry = Registry::new();
        let mut events = registry.events().subscribe();
        let (mut gpt, handle) = agent(&registry, "gpt");
        call(&mut gpt, true).await;
        call(&mut gpt, true).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        for _ in 0..3 {
            call(&mut gpt, false).await;
        }
        handle.force_open();
        let names: Vec<_> = std::iter::from_fn(|| events.try_recv())
            .map(|event| event.name())
            .collect();
        assert_eq!(
            names,
            [
                "circuit_opened",
                "agent_unhealthy",
                "circuit_half_open",
                "circuit_closed",
                "agent_recovered",
                "circuit_opened",
                "agent_unhealthy",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_opened_event_carries_the_agent_reason_and_open_time() {
        let registry = Registry::new();
        let mut events = registry.events().subscribe();
        let (mut gpt, _) = agent(&registry, "gpt");
        call(&mut gpt, true).await;
        call(&mut gpt, true).await;
        assert_eq!(
            events.try_recv(),
            Some(Event::CircuitOpened {
                agent: Arc::from("gpt"),
                from: BreakerState::Closed,
                state: BreakerState::Open,
                reason: TransitionReason::ConsecutiveFailures,
                open_for: Some(Duration::from_secs(1)),
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_check_added_after_layering_changes_the_same_breaker() {
        let registry = Registry::new();
        let gpt: AgentScope = registry.agent("gpt");
        let config = BreakerConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap();
        let layer = CircuitBreakerLayer::new(&gpt, config);
        let mut service = layer.layer(service_fn(|(): ()| async {
            Err::<(), BoxError>("down".into())
        }));
        // Builder calls commute: the check is set on the breaker the service already uses.
        let layer = layer.health_check(|| async { Err::<(), BoxError>("still down".into()) });
        assert!(
            registry
                .breaker("gpt")
                .unwrap()
                .same_breaker(&layer.handle())
        );
        let _ = service.ready().await.unwrap().call(()).await;
        assert_eq!(layer.handle().state(), BreakerState::Open);
        // The open time elapses, but the failing check keeps the breaker open.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(layer.handle().awaiting_health_check());
        assert_eq!(layer.handle().state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_healthy_returns_once_the_breaker_closes() {
        let registry = Registry::new();
        let (mut gpt, handle) = agent(&registry, "gpt");
        call(&mut gpt, true).await;
        call(&mut gpt, true).await;
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            handle.force_closed();
        });
        let started = tokio::time::Instant::now();
        registry
            .wait_for_healthy("gpt", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        closer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_healthy_gives_up_at_the_timeout_with_the_agent_health() {
        let registry = Registry::new();
        let (_gpt, handle) = agent(&registry, "gpt");
        handle.force_open();
        let error = registry
            .wait_for_healthy("gpt", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(error.health(), Health::Unhealthy);
        assert_eq!(error.waited(), Duration::from_secs(2));
        assert!(error.to_string().contains("`gpt`"), "{error}");
        let unknown = registry
            .wait_for_healthy("nobody", Duration::from_millis(600))
            .await
            .unwrap_err();
        assert_eq!(unknown.health(), Health::Unhealthy);
    }

    #[tokio::test(start_paused = true)]
    async fn restoring_an_open_breaker_keeps_it_open_for_the_time_left() {
        let before = Registry::new();
        let (mut gpt, handle) = agent(&before, "gpt");
        call(&mut gpt, true).await;
        call(&mut gpt, true).await;
        tokio::time::advance(Duration::from_millis(400)).await;
        let saved = handle.saved_state();
        assert_eq!(saved.state, BreakerState::Open);
        assert_eq!(saved.trips, 1);
        assert!((saved.open_remaining_secs.unwrap() - 0.6).abs() < 1e-9);

        let after = Registry::new();
        let mut events = after.events().subscribe();
        let (mut gpt, handle) = agent(&after, "gpt");
        assert!(handle.restore(&saved, Duration::from_millis(100)));
        assert_eq!(handle.state(), BreakerState::Open);
        assert_eq!(handle.trips(), 1);
        assert_eq!(
            handle.last_transition_reason(),
            Some(TransitionReason::Restored)
        );
        assert_eq!(events.try_recv().map(|e| e.name()), Some("circuit_opened"));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(gpt.ready().await.unwrap().call(false).await.is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(gpt.ready().await.unwrap().call(false).await.unwrap(), "ok");
        assert_eq!(handle.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn restoring_keeps_the_trip_count_so_a_failed_probe_opens_longer() {
        let registry = Registry::new();
        let (mut gpt, handle) = agent(&registry, "gpt");
        let saved = crate::circuit_breaker::SavedBreaker {
            trips: 2,
            ..crate::circuit_breaker::SavedBreaker::new("gpt", BreakerState::HalfOpen)
        };
        assert!(handle.restore(&saved, Duration::ZERO));
        call(&mut gpt, true).await; // the probe fails: third trip
        assert_eq!(handle.trips(), 3);
        assert_eq!(
            handle.open_duration(),
            Some(handle.config().open_duration_for_trip(3))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn restoring_a_closed_breaker_changes_nothing_and_forced_states_come_back() {
        let registry = Registry::new();
        let (_gpt, handle) = agent(&registry, "gpt");
        let closed = crate::circuit_breaker::SavedBreaker::new("gpt", BreakerState::Closed);
        assert!(!handle.restore(&closed, Duration::ZERO));
        let forced = crate::circuit_breaker::SavedBreaker::new("gpt", BreakerState::ForcedOpen);
        assert!(handle.restore(&forced, Duration::from_secs(3600)));
        assert_eq!(handle.state(), BreakerState::ForcedOpen);
        let disabled = crate::circuit_breaker::SavedBreaker::new("gpt", BreakerState::Disabled);
        assert!(handle.restore(&disabled, Duration::ZERO));
        assert_eq!(handle.state(), BreakerState::Disabled);
    }

    #[cfg(feature = "serde")]
    #[tokio::test(start_paused = true)]
    async fn save_state_and_restore_state_round_trip_through_a_file() {
        let directory = std::env::temp_dir().join(format!(
            "steadfast-registry-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("breakers.json");

        let before = Registry::new();
        let (_gpt, gpt) = agent(&before, "gpt");
        let (_claude, _) = agent(&before, "claude");
        gpt.force_open();
        before.save_state(&path).unwrap();

        let after = Registry::new();
        let (_gpt, gpt) = agent(&after, "gpt");
        let (_claude, claude) = agent(&after, "claude");
        assert_eq!(after.restore_state(&path).unwrap(), 1);
        assert_eq!(gpt.state(), BreakerState::ForcedOpen);
        assert_eq!(claude.state(), BreakerState::Closed);

        assert_eq!(
            after.restore_state(directory.join("missing.json")).unwrap(),
            0
        );
        std::fs::write(
            &path,
            "{\"version\": 9, \"saved_at_unix_ms\": 0, \"breakers\": []}",
        )
        .unwrap();
        assert!(matches!(
            after.restore_state(&path),
            Err(StateFileError::Version { found: 9, .. })
        ));
        std::fs::write(&path, "not json").unwrap();
        let error = after.restore_state(&path).unwrap_err();
        assert!(matches!(error, StateFileError::Parse { .. }));
        assert!(error.to_string().contains("delete it"), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[cfg(feature = "serde")]
    #[tokio::test(start_paused = true)]
    async fn the_snapshot_json_keeps_version_1_and_adds_health_and_counters() {
        let registry = Registry::new();
        let (_gpt, handle) = agent(&registry, "gpt");
        handle.force_open();
        registry.emit(Event::FallbackUsed {
            agent: Arc::from("gpt"),
            fallback: Arc::from("claude"),
            source: "fallback",
            reason: Some("circuit open"),
        });
        let json: serde_json::Value = serde_json::from_str(&registry.snapshot().to_json()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["health"], "unhealthy");
        let agent = &json["agents"][0];
        assert_eq!(agent["name"], "gpt");
        assert_eq!(agent["health"], "unhealthy");
        assert_eq!(agent["breaker"]["state"], "forced_open");
        assert_eq!(agent["counters"]["fallbacks"], 1);
        assert_eq!(agent["counters"]["dlq_depth"], 0);
    }
}
