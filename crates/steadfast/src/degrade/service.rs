//! [`DegradeService`]: captures the request view, calls the inner service, degrades its error.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::error::BoxError;
use crate::provenance::{MarkServed, ServedCounters};

use super::error::Shed;
use super::future::ResponseFuture;
use super::layer::{CaptureView, Degrade};
use super::level::{DegradationLevel, Level};

/// The service built by [`DegradeLayer`](super::DegradeLayer).
pub struct DegradeService<S, D, V, P> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<D, V, P>>,
}

pub(crate) struct Shared<D, V, P> {
    pub(crate) agent: Arc<str>,
    pub(crate) counters: ServedCounters,
    pub(crate) degrade: D,
    pub(crate) view: V,
    pub(crate) marker: P,
    pub(crate) shed: Option<(DegradationLevel, Level)>,
    pub(crate) reporter: crate::report::Reporter,
}

impl<S, D, V, P> DegradeService<S, D, V, P> {
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

impl<S, Req, D, V, P> Service<Req> for DegradeService<S, D, V, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    V: CaptureView<Req>,
    D: Degrade<V::View, S::Response>,
    P: MarkServed<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, V::View, D, V, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let view = self.shared.view.capture(&request);
        if let Some((level, at)) = &self.shared.shed {
            let current = level.get();
            if current >= *at {
                return ResponseFuture::shed(view, self.shared.clone(), Shed::new(current));
            }
        }
        ResponseFuture::called(self.inner.call(request), view, self.shared.clone())
    }
}

impl<S: Clone, D, V, P> Clone for DegradeService<S, D, V, P> {
    fn clone(&self) -> Self {
        DegradeService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, D, V, P> fmt::Debug for DegradeService<S, D, V, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DegradeService")
            .field("agent", &self.shared.agent)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
