//! `EmailNotifier` against a tiny SMTP listener on 127.0.0.1 that records what it is sent.
#![cfg(feature = "email")]

mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use steadfast::events::Event;
use steadfast::notify::Notification;
use steadfast_http::notify::{EmailConfig, EmailError, EmailNotifier};
use steadfast_notify::{Decision, NotificationPolicy, PolicyConfig};

use steadfast_http::notify::EmailTls;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// One message as the SMTP listener received it.
#[derive(Debug, Default)]
struct Mail {
    from: String,
    recipients: Vec<String>,
    data: String,
    /// The AUTH command line, if the client authenticated.
    auth: Option<String>,
    /// Whether the message came over TLS.
    tls: bool,
}

/// How the listener protects its connections.
#[derive(Clone)]
enum Security {
    Plain,
    /// TLS from the first byte (SMTPS).
    Implicit(TlsAcceptor),
    /// Plain, offering STARTTLS (and AUTH only after it).
    StartTls(TlsAcceptor),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Speaks just enough SMTP on 127.0.0.1:0 (greeting, EHLO/HELO, STARTTLS, AUTH, MAIL, RCPT,
/// DATA, QUIT) and reports each message; returns the port.
async fn smtp_server(security: Security) -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, mails) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (sender, security) = (sender.clone(), security.clone());
            tokio::spawn(async move {
                match security {
                    Security::Plain => dialogue(Box::new(stream), sender, None, false).await,
                    Security::Implicit(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            dialogue(Box::new(tls), sender, None, true).await;
                        }
                    }
                    Security::StartTls(acceptor) => {
                        dialogue(Box::new(stream), sender, Some(acceptor), false).await;
                    }
                }
            });
        }
    });
    (port, mails)
}

/// One SMTP session on `stream`; `starttls` offers the upgrade (and restarts the session on
/// the TLS stream, as RFC 3207 says).
fn dialogue(
    stream: Box<dyn Io>,
    sender: mpsc::UnboundedSender<Mail>,
    starttls: Option<TlsAcceptor>,
    tls: bool,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut stream = BufReader::new(stream);
        // After a STARTTLS upgrade the session goes on without a second greeting.
        if !(tls && starttls.is_some()) {
            stream
                .write_all(b"220 test.local ESMTP ready\r\n")
                .await
                .unwrap();
        }
        let mut mail = Mail {
            tls,
            ..Mail::default()
        };
        let mut line = String::new();
        loop {
            line.clear();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_owned();
            let command = line.to_ascii_uppercase();
            let reply: String = if command.starts_with("EHLO") || command.starts_with("HELO") {
                match (&starttls, tls) {
                    (Some(_), false) => "250-test.local\r\n250 STARTTLS\r\n".into(),
                    _ => "250-test.local\r\n250 AUTH PLAIN LOGIN\r\n".into(),
                }
            } else if command == "STARTTLS" && starttls.is_some() && !tls {
                stream.write_all(b"220 go ahead\r\n").await.unwrap();
                let acceptor = starttls.clone().unwrap();
                let Ok(upgraded) = acceptor.accept(stream.into_inner()).await else {
                    return;
                };
                return dialogue(Box::new(upgraded), sender, starttls, true).await;
            } else if command.starts_with("AUTH") {
                mail.auth = Some(line.clone());
                "235 authenticated\r\n".into()
            } else if let Some(from) = line.strip_prefix("MAIL FROM:") {
                mail.from = from
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                "250 OK\r\n".into()
            } else if let Some(to) = line.strip_prefix("RCPT TO:") {
                mail.recipients.push(to.to_owned());
                "250 OK\r\n".into()
            } else if command == "DATA" {
                stream
                    .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await
                    .unwrap();
                let mut data_line = String::new();
                loop {
                    data_line.clear();
                    if stream.read_line(&mut data_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let data = data_line.trim_end_matches(['\r', '\n']);
                    if data == "." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let data = data
                        .strip_prefix('.')
                        .filter(|l| l.starts_with('.'))
                        .unwrap_or(data);
                    mail.data.push_str(data);
                    mail.data.push('\n');
                }
                let auth = mail.auth.clone();
                let _ = sender.send(std::mem::replace(
                    &mut mail,
                    Mail {
                        auth,
                        tls,
                        ..Mail::default()
                    },
                ));
                "250 queued\r\n".into()
            } else if command == "QUIT" {
                stream.write_all(b"221 bye\r\n").await.unwrap();
                return;
            } else if command == "RSET" || command == "NOOP" {
                "250 OK\r\n".into()
            } else {
                "502 not implemented\r\n".into()
            };
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
    })
}

/// A plain SMTP listener (no TLS, no AUTH offered).
async fn smtp_listener() -> (u16, mpsc::UnboundedReceiver<Mail>) {
    smtp_server(Security::Plain).await
}

fn alert(agent: &str) -> Notification {
    let mut policy = NotificationPolicy::new(PolicyConfig::default().critical([agent]));
    let event = Event::AgentUnhealthy {
        agent: Arc::from(agent),
        reason: "consecutive_failures",
    };
    match policy.on_event(&event, Instant::now()) {
        Decision::Send(notification) => notification,
        Decision::Suppress(reason) => panic!("a critical agent going down must notify: {reason:?}"),
    }
}

#[tokio::test]
async fn sends_subject_and_body_to_every_recipient() {
    let (port, mut mails) = smtp_listener().await;
    let notifier = EmailNotifier::new(
        EmailConfig::new("127.0.0.1", "Steadfast <steadfast@example.com>")
            .unwrap()
            .port(port)
            .timeout(Duration::from_secs(2))
            .to("oncall@example.com")
            .unwrap()
            .to("lead@example.com")
            .unwrap(),
    )
    .unwrap();
    let notification = alert("gpt");

    notifier.send(&notification).await.unwrap();

    let mail = tokio::time::timeout(Duration::from_secs(2), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mail.from, "<steadfast@example.com>");
    assert_eq!(
        mail.recipients,
        ["<oncall@example.com>", "<lead@example.com>"]
    );
    assert!(
        mail.data
            .contains("Subject: [steadfast] [alert] agent `gpt` is down\n"),
        "{}",
        mail.data
    );
    assert!(
        mail.data
            .contains("To: oncall@example.com, lead@example.com\n"),
        "{}",
        mail.data
    );
    let body = mail.data.split_once("\n\n").map(|(_, body)| body).unwrap();
    assert!(body.starts_with("agent `gpt` is down\n"), "{body}");
    assert!(body.contains(&notification.body), "{body}");
    assert!(body.contains("event: agent_unhealthy"), "{body}");
}

#[tokio::test]
async fn an_unreachable_relay_names_the_relay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let notifier = EmailNotifier::new(
        EmailConfig::new("127.0.0.1", "steadfast@example.com")
            .unwrap()
            .port(port)
            .timeout(Duration::from_secs(2))
            .to("oncall@example.com")
            .unwrap(),
    )
    .unwrap();

    let error = notifier.send(&alert("gpt")).await.unwrap_err();

    assert!(matches!(error, EmailError::Send { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "{error}"
    );
}

#[test]
fn bad_addresses_and_missing_recipients_are_rejected_up_front() {
    let error = EmailConfig::new("localhost", "not an address").unwrap_err();
    assert!(
        matches!(error, EmailError::InvalidAddress { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not an address"), "{error}");

    let config = EmailConfig::new("localhost", "steadfast@example.com").unwrap();
    assert!(matches!(
        config.clone().to("@nowhere"),
        Err(EmailError::InvalidAddress { .. })
    ));
    assert!(matches!(
        EmailNotifier::new(config),
        Err(EmailError::NoRecipients)
    ));
}

/// The relay's certificate comes from a CA the test made: the notifier trusts it only when told.
fn tls_config(port: u16, tls: EmailTls, ca_pem: Option<&str>) -> EmailConfig {
    let mut config = EmailConfig::new("127.0.0.1", "Steadfast <steadfast@example.com>")
        .unwrap()
        .port(port)
        .tls(tls)
        .credentials("notifier", "s3cret-pw")
        .timeout(Duration::from_secs(5))
        .to("oncall@example.com")
        .unwrap();
    if let Some(pem) = ca_pem {
        config = config.ca_cert_pem(pem.as_bytes()).unwrap();
    }
    config
}

/// `AUTH PLAIN` of `\0notifier\0s3cret-pw`.
const AUTH_PLAIN: &str = "AUTH PLAIN AG5vdGlmaWVyAHMzY3JldC1wdw==";

#[tokio::test]
async fn implicit_tls_with_auth_delivers_to_a_relay_with_a_test_certificate() {
    let tls = tls_support::test_tls();
    let (port, mut mails) = smtp_server(Security::Implicit(tls.acceptor)).await;
    let notifier =
        EmailNotifier::new(tls_config(port, EmailTls::Implicit, Some(&tls.ca_pem))).unwrap();

    notifier.send(&alert("gpt")).await.unwrap();

    let mail = tokio::time::timeout(Duration::from_secs(5), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(mail.tls);
    assert_eq!(mail.auth.as_deref(), Some(AUTH_PLAIN));
    assert_eq!(mail.recipients, ["<oncall@example.com>"]);
    assert!(
        mail.data
            .contains("Subject: [steadfast] [alert] agent `gpt` is down\n"),
        "{}",
        mail.data
    );
}

#[tokio::test]
async fn starttls_upgrades_before_authenticating() {
    let tls = tls_support::test_tls();
    let (port, mut mails) = smtp_server(Security::StartTls(tls.acceptor)).await;
    let notifier =
        EmailNotifier::new(tls_config(port, EmailTls::StartTls, Some(&tls.ca_pem))).unwrap();

    notifier.send(&alert("gpt")).await.unwrap();

    let mail = tokio::time::timeout(Duration::from_secs(5), mails.recv())
        .await
        .unwrap()
        .unwrap();
    // The server offers AUTH only after the upgrade: the credentials went over TLS.
    assert!(mail.tls);
    assert_eq!(mail.auth.as_deref(), Some(AUTH_PLAIN));
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_relay_without_starttls_sends_nothing() {
    let tls = tls_support::test_tls();
    let (port, mut mails) = smtp_server(Security::Implicit(tls.acceptor)).await;
    // Without the test CA the certificate is not trusted.
    let notifier = EmailNotifier::new(tls_config(port, EmailTls::Implicit, None)).unwrap();
    let error = notifier.send(&alert("gpt")).await.unwrap_err();
    assert!(matches!(error, EmailError::Send { .. }), "{error:?}");

    // STARTTLS required, the relay speaks plain SMTP only: no fallback to clear text.
    let (plain_port, mut plain_mails) = smtp_listener().await;
    let notifier = EmailNotifier::new(tls_config(
        plain_port,
        EmailTls::StartTls,
        Some(&tls.ca_pem),
    ))
    .unwrap();
    let error = notifier.send(&alert("gpt")).await.unwrap_err();
    assert!(matches!(error, EmailError::Send { .. }), "{error:?}");

    assert!(mails.try_recv().is_err());
    assert!(plain_mails.try_recv().is_err());
}

#[test]
fn credentials_without_tls_and_a_bad_ca_are_refused_up_front() {
    let config = EmailConfig::new("localhost", "steadfast@example.com")
        .unwrap()
        .to("oncall@example.com")
        .unwrap();
    assert!(matches!(
        EmailNotifier::new(config.clone().credentials("u", "p")),
        Err(EmailError::CredentialsWithoutTls)
    ));
    assert!(matches!(
        config.clone().ca_cert_pem(b"not a certificate"),
        Err(EmailError::InvalidCaCert)
    ));
    assert!(!format!("{:?}", config.credentials("u", "hunter2")).contains("hunter2"));
}
