//! The demo's notifier: the library's notification policy (critical agents only, one alert
//! for a flapping agent, then one recovery once it has stayed up) delivering to the timeline.

use std::sync::Arc;
use std::time::Duration;

use steadfast::Registry;
use steadfast::notify::{Notification, Notifier, NotifyFuture};
use steadfast_notify::{Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};
use tokio::sync::mpsc;

/// Delivers each notification to the view, which prints it as `notify` on the timeline.
struct TimelineNotifier {
    sender: mpsc::Sender<Notification>,
}

impl Notifier for TimelineNotifier {
    fn name(&self) -> &'static str {
        "timeline"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move {
            self.sender
                .send(notification.clone())
                .await
                .map_err(|_| "the demo's view has stopped".into())
        })
    }
}

/// Starts the dispatcher on the registry's events, the primary agent critical; recoveries are
/// reported once the agent has stayed up for a twentieth of the run.
pub(crate) fn start(
    registry: &Registry,
    run: Duration,
) -> (Dispatcher, mpsc::Receiver<Notification>) {
    let (sender, receiver) = mpsc::channel(64);
    let policy = NotificationPolicy::new(
        PolicyConfig::default()
            .critical(["primary"])
            .recovery_settle(run / 20),
    );
    let dispatcher = Dispatcher::spawn(
        registry.events().subscribe(),
        policy,
        vec![Arc::new(TimelineNotifier { sender })],
        &DispatcherConfig::default(),
    );
    (dispatcher, receiver)
}
