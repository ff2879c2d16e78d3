//! Notifications: tell people when an agent goes down and comes back, without slowing calls.
//!
//! A [`Dispatcher`] subscribes to an [`EventBus`](crate::events::EventBus) (usually
//! [`Registry::events`](crate::Registry::events)), runs each event through a
//! [`NotificationPolicy`] (criticality, incident tracking, de-duplication, rate limit) and
//! hands the resulting [`Notification`]s to [`Notifier`]s from its own task, behind a bounded
//! queue: a slow notifier delays notifications, never a call. [`LogNotifier`] writes them to
//! `tracing`; webhook and e-mail notifiers implement the same trait (in `steadfast-http`).
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use std::sync::Arc;
//! use steadfast::notify::{Dispatcher, DispatcherConfig, LogNotifier, NotificationPolicy, PolicyConfig};
//! use steadfast::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::new();
//! let policy = NotificationPolicy::new(PolicyConfig::default().critical(["gpt-primary"]));
//! let dispatcher = Dispatcher::spawn(
//!     registry.events().subscribe(),
//!     policy,
//!     vec![Arc::new(LogNotifier)],
//!     &DispatcherConfig::default(),
//! );
//! # dispatcher.abort();
//! # }
//! # }
//! ```

mod dispatcher;
mod notifier;
mod policy;

#[cfg(test)]
mod tests;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use notifier::{LogNotifier, Notification, NotificationKind, Notifier, NotifyFuture};
pub use policy::{Decision, NotificationPolicy, PolicyConfig, Suppressed};
