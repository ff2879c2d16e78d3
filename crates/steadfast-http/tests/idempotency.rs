//! A request that must not be sent twice is retried only when the failure proves the agent
//! never acted on it: not after a response timeout, yes after a 503 with `Retry-After`. LLM
//! APIs opt out with `HttpClassifier::llm()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Method, Request, Response};
use steadfast::prelude::*;
use steadfast_http::{BufferedBody, HttpClassifier};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// An agent that hangs on the first call (past the per-attempt timeout) and answers the rest.
fn hangs_once(
    calls: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<BufferedBody>,
    Response = Response<String>,
    Error = BoxError,
    Future: Send,
> + Clone {
    service_fn(move |_: Request<BufferedBody>| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if call == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok::<_, BoxError>(Response::new("done".to_string()))
        }
    })
}

/// An agent that answers 503 with `Retry-After: 1` first, then 200.
fn overloaded_once(
    calls: Arc<AtomicU32>,
) -> impl tower::Service<
    Request<BufferedBody>,
    Response = Response<String>,
    Error = BoxError,
    Future: Send,
> + Clone {
    service_fn(move |_: Request<BufferedBody>| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let response = if call == 0 {
                Response::builder()
                    .status(503)
                    .header("retry-after", "1")
                    .body(String::new())
            } else {
                Response::builder().status(200).body("done".to_string())
            };
            Ok::<_, BoxError>(response.unwrap())
        }
    })
}

fn request(method: Method) -> Request<BufferedBody> {
    Request::builder()
        .method(method)
        .uri("http://agent/v1/orders")
        .body(BufferedBody::from("{}"))
        .unwrap()
}

fn retry() -> RetryConfig {
    RetryConfig::builder()
        .max_retries(3)
        .base(Duration::from_millis(100))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_post_is_not_retried_after_a_response_timeout() {
    let calls = Arc::new(AtomicU32::new(0));
    let agent = Agent::new("orders").classifier(HttpClassifier::new());
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&agent, retry()))
        .timeout(Duration::from_secs(5))
        .service(hangs_once(calls.clone()));
    let error = stack.oneshot(request(Method::POST)).await.unwrap_err();
    assert!(
        steadfast::error::find::<tower::timeout::error::Elapsed>(error.as_ref()).is_some(),
        "{error}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the agent may have acted on it: never sent twice"
    );
    assert_eq!(agent.counters().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn a_get_is_retried_after_a_response_timeout() {
    let calls = Arc::new(AtomicU32::new(0));
    let agent = Agent::new("orders").classifier(HttpClassifier::new());
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&agent, retry()))
        .timeout(Duration::from_secs(5))
        .service(hangs_once(calls.clone()));
    let response = stack.oneshot(request(Method::GET)).await.unwrap();
    assert_eq!(response.body(), "done");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_post_is_retried_after_a_503_with_retry_after() {
    let calls = Arc::new(AtomicU32::new(0));
    let agent = Agent::new("orders").classifier(HttpClassifier::new());
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&agent, retry()))
        .service(overloaded_once(calls.clone()));
    let started = tokio::time::Instant::now();
    let response = stack.oneshot(request(Method::POST)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "waited as the agent asked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_with_an_idempotency_key_or_to_an_llm_api_is_retried_after_a_timeout() {
    for (classifier, keyed) in [
        (HttpClassifier::new(), true),
        (HttpClassifier::llm(), false),
    ] {
        let calls = Arc::new(AtomicU32::new(0));
        let agent = Agent::new("llm").classifier(classifier);
        let stack = ServiceBuilder::new()
            .layer(BackoffRetryLayer::new(&agent, retry()))
            .timeout(Duration::from_secs(5))
            .service(hangs_once(calls.clone()));
        let mut post = request(Method::POST);
        if keyed {
            post.headers_mut()
                .insert("idempotency-key", "order-42".parse().unwrap());
        }
        stack.oneshot(post).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "keyed: {keyed}");
    }
}
