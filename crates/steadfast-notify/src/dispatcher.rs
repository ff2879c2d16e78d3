//! The dispatcher: a task that feeds bus events through the policy, and a task that delivers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use steadfast::events::EventReceiver;
use steadfast::notify::{Notification, Notifier};

use super::policy::{Decision, NotificationPolicy};

/// The longest notifier queue: a notifier a million notifications behind is not catching up.
pub const MAX_QUEUE: usize = 1 << 20;

/// How the dispatcher delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatcherConfig {
    /// Notifications waiting for one notifier before new ones are dropped for it (counted in
    /// `steadfast_notifications_dropped_total{notifier}`); default 64. Each notifier has its
    /// own queue.
    pub queue: usize,
    /// Time each notifier gets per notification (default 10 s).
    pub timeout: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            queue: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

impl DispatcherConfig {
    /// Sets [`queue`](Self::queue) (1 to [`MAX_QUEUE`]).
    #[must_use]
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue.clamp(1, MAX_QUEUE);
        self
    }

    /// Sets [`timeout`](Self::timeout) (`Duration::MAX`: no limit).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The running dispatcher. Dropping it leaves the tasks running; they end when every
/// [`EventBus`](steadfast::events::EventBus) clone is dropped (after delivering what is queued), or
/// at [`abort`](Self::abort).
#[derive(Debug)]
pub struct Dispatcher {
    policy_task: JoinHandle<()>,
    delivery_tasks: Vec<JoinHandle<()>>,
}

/// One notifier's end of the dispatcher: its queue and its drop counter.
struct Outbox {
    name: String,
    sender: mpsc::Sender<Notification>,
    dropped: Counter,
}

impl Dispatcher {
    /// Starts the dispatcher on the current tokio runtime: events from `events` go through
    /// `policy`, and each notification goes to every notifier, each from a task of its own
    /// behind a bounded queue of its own: neither the bus nor any call waits for a notifier,
    /// and a notifier that hangs or cannot be reached delays no other (it times out, its own
    /// queue fills, and only its notifications are dropped).
    pub fn spawn(
        events: EventReceiver,
        policy: NotificationPolicy,
        notifiers: Vec<Arc<dyn Notifier>>,
        config: &DispatcherConfig,
    ) -> Dispatcher {
        let mut outboxes = Vec::with_capacity(notifiers.len());
        let mut delivery_tasks = Vec::with_capacity(notifiers.len());
        for notifier in notifiers {
            let (sender, receiver) = mpsc::channel(config.queue.clamp(1, MAX_QUEUE));
            let name = notifier.name().to_owned();
            outboxes.push(Outbox {
                dropped: metrics::counter!(
                    "steadfast_notifications_dropped_total", "notifier" => name.clone()
                ),
                name,
                sender,
            });
            delivery_tasks.push(tokio::spawn(deliver(receiver, notifier, config.timeout)));
        }
        Dispatcher {
            policy_task: tokio::spawn(run_policy(events, policy, outboxes)),
            delivery_tasks,
        }
    }

    /// Stops every task now (queued notifications are lost).
    pub fn abort(&self) {
        self.policy_task.abort();
        for task in &self.delivery_tasks {
            task.abort();
        }
    }

    /// Waits until every task has ended (after the bus closed and the queues drained).
    pub async fn join(self) {
        let _ = self.policy_task.await;
        for task in self.delivery_tasks {
            let _ = task.await;
        }
    }
}

async fn run_policy(
    mut events: EventReceiver,
    mut policy: NotificationPolicy,
    outboxes: Vec<Outbox>,
) {
    let enqueue = |notification: Notification| {
        for outbox in &outboxes {
            if let Err(error) = outbox.sender.try_send(notification.clone()) {
                outbox.dropped.increment(1);
                tracing::warn!(
                    notifier = %outbox.name,
                    notification = %error.into_inner(),
                    "notifier's queue full: it is too slow or hung; notification dropped for it"
                );
            }
        }
    };
    loop {
        let next_tick = policy.next_deadline();
        let event = if let Some(deadline) = next_tick {
            // `recv` is cancel-safe: a timeout loses no event.
            if let Ok(event) = tokio::time::timeout_at(deadline, events.recv()).await {
                event
            } else {
                policy.on_tick(Instant::now()).into_iter().for_each(enqueue);
                continue;
            }
        } else {
            events.recv().await
        };
        let Some(event) = event else {
            // The bus is gone: settle what can be settled, then stop.
            policy.on_tick(Instant::now()).into_iter().for_each(enqueue);
            return;
        };
        match policy.on_event(&event, Instant::now()) {
            Decision::Send(notification) => enqueue(notification),
            Decision::Suppress(reason) => {
                tracing::trace!(event = event.name(), ?reason, "event not notified");
            }
        }
    }
}

/// One notifier's delivery loop: its queue, its timeout, nobody else's.
async fn deliver(
    mut queue: mpsc::Receiver<Notification>,
    notifier: Arc<dyn Notifier>,
    timeout: Duration,
) {
    while let Some(notification) = queue.recv().await {
        let outcome = match tokio::time::timeout(timeout, notifier.notify(&notification)).await {
            Ok(Ok(())) => "sent",
            Ok(Err(error)) => {
                tracing::warn!(notifier = notifier.name(), %error, %notification, "notifier failed");
                "failed"
            }
            Err(_) => {
                tracing::warn!(
                    notifier = notifier.name(),
                    timeout_secs = timeout.as_secs_f64(),
                    %notification,
                    "notifier timed out"
                );
                "timed_out"
            }
        };
        metrics::counter!(
            "steadfast_notifications_total",
            "notifier" => notifier.name().to_owned(),
            "kind" => notification.kind.as_str(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

impl fmt::Display for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("notification dispatcher")
    }
}
