//! [`ResponseFuture`]: passes successes through untouched, degrades failures.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tracing::Span;

use crate::classify::{self, Classify, FailedResponse};
use crate::error::BoxError;
use crate::events::Event;
use crate::provenance::{MarkServed, Served};
use crate::rare::Rare;
use crate::sync::Local;
use crate::trace;

use super::error::Shed;
use super::layer::Degrader;
use super::service::Shared;

pin_project! {
    /// The future of a [`Degrade`](super::Degrade) call.
    pub struct ResponseFuture<F, View, D, C, M, V, P, Req> {
        #[pin]
        kind: Kind<F>,
        view: View,
        memo: M,
        classifier: C,
        shared: Local<Shared<D, V, P>>,
        // The call span, when this layer opened it (see `crate::trace`).
        trace: Rare<Box<Span>>,
        request: PhantomData<fn(Req)>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Shed { error: Option<Shed> },
    }
}

impl<F, View, D, C, M, V, P, Req> ResponseFuture<F, View, D, C, M, V, P, Req> {
    /// The inner call is made here, in place (see `fallback::ResponseFuture::new`).
    #[allow(
        clippy::inline_always,
        reason = "out of line, the future of the layers under it is copied in"
    )]
    #[inline(always)]
    pub(crate) fn called(
        call: impl FnOnce() -> F,
        view: View,
        memo: M,
        classifier: C,
        shared: Local<Shared<D, V, P>>,
        trace: Rare<Box<Span>>,
    ) -> Self {
        let _entered = crate::trace::enter(trace.as_deref());
        ResponseFuture {
            kind: Kind::Called { future: call() },
            view,
            memo,
            classifier,
            shared,
            trace,
            request: PhantomData,
        }
    }

    pub(crate) fn shed(
        view: View,
        memo: M,
        classifier: C,
        shared: Local<Shared<D, V, P>>,
        error: Shed,
        trace: Rare<Box<Span>>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Shed { error: Some(error) },
            view,
            memo,
            classifier,
            shared,
            trace,
            request: PhantomData,
        }
    }
}

impl<F, View, D, C, M, V, P, Req, Res, E> Future for ResponseFuture<F, View, D, C, M, V, P, Req>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classify<Req, Res, Memo = M>,
    D: Degrader<View, Res>,
    P: MarkServed<Res>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let own = this.trace.as_deref();
        trace::within(own, move || {
            let (result, outcome) = match this.kind.project() {
                KindProj::Called { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    let outcome = classify::classify(&*this.classifier, this.memo, result.as_ref());
                    if outcome.is_success() {
                        if let Some(call) = own {
                            trace::record_outcome(call, &outcome);
                        }
                        return Poll::Ready(result);
                    }
                    (result, outcome)
                }
                KindProj::Shed { error } => match error.take() {
                    Some(shed) => (
                        Err(shed.into()),
                        crate::classify::ClassifyError::outcome(&shed),
                    ),
                    None => return Poll::Pending, // polled after completion
                },
            };
            let shared = &**this.shared;
            let (error, response) = match result {
                Err(error) => (error, None),
                // The degrader judges errors; it sees an `Ok` failure as the outcome it stood for.
                Ok(response) => (BoxError::from(FailedResponse::new(outcome)), Some(response)),
            };
            let call = trace::call_span(own);
            if let Some(call) = &call {
                trace::record_outcome(call, &outcome);
            }
            match shared.degrader.degrade(this.view, &error) {
                Some(mut degraded) => {
                    if let Some(call) = &call {
                        trace::record_provenance(call, "degraded", None);
                    }
                    let reason = outcome.reason_or_kind();
                    shared.reporter.emit(Event::Degraded {
                        agent: shared.reporter.name.clone(),
                        from: "primary",
                        to: "degraded",
                        reason: Some(reason),
                    });
                    shared.marker.mark(
                        &mut degraded,
                        &Served::Degraded {
                            reason: Cow::Borrowed(reason),
                        },
                    );
                    Poll::Ready(Ok(degraded))
                }
                None => Poll::Ready(match response {
                    Some(response) => Ok(response),
                    None => Err(error),
                }),
            }
        })
    }
}

impl<F, View, D, C, M, V, P, Req> fmt::Debug for ResponseFuture<F, View, D, C, M, V, P, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.shared.reporter.name)
            .finish_non_exhaustive()
    }
}
