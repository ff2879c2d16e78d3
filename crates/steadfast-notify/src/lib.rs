//! # steadfast-notify
//!
//! Notifications from [`steadfast`]'s events: tell people when an agent goes down and comes
//! back, without slowing calls.
//!
//! A [`Dispatcher`] subscribes to an [`EventBus`](steadfast::events::EventBus) (usually
//! [`Registry::events`](steadfast::Registry::events)), runs each event through a
//! [`NotificationPolicy`] (criticality, incident tracking, de-duplication, rate limit) and
//! hands the resulting [`Notification`](steadfast::notify::Notification)s to
//! [`Notifier`](steadfast::notify::Notifier)s from its own task, behind a bounded queue: a slow
//! notifier delays notifications, never a call. [`LogNotifier`](steadfast::notify::LogNotifier)
//! writes them to `tracing`; the webhook and e-mail notifiers of `steadfast-http` implement the
//! same trait.
//!
//! ```
//! use std::sync::Arc;
//! use steadfast::Registry;
//! use steadfast::notify::LogNotifier;
//! use steadfast_notify::{Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};
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
//! ```
#![forbid(unsafe_code)]

mod dispatcher;
mod policy;

#[cfg(test)]
mod tests;

pub use dispatcher::{Dispatcher, DispatcherConfig, MAX_QUEUE};
pub use policy::{Decision, NotificationPolicy, PolicyConfig, Suppressed};
