//! `EmailNotifier` against a tiny SMTP listener on 127.0.0.1 that records what it is sent.
#![cfg(feature = "email")]

use std::sync::Arc;
use std::time::Duration;

use steadfast::events::Event;
use steadfast::notify::Notification;
use steadfast_http::notify::{EmailConfig, EmailError, EmailNotifier};
use steadfast_notify::{Decision, NotificationPolicy, PolicyConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One message as the SMTP listener received it.
#[derive(Debug, Default)]
struct Mail {
    from: String,
    recipients: Vec<String>,
    data: String,
}

/// Speaks just enough SMTP on 127.0.0.1:0 (greeting, EHLO/HELO, MAIL, RCPT, DATA, QUIT) and
/// reports each message; returns the port.
async fn smtp_listener() -> (u16, mpsc::UnboundedReceiver<Mail>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, mails) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let sender = sender.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write
                    .write_all(b"220 test.local ESMTP ready\r\n")
                    .await
                    .unwrap();
                let mut mail = Mail::default();
                while let Some(line) = lines.next_line().await.unwrap() {
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO")
                    {
                        b"250 test.local\r\n"
                    } else if let Some(from) = line.strip_prefix("MAIL FROM:") {
                        mail.from = from.to_owned();
                        b"250 OK\r\n"
                    } else if let Some(to) = line.strip_prefix("RCPT TO:") {
                        mail.recipients.push(to.to_owned());
                        b"250 OK\r\n"
                    } else if command == "DATA" {
                        write
                            .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                            .await
                            .unwrap();
                        while let Some(line) = lines.next_line().await.unwrap() {
                            if line == "." {
                                break;
                            }
                            // Dot-unstuffing (RFC 5321 4.5.2).
                            let line = line
                                .strip_prefix('.')
                                .filter(|l| l.starts_with('.'))
                                .unwrap_or(&line);
                            mail.data.push_str(line);
                            mail.data.push('\n');
                        }
                        let _ = sender.send(std::mem::take(&mut mail));
                        b"250 queued\r\n"
                    } else if command == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else if command == "RSET" || command == "NOOP" {
                        b"250 OK\r\n"
                    } else {
                        b"502 not implemented\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
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
