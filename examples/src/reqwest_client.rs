//! `reqwest::Client` as a tower `Service` under the layers.
//!
//! `reqwest::Client` implements `Service<reqwest::Request>`, but `reqwest::Request` is not
//! `Clone` (only `try_clone()`, which fails for streaming bodies), and a retry layer must keep
//! a copy of the request to send it again. [`ReqwestAgent`] bridges the two: the stack carries
//! an `http::Request<BufferedBody>` (always cloneable), and each attempt turns its copy into a
//! `reqwest::Request` and calls the client through its `Service` impl. The answer comes back as
//! an `http::Response<Bytes>` with its body read, so [`HttpClassifier`] can tell a 429 that
//! asks for a wait from one that says the quota is gone.
//!
//! The server ([`MockLlm`]) answers: a 503 then a completion; a 429 saying the quota is
//! exhausted (an agent fault: not retried); a hang then a completion. A last request goes to a
//! port nothing listens on: connection refused, retried, then given up.
//!
//! ```text
//! cargo run -p steadfast-examples --example reqwest_client
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::{BufferedBody, HttpClassifier};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::mock_llm::{MockLlm, Reply};

/// The server's script.
pub const SCRIPT: [Reply; 5] = [
    // 1: overloaded, then answered
    Reply::Unavailable,
    Reply::Complete,
    // 2: the account's quota is gone: waiting will not help
    Reply::QuotaExhausted,
    // 3: hangs past the timeout, then answered
    Reply::Hang,
    Reply::Complete,
];

/// The per-attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(200);

/// A `reqwest::Client` as a `Service<http::Request<BufferedBody>>`: each call rebuilds a
/// `reqwest::Request` from the (cloneable) http request, so retries can resend it.
#[derive(Clone, Debug, Default)]
pub struct ReqwestAgent {
    client: reqwest::Client,
}

impl ReqwestAgent {
    /// Sends through `client` (share one client: it holds the connection pool).
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestAgent { client }
    }
}

impl Service<Request<BufferedBody>> for ReqwestAgent {
    type Response = http::Response<Bytes>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<reqwest::Request>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, request: Request<BufferedBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.bytes().clone());
        let converted = reqwest::Request::try_from(request);
        let mut client = self.client.clone();
        Box::pin(async move {
            let response = client.call(converted?).await?;
            let status = response.status();
            let version = response.version();
            let headers = response.headers().clone();
            let mut answer = http::Response::new(response.bytes().await?);
            *answer.status_mut() = status;
            *answer.version_mut() = version;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

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
    /// Requests the server received.
    pub server_hits: usize,
}

/// Runs the example (about 1 s).
pub async fn run() -> Result<Summary, BoxError> {
    let server = MockLlm::start(SCRIPT.to_vec()).await?;
    // A port that was free a moment ago: nothing listens on it.
    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };

    let client = reqwest::Client::builder().no_proxy().build()?;
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(100))
        .deadline(Duration::from_secs(3))
        .build()?;
    // One agent, named once with its classifier: prompts are POSTs that are safe to repeat.
    let llm_api = Agent::new("llm-api").classifier(HttpClassifier::llm());
    // The fallback, dead-letter and degrade layers go above `backoff_retry` (see in_process).
    let stack = ServiceBuilder::new()
        .backoff_retry(BackoffRetryLayer::new(&llm_api, retry).seed(3))
        .circuit_breaker(CircuitBreakerLayer::new(&llm_api, BreakerConfig::default()))
        .timeout(ATTEMPT_TIMEOUT)
        .service(ReqwestAgent::new(client));

    let requests = [
        ("503, then answers", server.url()),
        ("429 insufficient_quota", server.url()),
        ("hangs past the timeout, then answers", server.url()),
        (
            "connection refused",
            format!("http://{refused}/v1/chat/completions"),
        ),
    ];
    let mut exchanges = Vec::with_capacity(requests.len());
    for (index, (label, url)) in requests.into_iter().enumerate() {
        let request = Request::post(url)
            .header("content-type", "application/json")
            .body(BufferedBody::from(format!("prompt {}", index + 1)))?;
        let started = Instant::now();
        let (result, attempts) = count_attempts(stack.clone().oneshot(request)).await;
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
                body: String::from_utf8_lossy(response.body()).into_owned(),
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
    })
}
