//! [`EmailNotifier`]: sends notifications as plain-text e-mail over SMTP (lettre), with
//! implicit TLS or STARTTLS (rustls) and SMTP authentication.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use lettre::address::AddressError;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use steadfast::notify::{Notification, Notifier, NotifyFuture};

/// Where and to whom an [`EmailNotifier`] sends. Built with [`EmailConfig::new`]; addresses
/// are parsed when added.
///
/// By default the notifier speaks plain SMTP without authentication, to a relay you trust (a
/// local MTA, a mail sidecar). For a provider's relay choose [`EmailTls::Implicit`] (port 465)
/// or [`EmailTls::StartTls`] (port 587) with [`credentials`](Self::credentials): the
/// certificate is checked against the platform's roots and any
/// [`ca_cert_pem`](Self::ca_cert_pem). Credentials are never sent in clear text: without TLS
/// they are refused when the notifier is built.
///
/// | setting | default |
/// |---|---|
/// | `tls` | [`EmailTls::None`] |
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
    tls: EmailTls,
    credentials: Option<SmtpCredentials>,
    extra_roots: Vec<Vec<u8>>,
}

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmailTls {
    /// Plain SMTP: only to a relay on the same host or network you trust. No credentials.
    #[default]
    None,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS before anything else is sent (usually port
    /// 587); a relay that does not offer STARTTLS is an error, never a fallback to plain text.
    StartTls,
}

/// A user name and password for SMTP AUTH (PLAIN or LOGIN); `Debug` shows neither.
#[derive(Clone)]
struct SmtpCredentials {
    user: String,
    password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmtpCredentials { .. }")
    }
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
            tls: EmailTls::None,
            credentials: None,
            extra_roots: Vec::new(),
        })
    }

    /// Sets how the connection is protected (set the matching [`port`](Self::port) too).
    #[must_use]
    pub fn tls(mut self, tls: EmailTls) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates with `user` and `password` (SMTP AUTH PLAIN or LOGIN). Needs TLS.
    #[must_use]
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials = Some(SmtpCredentials {
            user: user.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Also trusts the CA certificate in `pem` (PEM), beside the platform's roots: for a
    /// relay behind a private CA.
    pub fn ca_cert_pem(mut self, pem: &[u8]) -> Result<Self, EmailError> {
        // lettre takes a PEM without any certificate in it: that is a mistake here.
        let has_certificate = pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|window| window == b"-----BEGIN CERTIFICATE-----");
        if !has_certificate {
            return Err(EmailError::InvalidCaCert);
        }
        Certificate::from_pem(pem).map_err(|source| EmailError::Tls { source })?;
        self.extra_roots.push(pem.to_vec());
        Ok(self)
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
    /// Credentials were given without TLS: they would cross the network in clear text.
    #[error(
        "the e-mail notifier has SMTP credentials but no TLS: set `EmailConfig::tls(EmailTls::Implicit)` or `StartTls`"
    )]
    CredentialsWithoutTls,
    /// A CA certificate given to [`EmailConfig::ca_cert_pem`] holds no PEM certificate.
    #[error("invalid CA certificate for the e-mail notifier: expected a PEM `CERTIFICATE` block")]
    InvalidCaCert,
    /// The TLS settings (a CA certificate, the relay's name) are unusable.
    #[error("invalid TLS settings for the e-mail notifier: {source}")]
    Tls {
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
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
        if config.credentials.is_some() && config.tls == EmailTls::None {
            return Err(EmailError::CredentialsWithoutTls);
        }
        let tls = match config.tls {
            EmailTls::None => Tls::None,
            EmailTls::Implicit => Tls::Wrapper(tls_parameters(&config)?),
            EmailTls::StartTls => Tls::Required(tls_parameters(&config)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.relay)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some(credentials) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                credentials.user.clone(),
                credentials.password.clone(),
            ));
        }
        let transport = builder.build();
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

/// The relay's name checked against its certificate, and the roots to check it with.
fn tls_parameters(config: &EmailConfig) -> Result<TlsParameters, EmailError> {
    let mut parameters = TlsParameters::builder(config.relay.clone());
    for pem in &config.extra_roots {
        let cert = Certificate::from_pem(pem).map_err(|source| EmailError::Tls { source })?;
        parameters = parameters.add_root_certificate(cert);
    }
    parameters
        .build()
        .map_err(|source| EmailError::Tls { source })
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
