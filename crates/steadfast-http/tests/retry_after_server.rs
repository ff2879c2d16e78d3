//! A real hyper server on 127.0.0.1 answers 503 + `Retry-After` once, then 200: the client
//! stack (a hand-rolled hyper HTTP/1 client under `BackoffRetryLayer` + `HttpClassifier`) waits
//! as told and succeeds.
//!
//! Real sockets and tokio's paused clock do not mix well (the clock auto-advances while the
//! runtime waits on I/O), so these tests run on real time with `Retry-After: 1` and bound what
//! they wait to a few seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use steadfast::Agent;
use steadfast::prelude::*;
use steadfast::retry::count_attempts;
use steadfast_http::{BufferedBody, HttpClassifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Serves: first request 503 with `Retry-After: <retry_after>`, then 200 echoing the body.
async fn serve(retry_after: &'static str) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let hit = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let response = if hit == 0 {
                            Response::builder()
                                .status(503)
                                .header("retry-after", retry_after)
                                .body(Full::new(Bytes::from_static(b"overloaded")))
                        } else {
                            let mut echo = b"echo: ".to_vec();
                            echo.extend_from_slice(&body);
                            Response::builder()
                                .status(200)
                                .body(Full::new(Bytes::from(echo)))
                        };
                        Ok::<_, hyper::Error>(response.expect("valid response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

/// One connection per request, response body buffered (so the classifier may read it).
async fn send(
    addr: SocketAddr,
    request: Request<BufferedBody>,
) -> Result<Response<BufferedBody>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, BufferedBody::new(body)))
}

fn request() -> Request<BufferedBody> {
    Request::post("/v1/chat")
        .header("host", "127.0.0.1")
        .body(BufferedBody::from("hello"))
        .unwrap()
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out_and_the_retry_succeeds() {
    let (addr, hits) = serve("1").await;
    let config = RetryConfig::builder()
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(
            &Agent::new("local").classifier(HttpClassifier::new()),
            config,
        ))
        .service(service_fn(move |request| send(addr, request)));

    let started = Instant::now();
    let (response, attempts) = count_attempts(client.oneshot(request())).await;
    let elapsed = started.elapsed();
    let response = response.unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.body().bytes().as_ref(),
        b"echo: hello",
        "body resent"
    );
    assert_eq!(attempts, Some(2));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "waited as told: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "and no longer: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_retry_after_over_the_cap_returns_the_503_without_waiting() {
    let (addr, hits) = serve("3600").await;
    let client = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(
            &Agent::new("local").classifier(HttpClassifier::new()),
            RetryConfig::default(),
        ))
        .service(service_fn(move |request| send(addr, request)));

    let started = Instant::now();
    let response = client.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.body().bytes().as_ref(), b"overloaded");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}
