//! [`ReqwestAgent`]: a `reqwest::Client` (or a `ClientWithMiddleware`) as the agent under the
//! layers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::llm::MAX_ERROR_BODY;

use super::peek::peek_error_body;
use super::request::{ReplayableRequest, to_reqwest};

/// A reqwest client as a tower `Service`, for the bottom of a stack.
///
/// It sends [`ReplayableRequest`]s (what retry and fallback need: cloneable) and plain
/// `reqwest::Request`s, through any `Service<reqwest::Request, Response = reqwest::Response>`:
/// a `reqwest::Client` or a reqwest-middleware `ClientWithMiddleware`. Its error is the
/// client's (`reqwest::Error`, `reqwest_middleware::Error`).
///
/// **Error bodies.** A `reqwest::Response`'s body is a stream the classifier cannot read, and
/// LLM APIs say what went wrong in it (a 400 is a context-length overflow or a plain bad
/// request; a 429 a wait or an exhausted quota). So for an error status (4xx, 5xx) the agent
/// reads the body, up to [`llm::MAX_ERROR_BODY`](crate::llm::MAX_ERROR_BODY) (64 KiB) by
/// default, before handing the response back: [`HttpClassifier`](crate::HttpClassifier) then
/// applies the providers' vocabulary ([`reason`](crate::reason)), and the caller still reads
/// the whole body from the response (from memory, or the part read followed by the rest of
/// the stream). Successes are never touched. [`error_body_limit`](Self::error_body_limit)`(0)`
/// turns this off: error statuses are then classified from status and headers alone.
///
/// ```no_run
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast_http::reqwest::ReqwestAgent;
/// use steadfast_http::{BufferRequestLayer, HttpClassifier};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # async fn demo() -> Result<(), BoxError> {
/// let registry = Registry::new();
/// let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
/// let client = reqwest::Client::new();
/// let openai = ServiceBuilder::new()
///     .layer(BufferRequestLayer::new(1 << 20))   // reqwest::Request in, cloneable inside
///     .backoff_retry(BackoffRetryLayer::new(&gpt, RetryConfig::default()))
///     .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
///     .timeout(Duration::from_secs(60))
///     .service(ReqwestAgent::new(client.clone()));
///
/// let request = client
///     .post("https://api.openai.com/v1/chat/completions")
///     .bearer_auth(std::env::var("OPENAI_API_KEY")?)
///     .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
///     .build()?;
/// let answer: reqwest::Response = openai.oneshot(request).await?;
/// # let _ = answer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReqwestAgent<S = ::reqwest::Client> {
    client: S,
    error_body_limit: usize,
}

impl<S> ReqwestAgent<S> {
    /// Sends through `client` (share one `reqwest::Client`: it holds the connection pool).
    pub fn new(client: S) -> Self {
        ReqwestAgent {
            client,
            error_body_limit: MAX_ERROR_BODY,
        }
    }

    /// Reads at most about `limit` bytes of an error answer's body for the classifier (whole
    /// chunks: the last may go past it); `0` reads none. Default: 64 KiB.
    #[must_use]
    pub fn error_body_limit(mut self, limit: usize) -> Self {
        self.error_body_limit = limit;
        self
    }

    /// The client.
    pub fn get_ref(&self) -> &S {
        &self.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> S {
        self.client
    }
}

impl<S> fmt::Debug for ReqwestAgent<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestAgent")
            .field("client", &std::any::type_name::<S>())
            .field("error_body_limit", &self.error_body_limit)
            .finish()
    }
}

impl<S> Service<ReplayableRequest> for ReqwestAgent<S>
where
    S: Service<::reqwest::Request, Response = ::reqwest::Response> + Clone,
    S::Error: From<::reqwest::Error>,
{
    type Response = ::reqwest::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, request: ReplayableRequest) -> Self::Future {
        match to_reqwest(request) {
            Ok(request) => Service::<::reqwest::Request>::call(self, request),
            Err(error) => ResponseFuture::failed(S::Error::from(error)),
        }
    }
}

impl<S> Service<::reqwest::Request> for ReqwestAgent<S>
where
    S: Service<::reqwest::Request, Response = ::reqwest::Response> + Clone,
{
    type Response = ::reqwest::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, request: ::reqwest::Request) -> Self::Future {
        // `poll_ready` readied `self.client`: call that one, leave a fresh clone behind.
        let fresh = self.client.clone();
        let mut ready = std::mem::replace(&mut self.client, fresh);
        ResponseFuture::calling(ready.call(request), self.error_body_limit)
    }
}

type Peeking = Pin<Box<dyn Future<Output = ::reqwest::Response> + Send>>;

pin_project! {
    /// The future of a [`ReqwestAgent`] call: the client's, then (for an error status only) the
    /// read of the error body, boxed because only failures take that path.
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Calling { #[pin] future: F, limit: usize },
        Peeking { future: Peeking },
        Failed { error: Option<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn calling(future: F, limit: usize) -> Self {
        ResponseFuture {
            state: State::Calling { future, limit },
        }
    }

    fn failed(error: E) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<::reqwest::Response, E>>,
{
    type Output = Result<::reqwest::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Calling { future, limit } => {
                    let response = match std::task::ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let status = response.status();
                    if *limit == 0 || !(status.is_client_error() || status.is_server_error()) {
                        return Poll::Ready(Ok(response));
                    }
                    let future: Peeking = Box::pin(peek_error_body(response, *limit));
                    state.set(State::Peeking { future });
                }
                StateProj::Peeking { future } => {
                    return future.as_mut().poll(cx).map(Ok);
                }
                StateProj::Failed { error } => {
                    return match error.take() {
                        Some(error) => Poll::Ready(Err(error)),
                        // Polled after completion: tower futures may pend for ever then.
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
