//! [`StreamGuard`]: the service that waits for a stream's first byte.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use steadfast::BoxError;
use tokio::time::Instant;
use tower_service::Service;

use super::body::first_timer;
use super::future::ResponseFuture;
use super::layer::Shared;

/// Guards one agent's streamed answers; built by [`StreamGuardLayer`](super::StreamGuardLayer).
///
/// The inner service answers `http::Response<B>` with a body of [`Bytes`] frames that is
/// `Unpin` (hyper's `Incoming`, `reqwest::Body`, axum's `Body` are; box any other); requests
/// are `'static` (so one can be kept for a dead letter). Answers come back as
/// `http::Response<StreamBody<B>>`.
pub struct StreamGuard<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S, Req, B> Service<Req> for StreamGuard<S>
where
    Req: 'static,
    S: Service<Req, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<super::StreamBody<B>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let started = Instant::now();
        let timer = first_timer(&self.shared.config, started);
        #[cfg(feature = "dead-letter")]
        let kept = self.shared.dead_letters.as_ref().and_then(|dead_letters| {
            dead_letters.keep(&request as &dyn std::any::Any, self.shared.agent.name())
        });
        #[cfg(not(feature = "dead-letter"))]
        let kept = None;
        ResponseFuture::new(
            self.inner.call(request),
            Arc::clone(&self.shared),
            started,
            timer,
            kept,
        )
    }
}

impl<S: Clone> Clone for StreamGuard<S> {
    fn clone(&self) -> Self {
        StreamGuard {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for StreamGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamGuard")
            .field("shared", &self.shared)
            .field("inner", &self.inner)
            .finish()
    }
}
