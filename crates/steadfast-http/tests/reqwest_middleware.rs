//! The stack as one `reqwest_middleware` `.with(..)`, over real sockets against the mock LLM
//! server.
#![cfg(feature = "reqwest-middleware")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use steadfast::fallback::{Alternative, FallbackLayer};
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::reqwest::{MiddlewareError, ReqwestAgent, Resilience};
use steadfast_http::{HttpClassifier, Rebase, reason};
use steadfast_mock::{MockServer, Route, Script, faults};
use tower::{Layer, ServiceBuilder};

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn retry() -> RetryConfig {
    RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(20))
        .build()
        .unwrap()
}

/// A middleware added after `Resilience`: it runs once per attempt.
#[derive(Clone, Default)]
struct CountCalls(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Middleware for CountCalls {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.0.fetch_add(1, Ordering::SeqCst);
        next.run(request, extensions).await
    }
}

const CLAUDE: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#;

#[tokio::test]
async fn one_with_puts_retry_breaker_and_fallback_under_a_client_with_middleware() {
    let anthropic = MockServer::start().await.unwrap();
    anthropic.script(
        Route::AnthropicMessages,
        Script::fail_next(1, faults::anthropic::overloaded()),
    );
    let openai = MockServer::start().await.unwrap();
    openai.script(
        Route::OpenAiChat,
        Script::always(faults::openai::context_length_exceeded()),
    );
    let big_context = MockServer::start().await.unwrap();

    let registry = Registry::new();
    let api = registry.agent("llm-api").classifier(HttpClassifier::llm());
    let long = registry
        .agent("long-context")
        .classifier(HttpClassifier::llm());
    let long_context = ServiceBuilder::new()
        .circuit_breaker(CircuitBreakerLayer::new(&long, BreakerConfig::default()))
        .service(
            Rebase::builder(&format!("http://{}", big_context.addr()))
                .bearer_token("big-key")
                .build()
                .unwrap()
                .layer(ReqwestAgent::new(plain_client())),
        );
    let counted = CountCalls::default();
    let client: ClientWithMiddleware = ClientBuilder::new(plain_client())
        .with(
            Resilience::new()
                .fallback(FallbackLayer::new(&api).then_alternative(
                    Alternative::new(&long, long_context).handles_caller_fault(|outcome| {
                        outcome.reason() == Some(reason::CONTEXT_LENGTH_EXCEEDED)
                    }),
                ))
                .backoff_retry(BackoffRetryLayer::new(&api, retry()))
                .circuit_breaker(CircuitBreakerLayer::new(&api, BreakerConfig::default()))
                .timeout(Duration::from_secs(5)),
        )
        .with(counted.clone())
        .build();

    // A 529 is retried through the rest of the chain (the later middleware runs twice).
    let (answer, attempts) = count_attempts(
        client
            .post(anthropic.url(Route::AnthropicMessages))
            .body(CLAUDE)
            .send(),
    )
    .await;
    assert_eq!(answer.unwrap().status(), 200);
    assert_eq!(attempts, Some(2));
    assert_eq!(counted.0.load(Ordering::SeqCst), 2);
    let breaker = registry.breaker("llm-api").unwrap();
    assert_eq!(
        breaker.counts().failures,
        1,
        "the 529 counted against the agent"
    );

    // Too long: the big-context alternative answers, with its own key.
    let answer = client
        .post(openai.url(Route::OpenAiChat))
        .bearer_auth("sk-primary")
        .body(r#"{"model":"gpt-4o","messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(openai.requests(Route::OpenAiChat), 1);
    assert_eq!(big_context.requests(Route::OpenAiChat), 1);
    assert_eq!(
        big_context.last_request(Route::OpenAiChat).unwrap().headers["authorization"],
        "Bearer big-key"
    );
    assert_eq!(breaker.counts().caller_faults, 1);
    assert_eq!(registry.counters("llm-api").unwrap().fallbacks, 1);
}

#[tokio::test]
async fn the_layers_errors_come_back_as_middleware_errors_and_the_chains_own_unchanged() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{refused}/v1/messages");
    let registry = Registry::new();

    // Retries run out: a `MiddlewareError` holding `RetriesExhausted`.
    let retried = registry.agent("retried").classifier(HttpClassifier::llm());
    let client = ClientBuilder::new(plain_client())
        .with(Resilience::new().backoff_retry(BackoffRetryLayer::new(&retried, retry())))
        .build();
    let error = client.post(&url).body("{}").send().await.unwrap_err();
    assert!(
        matches!(&error, reqwest_middleware::Error::Middleware(inner) if inner.is::<MiddlewareError>()),
        "{error:?}"
    );
    let exhausted = steadfast::error::find::<RetriesExhausted>(&error).expect("RetriesExhausted");
    assert_eq!(exhausted.attempts(), 3);

    // An open circuit: refused at once, the agent named.
    let guarded = registry.agent("guarded").classifier(HttpClassifier::llm());
    let breaker = CircuitBreakerLayer::new(&guarded, BreakerConfig::default());
    registry.breaker("guarded").unwrap().force_open();
    let client = ClientBuilder::new(plain_client())
        .with(Resilience::new().circuit_breaker(breaker))
        .build();
    let error = client.post(&url).body("{}").send().await.unwrap_err();
    let open = steadfast::error::find::<CircuitOpen>(&error).expect("CircuitOpen");
    assert_eq!(open.agent(), "guarded");

    // Nothing of the stack's own to report: the chain's error as it was.
    let plain = registry.agent("plain").classifier(HttpClassifier::llm());
    let client = ClientBuilder::new(plain_client())
        .with(
            Resilience::new()
                .timeout(Duration::from_secs(5))
                .circuit_breaker(CircuitBreakerLayer::new(&plain, BreakerConfig::default())),
        )
        .build();
    let error = client.post(&url).body("{}").send().await.unwrap_err();
    assert!(
        matches!(&error, reqwest_middleware::Error::Reqwest(inner) if inner.is_connect()),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_through_the_breaker_and_never_retried() {
    let anthropic = MockServer::start().await.unwrap();
    anthropic.script(
        Route::AnthropicMessages,
        Script::fail_next(1, faults::anthropic::overloaded()),
    );
    let registry = Registry::new();
    let api = registry.agent("streamed").classifier(HttpClassifier::llm());
    let client = ClientBuilder::new(plain_client())
        .with(
            Resilience::new()
                .backoff_retry(BackoffRetryLayer::new(&api, retry()))
                .circuit_breaker(CircuitBreakerLayer::new(&api, BreakerConfig::default())),
        )
        .build();
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(CLAUDE.as_bytes()));
    let answer = client
        .post(anthropic.url(Route::AnthropicMessages))
        .body(reqwest::Body::wrap(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 529, "the overloaded answer, not a retry");
    assert_eq!(anthropic.requests(Route::AnthropicMessages), 1);
    assert_eq!(registry.breaker("streamed").unwrap().counts().failures, 1);
    assert_eq!(
        answer.bytes().await.unwrap().as_ref(),
        faults::anthropic::overloaded().body().as_ref(),
        "the error body the classifier read is still whole"
    );
}
