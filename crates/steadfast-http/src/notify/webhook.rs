//! [`WebhookNotifier`]: POSTs notifications to an HTTP or HTTPS endpoint (reqwest with
//! rustls), through steadfast's own retry layer.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::uri::Scheme;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use steadfast::error::find;
use steadfast::notify::{Notification, NotificationKind, Notifier, NotifyFuture};
use steadfast::retry::{BackoffRetry, BackoffRetryLayer, RetryConfig, count_attempts};
use steadfast::{Agent, BoxError};
use tower::timeout::error::Elapsed;
use tower::timeout::{Timeout, TimeoutLayer};
use tower::{Layer, Service, ServiceExt};

use crate::{BufferedBody, HttpClassifier};

/// How much of a response body is read (and quoted in a [`WebhookError::Status`]).
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// How much of a failed response's body the error message quotes.
const QUOTED_BODY: usize = 200;

/// What the POST body looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The [`Notification`] as JSON (`{"kind", "subject", "title", "body", "suppressed",
    /// "event": {"event": "<name>", ...}}`), for your own receivers and alert routers.
    #[default]
    Json,
    /// `{"text": "<one-line summary>"}`: what Slack incoming webhooks, Mattermost, Rocket.Chat
    /// and Microsoft Teams' Slack-compatible endpoints accept.
    Slack,
}

/// Where and how a [`WebhookNotifier`] posts. Built with [`WebhookConfig::new`]; every value
/// it holds has been validated.
///
/// | setting | default | why |
/// |---|---|---|
/// | `format` | [`WebhookFormat::Json`] | |
/// | `headers` | none | e.g. `authorization` for your receiver; values are marked sensitive |
/// | `timeout` | 2 s | per attempt, connect included |
/// | `ca_cert_pem` | the platform's roots | add a private CA's certificate for an internal receiver |
/// | `retry` | 2 retries, 250 ms base, 8 s deadline | fits the dispatcher's default 10 s timeout |
/// | `name` | `webhook` | the `notifier` label in logs and metrics |
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    url: Uri,
    shown_url: Arc<str>,
    format: WebhookFormat,
    headers: HeaderMap,
    timeout: Duration,
    retry: RetryConfig,
    name: Arc<str>,
    extra_roots: ExtraRoots,
}

/// CA certificates trusted beside the platform's roots.
#[derive(Clone, Default)]
struct ExtraRoots(Vec<reqwest::Certificate>);

impl fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} extra CA certificate(s)", self.0.len())
    }
}

impl WebhookConfig {
    /// A configuration posting to `url`: `https://` (TLS by rustls, certificates checked
    /// against the platform's roots and any [`ca_cert_pem`](Self::ca_cert_pem)), or plain
    /// `http://` for a receiver inside the cluster.
    pub fn new(url: &str) -> Result<WebhookConfig, WebhookError> {
        let invalid = |reason: &'static str| WebhookError::InvalidUrl {
            url: shown(url),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("not a URL: expected `https://host[:port]/path`"))?;
        let scheme = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => "http",
            Some(scheme) if *scheme == Scheme::HTTPS => "https",
            _ => return Err(invalid("the scheme must be `https://` or `http://`")),
        };
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            return Err(invalid("no host: expected `https://host[:port]/path`"));
        };
        let shown_url = format!(
            "{scheme}://{authority}{}",
            if uri.path().len() > 1 { "/…" } else { "/" }
        );
        let retry = RetryConfig::builder()
            .max_retries(2)
            .base(Duration::from_millis(250))
            .max_backoff(Duration::from_secs(2))
            .deadline(Duration::from_secs(8))
            .build()
            .expect("the default webhook retry configuration is valid");
        Ok(WebhookConfig {
            url: uri,
            shown_url: shown_url.into(),
            format: WebhookFormat::Json,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(2),
            retry,
            name: Arc::from("webhook"),
            extra_roots: ExtraRoots::default(),
        })
    }

    /// Also trusts the CA certificate(s) in `pem` (PEM, one or more), beside the platform's
    /// roots: for a receiver behind a private CA.
    pub fn ca_cert_pem(mut self, pem: &[u8]) -> Result<Self, WebhookError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or(WebhookError::InvalidCaCert)?;
        self.extra_roots.0.extend(certs);
        Ok(self)
    }

    /// Sets the body format.
    #[must_use]
    pub fn format(mut self, format: WebhookFormat) -> Self {
        self.format = format;
        self
    }

    /// Adds a header sent with every POST, e.g. `("authorization", "Bearer …")`. The value is
    /// marked sensitive, so it never shows in `Debug` output.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, WebhookError> {
        let invalid = || WebhookError::InvalidHeader {
            name: name.to_owned(),
        };
        let name = HeaderName::try_from(name).map_err(|_| invalid())?;
        let mut value = HeaderValue::try_from(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
    }

    /// Sets the time each attempt gets, connecting included (at least 1 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how failed POSTs are retried: 5xx, 408, 429 (honouring `Retry-After`), refused
    /// connections and timeouts are; other 4xx are not. Keep attempts × timeout plus backoff
    /// (or the retry deadline) under the dispatcher's timeout.
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the notifier's name (the `notifier` label in logs and metrics).
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// The URL as errors and logs show it: scheme and host only, because webhook paths
    /// often carry a token (Slack's do).
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }
}

/// What went wrong posting a notification. Messages name the URL (scheme and host only: paths
/// often carry tokens).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The configured URL is unusable.
    #[error("invalid webhook URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL (scheme and host).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configured header name or value is not valid HTTP.
    #[error("invalid webhook header `{name}`: names must be HTTP tokens and values visible ASCII")]
    InvalidHeader {
        /// The header name as given.
        name: String,
    },
    /// A CA certificate given to [`WebhookConfig::ca_cert_pem`] is not PEM.
    #[error(
        "invalid CA certificate for the webhook: expected one or more PEM `CERTIFICATE` blocks"
    )]
    InvalidCaCert,
    /// The HTTP client (its TLS configuration) could not be built.
    #[error("could not build the webhook's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The receiver answered with a status other than 2xx (after any retries).
    #[error("webhook `{url}` answered {status} after {attempts} attempt(s): {body}")]
    Status {
        /// The URL (scheme and host).
        url: Arc<str>,
        /// The last status.
        status: StatusCode,
        /// Attempts made.
        attempts: u32,
        /// The start of the response body, for the receiver's own explanation.
        body: String,
    },
    /// No attempt got an answer within the timeout.
    #[error(
        "webhook `{url}` did not answer within {timeout:?} ({attempts} attempt(s)): check the \
         receiver, or raise the timeout"
    )]
    Timeout {
        /// The URL (scheme and host).
        url: Arc<str>,
        /// The per-attempt timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The POST could not be made (connection refused, reset, DNS, ...), even after retries.
    #[error("could not POST to webhook `{url}` ({attempts} attempt(s)): {cause}")]
    Request {
        /// The URL (scheme and host).
        url: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// The innermost cause, for the message.
        cause: String,
        /// The error, with its chain.
        #[source]
        source: BoxError,
    },
    /// The notification could not be encoded as JSON.
    #[error("could not encode the notification as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Posts [`Notification`]s to a webhook over HTTPS or HTTP (reqwest, rustls), as JSON or as a
/// Slack-compatible `{"text": ...}`, with a per-attempt timeout and retries of transient
/// failures by steadfast's own [`BackoffRetryLayer`] and [`HttpClassifier`].
///
/// ```
/// use std::sync::Arc;
/// use steadfast_notify::{Dispatcher, DispatcherConfig, NotificationPolicy, PolicyConfig};
/// use steadfast::Registry;
/// use steadfast_http::notify::{WebhookConfig, WebhookFormat, WebhookNotifier};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast::BoxError> {
/// let slack = WebhookNotifier::new(
///     WebhookConfig::new("https://hooks.slack.com/services/T000/B000/XXXX")?
///         .format(WebhookFormat::Slack)
///         .name("slack-oncall"),
/// )?;
/// let registry = Registry::new();
/// let dispatcher = Dispatcher::spawn(
///     registry.events().subscribe(),
///     NotificationPolicy::new(PolicyConfig::default().critical(["gpt-primary"])),
///     vec![Arc::new(slack)],
///     &DispatcherConfig::default(),
/// );
/// # dispatcher.abort();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WebhookNotifier {
    config: Arc<WebhookConfig>,
    stack: BackoffRetry<Timeout<Post>, HttpClassifier>,
}

impl WebhookNotifier {
    /// A notifier posting as `config` says. Needs no runtime until the first notification.
    /// Fails only if the TLS client cannot be set up.
    pub fn new(config: WebhookConfig) -> Result<WebhookNotifier, WebhookError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .tcp_nodelay(true)
            // A webhook URL often carries a token: a redirect must not take it elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        for cert in &config.extra_roots.0 {
            builder = builder.add_root_certificate(cert.clone());
        }
        let client = builder.build().map_err(WebhookError::Client)?;
        // A repeated notification is a duplicate message, not a wrong one: retry every POST.
        let agent = Agent::new(config.name.clone())
            .classifier(HttpClassifier::new().all_methods_idempotent());
        let stack = BackoffRetryLayer::new(&agent, config.retry.clone())
            .layer(TimeoutLayer::new(config.timeout).layer(Post { client }));
        Ok(WebhookNotifier {
            config: Arc::new(config),
            stack,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Posts `notification` and waits for a 2xx answer.
    pub async fn send(&self, notification: &Notification) -> Result<(), WebhookError> {
        let request = self.request(notification)?;
        let (result, attempts) = count_attempts(self.stack.clone().oneshot(request)).await;
        let attempts = attempts.unwrap_or(1);
        let url = self.config.shown_url.clone();
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(WebhookError::Status {
                url,
                status: response.status(),
                attempts,
                body: quote(response.body()),
            }),
            Err(error) if find::<Elapsed>(&*error).is_some() => Err(WebhookError::Timeout {
                url,
                timeout: self.config.timeout,
                attempts,
            }),
            Err(error) => Err(WebhookError::Request {
                url,
                attempts,
                cause: innermost(&*error),
                source: error,
            }),
        }
    }

    fn request(&self, notification: &Notification) -> Result<Request<BufferedBody>, WebhookError> {
        let body = match self.config.format {
            WebhookFormat::Json => serde_json::to_vec(notification),
            WebhookFormat::Slack => {
                serde_json::to_vec(&serde_json::json!({ "text": slack_text(notification) }))
            }
        }
        .map_err(WebhookError::Encode)?;
        let mut request = Request::post(self.config.url.clone())
            .body(BufferedBody::from(body))
            .expect("a validated URI and static headers make a valid request");
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("steadfast/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &self.config.headers {
            headers.append(name, value.clone());
        }
        Ok(request)
    }
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        Box::pin(async move { self.send(notification).await.map_err(Into::into) })
    }
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The one-line text of a Slack-compatible message: `🚨 [alert] agent `gpt` is down: ...`.
pub fn slack_text(notification: &Notification) -> String {
    let icon = match notification.kind {
        NotificationKind::Alert => ":rotating_light:",
        NotificationKind::Recovery => ":white_check_mark:",
        _ => ":warning:",
    };
    let mut text = format!(
        "{icon} [{}] {}: {}",
        notification.kind.as_str(),
        notification.title,
        notification.body
    );
    if notification.suppressed > 0 {
        let _ = write!(
            text,
            " ({} similar events folded in)",
            notification.suppressed
        );
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One POST: the response with its body read (under a limit), so the timeout covers the whole
/// exchange and the classifier can read a 429's body.
#[derive(Clone, Debug)]
struct Post {
    client: reqwest::Client,
}

impl Service<Request<BufferedBody>> for Post {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pooled client is always ready; connecting happens in the response future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<BufferedBody>) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(|body| body.bytes().clone()))?;
            let mut response = client.execute(request).await?;
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_RESPONSE_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() == MAX_RESPONSE_BODY {
                    break;
                }
            }
            let mut answer = Response::new(Bytes::from(body));
            *answer.status_mut() = response.status();
            *answer.headers_mut() = std::mem::take(response.headers_mut());
            Ok(answer)
        })
    }
}

/// `url` with its path hidden, for an error about an unparseable URL.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "<not a URL>".to_owned(),
    }
}

/// The start of a response body, as text.
fn quote(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED_BODY)]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        text
    }
}

/// The innermost error's message: "Connection refused (os error 111)" says more than
/// "client error (Connect)".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}
