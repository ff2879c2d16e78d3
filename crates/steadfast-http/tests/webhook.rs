//! `WebhookNotifier` against a real hyper server on 127.0.0.1 (real time, short timeouts: a
//! paused clock and real sockets do not mix).
#![cfg(feature = "webhook")]

mod tls_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use steadfast::events::{Event, EventBus};
use steadfast::notify::{Notification, NotificationKind};
use steadfast::retry::RetryConfig;
use steadfast_http::notify::{WebhookConfig, WebhookError, WebhookFormat, WebhookNotifier};
use steadfast_notify::{Decision, Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// What the server does with a request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    Hang,
}

/// A request the server received.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// Serves `script` in order (the last reply repeats) on 127.0.0.1:0; returns the URL and the
/// requests received.
async fn serve(script: Vec<Reply>) -> (String, mpsc::UnboundedReceiver<Received>) {
    serve_with(script, None).await
}

/// As [`serve`], over TLS with `tls` when given (an https:// URL).
async fn serve_with(
    script: Vec<Reply>,
    tls: Option<TlsAcceptor>,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "{}://{}/hooks/T000/secret-token",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr().unwrap()
    );
    let (sender, received) = mpsc::unbounded_channel();
    let script = Arc::new(script);
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (sender, script, served) = (sender.clone(), script.clone(), served.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (sender, script, served) = (sender.clone(), script.clone(), served.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    let _ = sender.send(Received {
                        headers: parts.headers,
                        body,
                    });
                    let index = served.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
                    let status = match script[index] {
                        Reply::Status(status) => status,
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            200
                        }
                    };
                    let response = Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"receiver says no")))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            match tls.clone() {
                None => {
                    tokio::spawn(
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    );
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    });
                }
            }
        }
    });
    (url, received)
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

/// The notifier for `config` (building its TLS client cannot fail here).
fn webhook(config: WebhookConfig) -> WebhookNotifier {
    WebhookNotifier::new(config).expect("the HTTP client builds")
}

fn quick_retries(max_retries: u32) -> RetryConfig {
    RetryConfig::builder()
        .max_retries(max_retries)
        .base(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(20))
        .build()
        .unwrap()
}

fn webhook_error(error: &steadfast::BoxError) -> &WebhookError {
    error
        .downcast_ref::<WebhookError>()
        .expect("a WebhookNotifier fails with a WebhookError")
}

#[tokio::test]
async fn posts_the_notification_as_json_with_custom_headers() {
    let (url, mut received) = serve(vec![Reply::Status(204)]).await;
    let notifier = webhook(
        WebhookConfig::new(&url)
            .unwrap()
            .header("authorization", "Bearer t0ken")
            .unwrap(),
    );
    let notification = alert("gpt");

    notifier.send(&notification).await.unwrap();

    let request = received.recv().await.unwrap();
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], "Bearer t0ken");
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(json["kind"], "alert");
    assert_eq!(json["subject"], "gpt");
    assert_eq!(json["title"], notification.title.as_str());
    assert_eq!(json["body"], notification.body.as_str());
    assert_eq!(json["event"]["event"], "agent_unhealthy");
    assert_eq!(json["event"]["agent"], "gpt");
}

#[tokio::test]
async fn slack_format_posts_a_single_line_text() {
    let (url, mut received) = serve(vec![Reply::Status(200)]).await;
    let notifier = webhook(
        WebhookConfig::new(&url)
            .unwrap()
            .format(WebhookFormat::Slack),
    );

    notifier.send(&alert("gpt")).await.unwrap();

    let json: serde_json::Value =
        serde_json::from_slice(&received.recv().await.unwrap().body).unwrap();
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 1, "Slack payloads carry only `text`: {json}");
    let text = object["text"].as_str().unwrap();
    assert!(
        text.starts_with(":rotating_light: [alert] agent `gpt` is down"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn a_503_is_retried_until_the_receiver_accepts() {
    let (url, mut received) = serve(vec![Reply::Status(503), Reply::Status(200)]).await;
    let notifier = webhook(WebhookConfig::new(&url).unwrap().retry(quick_retries(2)));

    notifier.send(&alert("gpt")).await.unwrap();

    let first = received.recv().await.unwrap();
    let second = received.recv().await.unwrap();
    assert_eq!(
        first.body, second.body,
        "the retry sends the same notification"
    );
    assert!(received.try_recv().is_err(), "a 200 ends the retries");
}

#[tokio::test]
async fn a_rejected_post_is_not_retried_and_names_url_and_status() {
    let (url, mut received) = serve(vec![Reply::Status(400)]).await;
    let notifier = webhook(WebhookConfig::new(&url).unwrap().retry(quick_retries(2)));

    let error = notifier.send(&alert("gpt")).await.unwrap_err();

    let WebhookError::Status {
        status, attempts, ..
    } = &error
    else {
        panic!("expected a status error, got {error:?}");
    };
    assert_eq!((*status, *attempts), (StatusCode::BAD_REQUEST, 1));
    let message = error.to_string();
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(
        message.contains(host) && message.contains("400"),
        "{message}"
    );
    assert!(message.contains("receiver says no"), "{message}");
    assert!(
        !message.contains("secret-token"),
        "paths may carry tokens: {message}"
    );
    received.recv().await.unwrap();
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn a_hanging_receiver_hits_the_timeout_on_every_attempt() {
    let (url, mut received) = serve(vec![Reply::Hang]).await;
    let notifier = webhook(
        WebhookConfig::new(&url)
            .unwrap()
            .timeout(Duration::from_millis(150))
            .retry(quick_retries(1)),
    );
    let started = Instant::now();

    let error = notifier.send(&alert("gpt")).await.unwrap_err();

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let WebhookError::Timeout {
        timeout, attempts, ..
    } = &error
    else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!((*timeout, *attempts), (Duration::from_millis(150), 2));
    received.recv().await.unwrap();
    received.recv().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_port_gives_a_clear_error() {
    // A port that was just free: nothing listens on it now.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let notifier = webhook(
        WebhookConfig::new(&format!("http://{address}/hook"))
            .unwrap()
            .retry(quick_retries(1)),
    );

    let error = notifier.send(&alert("gpt")).await.unwrap_err();

    let WebhookError::Request { attempts, .. } = &error else {
        panic!("expected a request error, got {error:?}");
    };
    assert_eq!(*attempts, 2, "a refused connection is transient: retried");
    let message = error.to_string();
    assert!(message.contains(&address.to_string()), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[tokio::test]
async fn posts_over_https_to_a_receiver_with_a_test_certificate() {
    let tls = tls_support::test_tls();
    let (url, mut received) = serve_with(vec![Reply::Status(200)], Some(tls.acceptor)).await;
    assert!(url.starts_with("https://127.0.0.1:"));
    let notifier = webhook(
        WebhookConfig::new(&url)
            .unwrap()
            .ca_cert_pem(tls.ca_pem.as_bytes())
            .unwrap()
            .header("authorization", "Bearer t0ken")
            .unwrap()
            .format(WebhookFormat::Slack),
    );

    notifier.send(&alert("gpt")).await.unwrap();

    let request = received.recv().await.unwrap();
    assert_eq!(request.headers["authorization"], "Bearer t0ken");
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert!(
        json["text"]
            .as_str()
            .unwrap()
            .contains("agent `gpt` is down")
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_nothing_is_posted() {
    let tls = tls_support::test_tls();
    let (url, mut received) = serve_with(vec![Reply::Status(200)], Some(tls.acceptor)).await;
    // The platform's roots do not include the test's CA.
    let notifier = webhook(WebhookConfig::new(&url).unwrap().retry(quick_retries(0)));

    let error = notifier.send(&alert("gpt")).await.unwrap_err();

    assert!(matches!(error, WebhookError::Request { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("https://127.0.0.1:"), "{message}");
    assert!(!message.contains("secret-token"), "{message}");
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn malformed_urls_headers_and_ca_certificates_are_rejected_up_front() {
    let error = WebhookConfig::new("ftp://hooks.example.com/services/T/B/secret").unwrap_err();
    assert!(
        matches!(error, WebhookError::InvalidUrl { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(!message.contains("secret"), "{message}");
    // https is accepted (TLS by rustls); the error and log form hides the path.
    let config = WebhookConfig::new("https://hooks.example.com/services/T/B/secret").unwrap();
    assert_eq!(config.shown_url(), "https://hooks.example.com/…");

    assert!(WebhookConfig::new("not a url").is_err());
    assert!(WebhookConfig::new("http:///path-without-host").is_err());
    let error = WebhookConfig::new("http://localhost/")
        .unwrap()
        .header("bad header", "x")
        .unwrap_err();
    assert!(
        matches!(error, WebhookError::InvalidHeader { .. }),
        "{error:?}"
    );
    assert!(matches!(
        WebhookConfig::new("https://localhost/")
            .unwrap()
            .ca_cert_pem(b"not pem"),
        Err(WebhookError::InvalidCaCert)
    ));
}

#[tokio::test]
async fn notifier_errors_downcast_from_the_trait_object() {
    use steadfast::notify::Notifier;
    let (url, _received) = serve(vec![Reply::Status(401)]).await;
    let notifier = webhook(WebhookConfig::new(&url).unwrap().name("pager"));

    let error = notifier.notify(&alert("gpt")).await.unwrap_err();

    assert_eq!(notifier.name(), "pager");
    assert!(matches!(
        webhook_error(&error),
        WebhookError::Status { status, .. } if *status == StatusCode::UNAUTHORIZED
    ));
}

#[tokio::test]
async fn a_critical_agent_going_down_reaches_the_webhook_through_the_dispatcher() {
    let (url, mut received) = serve(vec![Reply::Status(200)]).await;
    let bus = EventBus::new(16);
    let dispatcher = Dispatcher::spawn(
        bus.subscribe(),
        NotificationPolicy::new(PolicyConfig::default().critical(["gpt"])),
        vec![Arc::new(webhook(WebhookConfig::new(&url).unwrap()))],
        &DispatcherConfig::default().timeout(Duration::from_secs(5)),
    );

    // Not critical: the policy keeps it quiet.
    bus.emit(Event::AgentUnhealthy {
        agent: Arc::from("small-model"),
        reason: "consecutive_failures",
    });
    bus.emit(Event::AgentUnhealthy {
        agent: Arc::from("gpt"),
        reason: "consecutive_failures",
    });

    let request = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("the webhook is called within 5 s")
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(json["kind"], NotificationKind::Alert.as_str());
    assert_eq!(json["subject"], "gpt");
    assert_eq!(json["title"], "agent `gpt` is down");
    dispatcher.abort();
    assert!(
        received.try_recv().is_err(),
        "the non-critical agent did not page"
    );
}
