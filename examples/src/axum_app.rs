//! An axum app whose handler calls an agent through the stack, with the status routes merged in.
//!
//! The pattern: build the stack once, keep it in the router's state as a
//! [`BoxCloneSyncService`], and in each request **call a clone of it** with
//! `oneshot(prompt)`: axum's `State` extractor hands every request its own clone (outside a
//! handler, write `agent.clone().oneshot(prompt)`). Clones share the breaker, the retry budget and the
//! registry entry: the breaker stands for the agent, not for one request. The layers never park
//! `poll_ready` (a breaker refuses in `call`, with `CircuitOpen`), so the stack is always ready,
//! which is what axum expects of the services it holds.
//!
//! The run: three prompts are answered; then the agent goes down (a chaos outage), the
//! handler answers `502` while the retries fail, the breaker opens and the handler answers
//! `503` with `Retry-After` at once. `GET /status` shows the breaker open and `GET /health`
//! answers `503` (the only agent is down). `GET /metrics` serves the same counters in
//! Prometheus format: every layer reports through the agent's one event path, so the two agree.
//!
//! ```text
//! cargo run -p steadfast-examples --example axum_app
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use steadfast::chaos::{ChaosConfig, ChaosLayer};
use steadfast::prelude::*;
use steadfast_http::status::StatusRoutes;
use tokio::net::TcpListener;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The agent as the app holds it: any stack, type-erased, cheap to clone.
pub type AgentService = BoxCloneSyncService<String, String, BoxError>;

/// How long the breaker stays open once it trips.
pub const OPEN_FOR: Duration = Duration::from_secs(5);

/// The process's Prometheus recorder, installed on first use. A `metrics` recorder is global:
/// install it once, before building the layers (they register their per-call counters when
/// built). Series are per process, so `/metrics` agrees with `/status` as long as one registry
/// per process names each agent, as in an app; a second [`run`] in the same process adds to
/// the same series.
pub fn prometheus() -> Result<PrometheusHandle, BoxError> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|error| format!("cannot install the Prometheus recorder: {error}"))
        })
        .clone()
        .map_err(BoxError::from)
}

/// Builds the agent stack: retry > breaker > timeout > chaos > the in-process summarizer, every
/// layer for the agent `summarizer` of `registry`, named once. Returns the chaos layer's switch
/// too, to take the agent down.
pub fn agent(
    registry: &Registry,
) -> Result<(AgentService, steadfast::chaos::ChaosHandle), BoxError> {
    let summarizer = registry.agent("summarizer");
    let chaos = ChaosLayer::new(&summarizer, &ChaosConfig::default());
    let switch = chaos.handle();
    // The fallback, dead-letter and degrade layers go above `backoff_retry` (see in_process):
    // a backup agent or a cached answer would then replace the handler's 502/503.
    let stack = ServiceBuilder::new()
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
        .layer(chaos)
        .service(service_fn(|prompt: String| async move {
            Ok::<_, BoxError>(format!(
                "summary: {} words",
                prompt.split_whitespace().count()
            ))
        }));
    Ok((BoxCloneSyncService::new(stack), switch))
}

/// The app: `POST /summarize` plus the status routes (`/health`, `/status`, `/status/ui`,
/// `/metrics`, ...).
pub fn app(agent: AgentService, registry: Registry, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/summarize", post(summarize))
        .with_state(agent)
        .merge(StatusRoutes::new(registry).prometheus(metrics).router())
}

/// The handler: call this request's clone of the stack (`State` cloned it), turn its errors
/// into HTTP answers.
async fn summarize(State(agent): State<AgentService>, prompt: String) -> Response {
    match agent.oneshot(prompt).await {
        Ok(summary) => summary.into_response(),
        Err(error) => match steadfast::error::find::<CircuitOpen>(error.as_ref()) {
            Some(open) => {
                let mut response =
                    (StatusCode::SERVICE_UNAVAILABLE, open.to_string()).into_response();
                let wait = open.retry_in().unwrap_or(Duration::from_secs(1));
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            None => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
        },
    }
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
    let (agent, switch) = agent(&registry)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, app(agent, registry, metrics))
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
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Exchange {
        request: format!("{method} {path}"),
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
