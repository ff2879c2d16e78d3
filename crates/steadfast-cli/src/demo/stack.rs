//! The client stack the demo drives, in the order of DESIGN §1:
//! Degrade > DeadLetter > Fallback(backup, slow, cache) > Retry > Bulkhead > CircuitBreaker >
//! Timeout > HTTP. The bulkhead holds the primary to [`PRIMARY_MAX_CONCURRENT`] calls at once:
//! with the default 8 callers it never refuses; with `--callers 64` the calls past it are
//! refused at once and answered by the alternatives (its breaker never counts them).
//!
//! Each agent (`primary`, `backup`, `slow`) is named once, with its classifier, and handed to
//! every layer that acts for it; the alternatives have breakers of their own, which the
//! fallback layer reads to skip an alternative that is down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::bulkhead::{BulkheadConfig, BulkheadLayer};
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::circuit_breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer};
use steadfast::dead_letter::{DeadLetterLayer, DeadLetterSink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::{Alternative, FallbackLayer};
use steadfast::retry::{BackoffRetryLayer, Jitter, RetryConfig};
use steadfast::{Agent, BoxError, Registry};
use steadfast_http::dead_letter::HttpRequestEncoder;
use steadfast_http::{BufferedBody, HttpClassifier};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, service_fn};

/// What callers send.
pub(crate) type DemoRequest = Request<BufferedBody>;
/// What they get back (body buffered, so it can be cached and classified).
pub(crate) type DemoResponse = Response<Bytes>;
/// The whole stack, type-erased.
pub(crate) type DemoStack = BoxCloneSyncService<DemoRequest, DemoResponse, BoxError>;

/// Calls in flight to the primary at once, at most.
pub(crate) const PRIMARY_MAX_CONCURRENT: u32 = 32;

/// The header marking a degraded answer.
pub(crate) const DEGRADED_HEADER: &str = "x-steadfast-degraded";

/// Interactive chat requests get a degraded answer when nothing else works; batch jobs must not
/// (a template is no summary of a document), so they are dead-lettered for replay instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Chat,
    Batch,
}

impl RequestKind {
    pub(crate) const fn path(self) -> &'static str {
        match self {
            RequestKind::Chat => "/v1/chat",
            RequestKind::Batch => "/v1/batch",
        }
    }

    fn of(request: &DemoRequest) -> Self {
        if request.uri().path() == RequestKind::Batch.path() {
            RequestKind::Batch
        } else {
            RequestKind::Chat
        }
    }
}

/// Where the agents listen and how long the run lasts (timings scale with it, so a 6 s CI run
/// shows the same story as a 30 s one).
#[derive(Clone, Debug)]
pub(crate) struct StackConfig {
    pub(crate) primary: SocketAddr,
    pub(crate) backup: SocketAddr,
    pub(crate) slow: SocketAddr,
    pub(crate) duration: Duration,
    pub(crate) seed: u64,
}

/// The stack and the handles the live view reads.
pub(crate) struct Built {
    pub(crate) stack: DemoStack,
    pub(crate) breakers: Vec<BreakerHandle>,
}

type HttpClient = Client<HttpConnector, BufferedBody>;

/// One agent over HTTP: sends the request to `addr`, buffers the answer.
fn http_agent(
    client: HttpClient,
    addr: SocketAddr,
) -> impl Service<DemoRequest, Response = DemoResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let base: Arc<str> = Arc::from(format!("http://{addr}"));
    service_fn(move |request: DemoRequest| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("{base}{path}").parse()?;
            let response = client.request(Request::from_parts(parts, body)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::from_parts(parts, body))
        }
    })
}

/// `share` of the run, at least `min` and at most `max`.
fn scaled(duration: Duration, share: f64, min: Duration, max: Duration) -> Duration {
    // Whole milliseconds read better in the events ("open for 500ms").
    let millis = duration.mul_f64(share).as_millis();
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX)).clamp(min, max)
}

/// The primary's breaker: trips on 5 failures in a row and, while open, lets probes through
/// only once the agent's `/health` answers 2xx.
fn primary_breaker(
    primary: &Agent<HttpClassifier>,
    client: &HttpClient,
    addr: SocketAddr,
    open_for: Duration,
) -> Result<CircuitBreakerLayer<HttpClassifier>, BoxError> {
    let config = BreakerConfig::builder()
        .consecutive_failures(5)
        .initial_open_duration(open_for)
        .max_open_duration(open_for * 4)
        .health_check_interval(open_for / 2)
        .health_check_timeout(Duration::from_millis(500))
        .half_open_probes(2)
        .build()?;
    let health_client = client.clone();
    let health_uri: http::Uri = format!("http://{addr}/health").parse()?;
    Ok(
        CircuitBreakerLayer::new(primary, config).health_check(move || {
            let client = health_client.clone();
            let uri = health_uri.clone();
            async move {
                let status = client.get(uri).await?.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(BoxError::from(format!("GET /health answered {status}")))
                }
            }
        }),
    )
}

/// Builds the stack over the three agents, made in `registry` (which so sees their breakers,
/// counters and events), writing dead letters to `sink`.
pub(crate) fn build(
    config: &StackConfig,
    registry: &Registry,
    sink: Arc<dyn DeadLetterSink>,
) -> Result<Built, BoxError> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    let open_for = scaled(
        config.duration,
        1.0 / 12.0,
        Duration::from_millis(300),
        Duration::from_secs(2),
    );

    // LLM prompts are POSTs that are safe to repeat: `llm()` lets retry send them again.
    let primary = registry.agent("primary").classifier(HttpClassifier::llm());
    let primary_breaker = primary_breaker(&primary, &client, config.primary, open_for)?;

    // backup and slow: each behind its own breaker and timeout, skipped while open.
    let alternative_config = BreakerConfig::builder()
        .consecutive_failures(4)
        .failure_rate_threshold(0.5)
        .window(steadfast::circuit_breaker::SlidingWindow::Count(20))
        .min_calls(8)
        .initial_open_duration(open_for)
        .max_open_duration(open_for * 4)
        .half_open_probes(1)
        .build()?;
    let alternative = |name: &'static str, addr: SocketAddr, timeout: Duration| {
        let agent = registry.agent(name).classifier(HttpClassifier::llm());
        let breaker = CircuitBreakerLayer::new(&agent, alternative_config.clone());
        let handle = breaker.handle();
        let service = ServiceBuilder::new()
            .layer(breaker)
            .timeout(timeout)
            .service(http_agent(client.clone(), addr));
        (Alternative::new(&agent, service), handle)
    };
    let (backup, backup_handle) = alternative("backup", config.backup, Duration::from_millis(600));
    let (slow, slow_handle) = alternative("slow", config.slow, Duration::from_millis(500));

    // The cache answers chat prompts it saw the primary answer; batch jobs are never cached.
    let cache = ResponseCache::new(
        CacheConfig::builder()
            .max_entries(1_000)
            .ttl(Duration::from_secs(10))
            .max_stale(Duration::from_secs(600))
            .build()?,
        |request: &DemoRequest| match RequestKind::of(request) {
            RequestKind::Chat => Some(request.body().bytes().clone()),
            RequestKind::Batch => None,
        },
    );

    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(50))
        .max_backoff(Duration::from_millis(400))
        .jitter(Jitter::Full)
        .max_retry_after(Duration::from_secs(1))
        .deadline(Duration::from_millis(1_500))
        .build()?;

    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(
                &primary,
                |kind: &RequestKind, _error: &BoxError| match kind {
                    RequestKind::Chat => Some(degraded_answer()),
                    RequestKind::Batch => None,
                },
            )
            .view(RequestKind::of)
            .mark_responses(),
        )
        .layer(DeadLetterLayer::from_arc(&primary, sink).encoder(HttpRequestEncoder::new()))
        .layer(
            FallbackLayer::new(&primary)
                .then_alternative(backup)
                .then_alternative(slow)
                .then_cache(cache)
                .mark_responses(),
        )
        .layer(BackoffRetryLayer::new(&primary, retry).seed(config.seed))
        .layer(BulkheadLayer::new(
            &primary,
            BulkheadConfig::max_concurrent(PRIMARY_MAX_CONCURRENT)?,
        ))
        .layer(primary_breaker.clone())
        .timeout(Duration::from_millis(800))
        .service(http_agent(client, config.primary));

    Ok(Built {
        stack: BoxCloneSyncService::new(stack),
        breakers: vec![primary_breaker.handle(), backup_handle, slow_handle],
    })
}

/// The template a chat caller gets when no agent and no cache could answer.
fn degraded_answer() -> DemoResponse {
    let mut response = Response::new(Bytes::from_static(
        br#"{"answer":"The assistant is busy right now; here is what we can say without it. Please try again in a minute."}"#,
    ));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(DEGRADED_HEADER, http::HeaderValue::from_static("true"));
    response
}
