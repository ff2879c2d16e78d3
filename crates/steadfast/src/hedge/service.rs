//! [`Hedge`]: sends the first attempt and hands the hedging to the future.

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::error::BoxError;
use crate::sync::Spread;

use super::future::{Hedging, ResponseFuture};
use super::shared::Shared;

/// Hedges an agent's slow calls. Built by [`HedgeLayer`](super::HedgeLayer); clones share the
/// latencies and the budget.
///
/// Each call keeps a clone of the request and of the inner service, to hedge with; an answer
/// that comes before the delay creates no timer, reads no clock (with a fixed delay) and
/// allocates nothing. A hedge goes through a clone of the inner service (ready first), boxed.
pub struct Hedge<S, C> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    pub(crate) classifier: C,
}

impl<S, C> Hedge<S, C> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for Hedge<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C, C::Memo>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let shared = self.shared.local();
        if shared.deposits {
            shared.budget.deposit();
        }
        let memo = self.classifier.note(&request);
        let spare = request.clone();
        let service = self.inner.clone();
        let future = self.inner.call(request);
        ResponseFuture::new(
            future,
            Hedging::new(service, spare, self.classifier.clone(), memo, shared),
        )
    }
}

impl<S: Clone, C: Clone> Clone for Hedge<S, C> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Hedge<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("hedge", &self.shared)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
