//! The operability pieces together, under tokio's paused clock: a chaos outage opens a
//! registered breaker, the dispatcher pages once and sends one recovery, the registry reports
//! health throughout, shutdown drains, and the breaker state survives a "restart".
#![cfg(all(feature = "chaos", feature = "circuit-breaker", feature = "serde"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::chaos::{ChaosConfig, ChaosLayer};
use steadfast::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use steadfast::notify::{
    Dispatcher, DispatcherConfig, Notification, NotificationKind, NotificationPolicy, Notifier,
    NotifyFuture, PolicyConfig,
};
use steadfast::registry::{Health, Registry};
use steadfast::shutdown::{CancelledByShutdown, Shutdown, ShutdownLayer};
use tokio::time::{advance, sleep};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[derive(Default)]
struct Pager {
    pages: Mutex<Vec<(NotificationKind, String)>>,
}

impl Notifier for Pager {
    fn name(&self) -> &'static str {
        "pager"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        self.pages
            .lock()
            .unwrap()
            .push((notification.kind, notification.title.clone()));
        Box::pin(std::future::ready(Ok(())))
    }
}

async fn let_tasks_run() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

type Agent = tower::util::BoxCloneService<u64, u64, BoxError>;

#[tokio::test(start_paused = true)]
async fn an_outage_is_paged_once_recovered_once_and_remembered_across_a_restart() {
    let registry = Registry::new();
    let pager = Arc::new(Pager::default());
    let dispatcher = Dispatcher::spawn(
        registry.events().subscribe(),
        NotificationPolicy::new(
            PolicyConfig::default()
                .critical(["gpt"])
                .recovery_settle(Duration::from_secs(30)),
        ),
        vec![pager.clone()],
        &DispatcherConfig::default(),
    );
    let chaos = ChaosLayer::new(&ChaosConfig::default());
    let switch = chaos.handle();
    let breaker = CircuitBreakerLayer::new(
        BreakerConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    )
    .named("gpt")
    .register(&registry);
    let shutdown = Shutdown::new();
    let agent: Agent = tower::util::BoxCloneService::new(
        ServiceBuilder::new()
            .layer(ShutdownLayer::new(&shutdown).named("gpt"))
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
    let_tasks_run().await;
    assert_eq!(
        *pager.pages.lock().unwrap(),
        [(NotificationKind::Alert, "agent `gpt` is down".to_owned())]
    );

    // It flaps: a probe after the open time fails again (still in the outage).
    advance(Duration::from_secs(1)).await;
    assert!(agent.clone().oneshot(0).await.is_err());
    assert_eq!(breaker.handle().state(), BreakerState::Open);

    // It comes back: probes succeed, the breaker closes, one recovery after the settle time.
    switch.end_outage();
    advance(Duration::from_secs(2)).await;
    for _ in 0..3 {
        assert_eq!(agent.clone().oneshot(0).await.unwrap(), 0);
    }
    registry
        .wait_for_healthy("gpt", Duration::from_secs(1))
        .await
        .unwrap();
    let_tasks_run().await;
    advance(Duration::from_secs(30)).await;
    let_tasks_run().await;
    assert_eq!(
        *pager.pages.lock().unwrap(),
        [
            (NotificationKind::Alert, "agent `gpt` is down".to_owned()),
            (
                NotificationKind::Recovery,
                "agent `gpt` recovered".to_owned()
            ),
        ]
    );

    // Shutdown: one call still running is cancelled at the deadline.
    let slow = tokio::spawn(agent.clone().oneshot(3600));
    let_tasks_run().await;
    let report = shutdown.drain(Duration::from_secs(5)).await;
    assert_eq!(report.cancelled, 1);
    let cancelled = slow.await.unwrap().unwrap_err();
    assert!(cancelled.downcast_ref::<CancelledByShutdown>().is_some());

    // The agent is known to be bad again right before the restart: it stays open after it.
    breaker.handle().force_open();
    let path = std::env::temp_dir().join(format!("steadfast-ops-{}.json", std::process::id()));
    registry.save_state(&path).unwrap();
    let restarted = Registry::new();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default())
        .named("gpt")
        .register(&restarted);
    assert_eq!(restarted.restore_state(&path).unwrap(), 1);
    assert_eq!(breaker.handle().state(), BreakerState::ForcedOpen);
    assert_eq!(restarted.snapshot().health, Health::Unhealthy);
    std::fs::remove_file(&path).unwrap();

    dispatcher.abort();
}
