//! [`DeadLetter`]: captures the request, calls the inner service.

use std::fmt;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::error::BoxError;
use crate::sync::Spread;

use super::future::{Capture, ResponseFuture};
use super::layer::{EncodeRequest, Shared};

/// The service a [`DeadLetterLayer`](super::DeadLetterLayer) makes.
#[derive(Clone)]
pub struct DeadLetter<S, En, C> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    pub(crate) encoder: En,
    pub(crate) classifier: C,
}

impl<S, En, C, Req> Service<Req> for DeadLetter<S, En, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
    En: EncodeRequest<Req> + Clone,
    C: Classify<Req, S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, Req, En, C, C::Memo>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        // The inner service consumes the request; keep a clone to encode only if it fails.
        let capture = Capture {
            memo: self.classifier.note(&request),
            request: request.clone(),
            shared: self.shared.local(),
            encoder: self.encoder.clone(),
            classifier: self.classifier.clone(),
        };
        let trace = crate::trace::open_call_boxed(&self.shared.reporter.name);
        ResponseFuture::new(|| self.inner.call(request), capture, trace)
    }
}

impl<S: fmt::Debug, En, C> fmt::Debug for DeadLetter<S, En, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("inner", &self.inner)
            .field("agent", &self.shared.reporter.name)
            .finish_non_exhaustive()
    }
}
