//! A local hyper 1 server pretending to be an LLM API, answering from a script.
//!
//! Each request takes the next [`Reply`] of the script (the last one repeats): a completion,
//! a 429 with `retry-after-ms`, a 429 saying the quota is gone, a 503, a 400
//! `context_length_exceeded`, or a hang that never answers (so the client's timeout fires). It
//! listens on `127.0.0.1:0` and stops when the [`MockLlm`] is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `200` with a completion echoing the prompt.
    Complete,
    /// `429 Too Many Requests` with `retry-after-ms`.
    RateLimited {
        /// The wait the server asks for.
        retry_after: Duration,
    },
    /// `429` whose body says the quota is exhausted (waiting will not help).
    QuotaExhausted,
    /// `503 Service Unavailable`.
    Unavailable,
    /// Never answers (the connection stays open): the client's timeout must fire.
    Hang,
    /// `400` with OpenAI's `context_length_exceeded` body (the fixture of steadfast-http's
    /// tests, from <https://github.com/chathub-dev/chathub/issues/126>).
    ContextTooLong,
}

/// A running fake LLM API.
#[derive(Debug)]
pub struct MockLlm {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl MockLlm {
    /// Starts a server on `127.0.0.1:0` answering from `script`.
    pub async fn start(script: Vec<Reply>) -> std::io::Result<MockLlm> {
        if script.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a mock LLM script needs at least one reply",
            ));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let script: Arc<[Reply]> = script.into();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let script = script.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let hit = counter.fetch_add(1, Ordering::SeqCst);
                        let reply = script[hit.min(script.len() - 1)];
                        answer(reply, request)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(MockLlm { addr, hits, server })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1/chat/completions`.
    pub fn url(&self) -> String {
        format!("http://{}/v1/chat/completions", self.addr)
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

async fn answer(
    reply: Reply,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let prompt = request.into_body().collect().await?.to_bytes();
    let response = match reply {
        Reply::Complete => {
            let mut text = b"{\"choices\":[{\"text\":\"you said: ".to_vec();
            text.extend_from_slice(&prompt);
            text.extend_from_slice(b"\"}]}");
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(text)))
        }
        Reply::RateLimited { retry_after } => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after-ms", retry_after.as_millis().to_string())
            .body(Full::new(Bytes::from_static(
                b"{\"error\":{\"type\":\"rate_limit_exceeded\"}}",
            ))),
        Reply::QuotaExhausted => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .body(Full::new(Bytes::from_static(
                b"{\"error\":{\"type\":\"insufficient_quota\",\"message\":\"You exceeded your current quota\"}}",
            ))),
        Reply::Unavailable => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Full::new(Bytes::from_static(b"{\"error\":\"overloaded\"}"))),
        Reply::ContextTooLong => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(include_bytes!(
                "../../crates/steadfast-http/tests/fixtures/llm/openai_400_context_length_exceeded.json"
            )))),
        Reply::Hang => std::future::pending().await,
    };
    Ok(response.expect("static response parts are valid"))
}
