//! The dispatcher fed by a real circuit breaker's events, under tokio's paused clock: an outage
//! that flaps is paged once, and its recovery once, when the agent has stayed up for the settle
//! time; a notifier stuck for an hour delays no call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer, CircuitOpen};
use steadfast::notify::{Notification, NotificationKind, Notifier, NotifyFuture};
use steadfast::{BoxError, Registry};
use steadfast_notify::{Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};
use tokio::time::{Instant, advance, sleep};
use tower::{Layer, ServiceExt, service_fn};

/// A notifier that notes when each notification reached it and when it was done with it.
#[derive(Default)]
struct Pager {
    /// How long each delivery takes.
    delay: Duration,
    started: Mutex<Vec<(NotificationKind, String, Instant)>>,
    delivered: Mutex<Vec<(NotificationKind, String, Instant)>>,
}

impl Notifier for Pager {
    fn name(&self) -> &'static str {
        "pager"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        let page = (notification.kind, notification.title.clone());
        Box::pin(async move {
            self.started
                .lock()
                .unwrap()
                .push((page.0, page.1.clone(), Instant::now()));
            sleep(self.delay).await;
            self.delivered
                .lock()
                .unwrap()
                .push((page.0, page.1, Instant::now()));
            Ok(())
        })
    }
}

async fn let_tasks_run() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// Agent `gpt` behind its breaker (3 consecutive failures open it); it fails while `down`.
fn agent(
    registry: &Registry,
    down: &Arc<AtomicBool>,
) -> (
    CircuitBreakerLayer<steadfast::DefaultClassifier>,
    tower::util::BoxCloneService<(), (), BoxError>,
) {
    let breaker = CircuitBreakerLayer::new(
        &registry.agent("gpt"),
        BreakerConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let down = down.clone();
    let service = breaker.layer(service_fn(move |()| {
        let down = down.load(Ordering::SeqCst);
        async move {
            if down {
                Err::<(), BoxError>("529 overloaded".into())
            } else {
                Ok(())
            }
        }
    }));
    (breaker, tower::util::BoxCloneService::new(service))
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_paged_once_and_its_recovery_once_after_it_settles() {
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
    let down = Arc::new(AtomicBool::new(false));
    let (breaker, agent) = agent(&registry, &down);
    let start = Instant::now();
    let down_page = || {
        (
            NotificationKind::Alert,
            "agent `gpt` is down".to_owned(),
            start,
        )
    };

    // The agent goes down: three failures open the breaker, and the pager hears of it at once.
    down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(agent.clone().oneshot(()).await.is_err());
    }
    let_tasks_run().await;
    assert_eq!(*pager.delivered.lock().unwrap(), [down_page()]);

    // It flaps: a probe after the open time fails again. Nobody is paged twice.
    advance(Duration::from_secs(1)).await;
    assert!(agent.clone().oneshot(()).await.is_err());
    assert_eq!(breaker.handle().state(), BreakerState::Open);

    // It comes back at 3 s: the probes succeed and the breaker closes...
    down.store(false, Ordering::SeqCst);
    advance(Duration::from_secs(2)).await;
    for _ in 0..3 {
        agent.clone().oneshot(()).await.unwrap();
    }
    registry
        .wait_for_healthy("gpt", Duration::from_secs(1))
        .await
        .unwrap();
    // ...and the recovery is paged once it stayed up for the 30 s settle time, not before.
    let_tasks_run().await;
    advance(Duration::from_secs(29)).await;
    let_tasks_run().await;
    assert_eq!(*pager.delivered.lock().unwrap(), [down_page()]);
    advance(Duration::from_secs(1)).await;
    let_tasks_run().await;
    assert_eq!(
        *pager.delivered.lock().unwrap(),
        [
            down_page(),
            (
                NotificationKind::Recovery,
                "agent `gpt` recovered".to_owned(),
                start + Duration::from_secs(3 + 30)
            ),
        ]
    );
    dispatcher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_notifier_stuck_for_an_hour_delays_no_call() {
    let registry = Registry::new();
    let pager = Arc::new(Pager {
        delay: Duration::from_secs(3600),
        ..Pager::default()
    });
    let dispatcher = Dispatcher::spawn(
        registry.events().subscribe(),
        NotificationPolicy::new(PolicyConfig::default()),
        vec![pager.clone()],
        &DispatcherConfig::default().timeout(Duration::from_secs(10)),
    );
    let down = Arc::new(AtomicBool::new(true));
    let (breaker, agent) = agent(&registry, &down);
    let start = Instant::now();

    // The breaker opens; the pager is handed the alert and stays busy with it.
    for _ in 0..3 {
        assert!(agent.clone().oneshot(()).await.is_err());
    }
    let_tasks_run().await;
    assert_eq!(
        *pager.started.lock().unwrap(),
        [(
            NotificationKind::Alert,
            "agent `gpt` is down".to_owned(),
            start
        )]
    );

    // Meanwhile calls go on, and events keep coming (an operator closes and reopens the
    // breaker): every call answers at once. Had a call waited for the pager, the paused clock
    // would have jumped to the dispatcher's 10 s timeout.
    for round in 0..10 {
        let error = agent.clone().oneshot(()).await.unwrap_err();
        assert!(error.downcast_ref::<CircuitOpen>().is_some(), "{error}");
        if round % 2 == 0 {
            breaker.handle().force_closed();
            breaker.handle().force_open();
        }
        let_tasks_run().await;
        assert_eq!(Instant::now(), start, "call {round} waited");
    }
    assert!(pager.delivered.lock().unwrap().is_empty());
    dispatcher.abort();
}
