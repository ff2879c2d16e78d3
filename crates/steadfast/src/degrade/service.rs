//! [`Degrade`]: captures the request view, calls the inner service, degrades its failure.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::agent::Reporter;
use crate::classify::Classify;
use crate::error::BoxError;
use crate::provenance::MarkServed;
use crate::sync::Spread;

use super::error::Shed;
use super::future::ResponseFuture;
use super::layer::{CaptureView, Degrader};
use super::level::{DegradationLevel, Level};

/// The service built by [`DegradeLayer`](super::DegradeLayer).
pub struct Degrade<S, D, C, V, P> {
    pub(crate) inner: S,
    pub(crate) classifier: C,
    pub(crate) shared: Spread<Shared<D, V, P>>,
}

pub(crate) struct Shared<D, V, P> {
    pub(crate) reporter: Arc<Reporter>,
    pub(crate) degrader: D,
    pub(crate) view: V,
    pub(crate) marker: P,
    pub(crate) shed: Option<(DegradationLevel, Level)>,
}

impl<S, D, C, V, P> Degrade<S, D, C, V, P> {
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

impl<S, Req, D, C, V, P> Service<Req> for Degrade<S, D, C, V, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response> + Clone,
    V: CaptureView<Req>,
    D: Degrader<V::View, S::Response>,
    P: MarkServed<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, V::View, D, C, C::Memo, V, P, Req>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let view = self.shared.view.capture(&request);
        let memo = self.classifier.note(&request);
        let trace = crate::trace::open_call_boxed(&self.shared.reporter.name);
        if let Some((level, at)) = &self.shared.shed {
            let current = level.get();
            if current >= *at {
                return ResponseFuture::shed(
                    view,
                    memo,
                    self.classifier.clone(),
                    self.shared.local(),
                    Shed::new(current),
                    trace,
                );
            }
        }
        ResponseFuture::called(
            || self.inner.call(request),
            view,
            memo,
            self.classifier.clone(),
            self.shared.local(),
            trace,
        )
    }
}

impl<S: Clone, D, C: Clone, V, P> Clone for Degrade<S, D, C, V, P> {
    fn clone(&self) -> Self {
        Degrade {
            inner: self.inner.clone(),
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, D, C, V, P> fmt::Debug for Degrade<S, D, C, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Degrade")
            .field("agent", &self.shared.reporter.name)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
