//! [`MockServer`]: hyper 1 on `127.0.0.1`, one task per connection, scripts behind one mutex.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::script::{Fault, Reply, Script};
use crate::stream::{StreamReset, never};
use crate::success;

/// The largest request body the mock reads; a bigger one is answered 413 (real APIs limit
/// request sizes too, and a test must not make the mock buffer without bound).
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

/// The response body type: boxed so that streamed (SSE) replies share it with whole ones; its
/// error is a scripted reset mid-stream.
type Body = BoxBody<Bytes, StreamReset>;

/// The endpoints the mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// OpenAI's (and Azure's, vLLM's, Mistral's...) `POST /v1/chat/completions`.
    OpenAiChat,
    /// Anthropic's `POST /v1/messages`.
    AnthropicMessages,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 2] = [Route::OpenAiChat, Route::AnthropicMessages];

    /// The request path.
    pub const fn path(self) -> &'static str {
        match self {
            Route::OpenAiChat => "/v1/chat/completions",
            Route::AnthropicMessages => "/v1/messages",
        }
    }

    fn of_path(path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|route| route.path() == path)
    }
}

/// A request the mock received, as it arrived.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path_and_query: String,
    /// The headers (to check `authorization`, `x-api-key`, `anthropic-version`, ...).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Binding `127.0.0.1:0` failed.
    #[error("the mock LLM server could not listen on 127.0.0.1: {0}")]
    Bind(#[source] io::Error),
}

/// A scripted reset: the connection task ends with this so hyper drops the socket unanswered.
#[derive(Debug, thiserror::Error)]
#[error("scripted connection reset")]
struct ScriptedReset;

#[derive(Default)]
struct RouteState {
    script: Script,
    received: u64,
    last: Option<RecordedRequest>,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<Route, RouteState>>,
    /// Numbers success ids (`chatcmpl-mock-1`, `msg_mock_2`, ...).
    answered: AtomicU64,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, HashMap<Route, RouteState>> {
        // A panicking test thread must not make every later assertion panic too.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A mock LLM API on `127.0.0.1` with an OS-assigned port, speaking OpenAI's
/// `POST /v1/chat/completions` and Anthropic's `POST /v1/messages`, each answering from its own
/// [`Script`] and counting what it received.
///
/// Dropping the server stops it; [`shutdown`](Self::shutdown) also waits for the accept loop to
/// end. Open connections are aborted either way.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts a server on `127.0.0.1:0` whose routes all succeed until scripted otherwise.
    /// Must be called inside a tokio runtime.
    pub async fn start() -> Result<MockServer, MockError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(MockError::Bind)?;
        let addr = listener.local_addr().map_err(MockError::Bind)?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        tracing::debug!(%addr, "mock LLM server listening");
        Ok(MockServer {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `route`, e.g. `http://127.0.0.1:40123/v1/messages`.
    pub fn url(&self, route: Route) -> String {
        format!("http://{}{}", self.addr, route.path())
    }

    /// Replaces `route`'s script (its counters stay).
    pub fn script(&self, route: Route, script: Script) {
        self.shared.routes().entry(route).or_default().script = script;
    }

    /// How many requests `route` received (answered, delayed, reset: all count).
    pub fn requests(&self, route: Route) -> u64 {
        self.shared
            .routes()
            .get(&route)
            .map_or(0, |state| state.received)
    }

    /// The last request `route` received.
    pub fn last_request(&self, route: Route) -> Option<RecordedRequest> {
        self.shared
            .routes()
            .get(&route)
            .and_then(|state| state.last.clone())
    }

    /// Steps of `route`'s script not yet used.
    pub fn remaining_steps(&self, route: Route) -> usize {
        self.shared
            .routes()
            .get(&route)
            .map_or(0, |state| state.script.remaining_steps())
    }

    /// Stops accepting, aborts open connections and waits for the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    // Dropping the set at the end aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        tracing::debug!(%error, "mock LLM server: accept failed");
                        continue;
                    }
                };
                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream {
        stream,
        reset: Arc::clone(&reset),
    });
    let service =
        service_fn(move |request| handle(Arc::clone(&shared), Arc::clone(&reset), request));
    if let Err(error) = http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(%error, "mock LLM server: connection ended");
    }
}

async fn handle(
    shared: Arc<Shared>,
    reset: Arc<AtomicBool>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ScriptedReset> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "mock LLM server: request body refused");
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
    };
    let Some(route) = Route::of_path(parts.uri.path()) else {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "no such route on the mock LLM server",
        ));
    };
    if parts.method != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
    }
    let reply = {
        let mut routes = shared.routes();
        let state = routes.entry(route).or_default();
        state.received += 1;
        state.last = Some(RecordedRequest {
            method: parts.method,
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| route.path().to_owned(), ToString::to_string),
            headers: parts.headers,
            body: body.clone(),
        });
        state.script.next_reply()
    };
    let mut reply = reply;
    loop {
        match reply {
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::Success => {
                let number = shared.answered.fetch_add(1, Ordering::Relaxed) + 1;
                return Ok(json(StatusCode::OK, success::body(route, &body, number)));
            }
            Reply::Fault(fault) => return Ok(fault_response(&fault)),
            Reply::Reset => {
                reset.store(true, Ordering::Release);
                return Err(ScriptedReset);
            }
            Reply::Stream(stream) => {
                let number = shared.answered.fetch_add(1, Ordering::Relaxed) + 1;
                let model = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|request| request.get("model")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "mock-model".to_owned());
                let body = stream.body(route, &model, number, Arc::clone(&reset));
                let mut response = Response::new(body.boxed());
                let headers = response.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    http::HeaderValue::from_static("text/event-stream"),
                );
                headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache"),
                );
                return Ok(response);
            }
        }
    }
}

fn fault_response(fault: &Fault) -> Response<Body> {
    let mut response = Response::new(full(fault.body().clone()));
    *response.status_mut() = fault.status();
    *response.headers_mut() = fault.headers().clone();
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(never).boxed()
}

/// A TCP stream that, when dropped after a scripted reset, aborts with `RST` instead of `FIN`.
///
/// hyper owns the stream while serving, so the service cannot close it itself; it sets the
/// flag and fails, hyper drops the connection, and this drop sets `SO_LINGER` to zero first.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Acquire)
            && let Err(error) = self.stream.set_zero_linger()
        {
            tracing::debug!(%error, "mock LLM server: could not arm the reset");
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
