//! A hyper client stack against a local fake LLM API.
//!
//! The server ([`MockLlm`]) answers, in order: a completion; a 429 asking for 250 ms; a 503; a
//! hang; and three 503s in a row (an outage). The client is hyper-util's pooled client sending
//! [`BufferedBody`] requests (cloneable, so they can be retried) under
//! `BackoffRetryLayer > CircuitBreakerLayer > timeout`, all for one agent, `llm-api`, named once
//! with its classifier ([`HttpClassifier::llm`]: a prompt is a `POST` that is safe to repeat):
//!
//! - the 429 is waited out exactly as the server asked, then retried;
//! - the 503 is retried after a short backoff;
//! - the hang hits the per-attempt timeout and is retried;
//! - the outage spends the retries, the last 503 is returned, and the breaker opens;
//! - the next request fails fast with `CircuitOpen` without reaching the server;
//! - after the open time, a probe succeeds and the breaker closes.
//!
//! ```text
//! cargo run -p steadfast-examples --example hyper_agent
//! ```

use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::{BufferedBody, HttpClassifier};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

use crate::mock_llm::{MockLlm, Reply};

/// The server's script: what each request it receives gets.
pub const SCRIPT: [Reply; 11] = [
    // 1: answered
    Reply::Complete,
    // 2: rate-limited, then answered
    Reply::RateLimited {
        retry_after: Duration::from_millis(250),
    },
    Reply::Complete,
    // 3: overloaded, then answered
    Reply::Unavailable,
    Reply::Complete,
    // 4: hangs past the timeout, then answered
    Reply::Hang,
    Reply::Complete,
    // 5: an outage: every attempt fails and the breaker opens
    Reply::Unavailable,
    Reply::Unavailable,
    Reply::Unavailable,
    // 6 fails fast (circuit open, no request sent); 7 is the probe after the open time
    Reply::Complete,
];

/// The per-attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the breaker stays open after it trips.
pub const OPEN_FOR: Duration = Duration::from_millis(300);

/// One request through the stack.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// What the request meets on the server.
    pub label: &'static str,
    /// The final HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The final error, when there was none.
    pub error: Option<String>,
    /// Whether the final error was the breaker refusing the call.
    pub circuit_open: bool,
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
    /// Requests the server received (attempts that reached it).
    pub server_hits: usize,
    /// The breaker's state before the last request (after the outage).
    pub state_after_outage: BreakerState,
    /// The breaker's state at the end.
    pub final_state: BreakerState,
}

/// Runs the example (about 1.5 s): starts the fake API, sends seven requests, reports.
pub async fn run() -> Result<Summary, BoxError> {
    let server = MockLlm::start(SCRIPT.to_vec()).await?;
    let registry = Registry::new();
    let llm_api = registry.agent("llm-api").classifier(HttpClassifier::llm());

    let breaker = CircuitBreakerLayer::new(
        &llm_api,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .initial_open_duration(OPEN_FOR)
            .half_open_probes(1)
            .build()?,
    );
    let breaker_handle = breaker.handle();

    let retry = BackoffRetryLayer::new(
        &llm_api,
        RetryConfig::builder()
            .max_retries(2)
            .base(Duration::from_millis(50))
            .max_backoff(Duration::from_millis(200))
            .deadline(Duration::from_secs(3))
            .build()?,
    )
    .seed(7);

    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    // The fallback, dead-letter and degrade layers go above `backoff_retry` (see in_process).
    let stack = ServiceBuilder::new()
        .backoff_retry(retry)
        .circuit_breaker(breaker)
        .timeout(ATTEMPT_TIMEOUT)
        .service(client);

    let labels = [
        "answers",
        "429 Retry-After 250ms, then answers",
        "503, then answers",
        "hangs past the timeout, then answers",
        "outage: 503 x3",
        "while the circuit is open",
        "probe after the open time",
    ];
    let mut exchanges = Vec::with_capacity(labels.len());
    let mut state_after_outage = breaker_handle.state();
    for (index, label) in labels.into_iter().enumerate() {
        if index == labels.len() - 1 {
            state_after_outage = breaker_handle.state();
            tokio::time::sleep(OPEN_FOR + Duration::from_millis(50)).await;
        }
        let request = Request::post(server.url())
            .header("content-type", "application/json")
            .body(BufferedBody::from(format!("prompt {}", index + 1)))?;
        let started = Instant::now();
        let (result, attempts) = count_attempts(stack.clone().oneshot(request)).await;
        let elapsed = started.elapsed();
        let attempts = attempts.unwrap_or(1);
        let exchange = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                Exchange {
                    label,
                    status: Some(status),
                    error: None,
                    circuit_open: false,
                    attempts,
                    elapsed,
                    body: String::from_utf8_lossy(&body).into_owned(),
                }
            }
            Err(error) => Exchange {
                label,
                status: None,
                circuit_open: steadfast::error::find::<CircuitOpen>(error.as_ref()).is_some(),
                error: Some(error.to_string()),
                attempts,
                elapsed,
                body: String::new(),
            },
        };
        exchanges.push(exchange);
    }

    Ok(Summary {
        exchanges,
        server_hits: server.hits(),
        state_after_outage,
        final_state: breaker_handle.state(),
    })
}
