//! The stack as one reqwest-middleware `.with(...)`: [`Resilience`] from steadfast-http.
//!
//! A `ClientWithMiddleware` user adds retry > circuit breaker > timeout (and a fallback, when
//! there is one) with one middleware; the rest of the chain (later middlewares and the client)
//! is the agent, run once per attempt:
//!
//! ```no_run
//! # async fn demo() -> Result<(), steadfast::BoxError> {
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast_http::HttpClassifier;
//! use steadfast_http::reqwest::Resilience;
//!
//! let registry = Registry::new();
//! let llm_api = registry.agent("llm-api").classifier(HttpClassifier::llm());
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(
//!         Resilience::new()
//!             .backoff_retry(BackoffRetryLayer::new(&llm_api, RetryConfig::default()))
//!             .circuit_breaker(CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()))
//!             .timeout(Duration::from_secs(30)),
//!     )
//!     .build();
//! let answer = client.post("http://127.0.0.1:8080/v1/chat/completions").body("hi").send().await?;
//! # let _ = answer; Ok(()) }
//! ```
//!
//! Errors come back as `reqwest_middleware::Error`: the chain's own as it was, the layers'
//! (`RetriesExhausted`, `CircuitOpen`, a timeout) as `Error::Middleware` wrapping a
//! [`MiddlewareError`], which `steadfast::error::find` sees through.

use std::time::Duration;

use steadfast::prelude::*;
use steadfast_http::HttpClassifier;
use steadfast_http::reqwest::{MiddlewareError, Resilience};

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
    /// Whether the error is the layers' ([`MiddlewareError`]) rather than the chain's own.
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
    let llm_api = Agent::new("llm-api").classifier(HttpClassifier::llm());
    let client =
        reqwest_middleware::ClientBuilder::new(reqwest::Client::builder().no_proxy().build()?)
            .with(
                Resilience::new()
                    .backoff_retry(BackoffRetryLayer::new(&llm_api, retry))
                    .circuit_breaker(CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()))
                    .timeout(Duration::from_millis(500)),
            )
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
                    reqwest_middleware::Error::Middleware(inner) if inner.is::<MiddlewareError>()
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
