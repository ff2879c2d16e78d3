//! The [`Notifier`] trait, the [`Notification`] it sends, and [`LogNotifier`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::BoxError;
use crate::events::Event;

/// The future a [`Notifier`] returns.
pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Delivers [`Notification`]s somewhere people see them: logs, a chat webhook, e-mail, a pager.
///
/// Called from the dispatcher's own task, one notification at a time, under the dispatcher's
/// timeout: a slow or failing notifier delays other notifications, never a call. Retrying is
/// the notifier's business (a webhook notifier retries its POST); an `Err` is logged and
/// counted.
///
/// ```
/// use steadfast::notify::{Notification, Notifier, NotifyFuture};
///
/// struct Stdout;
///
/// impl Notifier for Stdout {
///     fn name(&self) -> &str {
///         "stdout"
///     }
///     fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
///         Box::pin(async move {
///             println!("{}: {}", notification.title, notification.body);
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait Notifier: Send + Sync + 'static {
    /// A short name for logs and the `notifier` metric label.
    fn name(&self) -> &str;

    /// Delivers `notification`.
    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a>;
}

impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        (**self).notify(notification)
    }
}

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NotificationKind {
    /// Something is wrong (an agent went down, a dead-letter queue fills up): page.
    Alert,
    /// An alerted incident is over.
    Recovery,
    /// Worth knowing, not worth waking anyone (retries exhausted, fallback used, ...).
    Warning,
}

impl NotificationKind {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Alert => "alert",
            NotificationKind::Recovery => "recovery",
            NotificationKind::Warning => "warning",
        }
    }
}

/// A message for people, made from an [`Event`] by the
/// `steadfast_notify::NotificationPolicy`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Notification {
    /// Alert, recovery or warning.
    pub kind: NotificationKind,
    /// The agent (or queue) it is about.
    pub subject: String,
    /// One line: `"agent `gpt` is down"`.
    pub title: String,
    /// The details.
    pub body: String,
    /// Events folded into this one by de-duplication (a flapping agent's repeated failures).
    pub suppressed: u32,
    /// The event that triggered it.
    pub event: Event,
}

impl Notification {
    /// A notification of `kind` about `subject`, made from `event`.
    pub fn new(
        kind: NotificationKind,
        subject: impl Into<String>,
        title: impl Into<String>,
        body: impl Into<String>,
        event: Event,
    ) -> Self {
        Notification {
            kind,
            subject: subject.into(),
            title: title.into(),
            body: body.into(),
            suppressed: 0,
            event,
        }
    }

    /// Records that `suppressed` events were folded into this one.
    #[must_use]
    pub fn with_suppressed(mut self, suppressed: u32) -> Self {
        self.suppressed = suppressed;
        self
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.kind.as_str(), self.title, self.body)
    }
}

/// Writes notifications as `tracing` events (`error` for alerts, `info` for recoveries, `warn`
/// for warnings), target `steadfast::notify`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn name(&self) -> &'static str {
        "log"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        let Notification {
            kind,
            subject,
            title,
            body,
            suppressed,
            event,
        } = notification;
        let event = event.name();
        match kind {
            NotificationKind::Alert => {
                tracing::error!(target: "steadfast::notify", subject, event, suppressed, "{title}: {body}");
            }
            NotificationKind::Recovery => {
                tracing::info!(target: "steadfast::notify", subject, event, suppressed, "{title}: {body}");
            }
            NotificationKind::Warning => {
                tracing::warn!(target: "steadfast::notify", subject, event, suppressed, "{title}: {body}");
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
