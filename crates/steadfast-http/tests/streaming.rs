//! Streamed answers over real sockets on 127.0.0.1 (the mock LLM server's SSE streams, hyper's
//! client), under tokio's paused clock: failover before the first byte, typed errors after it,
//! the breaker judging streams when they end.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::circuit_breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer, CircuitOpen};
use steadfast::fallback::FallbackLayer;
use steadfast::provenance::{Provenance, Served};
use steadfast::retry::{BackoffRetryLayer, Jitter, RetryConfig};
use steadfast::{BoxError, OutcomeKind, Registry};
use steadfast_http::stream::{
    StreamBody, StreamConfig, StreamError, StreamErrorKind, StreamGuardLayer, StreamInfo,
};
use steadfast_http::{BufferedBody, HttpClassifier, reason};
use steadfast_mock::{MockServer, Reply, Route, Script, StreamReply, faults};
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

type HttpClient = Client<HttpConnector, BufferedBody>;
type Answer = http::Response<StreamBody<Incoming>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn request(server: &MockServer, route: Route) -> Request<BufferedBody> {
    Request::post(server.url(route))
        .header("content-type", "application/json")
        .body(BufferedBody::from(
            r#"{"model":"mock-model","stream":true}"#,
        ))
        .unwrap()
}

/// A client that sends every request to `server`'s `route`, whatever its URI (an alternative
/// agent on another host).
fn towards(
    client: HttpClient,
    server: &MockServer,
    route: Route,
) -> BoxCloneSyncService<Request<BufferedBody>, http::Response<Incoming>, BoxError> {
    let uri: http::Uri = server.url(route).parse().unwrap();
    BoxCloneSyncService::new(service_fn(move |mut request: Request<BufferedBody>| {
        *request.uri_mut() = uri.clone();
        let client = client.clone();
        async move { client.request(request).await.map_err(BoxError::from) }
    }))
}

/// Reads a body to its end or its error: the bytes handed on, and the error if any.
async fn read_all<B>(mut body: B) -> (Bytes, Option<BoxError>)
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Err(error) => return (read.freeze(), Some(error)),
        }
    }
    (read.freeze(), None)
}

fn stream_error(error: &BoxError) -> &StreamError {
    steadfast::error::find::<StreamError>(error.as_ref())
        .unwrap_or_else(|| panic!("not a stream error: {error}"))
}

#[tokio::test(start_paused = true)]
async fn a_primary_stalling_before_its_first_event_is_abandoned_at_the_first_byte_deadline_and_the_fallback_streams_in_full()
 {
    let (primary_server, backup_server) = (
        MockServer::start().await.unwrap(),
        MockServer::start().await.unwrap(),
    );
    // The primary sends its head at once, then its first event only after 30 s.
    primary_server.script(
        Route::OpenAiChat,
        Script::always(
            StreamReply::tokens(["PRIMARY-1", "PRIMARY-2"])
                .stall_before_first(Duration::from_secs(30)),
        ),
    );
    backup_server.script(
        Route::OpenAiChat,
        Script::always(
            StreamReply::tokens(["Hello", ",", " world"]).every(Duration::from_millis(20)),
        ),
    );
    let registry = Registry::new();
    let primary = registry.agent("primary").classifier(HttpClassifier::llm());
    let backup = registry.agent("backup").classifier(HttpClassifier::llm());
    let config = StreamConfig::builder()
        .first_byte(Duration::from_secs(2))
        .idle(Duration::from_secs(1))
        .build()
        .unwrap();
    let backup_service = StreamGuardLayer::new(&backup, config).layer(towards(
        client(),
        &backup_server,
        Route::OpenAiChat,
    ));
    let stack = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(&primary)
                .then(&backup, backup_service)
                .mark_responses(),
        )
        .layer(StreamGuardLayer::new(&primary, config))
        .service(towards(client(), &primary_server, Route::OpenAiChat));

    let started = Instant::now();
    let answer: Answer = stack
        .oneshot(request(&primary_server, Route::OpenAiChat))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2100),
        "abandoned at the first-byte deadline, not later: {waited:?}"
    );
    assert_eq!(
        answer.served(),
        Served::Fallback {
            name: "backup".into()
        }
    );
    let info = answer.extensions().get::<StreamInfo>().unwrap().clone();
    assert_eq!(info.agent(), "backup");
    let (body, error) = read_all(answer.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(!text.contains("PRIMARY"), "no byte of the primary: {text}");
    let expected = StreamReply::tokens(["Hello", ",", " world"]).events(Route::OpenAiChat);
    assert_eq!(
        text.matches("\n\n").count(),
        expected.len(),
        "every event: {text}"
    );
    for token in ["\"Hello\"", "\",\"", "\" world\"", "data: [DONE]"] {
        assert!(text.contains(token), "{token} in {text}");
    }
    assert_eq!(primary_server.requests(Route::OpenAiChat), 1);
    assert_eq!(registry.counters("primary").unwrap().fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn a_reset_after_n_events_gives_exactly_those_events_then_a_typed_error_and_opens_the_breaker_after_the_configured_count()
 {
    let server = MockServer::start().await.unwrap();
    let events = 3;
    server.script(
        Route::OpenAiChat,
        // A short pause before the reset, so the client has read what was sent (the paused
        // clock only moves once every task is idle).
        Script::always(
            StreamReply::tokens(["t1", "t2", "t3", "t4", "t5"])
                .pause_after(events, Duration::from_millis(50))
                .reset_after(events),
        ),
    );
    let registry = Registry::new();
    let agent = registry.agent("gpt").classifier(HttpClassifier::llm());
    let breaker = CircuitBreakerLayer::new(
        &agent,
        BreakerConfig::builder()
            .consecutive_failures(2)
            .build()
            .unwrap(),
    );
    let handle = breaker.handle();
    let mut stack = ServiceBuilder::new()
        .layer(breaker)
        .layer(StreamGuardLayer::new(&agent, StreamConfig::default()))
        .service(towards(client(), &server, Route::OpenAiChat));

    for round in 1..=2u64 {
        let answer: Answer = stack
            .ready()
            .await
            .unwrap()
            .call(request(&server, Route::OpenAiChat))
            .await
            .unwrap();
        assert_eq!(
            handle.counts().failures,
            round - 1,
            "the head is not judged: the stream is"
        );
        let (body, error) = read_all(answer.into_body()).await;
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text.matches("\n\n").count(),
            events,
            "exactly {events} events: {text}"
        );
        for token in ["t1", "t2", "t3"] {
            assert!(text.contains(token));
        }
        assert!(!text.contains("t4"));
        let error = error.expect("a typed error after the events");
        let error = stream_error(&error);
        assert_eq!(error.kind(), StreamErrorKind::Body);
        assert!(error.is_mid_stream());
        assert_eq!(error.delivered().events, events as u64);
        assert_eq!(error.delivered().bytes, body.len() as u64);
        assert_eq!(error.outcome().kind(), OutcomeKind::Transient);
        assert_eq!(error.agent(), Some("gpt"));
        // Recorded when the stream died.
        assert_eq!(handle.counts().failures, round);
    }
    assert_eq!(handle.state(), BreakerState::Open);
    let refused = stack
        .ready()
        .await
        .unwrap()
        .call(request(&server, Route::OpenAiChat))
        .await
        .unwrap_err();
    assert!(steadfast::error::find::<CircuitOpen>(refused.as_ref()).is_some());
    assert_eq!(server.requests(Route::OpenAiChat), 2);
}

#[tokio::test(start_paused = true)]
async fn an_in_band_overloaded_error_counts_as_a_failure() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::AnthropicMessages,
        Script::always(
            StreamReply::tokens(["Hi", " there"])
                .error_after(3, faults::anthropic::stream_overloaded()),
        ),
    );
    let registry = Registry::new();
    let agent = registry.agent("claude").classifier(HttpClassifier::llm());
    let breaker = CircuitBreakerLayer::new(
        &agent,
        BreakerConfig::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    let handle = breaker.handle();
    let stack = ServiceBuilder::new()
        .layer(breaker)
        .layer(StreamGuardLayer::new(&agent, StreamConfig::default()))
        .service(towards(client(), &server, Route::AnthropicMessages));

    let answer: Answer = stack
        .oneshot(request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    assert!(answer.body().scans_sse());
    let (_body, error) = read_all(answer.into_body()).await;
    let error = error.expect("the in-band error");
    let error = stream_error(&error);
    assert_eq!(error.kind(), StreamErrorKind::InBand);
    assert_eq!(error.outcome().kind(), OutcomeKind::Transient);
    assert_eq!(error.outcome().reason(), Some(reason::OVERLOADED));
    assert_eq!(
        error.delivered().events,
        3,
        "message_start, content_block_start, one delta"
    );
    assert!(error.detail().unwrap().contains("overloaded_error"));
    assert_eq!(handle.counts().failures, 1);
    assert_eq!(handle.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_error_event_before_the_first_byte_is_retried_and_the_caller_sees_only_the_good_stream()
{
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::AnthropicMessages,
        Script::steps([Reply::from(
            StreamReply::tokens(["never"]).error_after(0, faults::anthropic::stream_overloaded()),
        )])
        .then(StreamReply::tokens(["good"])),
    );
    let agent = Registry::new()
        .agent("claude")
        .classifier(HttpClassifier::llm());
    let retry = RetryConfig::builder()
        .max_retries(2)
        .jitter(Jitter::None)
        .base(Duration::from_millis(100))
        .build()
        .unwrap();
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&agent, retry))
        .layer(StreamGuardLayer::new(&agent, StreamConfig::default()))
        .service(towards(client(), &server, Route::AnthropicMessages));
    let answer: Answer = stack
        .oneshot(request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    let (body, error) = read_all(answer.into_body()).await;
    assert!(error.is_none(), "{error:?}");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("good") && !text.contains("never") && !text.contains("overloaded"));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(server.requests(Route::AnthropicMessages), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_steady_trickle_is_never_cut_by_the_stall_timeout() {
    let server = MockServer::start().await.unwrap();
    let tokens: Vec<String> = (0..30).map(|n| format!("tok{n}")).collect();
    server.script(
        Route::OpenAiChat,
        Script::always(StreamReply::tokens(tokens.clone()).every(Duration::from_millis(950))),
    );
    let agent = Registry::new()
        .agent("slow")
        .classifier(HttpClassifier::llm());
    let config = StreamConfig::builder()
        .first_byte(Duration::from_secs(5))
        .idle(Duration::from_secs(1))
        .build()
        .unwrap();
    let stack =
        StreamGuardLayer::new(&agent, config).layer(towards(client(), &server, Route::OpenAiChat));
    let started = Instant::now();
    let answer: Answer = stack
        .oneshot(request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    let (body, error) = read_all(answer.into_body()).await;
    assert!(
        error.is_none(),
        "a trickle with gaps under the idle timeout is never a stall: {error:?}"
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(text.matches("\n\n").count(), tokens.len() + 2);
    // 31 gaps of 950 ms: far longer than the idle timeout in total.
    assert!(started.elapsed() >= Duration::from_millis(950 * 31));
}

#[tokio::test(start_paused = true)]
async fn a_stall_mid_stream_is_a_typed_stalled_error_within_the_idle_timeout_and_a_quarter() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(
            StreamReply::tokens(["a", "b", "c"]).pause_after(2, Duration::from_secs(600)),
        ),
    );
    let agent = Registry::new()
        .agent("stuck")
        .classifier(HttpClassifier::llm());
    let idle = Duration::from_secs(4);
    let config = StreamConfig::builder().idle(idle).build().unwrap();
    let stack =
        StreamGuardLayer::new(&agent, config).layer(towards(client(), &server, Route::OpenAiChat));
    let answer: Answer = stack
        .oneshot(request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    let mut body = answer.into_body();
    let mut last_byte = Instant::now();
    let error = loop {
        match body.frame().await.expect("the stream never ends cleanly") {
            Ok(_) => last_byte = Instant::now(),
            Err(error) => break error,
        }
    };
    let silent = last_byte.elapsed();
    let error = stream_error(&error);
    assert_eq!(error.kind(), StreamErrorKind::Stalled);
    assert_eq!(error.delivered().events, 2);
    assert_eq!(error.outcome().reason(), Some(reason::STREAM_STALLED));
    assert!(
        silent >= idle && silent <= idle + idle / 4,
        "declared after {silent:?} of silence"
    );
}

#[tokio::test(start_paused = true)]
async fn the_time_to_first_byte_is_reported_with_the_answer() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(StreamReply::tokens(["x"]).stall_before_first(Duration::from_millis(700))),
    );
    let agent = Registry::new()
        .agent("ttfb")
        .classifier(HttpClassifier::llm());
    let stack = StreamGuardLayer::new(&agent, StreamConfig::default()).layer(towards(
        client(),
        &server,
        Route::OpenAiChat,
    ));
    let answer: Answer = stack
        .oneshot(request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    let ttfb = answer
        .extensions()
        .get::<StreamInfo>()
        .unwrap()
        .time_to_first_byte()
        .unwrap();
    assert!(
        ttfb >= Duration::from_millis(700) && ttfb < Duration::from_millis(750),
        "{ttfb:?}"
    );
    let total = answer.body().time_to_first_byte();
    assert_eq!(total, Some(ttfb));
    let (body, error) = read_all(answer.into_body()).await;
    assert!(error.is_none());
    assert!(body.ends_with(b"data: [DONE]\n\n"));
}

#[tokio::test(start_paused = true)]
async fn error_answers_are_judged_at_their_head_and_pass_through() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::AnthropicMessages,
        Script::always(faults::anthropic::overloaded()),
    );
    let agent = Registry::new()
        .agent("claude")
        .classifier(HttpClassifier::llm());
    let stack = StreamGuardLayer::new(&agent, StreamConfig::default()).layer(towards(
        client(),
        &server,
        Route::AnthropicMessages,
    ));
    let answer: Answer = stack
        .oneshot(request(&server, Route::AnthropicMessages))
        .await
        .unwrap();
    assert_eq!(answer.status(), 529);
    assert!(answer.extensions().get::<StreamInfo>().is_none());
    let outcome = HttpClassifier::llm().classify_response(&answer);
    assert_eq!(outcome.kind(), OutcomeKind::Transient);
    assert!(!outcome.is_deferred());
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"{"));
}

/// A stream that fails after its first byte is dead-lettered by the guard itself (a
/// dead-letter layer above it saw a successful head), with the partial delivery in the error
/// chain and the request's secrets redacted.
#[cfg(feature = "dead-letter")]
#[tokio::test(start_paused = true)]
async fn a_mid_stream_failure_is_dead_lettered_with_the_partial_delivery_noted() {
    use std::sync::Arc;
    use steadfast::dead_letter::MemorySink;
    use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};

    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::steps([Reply::from(
            StreamReply::tokens(["t1", "t2", "t3", "t4"])
                .pause_after(2, Duration::from_millis(50))
                .reset_after(2),
        )])
        .then(StreamReply::tokens(["fine"])),
    );
    let registry = Registry::new();
    let agent = registry.agent("gpt").classifier(HttpClassifier::llm());
    let sink = Arc::new(MemorySink::new(16));
    let guard = StreamGuardLayer::new(&agent, StreamConfig::default())
        .dead_letter::<Request<BufferedBody>, _>(sink.clone(), HttpRequestEncoder::new());
    let stack = guard.layer(towards(client(), &server, Route::OpenAiChat));

    let mut request = request(&server, Route::OpenAiChat);
    request
        .headers_mut()
        .insert("authorization", "Bearer sk-secret-key".parse().unwrap());
    let answer: Answer = stack.clone().oneshot(request).await.unwrap();
    let (_, error) = read_all(answer.into_body()).await;
    assert!(stream_error(&error.unwrap()).is_mid_stream());
    // The record is appended off the caller's path.
    for _ in 0..100 {
        if !sink.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let records = sink.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.agent, "gpt");
    assert_eq!(record.outcome, OutcomeKind::Transient);
    assert!(
        record.error_chain[0].contains("after")
            && record.error_chain[0].contains("2 complete events"),
        "{:?}",
        record.error_chain
    );
    let stored = decode_request(&record.request).unwrap();
    assert_eq!(stored.uri().path(), "/v1/chat/completions");
    assert_ne!(stored.headers()["authorization"], "Bearer sk-secret-key");

    // A stream that completes leaves nothing behind.
    let answer: Answer = stack.oneshot(request_again(&server)).await.unwrap();
    let (_, error) = read_all(answer.into_body()).await;
    assert!(error.is_none());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(sink.len(), 1);
}

#[cfg(feature = "dead-letter")]
fn request_again(server: &MockServer) -> Request<BufferedBody> {
    request(server, Route::OpenAiChat)
}

/// The opt-in resume hook: after a reset mid-stream, the caller's hook sends a continuation
/// request and its events follow the delivered ones in the same body; the failure is still
/// recorded by the breaker when it happens.
#[tokio::test(start_paused = true)]
async fn a_resume_hook_continues_a_stream_that_failed_mid_way() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::steps([Reply::from(
            StreamReply::tokens(["Hel", "lo", "NEVER"])
                .pause_after(2, Duration::from_millis(50))
                .reset_after(2),
        )])
        .then(StreamReply::tokens([", world"])),
    );
    let registry = Registry::new();
    let agent = registry.agent("gpt").classifier(HttpClassifier::llm());
    let breaker = CircuitBreakerLayer::new(&agent, BreakerConfig::default());
    let handle = breaker.handle();
    let stack = ServiceBuilder::new()
        .layer(breaker)
        .layer(StreamGuardLayer::new(&agent, StreamConfig::default()))
        .service(towards(client(), &server, Route::OpenAiChat));
    let answer: Answer = stack
        .oneshot(request(&server, Route::OpenAiChat))
        .await
        .unwrap();
    let continuation_client = client();
    let continuation = request(&server, Route::OpenAiChat);
    let mut continuation = Some(continuation);
    let body = answer.into_body().resume_with(move |failure| {
        assert!(failure.is_mid_stream());
        assert_eq!(failure.delivered().events, 2);
        // Once: a real hook would put the delivered text in the request as a prefix.
        let request = continuation.take()?;
        let client = continuation_client.clone();
        Some(Box::pin(async move {
            Ok(client.request(request).await?.into_body())
        }))
    });
    let (bytes, error) = read_all(body).await;
    assert!(error.is_none(), "{error:?}");
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains("\"Hel\"") && text.contains("\"lo\"") && text.contains("\", world\""));
    assert!(!text.contains("NEVER"));
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        handle.counts().failures,
        1,
        "the failure counted when it happened"
    );
    assert_eq!(server.requests(Route::OpenAiChat), 2);
}
