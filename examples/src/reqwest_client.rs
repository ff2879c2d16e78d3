//! `reqwest::Client` under the layers, with steadfast-http's reqwest pieces and no bridge code.
//!
//! ```text
//! BufferRequestLayer > [FallbackLayer] > backoff_retry > circuit_breaker > timeout > ReqwestAgent(reqwest::Client)
//! ```
//!
//! The stack takes `reqwest::Request`s, built with the client's own builder.
//! [`BufferRequestLayer`] makes each one replayable (its body copied once into memory; a
//! streaming body is refused as a caller fault), so the retry layer can send it again;
//! [`ReqwestAgent`] sends each attempt with the client and reads the body of an error answer
//! (at most 64 KiB) so [`HttpClassifier`] can tell a 429 that asks for a wait from one that says
//! the quota is gone, or a prompt that is too long from a bad request. The answer is a plain
//! `reqwest::Response`, its body whole.
//!
//! The server ([`MockLlm`]) answers: a 503 then a completion; a 429 saying the quota is
//! exhausted (an agent fault: not retried); a hang then a completion. A fourth request goes to a
//! port nothing listens on: connection refused, retried, then given up. A fifth is too long for
//! the primary (`400 context_length_exceeded`): the same stack with a [`FallbackLayer`] sends it
//! to a bigger model on another host, rewritten for it by [`Rebase`] (its base URL, its key).
//!
//! ```text
//! cargo run -p steadfast-examples --example reqwest_client
//! ```

use std::time::Duration;

use steadfast::fallback::{Alternative, FallbackLayer};
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::reqwest::{ReplayableRequest, ReqwestAgent};
use steadfast_http::{BufferRequestLayer, HttpClassifier, Rebase, reason};
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt};

use crate::mock_llm::{MockLlm, Reply};

/// The primary server's script.
pub const SCRIPT: [Reply; 6] = [
    // 1: overloaded, then answered
    Reply::Unavailable,
    Reply::Complete,
    // 2: the account's quota is gone: waiting will not help
    Reply::QuotaExhausted,
    // 3: hangs past the timeout, then answered
    Reply::Hang,
    Reply::Complete,
    // 5: too long for this model
    Reply::ContextTooLong,
];

/// The per-attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);

/// The largest request body the stack buffers for retries.
pub const MAX_BODY: usize = 1 << 20;

/// One request through the stack.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What the request meets.
    pub label: &'static str,
    /// The final HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The final error, when there was none.
    pub error: Option<String>,
    /// Whether a `reqwest::Error` saying "connect" is in the error's chain.
    pub connect_error: bool,
    /// Attempts the retry layer made.
    pub attempts: u32,
    /// Time from sending to the final answer or error.
    pub elapsed: Duration,
    /// The answer's body.
    pub body: String,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Every request, in order.
    pub exchanges: Vec<Exchange>,
    /// Requests the primary server received.
    pub server_hits: usize,
    /// Requests the bigger model's server received.
    pub big_model_hits: usize,
}

/// The fallback to a bigger model: another host, another key, its own breaker; only for
/// prompts too long for the primary.
fn bigger_model(
    registry: &Registry,
    primary: &Agent<HttpClassifier>,
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> Result<FallbackLayer<ReplayableRequest, reqwest::Response, HttpClassifier>, BoxError> {
    let big = registry
        .agent("big-model")
        .classifier(HttpClassifier::llm());
    let service = ServiceBuilder::new()
        .circuit_breaker(CircuitBreakerLayer::new(&big, BreakerConfig::default()))
        .timeout(Duration::from_secs(2))
        .service(
            Rebase::builder(&format!("http://{addr}"))
                .bearer_token("big-model-key")
                .build()?
                .layer(ReqwestAgent::new(client.clone())),
        );
    Ok(FallbackLayer::new(primary).then_alternative(
        Alternative::new(&big, service).handles_caller_fault(|outcome| {
            outcome.reason() == Some(reason::CONTEXT_LENGTH_EXCEEDED)
        }),
    ))
}

/// Runs the example (about 1 s).
pub async fn run() -> Result<Summary, BoxError> {
    let server = MockLlm::start(SCRIPT.to_vec()).await?;
    let big_model = MockLlm::start(vec![Reply::Complete]).await?;
    // A port that was free a moment ago: nothing listens on it.
    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };

    // Only 127.0.0.1 is called: a proxy from the environment must not get in the way.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(100))
        .deadline(Duration::from_secs(3))
        .build()?;
    // One agent, named once with its classifier: prompts are POSTs that are safe to repeat.
    let registry = Registry::new();
    let llm_api = registry.agent("llm-api").classifier(HttpClassifier::llm());
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(MAX_BODY))
        .backoff_retry(BackoffRetryLayer::new(&llm_api, retry.clone()).seed(3))
        .circuit_breaker(CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()))
        .timeout(ATTEMPT_TIMEOUT)
        .service(ReqwestAgent::new(client.clone()));

    let with_fallback = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(MAX_BODY))
        .fallback(bigger_model(
            &registry,
            &llm_api,
            &client,
            big_model.addr(),
        )?)
        .backoff_retry(BackoffRetryLayer::new(&llm_api, retry).seed(4))
        .circuit_breaker(CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()))
        .timeout(ATTEMPT_TIMEOUT)
        .service(ReqwestAgent::new(client.clone()));

    let requests = [
        ("503, then answers", server.url(), false),
        ("429 insufficient_quota", server.url(), false),
        ("hangs past the timeout, then answers", server.url(), false),
        (
            "connection refused",
            format!("http://{refused}/v1/chat/completions"),
            false,
        ),
        ("too long: served by the bigger model", server.url(), true),
    ];
    let mut exchanges = Vec::with_capacity(requests.len());
    for (index, (label, url, fallback)) in requests.into_iter().enumerate() {
        let request = client
            .post(url)
            .bearer_auth("sk-primary-key")
            .header("content-type", "application/json")
            .body(format!("prompt {}", index + 1))
            .build()?;
        let started = Instant::now();
        let call = async {
            if fallback {
                with_fallback.clone().oneshot(request).await
            } else {
                stack.clone().oneshot(request).await
            }
        };
        let (result, attempts) = count_attempts(call).await;
        let elapsed = started.elapsed();
        let attempts = attempts.unwrap_or(1);
        exchanges.push(match result {
            Ok(response) => Exchange {
                label,
                status: Some(response.status().as_u16()),
                error: None,
                connect_error: false,
                attempts,
                elapsed,
                body: response.text().await?,
            },
            Err(error) => Exchange {
                label,
                status: None,
                connect_error: steadfast::error::find::<reqwest::Error>(error.as_ref())
                    .is_some_and(reqwest::Error::is_connect),
                error: Some(error.to_string()),
                attempts,
                elapsed,
                body: String::new(),
            },
        });
    }
    Ok(Summary {
        exchanges,
        server_hits: server.hits(),
        big_model_hits: big_model.hits(),
    })
}
