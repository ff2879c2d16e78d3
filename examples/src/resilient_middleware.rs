//! The stack as one reqwest-middleware `.with(...)`: [`Resilience`].
//!
//! reqwest-middleware users build a `ClientWithMiddleware`; [`Resilience`] is a
//! `reqwest_middleware::Middleware` that runs the rest of the chain (later middlewares and the
//! client) under `BackoffRetryLayer > CircuitBreakerLayer > timeout`, for an agent whose
//! classifier is [`ReqwestClassifier`] ([`HttpClassifier`]'s rules for `reqwest::Response`s):
//!
//! ```no_run
//! # async fn demo() -> Result<(), steadfast::BoxError> {
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast_examples::resilient_middleware::{ReqwestClassifier, Resilience};
//!
//! let registry = Registry::new();
//! let llm_api = registry.agent("llm-api").classifier(ReqwestClassifier);
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(Resilience::new(
//!         BackoffRetryLayer::new(&llm_api, RetryConfig::default()),
//!         CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()),
//!         Duration::from_secs(30),
//!     ))
//!     .build();
//! let answer = client.post("http://127.0.0.1:8080/v1/chat/completions").body("hi").send().await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! What it takes to fit reqwest-middleware's shape:
//! - a `reqwest::Request` is not `Clone`, so each attempt is rebuilt from a [`Template`]
//!   (method, URL, headers, body bytes). A streaming body cannot be resent: such a request
//!   goes through the breaker and the timeout but is not retried;
//! - each attempt runs the rest of the chain with a copy of the request's extensions, so what
//!   a later middleware writes into them does not come back out;
//! - errors come back as `reqwest_middleware::Error`: the chain's own error as it was, the
//!   layers' errors (`RetriesExhausted`, `CircuitOpen`, a timeout) as `Error::Middleware`
//!   wrapping a [`ResilienceError`], whose `source()` chain holds the rest.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::Extensions;
use reqwest::{Method, Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use steadfast::classify::{Classify, Outcome};
use steadfast::prelude::*;
use steadfast_http::HttpClassifier;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Classifies `reqwest::Response`s by [`HttpClassifier`]'s rules (status, `x-should-retry`,
/// `Retry-After`), and errors by [`steadfast_http::classify_error`]. Like
/// [`HttpClassifier::llm`], it counts every request as safe to repeat (LLM prompts are `POST`s
/// that create nothing), whatever the request type the layers see.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReqwestClassifier;

impl<Req> Classify<Req, Response> for ReqwestClassifier {
    type Memo = ();

    fn note(&self, _request: &Req) {}

    fn classify(&self, (): &(), result: Result<&Response, &BoxError>) -> Outcome {
        match result {
            Ok(response) if response.status().is_success() => Outcome::success(),
            Ok(response) => HttpClassifier::classify_parts(response.status(), response.headers()),
            Err(error) => steadfast_http::classify_error(error.as_ref()),
        }
    }
}

/// Retry > circuit breaker > timeout around the rest of a reqwest-middleware chain.
#[derive(Clone, Debug)]
pub struct Resilience {
    retry: BackoffRetryLayer<ReqwestClassifier>,
    breaker: CircuitBreakerLayer<ReqwestClassifier>,
    timeout: Duration,
}

impl Resilience {
    /// The middleware: `retry` and `breaker` are made for an agent classified by
    /// [`ReqwestClassifier`] (`registry.agent("llm-api").classifier(ReqwestClassifier)`);
    /// `timeout` bounds each attempt.
    pub fn new(
        retry: BackoffRetryLayer<ReqwestClassifier>,
        breaker: CircuitBreakerLayer<ReqwestClassifier>,
        timeout: Duration,
    ) -> Self {
        Resilience {
            retry,
            breaker,
            timeout,
        }
    }
}

/// What a request is rebuilt from for each attempt.
#[derive(Clone, Debug)]
pub struct Template {
    method: Method,
    url: Url,
    headers: http::HeaderMap,
    version: http::Version,
    timeout: Option<Duration>,
    body: Option<Bytes>,
}

impl Template {
    /// The template of `request`, or `None` when its body is a stream (it cannot be resent).
    pub fn of(request: &Request) -> Option<Template> {
        let body = match request.body() {
            None => None,
            Some(body) => Some(Bytes::copy_from_slice(body.as_bytes()?)),
        };
        Some(Template {
            method: request.method().clone(),
            url: request.url().clone(),
            headers: request.headers().clone(),
            version: request.version(),
            timeout: request.timeout().copied(),
            body,
        })
    }

    /// A new request from the template.
    pub fn build(self) -> Request {
        let mut request = Request::new(self.method, self.url);
        *request.headers_mut() = self.headers;
        *request.version_mut() = self.version;
        *request.timeout_mut() = self.timeout;
        *request.body_mut() = self.body.map(reqwest::Body::from);
        request
    }
}

/// An error of the resilience stack (retries exhausted, circuit open, timeout, ...) carried in
/// `reqwest_middleware::Error::Middleware`; the original error is its `source()`.
#[derive(Debug)]
pub struct ResilienceError(BoxError);

impl ResilienceError {
    /// The stack's error.
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Display for ResilienceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for ResilienceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// An attempt's error, as the layers see it: `source()` exposes the `reqwest::Error` (or the
/// middleware's error) that `reqwest_middleware::Error`'s transparent variants hide, so the
/// classifier finds connect errors and timeouts.
#[derive(Debug)]
struct AttemptError(reqwest_middleware::Error);

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for AttemptError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.0 {
            reqwest_middleware::Error::Reqwest(error) => Some(error),
            reqwest_middleware::Error::Middleware(error) => {
                let error: &(dyn StdError + 'static) = error.as_ref();
                Some(error)
            }
        }
    }
}

fn into_middleware_error(error: BoxError) -> reqwest_middleware::Error {
    match error.downcast::<AttemptError>() {
        Ok(attempt) => attempt.0,
        Err(error) => reqwest_middleware::Error::middleware(ResilienceError(error)),
    }
}

#[async_trait::async_trait]
impl Middleware for Resilience {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let snapshot = extensions.clone();
        let attempt = service_fn(move |request: Request| {
            let next = next.clone();
            let mut extensions = snapshot.clone();
            async move {
                next.run(request, &mut extensions)
                    .await
                    .map_err(AttemptError)
            }
        });
        let Some(template) = Template::of(&request) else {
            // A streaming body cannot be resent: breaker and timeout only.
            let stack = ServiceBuilder::new()
                .layer(self.breaker.clone())
                .timeout(self.timeout)
                .service(attempt);
            return stack.oneshot(request).await.map_err(into_middleware_error);
        };
        let stack = ServiceBuilder::new()
            .layer(self.retry.clone())
            .layer(self.breaker.clone())
            .timeout(self.timeout)
            .service(attempt.map_request(Template::build));
        stack.oneshot(template).await.map_err(into_middleware_error)
    }
}

/// The server's script for [`run`].
pub const SCRIPT: [crate::mock_llm::Reply; 4] = [
    crate::mock_llm::Reply::Unavailable,
    crate::mock_llm::Reply::Complete,
    crate::mock_llm::Reply::RateLimited {
        retry_after: Duration::from_millis(200),
    },
    crate::mock_llm::Reply::Complete,
];

/// One request through the `ClientWithMiddleware`.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What the request meets.
    pub label: &'static str,
    /// The final HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The final error, when there was none.
    pub error: Option<String>,
    /// Whether the error is the layers' ([`ResilienceError`]) rather than the chain's own.
    pub resilience_error: bool,
    /// Attempts the retry layer made.
    pub attempts: u32,
    /// Time from sending to the final answer or error.
    pub elapsed: Duration,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Every request, in order.
    pub exchanges: Vec<Exchange>,
    /// Requests the server received.
    pub server_hits: usize,
}

/// Runs the middleware example (about 0.5 s): a `ClientWithMiddleware` with [`Resilience`]
/// against the fake LLM API, then against a port nothing listens on.
pub async fn run() -> Result<Summary, BoxError> {
    let server = crate::mock_llm::MockLlm::start(SCRIPT.to_vec()).await?;
    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(50))
        .deadline(Duration::from_secs(3))
        .build()?;
    let llm_api = Agent::new("llm-api").classifier(ReqwestClassifier);
    let client =
        reqwest_middleware::ClientBuilder::new(reqwest::Client::builder().no_proxy().build()?)
            .with(Resilience::new(
                BackoffRetryLayer::new(&llm_api, retry).seed(5),
                CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()),
                Duration::from_millis(500),
            ))
            .build();

    let requests = [
        ("503, then answers", server.url()),
        ("429 retry-after-ms 200, then answers", server.url()),
        (
            "connection refused",
            format!("http://{refused}/v1/chat/completions"),
        ),
    ];
    let mut exchanges = Vec::with_capacity(requests.len());
    for (index, (label, url)) in requests.into_iter().enumerate() {
        let send = client
            .post(url)
            .body(format!("prompt {}", index + 1))
            .send();
        let started = tokio::time::Instant::now();
        let (result, attempts) = steadfast::retry::count_attempts(send).await;
        let elapsed = started.elapsed();
        let attempts = attempts.unwrap_or(1);
        exchanges.push(match result {
            Ok(response) => Exchange {
                label,
                status: Some(response.status().as_u16()),
                error: None,
                resilience_error: false,
                attempts,
                elapsed,
            },
            Err(error) => Exchange {
                label,
                status: None,
                resilience_error: matches!(
                    &error,
                    reqwest_middleware::Error::Middleware(inner) if inner.is::<ResilienceError>()
                ),
                error: Some(error.to_string()),
                attempts,
                elapsed,
            },
        });
    }
    Ok(Summary {
        exchanges,
        server_hits: server.hits(),
    })
}
