//! [`GracefulShutdown`]: admits calls while the [`Shutdown`](super::Shutdown) is open.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::BoxError;

use super::error::ShuttingDown;
use super::future::{ResponseFuture, Tracked};
use super::handle::Tracker;

/// An agent whose calls a [`Shutdown`](super::Shutdown) can drain; see
/// [`ShutdownLayer`](super::ShutdownLayer).
pub struct GracefulShutdown<S> {
    pub(crate) inner: S,
    pub(crate) tracker: Arc<Tracker>,
}

impl<S, Req> Service<Req> for GracefulShutdown<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if !self.tracker.state.try_enter() {
            return ResponseFuture::refused(ShuttingDown::new(self.tracker.agent.clone()));
        }
        let tracked = Tracked {
            tracker: self.tracker.clone(),
            waiting_since: None,
        };
        ResponseFuture::admitted(self.inner.call(request), tracked)
    }
}

impl<S: Clone> Clone for GracefulShutdown<S> {
    fn clone(&self) -> Self {
        GracefulShutdown {
            inner: self.inner.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for GracefulShutdown<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GracefulShutdown")
            .field("inner", &self.inner)
            .field("agent", &self.tracker.agent)
            .finish_non_exhaustive()
    }
}
