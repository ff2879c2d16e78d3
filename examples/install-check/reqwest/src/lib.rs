//! The README's reqwest setup, as a user writes it: OpenAI as the primary, a self-hosted
//! OpenAI-compatible model with a bigger context window as the fallback (another host, its own
//! key), with retry and a circuit breaker, over a `reqwest::Client` (a tower stack) and over a
//! `ClientWithMiddleware` (one `.with(..)`). No bridge code: only steadfast's types.

use std::time::Duration;

use reqwest_middleware::ClientWithMiddleware;
use steadfast::fallback::{Alternative, FallbackLayer};
use steadfast::prelude::*;
use steadfast_http::reqwest::{ReplayableRequest, ReqwestAgent, Resilience};
use steadfast_http::{BufferRequestLayer, HttpClassifier, Rebase, reason};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder};

/// The stack as the application holds it: `reqwest::Request` in, `reqwest::Response` out.
pub type LlmService = BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>;

/// Where the fallback model is, and its key.
#[derive(Clone, Debug)]
pub struct Fallback {
    /// Its base URL, e.g. `http://vllm.internal:8000`.
    pub base_url: String,
    /// Its API key.
    pub api_key: String,
}

fn retry() -> Result<RetryConfig, ConfigError> {
    RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(50))
        .deadline(Duration::from_secs(60))
        .build()
}

/// The big-context model, only for prompts too long for the primary.
fn big_context(
    registry: &Registry,
    primary: &Agent<HttpClassifier>,
    client: &reqwest::Client,
    fallback: &Fallback,
) -> Result<FallbackLayer<ReplayableRequest, reqwest::Response, HttpClassifier>, BoxError> {
    let long = registry
        .agent("long-context")
        .classifier(HttpClassifier::llm());
    let service = ServiceBuilder::new()
        .circuit_breaker(CircuitBreakerLayer::new(&long, BreakerConfig::default()))
        .timeout(Duration::from_secs(120))
        .service(
            Rebase::builder(&fallback.base_url)
                .bearer_token(&fallback.api_key)
                .build()?
                .layer(ReqwestAgent::new(client.clone())),
        );
    Ok(FallbackLayer::new(primary).then_alternative(
        Alternative::new(&long, service).handles_caller_fault(|outcome| {
            outcome.reason() == Some(reason::CONTEXT_LENGTH_EXCEEDED)
        }),
    ))
}

/// Breaker, retry and fallback over a `reqwest::Client`, as a tower stack.
pub fn over_client(
    registry: &Registry,
    client: &reqwest::Client,
    fallback: &Fallback,
) -> Result<LlmService, BoxError> {
    let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .fallback(big_context(registry, &gpt, client, fallback)?)
        .backoff_retry(BackoffRetryLayer::new(&gpt, retry()?))
        .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
        .timeout(Duration::from_secs(60))
        .service(ReqwestAgent::new(client.clone()));
    Ok(BoxCloneSyncService::new(stack))
}

/// Breaker, retry and fallback in a `ClientWithMiddleware`, with one `.with(..)`.
pub fn with_middleware(
    registry: &Registry,
    client: &reqwest::Client,
    fallback: &Fallback,
) -> Result<ClientWithMiddleware, BoxError> {
    let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
    Ok(reqwest_middleware::ClientBuilder::new(client.clone())
        .with(
            Resilience::new()
                .fallback(big_context(registry, &gpt, client, fallback)?)
                .backoff_retry(BackoffRetryLayer::new(&gpt, retry()?))
                .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
                .timeout(Duration::from_secs(60)),
        )
        .build())
}

/// A chat completion request, built with reqwest's own builder.
pub fn chat(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    prompt: &str,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .bearer_auth(api_key)
        .json(&serde_json::json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": prompt}],
        }))
}
