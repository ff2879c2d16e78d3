//! The stack in axum's `Router::route_layer` and `Router::layer`, beside the status routes:
//! `ErrorResponseLayer` turns the layers' errors into HTTP answers.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use steadfast::chaos::{ChaosConfig, ChaosLayer};
use steadfast::classify::FailedResponse;
use steadfast::prelude::*;
use steadfast_http::error_response::error_response;
use steadfast_http::status::StatusRoutes;
use steadfast_http::{
    BodyTooLarge, BufferRequestLayer, ErrorResponseLayer, HttpClassifier, reason,
};
use tower::{ServiceBuilder, ServiceExt};

/// What the app answered: status, two headers, the JSON body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    agent: Option<String>,
    body: serde_json::Value,
}

async fn send(app: &Router, method: &str, path: &str, body: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let (status, retry_after, agent) = (
        response.status(),
        header("retry-after"),
        header("x-steadfast-agent"),
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        retry_after,
        agent,
        body,
    }
}

#[tokio::test(start_paused = true)]
async fn the_stack_serves_through_route_layer_beside_the_status_routes() {
    let registry = Registry::new();
    // Counting words is safe to repeat: every method may be retried.
    let summarizer = registry
        .agent("summarizer")
        .classifier(HttpClassifier::llm());
    let chaos = ChaosLayer::new(&summarizer, &ChaosConfig::default());
    let outage = chaos.handle();
    let slow = registry.agent("slow").classifier(HttpClassifier::llm());

    let app: Router =
        Router::new()
            .route(
                "/summarize",
                post(|prompt: String| async move {
                    format!("{} words", prompt.split_whitespace().count())
                }),
            )
            .route_layer(
                ServiceBuilder::new()
                    .layer(ErrorResponseLayer::new().agent(&summarizer))
                    .layer(BufferRequestLayer::new(64))
                    .backoff_retry(BackoffRetryLayer::new(
                        &summarizer,
                        RetryConfig::builder()
                            .max_retries(1)
                            .base(Duration::from_millis(10))
                            .build()
                            .unwrap(),
                    ))
                    .circuit_breaker(CircuitBreakerLayer::new(
                        &summarizer,
                        BreakerConfig::builder()
                            .consecutive_failures(2)
                            .initial_open_duration(Duration::from_secs(5))
                            .build()
                            .unwrap(),
                    ))
                    .timeout(Duration::from_secs(1))
                    .layer(chaos),
            )
            // `Router::layer` works the same, for every route of a router.
            .merge(
                Router::new()
                    .route(
                        "/slow",
                        get(|| async {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            "late"
                        }),
                    )
                    .layer(
                        ServiceBuilder::new()
                            .layer(ErrorResponseLayer::new().agent(&slow))
                            .circuit_breaker(CircuitBreakerLayer::new(
                                &slow,
                                BreakerConfig::default(),
                            ))
                            .timeout(Duration::from_millis(100)),
                    ),
            )
            .merge(StatusRoutes::new(registry.clone()).router());

    let answer = send(&app, "POST", "/summarize", "a b c").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "3 words");

    // A body over the buffering limit is the caller's: 413, the agent untouched.
    let answer = send(&app, "POST", "/summarize", &"word ".repeat(20)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{answer:?}");
    assert_eq!(answer.body["error"]["type"], "request_too_large");

    // A timeout (below `Router::layer`, no retry): 504, the layer's agent named.
    let answer = send(&app, "GET", "/slow", "").await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT, "{answer:?}");
    assert_eq!(answer.body["error"]["type"], "timeout");
    assert_eq!(answer.agent.as_deref(), Some("slow"));

    // The agent goes down: the retries run out (502), the breaker opens, then 503 at once.
    outage.start_outage(Duration::from_secs(600));
    let answer = send(&app, "POST", "/summarize", "a b").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{answer:?}");
    assert_eq!(answer.body["error"]["type"], "retries_exhausted");
    assert_eq!(answer.agent.as_deref(), Some("summarizer"));
    let answer = send(&app, "POST", "/summarize", "a b").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert_eq!(answer.body["error"]["type"], "circuit_open");
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    assert_eq!(answer.agent.as_deref(), Some("summarizer"));

    // The status routes, served by the same router, see it.
    let status = send(&app, "GET", "/status", "").await;
    let agents = status.body["agents"].as_array().unwrap();
    let summarizer = agents
        .iter()
        .find(|agent| agent["name"] == "summarizer")
        .unwrap();
    assert_eq!(summarizer["breaker"]["state"], "open", "{status:?}");
    assert_eq!(
        send(&app, "GET", "/health", "").await.status,
        StatusCode::OK,
        "`slow` still serves"
    );
}

/// The mapping, error by error, through the function handlers can call themselves.
#[test]
fn every_error_maps_to_its_documented_status_and_never_quotes_the_error() {
    let failed = |outcome: Outcome| -> BoxError {
        Box::new(Wrapper(Box::new(FailedResponse::new(outcome))))
    };
    let cases: Vec<(BoxError, u16, &str, Option<&str>)> = vec![
        (
            Box::new(RetriesExhausted::new("gpt", 3, "sk-secret upstream".into())),
            502,
            "retries_exhausted",
            None,
        ),
        (
            Box::new(DeadlineExceeded::new(
                "gpt",
                2,
                Duration::from_secs(30),
                None,
            )),
            504,
            "deadline_exceeded",
            None,
        ),
        (
            Box::new(BudgetExhausted::new("gpt", 1, "sk-secret".into())),
            502,
            "retry_budget_exhausted",
            None,
        ),
        (
            Box::new(tower::timeout::error::Elapsed::new()),
            504,
            "timeout",
            None,
        ),
        (
            Box::new(BodyTooLarge { limit: 8 }),
            413,
            "request_too_large",
            None,
        ),
        (
            failed(
                Outcome::rate_limited(reason::RATE_LIMITED)
                    .with_retry_after(Duration::from_millis(2500)),
            ),
            429,
            "rate_limited",
            Some("3"),
        ),
        (
            failed(Outcome::caller_fault(reason::CONTEXT_LENGTH_EXCEEDED)),
            422,
            "invalid_request",
            None,
        ),
        (
            failed(Outcome::caller_fault(reason::CONTENT_FILTERED)),
            422,
            "invalid_request",
            None,
        ),
        (
            failed(Outcome::caller_fault(reason::INVALID_REQUEST)),
            400,
            "invalid_request",
            None,
        ),
        (
            failed(Outcome::agent_fault(reason::QUOTA_EXHAUSTED)),
            502,
            "agent_error",
            None,
        ),
        (
            "sk-secret: something broke".into(),
            502,
            "agent_error",
            None,
        ),
    ];
    for (error, status, kind, retry_after) in cases {
        let response = error_response(error.as_ref());
        assert_eq!(response.status().as_u16(), status, "{error}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap()),
            retry_after,
            "{error}"
        );
        let body = json_body(response);
        assert_eq!(body["error"]["type"], kind, "{error}");
        assert!(!body.to_string().contains("sk-secret"), "{body}");
    }
    let response = error_response(&RetriesExhausted::new("gpt", 3, "x".into()));
    assert_eq!(response.headers()["x-steadfast-agent"], "gpt");
}

/// The JSON body of a response built in memory.
fn json_body(response: axum::response::Response) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// An error that wraps another without classifying itself (as a client library's would).
#[derive(Debug)]
struct Wrapper(BoxError);

impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("call failed")
    }
}

impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}
