//! A notifier that never answers delays no other: each notifier has its own queue and timeout.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::Registry;
use steadfast::events::Event;
use steadfast::notify::{Notification, Notifier, NotifyFuture};
use steadfast::registry::HealthPolicy;
use steadfast_notify::{Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};

/// Never answers: every notification runs into the dispatcher's timeout.
struct Hung;

impl Notifier for Hung {
    fn name(&self) -> &'static str {
        "hung"
    }

    fn notify<'a>(&'a self, _: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(pending())
    }
}

/// Counts what it receives.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Notifier for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn notify<'a>(&'a self, _: &'a Notification) -> NotifyFuture<'a> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_notifier_delays_no_other_which_receives_all_2000_alerts_within_a_second() {
    const ALERTS: usize = 2_000;
    let registry = Registry::with_policy(HealthPolicy::default(), 4 * ALERTS);
    let counting = Arc::new(Counting::default());
    let policy = NotificationPolicy::new(
        PolicyConfig::default().rate_limit(u32::MAX, Duration::from_secs(1)),
    );
    let dispatcher = Dispatcher::spawn(
        registry.events().subscribe(),
        policy,
        vec![Arc::new(Hung), counting.clone()],
        &DispatcherConfig::default()
            .queue(ALERTS)
            .timeout(Duration::from_secs(10)),
    );
    let started = tokio::time::Instant::now();
    for n in 0..ALERTS {
        // Each alert is about another agent, so no de-duplication folds them.
        registry.emit(Event::AgentUnhealthy {
            agent: Arc::from(format!("agent-{n}")),
            reason: "consecutive_failures",
        });
    }
    while counting.0.load(Ordering::SeqCst) < ALERTS {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "only {} of {ALERTS} alerts after {:?}: the hung notifier is holding the others",
            counting.0.load(Ordering::SeqCst),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counting.0.load(Ordering::SeqCst), ALERTS);
    dispatcher.abort();
}

#[tokio::test(start_paused = true)]
async fn extreme_queue_and_timeout_settings_start_and_deliver() {
    let registry = Registry::new();
    let counting = Arc::new(Counting::default());
    for (queue, timeout) in [(0, Duration::ZERO), (usize::MAX, Duration::MAX)] {
        let dispatcher = Dispatcher::spawn(
            registry.events().subscribe(),
            NotificationPolicy::new(PolicyConfig::default()),
            vec![counting.clone()],
            &DispatcherConfig::default().queue(queue).timeout(timeout),
        );
        registry.emit(Event::AgentUnhealthy {
            agent: Arc::from(format!("q{queue}")),
            reason: "test",
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        dispatcher.abort();
    }
    assert!(counting.0.load(Ordering::SeqCst) >= 1);
}
