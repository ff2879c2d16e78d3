//! The operability pieces together, under tokio's paused clock: a chaos outage opens an agent's
//! breaker, the registry's bus says once that the agent is down and once that it recovered (what
//! `steadfast-notify` pages on; the paging itself is tested there, in `tests/paging.rs`), the
//! registry reports health throughout, shutdown drains, and the breaker state survives a
//! "restart".
#![cfg(all(feature = "chaos", feature = "circuit-breaker", feature = "serde"))]

use std::time::Duration;

use steadfast::BoxError;
use steadfast::chaos::{ChaosConfig, ChaosLayer};
use steadfast::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use steadfast::events::{Event, EventReceiver};
use steadfast::registry::{Health, Registry};
use steadfast::shutdown::{CancelledByShutdown, Shutdown, ShutdownLayer};
use tokio::time::{advance, sleep};
use tower::{ServiceBuilder, ServiceExt, service_fn};

async fn let_tasks_run() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// The names of the events published since the last call, each checked to be about `gpt`.
fn drain(events: &mut EventReceiver) -> Vec<&'static str> {
    std::iter::from_fn(|| events.try_recv())
        .map(|event: Event| {
            assert_eq!(event.agent(), Some("gpt"), "{event}");
            event.name()
        })
        .collect()
}

type Service = tower::util::BoxCloneService<u64, u64, BoxError>;

#[tokio::test(start_paused = true)]
async fn an_outage_is_reported_down_once_recovered_once_and_remembered_across_a_restart() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let gpt = registry.agent("gpt");
    let chaos = ChaosLayer::new(&gpt, &ChaosConfig::default());
    let switch = chaos.handle();
    let breaker = CircuitBreakerLayer::new(
        &gpt,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let shutdown = Shutdown::new();
    let agent: Service = tower::util::BoxCloneService::new(
        ServiceBuilder::new()
            .layer(ShutdownLayer::new(&gpt, &shutdown))
            .layer(breaker.clone())
            .layer(chaos)
            .service(service_fn(|secs: u64| async move {
                sleep(Duration::from_secs(secs)).await;
                Ok::<_, BoxError>(secs)
            })),
    );

    // The agent goes down: three failures open the breaker.
    switch.start_outage(Duration::from_secs(600));
    for _ in 0..3 {
        assert!(agent.clone().oneshot(0).await.is_err());
    }
    assert_eq!(registry.agent_health("gpt"), Some(Health::Unhealthy));
    assert_eq!(drain(&mut events), ["circuit_opened", "agent_unhealthy"]);

    // It flaps: a probe after the open time fails again (still in the outage). The breaker
    // moves, but the agent was already down: nothing new to say about its health.
    advance(Duration::from_secs(1)).await;
    assert!(agent.clone().oneshot(0).await.is_err());
    assert_eq!(breaker.handle().state(), BreakerState::Open);
    assert_eq!(drain(&mut events), ["circuit_half_open", "circuit_opened"]);

    // It comes back: probes succeed, the breaker closes, the agent is reported recovered once.
    switch.end_outage();
    advance(Duration::from_secs(2)).await;
    for _ in 0..3 {
        assert_eq!(agent.clone().oneshot(0).await.unwrap(), 0);
    }
    registry
        .wait_for_healthy("gpt", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        drain(&mut events),
        ["circuit_half_open", "circuit_closed", "agent_recovered"]
    );
    assert_eq!(registry.agents(), ["gpt"]);

    // Shutdown: one call still running is cancelled at the deadline.
    let slow = tokio::spawn(agent.clone().oneshot(3600));
    let_tasks_run().await;
    let report = shutdown.drain(Duration::from_secs(5)).await;
    assert_eq!(report.cancelled, 1);
    let cancelled = slow.await.unwrap().unwrap_err();
    let cancelled = cancelled
        .downcast_ref::<CancelledByShutdown>()
        .expect("cancelled by the drain");
    assert_eq!(cancelled.agent(), "gpt");

    // The agent is known to be bad again right before the restart: it stays open after it.
    breaker.handle().force_open();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steadfast-state.json");
    registry.save_state(&path).unwrap();
    let restarted = Registry::new();
    let breaker = CircuitBreakerLayer::new(&restarted.agent("gpt"), BreakerConfig::default());
    assert_eq!(restarted.restore_state(&path).unwrap(), 1);
    assert_eq!(breaker.handle().state(), BreakerState::ForcedOpen);
    assert_eq!(restarted.snapshot().health, Health::Unhealthy);
}
