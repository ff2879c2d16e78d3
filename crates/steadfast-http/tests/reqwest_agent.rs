//! reqwest under the layers, over real sockets, against the mock LLM server: the acceptance
//! tests of "real agent clients" (issue 19). Built-in classifier only (`HttpClassifier::llm()`),
//! provider bodies from `tests/fixtures/llm/` (sources in `SOURCES.md`).
#![cfg(feature = "reqwest")]

use std::path::PathBuf;
use std::time::Duration;

use steadfast::fallback::{Alternative, FallbackLayer};
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::reqwest::{ReqwestAgent, StreamingBody};
use steadfast_http::{BufferRequestLayer, HttpClassifier, Rebase, reason};
use steadfast_mock::{Fault, MockServer, Route, Script, faults};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "llm", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn client() -> reqwest::Client {
    // Only 127.0.0.1 is called: a proxy from the environment must not get in the way.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

const PROMPT: &str =
    r#"{"model":"gpt-4o","messages":[{"role":"user","content":"a very long prompt"}]}"#;

/// Fallback on a caller fault goes only to the alternative that declares it handles it: here a
/// self-hosted big-context model on another host, reached through `Rebase` with its own key.
#[tokio::test]
async fn context_length_exceeded_is_served_by_the_big_context_model_and_a_plain_400_is_not() {
    let openai = MockServer::start().await.unwrap();
    let big_context = MockServer::start().await.unwrap();
    // OpenAI's 400 `context_length_exceeded` (https://github.com/chathub-dev/chathub/issues/126),
    // then vLLM's plain 400 (https://github.com/vllm-project/vllm/issues/4667).
    openai.script(
        Route::OpenAiChat,
        Script::steps([
            Fault::json(400, fixture("openai_400_context_length_exceeded.json")).into(),
        ])
        .then(Fault::json(400, fixture("vllm_400_bad_request.json"))),
    );

    let registry = Registry::new();
    let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
    let long = registry
        .agent("long-context")
        .classifier(HttpClassifier::llm());
    let client = client();
    let long_context = ServiceBuilder::new()
        .circuit_breaker(CircuitBreakerLayer::new(&long, BreakerConfig::default()))
        .service(
            Rebase::builder(&format!("http://{}", big_context.addr()))
                .bearer_token("big-context-key")
                .build()
                .unwrap()
                .layer(ReqwestAgent::new(client.clone())),
        );
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .fallback(FallbackLayer::new(&gpt).then_alternative(
            Alternative::new(&long, long_context).handles_caller_fault(|outcome| {
                outcome.reason() == Some(reason::CONTEXT_LENGTH_EXCEEDED)
            }),
        ))
        .backoff_retry(BackoffRetryLayer::new(&gpt, RetryConfig::default()))
        .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
        .timeout(Duration::from_secs(5))
        .service(ReqwestAgent::new(client.clone()));
    let request = |client: &reqwest::Client| {
        client
            .post(openai.url(Route::OpenAiChat))
            .bearer_auth("sk-openai-primary")
            .header("content-type", "application/json")
            .body(PROMPT)
            .build()
            .unwrap()
    };

    // 1. Too long for gpt-4o: the big-context model answers.
    let answer = stack.clone().oneshot(request(&client)).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        openai.requests(Route::OpenAiChat),
        1,
        "a caller fault is not retried"
    );
    assert_eq!(big_context.requests(Route::OpenAiChat), 1);
    let sent = big_context.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer big-context-key");
    assert_eq!(
        sent.body.as_ref(),
        PROMPT.as_bytes(),
        "the same prompt, resent"
    );
    assert_eq!(registry.counters("gpt-4o").unwrap().fallbacks, 1);

    // 2. A plain bad request: back to the caller as it was, the big model never asked.
    let answer = stack.clone().oneshot(request(&client)).await.unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(
        answer.bytes().await.unwrap().as_ref(),
        fixture("vllm_400_bad_request.json").as_slice(),
        "the body the classifier read is still the caller's, whole"
    );
    assert_eq!(openai.requests(Route::OpenAiChat), 2);
    assert_eq!(big_context.requests(Route::OpenAiChat), 1);

    // Neither 400 touched the primary's health.
    let breaker = registry.breaker("gpt-4o").unwrap();
    let counts = breaker.counts();
    assert_eq!(counts.failures, 0, "{counts:?}");
    assert_eq!(counts.caller_faults, 2, "{counts:?}");
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// Anthropic's 529 `overloaded_error` is transient: retried after a backoff, and each one is a
/// failure the breaker counts.
#[tokio::test]
async fn an_anthropic_529_is_retried_with_backoff_and_counted_as_a_breaker_failure() {
    let anthropic = MockServer::start().await.unwrap();
    // https://platform.claude.com/docs/en/api/errors (fixture `anthropic_529_overloaded.json`).
    anthropic.script(
        Route::AnthropicMessages,
        Script::fail_next(2, faults::anthropic::overloaded()),
    );
    let registry = Registry::new();
    let claude = registry.agent("claude").classifier(HttpClassifier::llm());
    let backoff = Duration::from_millis(100);
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .backoff_retry(BackoffRetryLayer::new(
            &claude,
            RetryConfig::builder()
                .max_retries(3)
                .base(backoff)
                .multiplier(2.0)
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        ))
        .circuit_breaker(CircuitBreakerLayer::new(&claude, BreakerConfig::default()))
        .timeout(Duration::from_secs(5))
        .service(ReqwestAgent::new(client()));
    let request = client()
        .post(anthropic.url(Route::AnthropicMessages))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#)
        .build()
        .unwrap();

    let started = tokio::time::Instant::now();
    let (answer, attempts) = count_attempts(stack.oneshot(request)).await;
    let elapsed = started.elapsed();
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(attempts, Some(3));
    assert!(
        elapsed >= backoff + backoff * 2,
        "waited 100 ms then 200 ms: {elapsed:?}"
    );
    assert_eq!(anthropic.requests(Route::AnthropicMessages), 3);

    let breaker = registry.breaker("claude").unwrap();
    let counts = breaker.counts();
    assert_eq!((counts.failures, counts.successes), (2, 1), "{counts:?}");
    let recent = breaker.recent_failures();
    assert!(
        recent
            .iter()
            .all(|failure| failure.reason == Some(reason::OVERLOADED)),
        "{recent:?}"
    );
    assert_eq!(registry.counters("claude").unwrap().retries, 2);
}

/// A streaming body cannot be sent twice: refused before anything goes out, as a caller fault.
#[tokio::test]
async fn a_streaming_body_is_refused_before_it_is_sent() {
    let server = MockServer::start().await.unwrap();
    let agent = Agent::new("streaming").classifier(HttpClassifier::llm());
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .backoff_retry(BackoffRetryLayer::new(&agent, RetryConfig::default()))
        .service(ReqwestAgent::new(client()));
    let stream = http_body_util::Full::new(bytes::Bytes::from_static(b"{}"));
    let request = client()
        .post(format!("{}?key=sk-in-query", server.url(Route::OpenAiChat)))
        .body(reqwest::Body::wrap(stream))
        .build()
        .unwrap();

    let error = stack.oneshot(request).await.unwrap_err();
    let streaming = error
        .downcast_ref::<StreamingBody>()
        .expect("StreamingBody");
    assert_eq!(streaming.method(), "POST");
    assert!(!error.to_string().contains("sk-in-query"), "{error}");
    let outcome = steadfast_http::classify_error(error.as_ref());
    assert_eq!(outcome.kind(), OutcomeKind::CallerFault);
    assert_eq!(outcome.reason(), Some(reason::STREAMING_BODY));
    assert_eq!(server.requests(Route::OpenAiChat), 0);
}

/// Without the agent's error-body read (a plain `reqwest::Client` under a breaker), a 400 is
/// classified from its status alone; with it, from the provider's words.
#[tokio::test]
async fn the_error_body_is_what_tells_a_context_overflow_from_a_bad_request() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(faults::openai::context_length_exceeded()),
    );
    let classifier = HttpClassifier::llm();
    let request = || {
        client()
            .post(server.url(Route::OpenAiChat))
            .body(PROMPT)
            .build()
            .unwrap()
    };

    let plain = client().execute(request()).await.unwrap();
    let outcome = Classify::<reqwest::Request, reqwest::Response>::classify(
        &classifier,
        &classifier.idempotency(&http::Method::POST, &http::HeaderMap::new()),
        Ok(&plain),
    );
    assert_eq!(outcome.reason(), Some(reason::STATUS_4XX));

    let read = ReqwestAgent::new(client())
        .oneshot(request())
        .await
        .unwrap();
    let outcome = Classify::<reqwest::Request, reqwest::Response>::classify(
        &classifier,
        &classifier.idempotency(&http::Method::POST, &http::HeaderMap::new()),
        Ok(&read),
    );
    assert_eq!(outcome.reason(), Some(reason::CONTEXT_LENGTH_EXCEEDED));
    assert_eq!(read.url().as_str(), server.url(Route::OpenAiChat));

    let unread = ReqwestAgent::new(client())
        .error_body_limit(0)
        .oneshot(request())
        .await
        .unwrap();
    let outcome = Classify::<reqwest::Request, reqwest::Response>::classify(
        &classifier,
        &classifier.idempotency(&http::Method::POST, &http::HeaderMap::new()),
        Ok(&unread),
    );
    assert_eq!(outcome.reason(), Some(reason::STATUS_4XX));
}

/// A refused connection is transient and never reached the agent: a `POST` is retried even by
/// the strict classifier (`HttpClassifier::new()`); the final error keeps the `reqwest::Error`.
#[tokio::test]
async fn a_refused_connection_is_retried_even_for_a_post_and_then_reported() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let agent = Agent::new("nowhere").classifier(HttpClassifier::new());
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .backoff_retry(BackoffRetryLayer::new(
            &agent,
            RetryConfig::builder()
                .max_retries(2)
                .base(Duration::from_millis(10))
                .build()
                .unwrap(),
        ))
        .service(ReqwestAgent::new(client()));
    let request = client()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .body(PROMPT)
        .build()
        .unwrap();
    let (result, attempts) = count_attempts(stack.oneshot(request)).await;
    let error = result.unwrap_err();
    assert_eq!(attempts, Some(3), "{error}");
    assert!(steadfast::error::find::<RetriesExhausted>(error.as_ref()).is_some());
    assert!(
        steadfast::error::find::<reqwest::Error>(error.as_ref())
            .is_some_and(reqwest::Error::is_connect),
        "{error}"
    );
}

/// A `ClientWithMiddleware` is a client like another under the layers: its errors
/// (`reqwest_middleware::Error`, which hides the `reqwest::Error` from `source()`) are still
/// classified by what they carry.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn a_client_with_middleware_can_be_the_agent_too() {
    let anthropic = MockServer::start().await.unwrap();
    anthropic.script(
        Route::AnthropicMessages,
        Script::fail_next(1, faults::anthropic::overloaded()),
    );
    let agent = Agent::new("claude-mw").classifier(HttpClassifier::llm());
    let with_middleware = reqwest_middleware::ClientBuilder::new(client()).build();
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .backoff_retry(BackoffRetryLayer::new(
            &agent,
            RetryConfig::builder()
                .base(Duration::from_millis(10))
                .build()
                .unwrap(),
        ))
        .service(ReqwestAgent::new(with_middleware.clone()));
    let request = with_middleware
        .post(anthropic.url(Route::AnthropicMessages))
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#)
        .build()
        .unwrap();
    let (answer, attempts) = count_attempts(stack.clone().oneshot(request)).await;
    assert_eq!(answer.unwrap().status(), 200);
    assert_eq!(attempts, Some(2));

    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let request = with_middleware
        .post(format!("http://{refused}/v1/messages"))
        .body("{}")
        .build()
        .unwrap();
    let error = stack.oneshot(request).await.unwrap_err();
    let outcome = steadfast_http::classify_error(
        steadfast::error::find::<RetriesExhausted>(error.as_ref())
            .unwrap()
            .last()
            .as_ref(),
    );
    assert_eq!(outcome.reason(), Some(reason::CONNECT), "{error}");
}
