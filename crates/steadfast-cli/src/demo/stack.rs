//! The client stack the demo drives, read from a stack file (`examples/stack.toml`, built in;
//! `--config FILE` for another) with `steadfast::config`, in the order of DESIGN §1:
//! Degrade > DeadLetter > Fallback(backup, slow, cache) > Retry > RateLimit > Bulkhead >
//! CircuitBreaker > Timeout > HTTP. The shipped file gives the primary a request quota far
//! above what the demo sends (a provider's RPM; no pause on the scripted 429s, so the outage
//! still reaches the breaker; no token quota, which would need a cost function, i.e. code),
//! and holds it to 8 calls at once. A caller has one call
//! in flight at a time, so with the default 8 callers the bulkhead never refuses; with
//! `--callers 64` the calls past it are refused at once and answered by the alternatives (its
//! breaker never counts them). The summary says how many.
//!
//! The file names the agents, their classifiers, timeouts, breakers, rate limits, bulkheads, retries,
//! fallback chain, cache and dead-letter store; this module supplies what only code can: the HTTP client of
//! each endpoint (`mock:NAME` is one of the demo's mock agents), the `/health` check, the
//! cache key, the dead-letter encoder and the degraded answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::bulkhead::BulkheadHandle;
use steadfast::circuit_breaker::{BreakerHandle, HealthCheck};
use steadfast::config::{AgentConfig, BoxAgent, StackConfig};
use steadfast::dead_letter::DeadLetterSink;
use steadfast::degrade::DegradeLayer;
use steadfast::{BoxError, Registry};
use steadfast_http::dead_letter::HttpRequestEncoder;
use steadfast_http::{BufferedBody, HttpClassifier};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, service_fn};

/// What callers send.
pub(crate) type DemoRequest = Request<BufferedBody>;
/// What they get back (body buffered, so it can be cached and classified).
pub(crate) type DemoResponse = Response<Bytes>;
/// The whole stack, type-erased.
pub(crate) type DemoStack = BoxCloneSyncService<DemoRequest, DemoResponse, BoxError>;

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

/// The stack the demo runs unless `--config` names another file.
pub(crate) const SHIPPED_STACK: &str = include_str!("../../../../examples/stack.toml");

/// Where the shipped stack came from, as its errors name it.
pub(crate) const SHIPPED_STACK_ORIGIN: &str = "examples/stack.toml";

/// The agent the demo's traffic goes to.
pub(crate) const ENTRY_AGENT: &str = "primary";

/// The stack and the handles the live view reads.
pub(crate) struct Built {
    pub(crate) stack: DemoStack,
    pub(crate) breakers: Vec<BreakerHandle>,
    /// The bulkheads, the entry agent's first.
    pub(crate) bulkheads: Vec<BulkheadHandle>,
}

type HttpClient = Client<HttpConnector, BufferedBody>;

/// One agent over HTTP: sends the request's path to `base`, buffers the answer.
fn http_agent(client: HttpClient, base: &str) -> BoxAgent<DemoRequest, DemoResponse> {
    let base: Arc<str> = Arc::from(base);
    BoxAgent::new(service_fn(move |request: DemoRequest| {
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
    }))
}

/// The base URL of an agent's `endpoint`: `mock:NAME` is the demo's mock agent of that name,
/// `http://...` is taken as is.
fn base_url(agent: &AgentConfig, mocks: &[(&'static str, SocketAddr)]) -> Result<String, BoxError> {
    let Some(endpoint) = agent.endpoint() else {
        return Err("the demo needs an `endpoint`: `mock:primary`, `mock:backup`, `mock:slow` or an http:// URL".into());
    };
    if let Some(name) = endpoint.strip_prefix("mock:") {
        return mocks
            .iter()
            .find(|(mock, _)| *mock == name)
            .map(|(_, addr)| format!("http://{addr}"))
            .ok_or_else(|| {
                format!("no mock agent `{name}` (the demo runs primary, backup and slow)").into()
            });
    }
    if endpoint.starts_with("http://") {
        return Ok(endpoint.trim_end_matches('/').to_owned());
    }
    Err(format!("`{endpoint}` is neither `mock:NAME` nor an http:// URL").into())
}

/// A breaker health check: `GET base + path` must answer 2xx.
fn health_check(
    client: &HttpClient,
    base: &str,
    path: &str,
) -> Result<Arc<dyn HealthCheck>, BoxError> {
    let client = client.clone();
    let uri: http::Uri = format!("{base}{path}").parse()?;
    Ok(Arc::new(move || {
        let client = client.clone();
        let uri = uri.clone();
        async move {
            let status = client.get(uri).await?.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(BoxError::from(format!("GET /health answered {status}")))
            }
        }
    }))
}

/// Builds the stack `config` describes over the mock agents, in `registry` (which so sees
/// their breakers, counters and events), writing dead letters to `sink`, and adds the
/// degrade layer (a template answer is code, not configuration) outside the entry agent.
pub(crate) fn build(
    config: &StackConfig,
    mocks: &[(&'static str, SocketAddr)],
    seed: u64,
    registry: &Registry,
    sink: Arc<dyn DeadLetterSink>,
) -> Result<Built, BoxError> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    let mocks: Arc<[(&'static str, SocketAddr)]> = Arc::from(mocks);
    let (agent_client, agent_mocks) = (client.clone(), mocks.clone());
    let check_mocks = mocks.clone();
    let stacks = config
        .builder(registry)
        .classifiers(HttpClassifier::from_kind)
        .agents(move |agent| {
            Ok(http_agent(
                agent_client.clone(),
                &base_url(agent, &agent_mocks)?,
            ))
        })
        .health_checks(move |agent| {
            let path = agent.health_check()?;
            let base = base_url(agent, &check_mocks).ok()?;
            health_check(&client, &base, path).ok()
        })
        // Flags (`--journal`, `--amqp`) and the file chose the store before the build.
        .dead_letter_stores(move |_, _| Ok(Some(sink.clone())))
        .dead_letter_encoder(HttpRequestEncoder::new())
        // The cache answers chat prompts it saw the primary answer; batch jobs are never cached.
        .cache_key(|request: &DemoRequest| match RequestKind::of(request) {
            RequestKind::Chat => Some(request.body().bytes().clone()),
            RequestKind::Batch => None,
        })
        .seed(seed)
        .mark_responses()
        .build()?;
    let entry = stacks.get(ENTRY_AGENT).ok_or_else(|| {
        format!(
            "{}: the demo sends its traffic to agent `{ENTRY_AGENT}`, which the file does not define",
            config.origin()
        )
    })?;
    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(
                entry.agent(),
                |kind: &RequestKind, _error: &BoxError| match kind {
                    RequestKind::Chat => Some(degraded_answer()),
                    RequestKind::Batch => None,
                },
            )
            .view(RequestKind::of)
            .mark_responses(),
        )
        .service(entry.service());
    // The entry agent's breaker (and bulkhead) first, then the others in the file's order.
    let others = || {
        stacks
            .iter()
            .filter(|agent| agent.config().name() != ENTRY_AGENT)
    };
    let breakers = entry
        .breaker()
        .into_iter()
        .chain(others().filter_map(|agent| agent.breaker()))
        .cloned()
        .collect();
    let bulkheads = entry
        .bulkhead()
        .into_iter()
        .chain(others().filter_map(|agent| agent.bulkhead()))
        .cloned()
        .collect();
    Ok(Built {
        stack: BoxCloneSyncService::new(stack),
        breakers,
        bulkheads,
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
