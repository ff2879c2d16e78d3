//! The stream metrics in a Prometheus scrape: time to first byte per agent (with the latency
//! buckets), streams by result, failures by phase and kind, bytes handed on.
#![cfg(feature = "axum")]

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast::Registry;
use steadfast::telemetry::LATENCY_BUCKETS;
use steadfast_http::status::prometheus_builder;
use steadfast_http::stream::{StreamConfig, StreamGuardLayer};
use steadfast_http::{BufferedBody, HttpClassifier};
use steadfast_mock::{MockServer, Reply, Route, Script, StreamReply};
use tower::{Layer, ServiceExt};

#[tokio::test(start_paused = true)]
async fn streams_are_counted_and_their_time_to_first_byte_is_a_histogram_per_agent() {
    let recorder = prometheus_builder().unwrap().build_recorder();
    let handle = recorder.handle();
    // The test's runtime polls everything on this thread: the recorder sees every metric.
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::steps([
            Reply::from(
                StreamReply::tokens(["a", "b"]).stall_before_first(Duration::from_millis(300)),
            ),
            Reply::from(StreamReply::tokens(["never"]).hang_after(0)),
            Reply::from(
                StreamReply::tokens(["a", "b", "c"]).pause_after(1, Duration::from_secs(60)),
            ),
        ]),
    );
    let agent = Registry::new()
        .agent("metered")
        .classifier(HttpClassifier::llm());
    let config = StreamConfig::builder()
        .first_byte(Duration::from_secs(1))
        .idle(Duration::from_secs(2))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<BufferedBody>();
    let guarded = StreamGuardLayer::new(&agent, config).layer(tower::service_fn(
        move |request: http::Request<BufferedBody>| {
            let client = client.clone();
            async move { client.request(request).await }
        },
    ));
    let request = || {
        http::Request::post(server.url(Route::OpenAiChat))
            .body(BufferedBody::from(r#"{"stream":true}"#))
            .unwrap()
    };
    // Complete, after 300 ms.
    let answer = guarded.clone().oneshot(request()).await.unwrap();
    answer.into_body().collect().await.unwrap();
    // Stuck before its first byte.
    assert!(guarded.clone().oneshot(request()).await.is_err());
    // Stalled after its first event.
    let answer = guarded.clone().oneshot(request()).await.unwrap();
    assert!(answer.into_body().collect().await.is_err());

    let text = handle.render();
    let line = |prefix: &str| {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"))
            .to_owned()
    };
    assert!(line("steadfast_stream_first_byte_seconds_count{agent=\"metered\"}").ends_with(" 2"));
    let sum: f64 = line("steadfast_stream_first_byte_seconds_sum{agent=\"metered\"}")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.3..0.35).contains(&sum), "300 ms and about 0: {sum}");
    let buckets = text
        .lines()
        .filter(|line| {
            line.starts_with("steadfast_stream_first_byte_seconds_bucket{agent=\"metered\"")
        })
        .count();
    assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);
    assert!(line("steadfast_streams_total{agent=\"metered\",result=\"complete\"}").ends_with(" 1"));
    assert!(line("steadfast_streams_total{agent=\"metered\",result=\"failed\"}").ends_with(" 2"));
    assert!(
        line("steadfast_stream_failures_total{agent=\"metered\",phase=\"before_first_byte\",kind=\"first_byte_timeout\"}")
            .ends_with(" 1")
    );
    assert!(
        line("steadfast_stream_failures_total{agent=\"metered\",phase=\"mid_stream\",kind=\"stalled\"}")
            .ends_with(" 1")
    );
    assert!(line("# HELP steadfast_stream_first_byte_seconds").contains("time to first token"));
    let bytes: u64 = line("steadfast_stream_bytes_total{agent=\"metered\"}")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0);
}
