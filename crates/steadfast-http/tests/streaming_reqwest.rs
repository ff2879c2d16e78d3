//! docs/streaming.md's reqwest stack, over a real socket against the mock LLM server: an OpenAI
//! stream whose first attempt never sends its first event is retried, and the caller reads only
//! the stream that worked.
#![cfg(feature = "reqwest")]

use std::time::Duration;

use http_body_util::BodyExt;
use steadfast::prelude::*;
use steadfast_http::reqwest::ReqwestAgent;
use steadfast_http::stream::{StreamConfig, StreamGuardLayer, StreamInfo};
use steadfast_http::{BufferRequestLayer, HttpClassifier};
use steadfast_mock::{MockServer, Reply, Route, Script, StreamReply};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn a_reqwest_stream_stuck_before_its_first_token_is_retried_transparently() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::steps([Reply::from(StreamReply::tokens(["stuck"]).hang_after(0))])
            .then(StreamReply::tokens(["Hello", " from", " the", " retry"])),
    );
    let registry = Registry::new();
    let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
    let client = reqwest::Client::new();
    let streams = StreamConfig::builder()
        .first_byte(Duration::from_secs(10))
        .idle(Duration::from_secs(20))
        .build()
        .unwrap();
    let retry = RetryConfig::builder()
        .base(Duration::from_millis(200))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let openai = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1 << 20))
        .backoff_retry(BackoffRetryLayer::new(&gpt, retry))
        .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
        .layer(StreamGuardLayer::new(&gpt, streams))
        .map_response(http::Response::<reqwest::Body>::from)
        .service(ReqwestAgent::new(client.clone()));

    let request = client
        .post(server.url(Route::OpenAiChat))
        .bearer_auth("sk-test")
        .body(r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let answer = openai.oneshot(request).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(10_200));
    assert!(answer.extensions().get::<StreamInfo>().is_some());
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains("stuck"));
    assert!(text.contains("\" retry\"") && text.ends_with("data: [DONE]\n\n"));
    assert_eq!(server.requests(Route::OpenAiChat), 2);
    let breaker = gpt.breaker().unwrap();
    assert_eq!(breaker.counts().failures, 1, "the stuck attempt");
    assert_eq!(breaker.counts().successes, 1, "the stream, once it ended");
}

#[tokio::test]
async fn behind_the_guard_a_reqwest_error_answer_is_still_classified_from_its_body() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(steadfast_mock::faults::openai::context_length_exceeded()),
    );
    let gpt = Registry::new()
        .agent("gpt-4o")
        .classifier(HttpClassifier::llm());
    let client = reqwest::Client::new();
    let guarded = ServiceBuilder::new()
        .layer(StreamGuardLayer::new(&gpt, StreamConfig::default()))
        .map_response(http::Response::<reqwest::Body>::from)
        .service(ReqwestAgent::new(client.clone()));
    let request = client
        .post(server.url(Route::OpenAiChat))
        .body(r#"{"model":"gpt-4o","stream":true}"#)
        .build()
        .unwrap();
    let answer = guarded.oneshot(request).await.unwrap();
    let outcome = HttpClassifier::llm().classify_response(&answer);
    assert_eq!(outcome.kind(), OutcomeKind::CallerFault);
    assert_eq!(
        outcome.reason(),
        Some(steadfast_http::reason::CONTEXT_LENGTH_EXCEEDED)
    );
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(
        body.starts_with(b"{"),
        "the caller still reads the whole body"
    );
}
