//! Notifications: the [`Notifier`] trait and what it delivers.
//!
//! A [`Notification`] is an operator-facing message made from [`Event`](crate::events::Event)s
//! (an alert when an agent goes down, a recovery when it comes back). The policy that turns
//! events into notifications (criticality, incidents, de-duplication, rate limits) and the
//! dispatcher that delivers them off the call path live in `steadfast-notify`; the webhook and
//! e-mail transports in `steadfast-http`. [`LogNotifier`] writes notifications to `tracing`.
//!
//! ```
//! use steadfast::notify::{LogNotifier, Notifier};
//!
//! assert_eq!(LogNotifier.name(), "log");
//! ```

mod notifier;

pub use notifier::{LogNotifier, Notification, NotificationKind, Notifier, NotifyFuture};
