//! The status routes over real registries: health for load balancers, JSON, guarded control,
//! Prometheus metrics, and the HTML page rendered by a real headless Chromium.
#![cfg(feature = "axum")]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use steadfast::Registry;
use steadfast::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use steadfast_http::status::{HealthRule, StatusRoutes};
use tower::ServiceExt;

fn registry_with(names: &[&str]) -> Registry {
    let registry = Registry::new();
    for name in names {
        let _ = CircuitBreakerLayer::new(&registry.agent(*name), BreakerConfig::default());
    }
    registry
}

async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn health_is_503_only_when_no_agent_can_serve() {
    let registry = registry_with(&["gpt", "claude"]);
    let app = StatusRoutes::new(registry.clone()).router();
    let (status, body) = send(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["agents"]["gpt"], "healthy");

    registry.breaker("gpt").unwrap().force_open();
    let (status, body) = send(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK, "claude still serves: {body}");
    assert!(body.contains(r#""gpt":"unhealthy""#), "{body}");

    registry.breaker("claude").unwrap().force_open();
    let (status, _) = send(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// `GET /health` as (code, body `status`, body `serving`).
async fn health(app: &axum::Router) -> (StatusCode, String, bool) {
    let (code, body) = send(app, "GET", "/health", None).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        code,
        json["status"].as_str().unwrap().to_owned(),
        json["serving"].as_bool().unwrap(),
    )
}

#[tokio::test]
async fn health_code_and_body_agree_in_every_state() {
    let registry = registry_with(&["gpt", "claude"]);
    let app = StatusRoutes::new(registry.clone()).router();
    let strict = StatusRoutes::new(registry.clone())
        .health_rule(HealthRule::AnyUnhealthy)
        .router();
    let ok = |status: &str| (StatusCode::OK, status.to_owned(), true);
    let down = (
        StatusCode::SERVICE_UNAVAILABLE,
        "unhealthy".to_owned(),
        false,
    );

    assert_eq!(health(&app).await, ok("healthy"));
    assert_eq!(health(&strict).await, ok("healthy"));

    // One agent down: the default rule still serves (degraded), the strict one does not.
    registry.breaker("gpt").unwrap().force_open();
    assert_eq!(health(&app).await, ok("degraded"));
    assert_eq!(health(&strict).await, down);

    registry.breaker("claude").unwrap().force_open();
    assert_eq!(health(&app).await, down);
    assert_eq!(health(&strict).await, down);

    for name in ["gpt", "claude"] {
        registry.breaker(name).unwrap().force_closed();
    }
    assert_eq!(health(&app).await, ok("healthy"));

    // No agent registered: nothing is failing.
    let empty = StatusRoutes::new(Registry::new()).router();
    assert_eq!(health(&empty).await, ok("healthy"));
}

#[tokio::test]
async fn the_strict_health_rule_fails_on_any_unhealthy_agent() {
    let registry = registry_with(&["gpt", "claude"]);
    let app = StatusRoutes::new(registry.clone())
        .health_rule(HealthRule::AnyUnhealthy)
        .router();
    registry.breaker("gpt").unwrap().force_open();
    assert_eq!(
        send(&app, "GET", "/health", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn status_serves_the_registry_snapshot_as_json() {
    let registry = registry_with(&["gpt"]);
    let app = StatusRoutes::new(registry.clone()).router();
    registry.breaker("gpt").unwrap().force_open();
    let (status, body) = send(&app, "GET", "/status", None).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["agents"][0]["name"], "gpt");
    assert_eq!(json["agents"][0]["breaker"]["state"], "forced_open");
    assert_eq!(json["version"], steadfast::registry::SNAPSHOT_VERSION);
}

#[tokio::test]
async fn control_routes_are_refused_without_a_guard() {
    let registry = registry_with(&["gpt"]);
    let app = StatusRoutes::new(registry.clone()).router();
    let (status, body) = send(&app, "POST", "/agents/gpt/open", Some("anything")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("control routes are disabled"), "{body}");
    assert_eq!(
        registry.breaker("gpt").unwrap().state(),
        BreakerState::Closed
    );
}

#[tokio::test]
async fn control_routes_need_the_token_and_then_open_close_and_reset() {
    let registry = registry_with(&["gpt"]);
    let app = StatusRoutes::new(registry.clone())
        .bearer_token("s3cret")
        .router();
    let breaker = registry.breaker("gpt").unwrap();

    assert_eq!(
        send(&app, "POST", "/agents/gpt/open", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "POST", "/agents/gpt/open", Some("wrong"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(breaker.state(), BreakerState::Closed);

    let (status, body) = send(&app, "POST", "/agents/gpt/open", Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(breaker.state(), BreakerState::ForcedOpen);
    assert_eq!(
        send(&app, "POST", "/agents/gpt/close", Some("s3cret"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.force_open();
    assert_eq!(
        send(&app, "POST", "/agents/gpt/reset", Some("s3cret"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(breaker.state(), BreakerState::Closed);

    assert_eq!(
        send(&app, "POST", "/agents/nobody/open", Some("s3cret"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = send(&app, "POST", "/agents/gpt/explode", Some("s3cret")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("use reset, open or close"), "{body}");
    assert_eq!(
        send(&app, "GET", "/agents/gpt/open", Some("s3cret"))
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_format_when_configured() {
    let registry = Registry::new();
    let app = StatusRoutes::new(registry.clone()).router();
    assert_eq!(
        send(&app, "GET", "/metrics", None).await.0,
        StatusCode::NOT_FOUND
    );

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let layer = CircuitBreakerLayer::new(&registry.agent("gpt"), BreakerConfig::default());
        layer.handle().force_open();
    });
    let app = StatusRoutes::new(registry).prometheus(handle).router();
    let (status, body) = send(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"steadfast_breaker_state{agent="gpt",state="forced_open"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(
            r#"steadfast_breaker_transitions_total{agent="gpt",from="closed",to="forced_open"} 1"#
        ),
        "{body}"
    );
    // Named once, before anything was registered: no series under a default name.
    assert!(!body.contains(r#"agent="agent""#), "{body}");
}

/// Where the browser test finds Chromium: `STEADFAST_CHROMIUM`, or Debian's package.
fn chromium() -> String {
    let path = std::env::var("STEADFAST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "headless Chromium not found at {path}: install Debian's `chromium` package (`bash .ci/run` does) \
         or point STEADFAST_CHROMIUM at a Chromium binary"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_agents_in_a_real_browser() {
    let browser = chromium();
    let registry = registry_with(&["gpt-primary", "claude-backup"]);
    registry.breaker("gpt-primary").unwrap().force_open();
    let app: axum::Router = axum::Router::new().nest("/ops", StatusRoutes::new(registry).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let profile = std::env::temp_dir().join(format!("steadfast-chromium-{}", std::process::id()));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("http://{address}/ops/status/ui"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 60 s")
    .expect("chromium started");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Rendered by the page's script from the JSON route, not present in the served HTML.
    assert!(dom.contains(r#"<tr data-agent="gpt-primary">"#), "{dom}");
    assert!(dom.contains(r#"<tr data-agent="claude-backup">"#), "{dom}");
    assert!(
        dom.contains(r#"<td class="unhealthy">unhealthy</td><td>forced_open</td>"#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"<span id="overall" class="unhealthy">unhealthy</span>"#),
        "{dom}"
    );
}
