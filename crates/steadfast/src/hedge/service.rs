//! [`Hedge`]: sends the first attempt and hands the hedging to the future.

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::error::BoxError;
use crate::sync::Spread;

use super::future::{Hedging, ResponseFuture, To};
use super::shared::Shared;
use super::target::{Alternatives, SameAgent};

/// Hedges an agent's slow calls. Built by [`HedgeLayer`](super::HedgeLayer); clones share the
/// latencies and the budget.
///
/// Each call keeps a clone of the request (and, for [`SameAgent`] hedges, of the inner
/// service) to hedge with; an answer that comes before the delay creates no timer, reads no
/// clock (with a fixed delay) and allocates nothing. A hedge goes through a clone of the inner
/// service (ready first), or to the next alternative, boxed.
pub struct Hedge<S, C, T = SameAgent> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    pub(crate) classifier: C,
    pub(crate) target: T,
}

impl<S, C, T> Hedge<S, C, T> {
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

impl<S, C, T> Hedge<S, C, T> {
    /// Sends the first attempt; hedges go `to`.
    #[inline]
    fn start<Req>(
        &mut self,
        request: Req,
        to: To<S, Req, S::Response>,
    ) -> ResponseFuture<S, Req, C, C::Memo>
    where
        S: Service<Req>,
        C: Classify<Req, S::Response> + Clone,
        Req: Clone,
    {
        let shared = self.shared.local();
        if shared.deposits {
            shared.budget.deposit();
        }
        let memo = self.classifier.note(&request);
        let spare = request.clone();
        let future = self.inner.call(request);
        ResponseFuture::new(
            future,
            Hedging::new(to, spare, self.classifier.clone(), memo, shared),
        )
    }
}

impl<S, C, Req> Service<Req> for Hedge<S, C, SameAgent>
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
        let service = self.inner.clone();
        self.start(request, To::Same(service))
    }
}

impl<S, C, Req> Service<Req> for Hedge<S, C, Alternatives<Req, S::Response>>
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
        // Hedges go to the alternatives: no clone of the inner service.
        let alternatives = self.target.targets.local();
        self.start(request, To::Alternatives(alternatives))
    }
}

impl<S: Clone, C: Clone, T: Clone> Clone for Hedge<S, C, T> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            target: self.target.clone(),
        }
    }
}

impl<S: fmt::Debug, C, T: fmt::Debug> fmt::Debug for Hedge<S, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("hedge", &self.shared)
            .field("to", &self.target)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
