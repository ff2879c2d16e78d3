//! [`EmailNotifier`]: sends notifications as plain-text e-mail over SMTP (lettre).

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use lettre::address::AddressError;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use steadfast::notify::{Notification, Notifier, NotifyFuture};

/// Where and to whom an [`EmailNotifier`] sends. Built with [`EmailConfig::new`]; addresses
/// are parsed when added.
///
/// The notifier speaks plain SMTP without TLS or authentication, to a relay you trust: a
/// local MTA (postfix, a mail sidecar) or your provider's relay through a TLS-terminating
/// tunnel. It never sends credentials in clear text.
///
/// | setting | default |
/// |---|---|
/// | `port` | 25 |
/// | `subject_prefix` | `[steadfast]` |
/// | `timeout` | 10 s (each SMTP command) |
/// | `name` | `email` |
#[derive(Clone, Debug)]
pub struct EmailConfig {
    relay: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    timeout: Duration,
    name: Arc<str>,
}

impl EmailConfig {
    /// Sends through the SMTP relay at `relay` (a host name or IP) on port 25, from `from`
    /// (`"steadfast@example.com"` or `"Steadfast <steadfast@example.com>"`).
    pub fn new(relay: &str, from: &str) -> Result<EmailConfig, EmailError> {
        Ok(EmailConfig {
            relay: relay.to_owned(),
            port: 25,
            from: parse(from)?,
            to: Vec::new(),
            subject_prefix: "[steadfast]".to_owned(),
            timeout: Duration::from_secs(10),
            name: Arc::from("email"),
        })
    }

    /// Adds a recipient.
    pub fn to(mut self, address: &str) -> Result<Self, EmailError> {
        self.to.push(parse(address)?);
        Ok(self)
    }

    /// Sets the relay's port (25 for a local MTA, 1025 for MailHog-style test servers).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the text before each subject, for mail filters (empty for none).
    #[must_use]
    pub fn subject_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.subject_prefix);
        self
    }

    /// Sets the time each SMTP exchange may take.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the notifier's name (the `notifier` label in logs and metrics).
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }
}

/// What went wrong sending a notification by e-mail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// A configured address does not parse.
    #[error("invalid e-mail address `{address}`: {source}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why.
        #[source]
        source: AddressError,
    },
    /// The configuration names no recipient.
    #[error("the e-mail notifier has no recipients: add one with `EmailConfig::to`")]
    NoRecipients,
    /// The message could not be built.
    #[error("could not build the notification e-mail: {0}")]
    Build(#[source] lettre::error::Error),
    /// The relay refused the message or could not be reached.
    #[error("could not send the notification e-mail through SMTP relay `{relay}`: {source}")]
    Send {
        /// `host:port` of the relay.
        relay: String,
        /// The SMTP error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// Sends [`Notification`]s as plain-text e-mail through an SMTP relay: the subject is the
/// notification's title (after a prefix), the body its details.
///
/// ```
/// use steadfast_http::notify::{EmailConfig, EmailNotifier};
///
/// # fn main() -> Result<(), steadfast_http::notify::EmailError> {
/// let email = EmailNotifier::new(
///     EmailConfig::new("localhost", "Steadfast <steadfast@example.com>")?
///         .to("oncall@example.com")?
///         .subject_prefix("[agents]"),
/// )?;
/// # let _ = email;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EmailNotifier {
    config: Arc<EmailConfig>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl EmailNotifier {
    /// A notifier sending as `config` says; fails without recipients.
    pub fn new(config: EmailConfig) -> Result<EmailNotifier, EmailError> {
        if config.to.is_empty() {
            return Err(EmailError::NoRecipients);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.relay)
            .port(config.port)
            .timeout(Some(config.timeout))
            .build();
        Ok(EmailNotifier {
            config: Arc::new(config),
            transport,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    /// The message `notification` becomes.
    pub fn message(&self, notification: &Notification) -> Result<Message, EmailError> {
        let config = &self.config;
        let mut builder = Message::builder()
            .from(config.from.clone())
            .subject(subject(&config.subject_prefix, notification));
        for to in &config.to {
            builder = builder.to(to.clone());
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(body(notification))
            .map_err(EmailError::Build)
    }

    /// Sends `notification` and waits until the relay accepted it.
    pub async fn send(&self, notification: &Notification) -> Result<(), EmailError> {
        let message = self.message(notification)?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|source| EmailError::Send {
                relay: format!("{}:{}", self.config.relay, self.config.port),
                source,
            })
    }
}

impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { self.send(notification).await.map_err(Into::into) })
    }
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn parse(address: &str) -> Result<Mailbox, EmailError> {
    address
        .parse()
        .map_err(|source| EmailError::InvalidAddress {
            address: address.to_owned(),
            source,
        })
}

fn subject(prefix: &str, notification: &Notification) -> String {
    let kind = notification.kind.as_str();
    let title = &notification.title;
    if prefix.is_empty() {
        format!("[{kind}] {title}")
    } else {
        format!("{prefix} [{kind}] {title}")
    }
}

fn body(notification: &Notification) -> String {
    let mut body = format!(
        "{}\n\n{}\n\nkind: {}\nsubject: {}\nevent: {}\n",
        notification.title,
        notification.body,
        notification.kind.as_str(),
        notification.subject,
        notification.event.name(),
    );
    if notification.suppressed > 0 {
        let _ = writeln!(
            body,
            "similar events folded in: {}",
            notification.suppressed
        );
    }
    body
}
