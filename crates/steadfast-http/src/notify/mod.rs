//! Notifiers that leave the process: `WebhookNotifier` (feature `webhook`) and
//! `EmailNotifier` (feature `email`). Both implement [`steadfast::notify::Notifier`], so a
//! `steadfast_notify::Dispatcher` drives them from its own task, behind its
//! queue and timeout: a slow webhook or mail relay never slows a call.
//!
//! Both speak TLS with rustls: the webhook posts to `https://` receivers (Slack, a pager) with
//! the platform's roots plus any CA you add; e-mail goes over implicit TLS or STARTTLS with SMTP
//! AUTH (credentials are refused without TLS), or plain SMTP to a local relay.
//!
//! ```
//! # #[cfg(all(feature = "webhook", feature = "email"))]
//! # fn main() -> Result<(), steadfast::BoxError> {
//! use std::sync::Arc;
//! use steadfast::notify::{LogNotifier, Notifier};
//! use steadfast_http::notify::{EmailConfig, EmailNotifier, WebhookConfig, WebhookFormat, WebhookNotifier};
//!
//! let notifiers: Vec<Arc<dyn Notifier>> = vec![
//!     Arc::new(LogNotifier),
//!     Arc::new(WebhookNotifier::new(
//!         WebhookConfig::new("https://hooks.slack.com/services/T000/B000/XXXX")?
//!             .format(WebhookFormat::Slack),
//!     )?),
//!     Arc::new(EmailNotifier::new(
//!         EmailConfig::new("localhost", "steadfast@example.com")?.to("oncall@example.com")?,
//!     )?),
//! ];
//! assert_eq!(notifiers[1].name(), "webhook");
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "webhook", feature = "email")))]
//! # fn main() {}
//! ```

#[cfg(feature = "email")]
mod email;
#[cfg(feature = "webhook")]
mod webhook;

#[cfg(feature = "email")]
pub use email::{EmailConfig, EmailError, EmailNotifier, EmailTls};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookConfig, WebhookError, WebhookFormat, WebhookNotifier, slack_text};
