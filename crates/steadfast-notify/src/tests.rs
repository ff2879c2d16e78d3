//! The dispatcher under tokio's paused clock, with a recording notifier.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, advance, sleep};

use super::*;
use steadfast::events::{Event, EventBus};
use steadfast::notify::{LogNotifier, Notification, NotificationKind, Notifier, NotifyFuture};

#[derive(Default)]
struct Recording {
    /// Each notification handed to the notifier: its subject and when.
    called: Mutex<Vec<(String, Instant)>>,
    /// Each notification delivered, and when the delivery ended.
    seen: Mutex<Vec<(NotificationKind, String, Instant)>>,
    delay: Duration,
}

impl Notifier for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move {
            self.called
                .lock()
                .unwrap()
                .push((notification.subject.clone(), Instant::now()));
            sleep(self.delay).await;
            self.seen.lock().unwrap().push((
                notification.kind,
                notification.subject.clone(),
                Instant::now(),
            ));
            Ok(())
        })
    }
}

fn down(agent: &str) -> Event {
    Event::AgentUnhealthy {
        agent: Arc::from(agent),
        reason: "consecutive_failures",
    }
}

fn up(agent: &str) -> Event {
    Event::AgentRecovered {
        agent: Arc::from(agent),
        reason: "probes_succeeded",
    }
}

/// Lets the dispatcher tasks run.
async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_flapping_agent_is_notified_once_down_and_once_recovered() {
    let bus = EventBus::new(64);
    let recording = Arc::new(Recording::default());
    let policy = NotificationPolicy::new(
        PolicyConfig::default()
            .critical(["gpt"])
            .recovery_settle(Duration::from_secs(60)),
    );
    let dispatcher = Dispatcher::spawn(
        bus.subscribe(),
        policy,
        vec![recording.clone(), Arc::new(LogNotifier)],
        &DispatcherConfig::default(),
    );
    let start = Instant::now();
    for _ in 0..5 {
        bus.emit(down("gpt"));
        bus.emit(down("tool")); // not critical
        settle().await;
        advance(Duration::from_secs(10)).await;
        bus.emit(up("gpt"));
        bus.emit(up("tool"));
        settle().await;
        advance(Duration::from_secs(10)).await;
    }
    // The last recovery was at 90 s; it is announced once the agent stayed up 60 s.
    settle().await;
    advance(Duration::from_secs(49)).await;
    settle().await;
    assert_eq!(recording.seen.lock().unwrap().len(), 1);
    advance(Duration::from_secs(1)).await;
    settle().await;
    let seen = recording.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (NotificationKind::Alert, "gpt".to_owned(), start),
            (
                NotificationKind::Recovery,
                "gpt".to_owned(),
                start + Duration::from_secs(90 + 60)
            ),
        ]
    );
    drop(bus);
    dispatcher.join().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_notifier_is_cut_at_the_timeout_while_a_bounded_queue_waits() {
    let bus = EventBus::new(64);
    let slow = Arc::new(Recording {
        delay: Duration::from_secs(3600),
        ..Recording::default()
    });
    let policy = NotificationPolicy::new(PolicyConfig::default());
    let dispatcher = Dispatcher::spawn(
        bus.subscribe(),
        policy,
        vec![slow.clone()],
        &DispatcherConfig::default()
            .queue(2)
            .timeout(Duration::from_secs(5)),
    );
    let start = Instant::now();
    bus.emit(down("a"));
    settle().await;
    // While "a" is being delivered, the policy keeps taking events off the bus: "b" and "c"
    // wait in the queue of 2, "d" and "e" find it full and are dropped.
    for agent in ["b", "c", "d", "e"] {
        bus.emit(down(agent));
    }
    settle().await;
    for _ in 0..4 {
        advance(Duration::from_secs(5)).await;
        settle().await;
    }
    // Each delivery got its 5 s and no more: the next one started right after.
    let at = |secs| start + Duration::from_secs(secs);
    assert_eq!(
        *slow.called.lock().unwrap(),
        [
            ("a".to_owned(), at(0)),
            ("b".to_owned(), at(5)),
            ("c".to_owned(), at(10)),
        ]
    );
    assert!(
        slow.seen.lock().unwrap().is_empty(),
        "every delivery timed out"
    );
    drop(bus);
    tokio::time::timeout(Duration::from_secs(60), dispatcher.join())
        .await
        .expect("the dispatcher ends once the bus is gone and the queue is delivered");
}

#[tokio::test(start_paused = true)]
async fn recoveries_pending_when_the_bus_closes_are_not_lost_if_settled() {
    let bus = EventBus::new(8);
    let recording = Arc::new(Recording::default());
    let dispatcher = Dispatcher::spawn(
        bus.subscribe(),
        NotificationPolicy::new(PolicyConfig::default().recovery_settle(Duration::from_secs(1))),
        vec![recording.clone()],
        &DispatcherConfig::default(),
    );
    bus.emit(down("gpt"));
    settle().await;
    bus.emit(up("gpt"));
    settle().await;
    advance(Duration::from_secs(1)).await;
    drop(bus);
    dispatcher.join().await;
    let kinds: Vec<_> = recording
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(kind, ..)| *kind)
        .collect();
    assert_eq!(kinds, [NotificationKind::Alert, NotificationKind::Recovery]);
}
