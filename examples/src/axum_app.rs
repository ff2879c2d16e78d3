//! An axum app whose route is served through the stack, with the status routes merged in.
//!
//! The pattern: the handler is the agent (here an in-process summarizer; in an app, the code
//! that calls a model), and the stack goes around it with `Router::route_layer`, outermost an
//! [`ErrorResponseLayer`] that turns the layers' errors into HTTP answers (axum only takes
//! services whose error is `Infallible`):
//!
//! ```text
//! ErrorResponseLayer > BufferRequestLayer > backoff_retry > circuit_breaker > timeout > chaos > POST /summarize
//! ```
//!
//! `BufferRequestLayer` reads each request body into memory (at most 64 KiB) so the retry
//! layer can send it again; every layer is for the agent `summarizer`, named once. axum clones
//! the stack per request; clones share the breaker, the retry budget and the registry entry.
//! The layers never park `poll_ready` (a breaker refuses in `call`, with `CircuitOpen`), which
//! is what axum expects of the services it holds.
//!
//! The run: three prompts are answered; then the agent goes down (a chaos outage), the app
//! answers `502` while the retries fail (`RetriesExhausted`), the breaker opens and the app
//! answers `503` with `Retry-After` at once (`CircuitOpen`), naming the agent in
//! `x-steadfast-agent`. `GET /status` shows the breaker open and `GET /health` answers `503`
//! (the only agent is down). `GET /metrics` serves the same counters in Prometheus format:
//! every layer reports through the agent's one event path, so the two agree.
//!
//! ```text
//! cargo run -p steadfast-examples --example axum_app
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use steadfast::chaos::{ChaosConfig, ChaosHandle, ChaosLayer};
use steadfast::prelude::*;
use steadfast_http::status::StatusRoutes;
use steadfast_http::{AGENT_HEADER, BufferRequestLayer, ErrorResponseLayer, HttpClassifier};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// How long the breaker stays open once it trips.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// The largest prompt the app buffers (for retries); a bigger one is answered `413`.
pub const MAX_PROMPT: usize = 64 * 1024;

/// The process's Prometheus recorder, installed on first use. A `metrics` recorder is global:
/// install it once, before building the layers (they register their per-call counters when
/// built). Series are per process, so `/metrics` agrees with `/status` as long as one registry
/// per process names each agent, as in an app; a second [`run`] in the same process adds to
/// the same series.
pub fn prometheus() -> Result<PrometheusHandle, BoxError> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            steadfast_http::status::prometheus_builder()
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|error| format!("cannot install the Prometheus recorder: {error}"))
        })
        .clone()
        .map_err(BoxError::from)
}

/// The app: `POST /summarize` served through the stack (see the [module docs](self)), plus the
/// status routes (`/health`, `/status`, `/status/ui`, `/metrics`, ...). Returns the chaos
/// layer's switch too, to take the agent down.
pub fn app(
    registry: &Registry,
    metrics: PrometheusHandle,
) -> Result<(Router, ChaosHandle), BoxError> {
    // Summarising is safe to repeat: the LLM classifier lets the retry layer resend a POST.
    let summarizer = registry
        .agent("summarizer")
        .classifier(HttpClassifier::llm());
    let chaos = ChaosLayer::new(&summarizer, &ChaosConfig::default());
    let switch = chaos.handle();
    // The fallback, dead-letter and degrade layers go between the buffer and the retry layer
    // (see in_process): a backup agent or a cached answer would then replace the 502/503.
    let stack = ServiceBuilder::new()
        .layer(ErrorResponseLayer::new().agent(&summarizer))
        .layer(BufferRequestLayer::new(MAX_PROMPT))
        .backoff_retry(BackoffRetryLayer::new(
            &summarizer,
            RetryConfig::builder()
                .max_retries(1)
                .base(Duration::from_millis(20))
                .deadline(Duration::from_secs(2))
                .build()?,
        ))
        .circuit_breaker(CircuitBreakerLayer::new(
            &summarizer,
            BreakerConfig::builder()
                .consecutive_failures(3)
                .initial_open_duration(OPEN_FOR)
                .build()?,
        ))
        .timeout(Duration::from_millis(500))
        .layer(chaos);
    let router = Router::new()
        .route("/summarize", post(summarize))
        .route_layer(stack)
        .merge(
            StatusRoutes::new(registry.clone())
                .prometheus(metrics)
                .router(),
        );
    Ok((router, switch))
}

/// The agent: counts the prompt's words.
async fn summarize(prompt: String) -> String {
    format!("summary: {} words", prompt.split_whitespace().count())
}

/// One request the example made to its own server.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// Method and path.
    pub request: String,
    /// The status the app answered.
    pub status: u16,
    /// Its `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// Its `x-steadfast-agent`, if any: the agent an error answer is about.
    pub agent: Option<String>,
    /// Its body.
    pub body: String,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Where the app listened.
    pub url: String,
    /// Every `POST /summarize`, in order.
    pub prompts: Vec<Exchange>,
    /// `GET /status` at the end.
    pub status: serde_json::Value,
    /// `GET /health` at the end.
    pub health: Exchange,
    /// `GET /metrics` at the end (Prometheus text format).
    pub metrics: String,
}

/// Runs the example (well under a second): starts the app on `127.0.0.1:0`, calls it, stops it.
pub async fn run() -> Result<Summary, BoxError> {
    let metrics = prometheus()?;
    let registry = Registry::new();
    let (app, switch) = app(&registry, metrics)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut prompts = Vec::new();
    for index in 0..6 {
        if index == 3 {
            switch.start_outage(Duration::from_secs(60));
        }
        let prompt = format!("prompt {index}: what did the board decide about the merger?");
        prompts.push(send(&client, http::Method::POST, &url, "/summarize", prompt).await?);
    }
    let status = send(&client, http::Method::GET, &url, "/status", String::new()).await?;
    let health = send(&client, http::Method::GET, &url, "/health", String::new()).await?;
    let metrics = send(&client, http::Method::GET, &url, "/metrics", String::new()).await?;

    // Idle pooled connections would hold the graceful shutdown open: drop the client first.
    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server).await???;
    Ok(Summary {
        url,
        prompts,
        status: serde_json::from_str(&status.body)?,
        health,
        metrics: metrics.body,
    })
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: http::Method,
    url: &str,
    path: &str,
    body: String,
) -> Result<Exchange, BoxError> {
    let request = http::Request::builder()
        .method(method.clone())
        .uri(format!("{url}{path}"))
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let agent = response
        .headers()
        .get(AGENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Exchange {
        request: format!("{method} {path}"),
        status,
        retry_after,
        agent,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
