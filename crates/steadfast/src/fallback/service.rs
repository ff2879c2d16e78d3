//! [`Fallback`]: the primary service plus its chain of alternatives.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::agent::Reporter;
use crate::cache::CacheTier;
use crate::classify::Classify;
use crate::error::BoxError;
use crate::provenance::MarkServed;
use crate::sync::Spread;

use super::alternative::Alternative;
use super::future::ResponseFuture;

/// A primary agent with fallbacks. Built by [`FallbackLayer`](super::FallbackLayer); clones share
/// the chain.
///
/// Readiness is the primary's: alternatives are cloned and driven to readiness only when one is
/// needed, inside the response future.
pub struct Fallback<S, Req, Res, C, P> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared<Req, Res>>,
    pub(crate) classifier: C,
    pub(crate) marker: P,
}

/// What every clone of one fallback service shares.
pub(crate) struct Shared<Req, Res> {
    /// The primary agent's event path.
    pub(crate) reporter: Arc<Reporter>,
    /// Sorted by priority, ties in the order added.
    pub(crate) alternatives: Box<[Alternative<Req, Res>]>,
    pub(crate) cache: Option<Arc<dyn CacheTier<Req, Res>>>,
}

impl<S, Req, Res, C, P> Fallback<S, Req, Res, C, P> {
    /// The primary service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The primary service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the primary service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, Res, C, P> Service<Req> for Fallback<S, Req, Res, C, P>
where
    S: Service<Req, Response = Res>,
    S::Error: Into<BoxError>,
    Req: Clone + Send + 'static,
    Res: Send + 'static,
    C: Classify<Req, Res> + Clone + Send + 'static,
    C::Memo: Send + 'static,
    P: MarkServed<Res> + Clone + Send + 'static,
{
    type Response = Res;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, Req, Res, C, C::Memo, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[allow(
        clippy::inline_always,
        reason = "out of line, the inner layers' future is moved twice through memcpy (callgrind: 3-layer stack 883 -> 830 instructions per call)"
    )]
    #[inline(always)]
    fn call(&mut self, request: Req) -> Self::Future {
        // The primary consumes the request; keep a copy for the alternatives (and the cache
        // key) only when there is one to use it.
        let saved = if self.shared.alternatives.is_empty() {
            None
        } else {
            Some(request.clone())
        };
        let memo = self.classifier.note(&request);
        let trace = crate::trace::open_call_boxed(&self.shared.reporter.name);
        ResponseFuture::new(
            || self.inner.call(request),
            saved,
            memo,
            self.shared.local(),
            self.classifier.clone(),
            self.marker.clone(),
            trace,
        )
    }
}

impl<S: Clone, Req, Res, C: Clone, P: Clone> Clone for Fallback<S, Req, Res, C, P> {
    fn clone(&self) -> Self {
        Fallback {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
        }
    }
}

impl<S: fmt::Debug, Req, Res, C, P> fmt::Debug for Fallback<S, Req, Res, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("agent", &self.shared.reporter.name)
            .field("alternatives", &self.shared.alternatives)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
