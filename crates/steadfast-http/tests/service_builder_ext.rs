//! `use tower_http::ServiceBuilderExt;` beside `use steadfast::prelude::*;`. Both crates name
//! their builder extension `ServiceBuilderExt`; a named import would hide the glob's, so the
//! prelude imports steadfast's anonymously (`as _`) and both sets of methods resolve (E0599
//! before).

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use steadfast::prelude::*;
use steadfast_http::HttpClassifier;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::ServiceBuilderExt;

#[tokio::test]
async fn tower_https_and_steadfasts_builder_methods_chain_in_one_service_builder() {
    let registry = Registry::new();
    let agent = registry.agent("echo").classifier(HttpClassifier::new());
    let service = ServiceBuilder::new()
        // tower-http's
        .override_request_header(
            HeaderName::from_static("x-from"),
            HeaderValue::from_static("tower-http"),
        )
        // steadfast's
        .backoff_retry(BackoffRetryLayer::new(&agent, RetryConfig::default()))
        .circuit_breaker(CircuitBreakerLayer::new(&agent, BreakerConfig::default()))
        .service_fn(|request: Request<()>| async move {
            let from = request.headers()["x-from"].clone();
            Ok::<_, BoxError>(Response::new(from))
        });

    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.body(), "tower-http");
    assert_eq!(registry.breaker("echo").unwrap().counts().successes, 1);
}
