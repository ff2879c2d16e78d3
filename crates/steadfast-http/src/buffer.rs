//! [`BufferRequestLayer`]: requests in, replayable requests inside.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use steadfast::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyTooLarge, BufferError, BufferedBody, buffer_request};

/// Buffers each request's body (at most `limit` bytes) so the layers below can send it again.
///
/// Retry and fallback send a request again, so they need `Req: Clone`, which neither an
/// `http::Request` with a streaming body (axum's, hyper's) nor a `reqwest::Request` is. This
/// layer goes on top of them and turns each incoming request into an
/// `http::Request<BufferedBody>` (cloneable for the price of a reference count):
///
/// - an `http::Request<B>`: its body is read into memory, at most `limit` bytes
///   ([`BodyTooLarge`] beyond, a caller fault);
/// - a `reqwest::Request` (feature `reqwest`): its body is already bytes, copied once; a
///   streaming body cannot be read twice and is refused with `reqwest::StreamingBody` (a
///   caller fault that never reached the agent).
///
/// ```
/// use steadfast::prelude::*;
/// use steadfast_http::{BufferRequestLayer, BufferedBody, HttpClassifier};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let agent = Agent::new("echo").classifier(HttpClassifier::llm());
/// let echo = ServiceBuilder::new()
///     .layer(BufferRequestLayer::new(1024))
///     .backoff_retry(BackoffRetryLayer::new(&agent, RetryConfig::default()))
///     .service(service_fn(|request: http::Request<BufferedBody>| async move {
///         Ok::<_, BoxError>(http::Response::new(request.into_body().bytes().clone()))
///     }));
///
/// // A streaming body (hyper's `Incoming`, axum's `Body`) in; a cloneable one below.
/// let request = http::Request::post("/v1/echo")
///     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")))?;
/// let response = echo.oneshot(request).await?;
/// assert_eq!(response.body().as_ref(), b"hi");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferRequestLayer {
    limit: usize,
}

impl BufferRequestLayer {
    /// Buffers bodies of at most `limit` bytes; a bigger body fails the call with
    /// [`BodyTooLarge`] before anything is sent.
    pub fn new(limit: usize) -> Self {
        steadfast::classify::register::<BodyTooLarge>();
        #[cfg(feature = "reqwest")]
        steadfast::classify::register::<crate::reqwest::StreamingBody>();
        BufferRequestLayer { limit }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl<S> Layer<S> for BufferRequestLayer {
    type Service = BufferRequest<S>;

    fn layer(&self, inner: S) -> BufferRequest<S> {
        BufferRequest {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BufferRequestLayer`].
#[derive(Clone, Debug)]
pub struct BufferRequest<S> {
    inner: S,
    limit: usize,
}

impl<S> BufferRequest<S> {
    /// The service below.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl steadfast::ClassifyError for BodyTooLarge {
    fn outcome(&self) -> steadfast::Outcome {
        steadfast::Outcome::caller_fault(crate::reason::BODY_TOO_LARGE).unprocessed()
    }
}

fn buffer_error(error: BufferError) -> BoxError {
    match error {
        // The cause itself, outermost, so `downcast_ref::<BodyTooLarge>()` works at once.
        BufferError::TooLarge(too_large) => Box::new(too_large),
        read @ BufferError::Read(_) => Box::new(read),
    }
}

/// The future of a buffered `http::Request`: reading the body is I/O of unknown length, so it is
/// boxed (one allocation per call, next to a body read and a network call).
type Buffering<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, B> Service<http::Request<B>> for BufferRequest<S>
where
    S: Service<http::Request<BufferedBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Buffering<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // `poll_ready` readied `self.inner`: that one is called once the body is in.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let limit = self.limit;
        Box::pin(async move {
            let request = buffer_request(request, limit).await.map_err(buffer_error)?;
            ready.call(request).await.map_err(Into::into)
        })
    }
}

#[cfg(feature = "reqwest")]
impl<S> Service<::reqwest::Request> for BufferRequest<S>
where
    S: Service<http::Request<BufferedBody>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = crate::future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ::reqwest::Request) -> Self::Future {
        match crate::reqwest::replayable(request) {
            Ok(request) if request.body().bytes().len() > self.limit => {
                crate::future::ResponseFuture::failed(Box::new(BodyTooLarge { limit: self.limit }))
            }
            Ok(request) => crate::future::ResponseFuture::inner(self.inner.call(request)),
            Err(error) => crate::future::ResponseFuture::failed(error.into_cause()),
        }
    }
}
