//! The mock over a real socket, with hyper's client.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast_mock::{Fault, MockServer, Reply, Route, Script, faults};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn post(
    client: &HttpClient,
    url: &str,
    body: &str,
) -> Result<(StatusCode, http::HeaderMap, Bytes), hyper_util::client::legacy::Error> {
    let request = Request::post(url)
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn success_bodies_have_each_providers_shape_and_echo_the_model() {
    let server = MockServer::start().await.unwrap();
    let client = client();
    let (status, headers, body) = post(
        &client,
        &server.url(Route::OpenAiChat),
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let body = json(&body);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let (status, _, body) = post(
        &client,
        &server.url(Route::AnthropicMessages),
        r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    let body = json(&body);
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["stop_reason"], "end_turn");
    server.shutdown().await;
}

#[tokio::test]
async fn faults_are_answered_byte_for_byte_with_their_headers() {
    let server = MockServer::start().await.unwrap();
    let fault = faults::anthropic::rate_limited().header("retry-after", "7");
    server.script(Route::AnthropicMessages, Script::always(fault.clone()));
    let (status, headers, body) = post(&client(), &server.url(Route::AnthropicMessages), "{}")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(&body, fault.body());
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["x-should-retry"], "true");
    assert_eq!(
        headers["anthropic-ratelimit-requests-reset"],
        "2024-03-26T20:00:00Z"
    );
    assert_eq!(headers["request-id"], "req_01T5fCVnYdf9X5ZW6KayReBK");
    server.shutdown().await;
}

#[tokio::test]
async fn fail_next_n_then_succeed_and_count_every_request_per_route() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::fail_next(2, faults::openai::rate_limit_free_tier()),
    );
    let client = client();
    let url = server.url(Route::OpenAiChat);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(&client, &url, "{}").await.unwrap().0.as_u16());
    }
    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(server.requests(Route::OpenAiChat), 3);
    assert_eq!(server.requests(Route::AnthropicMessages), 0);
    assert_eq!(server.remaining_steps(Route::OpenAiChat), 0);
    let last = server.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(last.method, Method::POST);
    assert_eq!(last.path_and_query, "/v1/chat/completions");
    assert_eq!(last.headers["authorization"], "Bearer sk-test");
    assert_eq!(&last.body[..], b"{}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_delayed_reply_waits_before_answering() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::always(Reply::Success.after(Duration::from_millis(150))),
    );
    let started = Instant::now();
    let (status, _, _) = post(&client(), &server.url(Route::OpenAiChat), "{}")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    server.shutdown().await;
}

#[tokio::test]
async fn a_scripted_reset_closes_the_connection_without_an_answer() {
    let server = MockServer::start().await.unwrap();
    server.script(Route::AnthropicMessages, Script::steps([Reply::Reset]));
    let client = client();
    let url = server.url(Route::AnthropicMessages);
    let error = post(&client, &url, "{}").await.unwrap_err();
    assert!(!error.is_connect(), "the request was sent: {error:?}");
    // The raw socket sees an abortive close (RST), not a clean end of stream.
    server.script(Route::AnthropicMessages, Script::steps([Reply::Reset]));
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(b"POST /v1/messages HTTP/1.1\r\nhost: mock\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = socket.read_to_end(&mut buffer).await;
    assert_eq!(
        read.map_err(|error| error.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "got {buffer:?}"
    );
    // After the steps, the route succeeds again.
    assert_eq!(post(&client, &url, "{}").await.unwrap().0, StatusCode::OK);
    assert_eq!(server.requests(Route::AnthropicMessages), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused_and_not_counted() {
    let server = MockServer::start().await.unwrap();
    let client = client();
    let (status, _, _) = post(
        &client,
        &format!("http://{}/v1/embeddings", server.addr()),
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let request = Request::get(server.url(Route::OpenAiChat))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(server.requests(Route::OpenAiChat), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn custom_faults_and_a_then_rule() {
    let server = MockServer::start().await.unwrap();
    server.script(
        Route::OpenAiChat,
        Script::steps([Reply::Success]).then(Fault::json(503, r#"{"error":"down"}"#)),
    );
    let client = client();
    let url = server.url(Route::OpenAiChat);
    assert_eq!(post(&client, &url, "{}").await.unwrap().0, StatusCode::OK);
    for _ in 0..2 {
        let (status, _, body) = post(&client, &url, "{}").await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&body[..], br#"{"error":"down"}"#);
    }
    server.shutdown().await;
}
