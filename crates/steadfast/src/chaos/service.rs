//! [`Chaos`]: the service a [`ChaosLayer`](super::ChaosLayer) wraps an agent in.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::BoxError;

use super::error::ChaosError;
use super::future::ResponseFuture;
use super::handle::{ChaosHandle, ChaosShared, Decision};
use super::layer::InjectResponse;

/// An agent with faults injected; see [`ChaosLayer`](super::ChaosLayer).
pub struct Chaos<S, F> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<ChaosShared>,
    pub(crate) responder: F,
}

impl<S, F> Chaos<S, F> {
    /// The runtime switch.
    pub fn handle(&self) -> ChaosHandle {
        ChaosHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, F, Req> Service<Req> for Chaos<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: InjectResponse<Req, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if !self.shared.enabled() {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let agent = || self.shared.name.clone();
        match self.shared.decide() {
            Decision::Pass => ResponseFuture::inner(self.inner.call(request)),
            Decision::Error => ResponseFuture::ready(Err(ChaosError::injected(agent()).into())),
            Decision::Outage(remaining) => {
                ResponseFuture::ready(Err(ChaosError::outage(agent(), remaining).into()))
            }
            Decision::Response => match self.responder.response(&request) {
                Some(response) => {
                    self.shared.count_response();
                    ResponseFuture::ready(Ok(response))
                }
                None => ResponseFuture::inner(self.inner.call(request)),
            },
            Decision::Latency(delay) => ResponseFuture::delayed(delay, self.inner.call(request)),
        }
    }
}

impl<S: Clone, F: Clone> Clone for Chaos<S, F> {
    fn clone(&self) -> Self {
        Chaos {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            responder: self.responder.clone(),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for Chaos<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chaos")
            .field("inner", &self.inner)
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}
