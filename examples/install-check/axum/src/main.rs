//! The README's axum setup, as a user writes it: a route served through the stack
//! (`Router::route_layer`, errors answered by `ErrorResponseLayer`), the status routes and
//! `/metrics` in the same router. The check calls the app in-process and ends; an app would
//! `axum::serve` it for ever.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use metrics_exporter_prometheus::PrometheusBuilder;
use steadfast::prelude::*;
use steadfast_http::status::StatusRoutes;
use steadfast_http::{BufferRequestLayer, ErrorResponseLayer, HttpClassifier};
use tower::{ServiceBuilder, ServiceExt};

async fn summarize(prompt: String) -> String {
    // Call your model here.
    format!("{} words", prompt.split_whitespace().count())
}

fn app(registry: &Registry) -> Result<Router, BoxError> {
    // Install the recorder before building the layers: they register their series when built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let summarizer = registry
        .agent("summarizer")
        .classifier(HttpClassifier::llm());
    Ok(Router::new()
        .route("/summarize", post(summarize))
        .route_layer(
            ServiceBuilder::new()
                .layer(ErrorResponseLayer::new().agent(&summarizer))
                .layer(BufferRequestLayer::new(64 * 1024))
                .backoff_retry(BackoffRetryLayer::new(&summarizer, RetryConfig::default()))
                .circuit_breaker(CircuitBreakerLayer::new(
                    &summarizer,
                    BreakerConfig::default(),
                ))
                .timeout(Duration::from_secs(30)),
        )
        .merge(
            StatusRoutes::new(registry.clone())
                .prometheus(prometheus)
                .router(),
        ))
}

async fn status_of(app: &Router, request: Request<Body>) -> Result<StatusCode, BoxError> {
    Ok(app.clone().oneshot(request).await?.status())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let registry = Registry::new();
    let app = app(&registry)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = tokio::spawn(axum::serve(listener, app.clone()).into_future());

    let summarize = || Request::post("/summarize").body(Body::from("a b c"));
    let checks = [
        (
            "POST /summarize",
            status_of(&app, summarize()?).await?,
            StatusCode::OK,
        ),
        (
            "GET /status",
            status_of(&app, Request::get("/status").body(Body::empty())?).await?,
            StatusCode::OK,
        ),
        (
            "GET /metrics",
            status_of(&app, Request::get("/metrics").body(Body::empty())?).await?,
            StatusCode::OK,
        ),
    ];
    registry
        .breaker("summarizer")
        .ok_or("no breaker")?
        .force_open();
    let refused = status_of(&app, summarize()?).await?;
    server.abort();

    for (route, status, expected) in checks.into_iter().chain([(
        "POST /summarize, circuit open",
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
    )]) {
        if status != expected {
            return Err(format!("{route}: {status}, expected {expected}").into());
        }
        println!("axum: {route} -> {status}");
    }
    Ok(())
}
