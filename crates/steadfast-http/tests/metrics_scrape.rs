//! `/metrics` after a scripted outage of a mock LLM agent over a real socket: the latency and
//! attempts histograms with steadfast's buckets, a `# HELP` line for every series, the breaker
//! state as labelled 0/1 gauges, time in each state, and no series under a default agent name.
#![cfg(feature = "axum")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::retry::{BackoffRetryLayer, Jitter, RetryConfig};
use steadfast::telemetry::{self, ATTEMPT_BUCKETS, LATENCY_BUCKETS};
use steadfast::{BoxError, Registry};
use steadfast_http::status::{StatusRoutes, prometheus_builder};
use steadfast_http::{BufferedBody, HttpClassifier};
use steadfast_mock::{MockServer, Route, Script, faults};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type HttpClient = Client<HttpConnector, BufferedBody>;

const AGENT: &str = "mock-claude";

async fn send(
    client: HttpClient,
    request: Request<BufferedBody>,
) -> Result<Response<Bytes>, BoxError> {
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, body))
}

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (steadfast's label values hold no quotes or
/// commas, which keeps this parser short).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect(line);
            let (name, labels) = series
                .split_once('{')
                .map_or((series, ""), |(name, labels)| {
                    (name, labels.trim_end_matches('}'))
                });
            Sample {
                name: name.to_owned(),
                labels: labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect(pair);
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect(),
                value: value.parse().expect(line),
            }
        })
        .collect()
}

/// The value of `name` whose labels include all of `labels`; panics unless exactly one.
fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = all
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:#?}");
    found[0].value
}

/// The `le` bounds of `name`'s histogram series with `labels`, in exposition order.
fn bucket_bounds(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> Vec<String> {
    all.iter()
        .filter(|sample| {
            sample.name == format!("{name}_bucket")
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.labels["le"].clone())
        .collect()
}

fn expected_bounds(buckets: &[f64]) -> Vec<String> {
    buckets
        .iter()
        .map(ToString::to_string)
        .chain(["+Inf".to_owned()])
        .collect()
}

/// `GET /metrics` of the status routes over `registry`.
async fn scrape(registry: &Registry, handle: PrometheusHandle) -> String {
    let app = StatusRoutes::new(registry.clone())
        .prometheus(handle)
        .router::<()>();
    let response = app
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Every steadfast metric exported is described: `# HELP` with the library's text, and a
/// `# TYPE` that matches its kind; and the metrics of the scenario are all there.
fn assert_every_metric_is_described(text: &str) {
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    for name in [
        "steadfast_calls_total",
        "steadfast_attempt_duration_seconds",
        "steadfast_call_duration_seconds",
        "steadfast_call_attempts",
        "steadfast_breaker_state",
        "steadfast_breaker_state_seconds_total",
        "steadfast_breaker_transitions_total",
        "steadfast_retries_total",
        "steadfast_retries_exhausted_total",
    ] {
        assert!(exported.contains(name), "{name} not exported:\n{text}");
    }
    for name in &exported {
        let metric = telemetry::metric(name).unwrap_or_else(|| panic!("{name} is not described"));
        let help = format!("# HELP {name} {}", metric.help);
        assert!(text.contains(&help), "no `{help}` in:\n{text}");
        let kind = match metric.kind {
            telemetry::MetricKind::Counter => "counter",
            telemetry::MetricKind::Gauge => "gauge",
            telemetry::MetricKind::Histogram => "histogram",
        };
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} is not a {kind}:\n{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
#[allow(clippy::float_cmp)] // counts and 0/1 gauges: small whole numbers, exact in f64
async fn metrics_after_an_outage_have_histograms_help_and_state_labels() {
    let recorder = prometheus_builder().unwrap().build_recorder();
    let handle = recorder.handle();
    // The test's runtime polls everything on this thread: the recorder sees every metric.
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let server = MockServer::start().await.unwrap();
    // The outage: three overloaded answers, then the agent is back.
    server.script(
        Route::AnthropicMessages,
        Script::fail_next(3, faults::anthropic::overloaded()),
    );
    let registry = Registry::new();
    let agent = registry.agent(AGENT).classifier(HttpClassifier::llm());
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(10))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let breaker = BreakerConfig::builder()
        .consecutive_failures(3)
        .initial_open_duration(Duration::from_secs(2))
        .half_open_probes(1)
        .build()
        .unwrap();
    let client = Arc::new(Client::builder(TokioExecutor::new()).build_http::<BufferedBody>());
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&agent, retry))
        .layer(CircuitBreakerLayer::new(&agent, breaker))
        .service(service_fn(move |request: Request<BufferedBody>| {
            send(HttpClient::clone(&client), request)
        }));
    let request = || {
        Request::post(server.url(Route::AnthropicMessages))
            .header("content-type", "application/json")
            .header("x-api-key", "test-key")
            .body(BufferedBody::from(
                r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}"#,
            ))
            .unwrap()
    };

    // Three attempts, three 529s: the breaker opens and the call fails.
    let first = stack.clone().oneshot(request()).await;
    assert!(
        first.is_err() || first.as_ref().is_ok_and(|r| r.status() == 529),
        "{first:?}"
    );
    assert_eq!(server.requests(Route::AnthropicMessages), 3);
    let breaker = registry.breaker(AGENT).unwrap();
    assert_eq!(breaker.state().as_str(), "open");
    // Refused while open, then probed once the open time is over, and closed again.
    assert!(stack.clone().oneshot(request()).await.is_err());
    tokio::time::advance(Duration::from_secs(3)).await;
    let probe = stack.clone().oneshot(request()).await.unwrap();
    assert_eq!(probe.status(), 200);
    let fine = stack.clone().oneshot(request()).await.unwrap();
    assert_eq!(fine.status(), 200);
    assert_eq!(breaker.state().as_str(), "closed");

    let text = scrape(&registry, handle).await;
    assert_every_metric_is_described(&text);
    let all = samples(&text);

    let agent = ("agent", AGENT);
    assert_histograms(&all, agent);
    assert_breaker_series(&all, agent);
    // Only names the application gave: no ghost series under a default agent name.
    assert!(!text.contains(r#"agent="agent""#), "{text}");
    assert!(
        all.iter()
            .filter_map(|sample| sample.labels.get("agent"))
            .all(|name| name == AGENT),
        "{text}"
    );
    server.shutdown().await;
}

/// The latency and attempts histograms, with steadfast's buckets, per agent and outcome.
#[allow(clippy::float_cmp)] // counts: small whole numbers, exact in f64
fn assert_histograms(all: &[Sample], agent: (&str, &str)) {
    // Histograms with steadfast's buckets, per agent and outcome.
    for outcome in ["success", "transient"] {
        assert_eq!(
            bucket_bounds(
                all,
                "steadfast_attempt_duration_seconds",
                &[agent, ("outcome", outcome)]
            ),
            expected_bounds(LATENCY_BUCKETS),
            "attempt durations, {outcome}"
        );
    }
    assert_eq!(
        value(
            all,
            "steadfast_attempt_duration_seconds_count",
            &[agent, ("outcome", "transient")]
        ),
        3.0
    );
    assert_eq!(
        value(
            all,
            "steadfast_attempt_duration_seconds_count",
            &[agent, ("outcome", "success")]
        ),
        2.0
    );
    // The attempt the open breaker refused: an agent fault that took no time (paused clock).
    assert_eq!(
        value(
            all,
            "steadfast_attempt_duration_seconds_count",
            &[agent, ("outcome", "agent_fault")]
        ),
        1.0
    );
    assert_eq!(
        value(
            all,
            "steadfast_attempt_duration_seconds_sum",
            &[agent, ("outcome", "agent_fault")]
        ),
        0.0
    );
    for outcome in ["success", "error"] {
        assert_eq!(
            bucket_bounds(
                all,
                "steadfast_call_duration_seconds",
                &[agent, ("outcome", outcome)]
            ),
            expected_bounds(LATENCY_BUCKETS),
            "call durations, {outcome}"
        );
    }
    assert_eq!(
        bucket_bounds(all, "steadfast_call_attempts", &[agent]),
        expected_bounds(ATTEMPT_BUCKETS)
    );
    // Four calls: the outage's three attempts are one call.
    assert_eq!(value(all, "steadfast_call_attempts_count", &[agent]), 4.0);
    assert_eq!(
        value(all, "steadfast_call_attempts_bucket", &[agent, ("le", "1")]),
        3.0,
        "three calls took one attempt"
    );
    // The failed call took the outage's 10 ms and 20 ms waits (paused clock: nothing else).
    let failed = value(
        all,
        "steadfast_call_duration_seconds_sum",
        &[agent, ("outcome", "error")],
    );
    assert!(failed >= 0.03, "{failed}");
}

/// The breaker's series: one labelled gauge per state, transitions, time in each state.
#[allow(clippy::float_cmp)] // 0/1 gauges and counts, exact in f64
fn assert_breaker_series(all: &[Sample], agent: (&str, &str)) {
    // The breaker's state: one labelled gauge per state, 1 for the current one.
    for state in ["closed", "open", "half_open", "forced_open", "disabled"] {
        let expected = if state == "closed" { 1.0 } else { 0.0 };
        assert_eq!(
            value(all, "steadfast_breaker_state", &[agent, ("state", state)]),
            expected,
            "{state}"
        );
    }
    assert_eq!(
        value(
            all,
            "steadfast_breaker_transitions_total",
            &[agent, ("from", "closed"), ("to", "open")]
        ),
        1.0
    );
    // Open from the third failure until the advance of 3 s let the probe through.
    let open = value(
        all,
        "steadfast_breaker_state_seconds_total",
        &[agent, ("state", "open")],
    );
    assert!((2.0..=3.0).contains(&open), "{open}");
    assert_eq!(
        value(
            all,
            "steadfast_calls_total",
            &[agent, ("outcome", "rejected")]
        ),
        1.0
    );
}
