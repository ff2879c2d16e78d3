//! `HttpClassifier` over a real socket: the mock LLM server answers with providers' real error
//! bodies and headers, hyper's client brings them back, and the classifier (alone and inside
//! `BackoffRetryLayer`) reads them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::Agent;
use steadfast::BoxError;
use steadfast::classify::{Outcome, OutcomeKind};
use steadfast::retry::{BackoffRetryLayer, Jitter, RetryConfig};
use steadfast_http::{BufferedBody, HttpClassifier, classify_error, reason};
use steadfast_mock::{MockServer, Reply, Route, Script, faults};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type HttpClient = Client<HttpConnector, BufferedBody>;

/// Sends `request` and buffers the answer's body, as an agent client would before classifying.
async fn send(
    client: HttpClient,
    request: Request<BufferedBody>,
) -> Result<Response<Bytes>, BoxError> {
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

fn request(server: &MockServer, route: Route) -> Request<BufferedBody> {
    Request::post(server.url(route))
        .header("content-type", "application/json")
        .header("x-api-key", "test-key")
        .body(BufferedBody::from(
            r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#,
        ))
        .unwrap()
}

fn classify(response: &Response<Bytes>) -> Outcome {
    HttpClassifier::new().classify_response(response)
}

#[tokio::test]
async fn anthropic_529_and_openai_429_are_classified_over_a_socket() {
    let server = MockServer::start().await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    server.script(
        Route::AnthropicMessages,
        Script::always(faults::anthropic::overloaded()),
    );
    server.script(
        Route::OpenAiChat,
        Script::always(faults::openai::rate_limit_free_tier()),
    );

    let response = send(client.clone(), request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    assert_eq!(response.status(), 529);
    let outcome = classify(&response);
    assert_eq!(outcome.kind(), OutcomeKind::Transient);
    assert_eq!(outcome.reason(), Some(reason::OVERLOADED));

    let response = send(client.clone(), request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    let outcome = classify(&response);
    assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
    assert_eq!(outcome.reason(), Some(reason::RATE_LIMITED));
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(20)));

    // Anthropic's 429 with only reset headers: the wait is counted from its `date`.
    server.script(
        Route::AnthropicMessages,
        Script::always(faults::anthropic::rate_limited()),
    );
    let response = send(client, request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    let outcome = classify(&response);
    assert_eq!(outcome.reason(), Some(reason::RATE_LIMITED));
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(1)));
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_reset_before_the_answer_is_transient() {
    let server = MockServer::start().await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    server.script(Route::OpenAiChat, Script::steps([Reply::Reset]));
    let error = send(client, request(&server, Route::OpenAiChat))
        .await
        .unwrap_err();
    let outcome = classify_error(error.as_ref());
    assert_eq!(outcome.kind(), OutcomeKind::Transient, "{error:?}");
    // Found in the error chain, not the catch-all "error".
    assert!(
        matches!(
            outcome.reason(),
            Some(reason::CONNECTION_RESET | reason::CONNECTION_CLOSED)
        ),
        "{outcome} from {error:?}"
    );
    server.shutdown().await;
}

fn retrying_client(
    client: HttpClient,
) -> impl tower::Service<Request<BufferedBody>, Response = Response<Bytes>, Error = BoxError> + Clone
{
    let config = RetryConfig::builder()
        .max_retries(3)
        .base(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let client = Arc::new(client);
    ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(
            &Agent::new("llm").classifier(HttpClassifier::llm()),
            config,
        ))
        .service(service_fn(move |request: Request<BufferedBody>| {
            let client = HttpClient::clone(&client);
            send(client, request)
        }))
}

#[tokio::test]
async fn the_retry_layer_retries_an_overloaded_anthropic_and_not_an_exhausted_openai() {
    let server = MockServer::start().await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    server.script(
        Route::AnthropicMessages,
        Script::fail_next(2, faults::anthropic::overloaded()),
    );
    server.script(
        Route::OpenAiChat,
        Script::always(faults::openai::insufficient_quota().header("x-should-retry", "true")),
    );

    let response = retrying_client(client.clone())
        .oneshot(request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.requests(Route::AnthropicMessages), 3);
    assert_eq!(
        server
            .last_request(Route::AnthropicMessages)
            .unwrap()
            .headers["x-api-key"],
        "test-key",
        "every retry re-sends the whole request"
    );

    let response = retrying_client(client)
        .oneshot(request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        server.requests(Route::OpenAiChat),
        1,
        "quota exhaustion is never retried"
    );
    server.shutdown().await;
}
