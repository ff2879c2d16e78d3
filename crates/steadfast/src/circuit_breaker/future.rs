//! [`ResponseFuture`]: completes an admitted call (classify, record) or yields the rejection.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::classify::{self, Classify};
use crate::error::BoxError;
use crate::sync::Local;

use super::error::CircuitOpen;
use super::shared::Shared;
use super::state::Admission;

pin_project! {
    /// The future of a [`CircuitBreaker`](super::CircuitBreaker) call.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<F, C, M, Req> {
        #[pin]
        kind: Kind<F>,
        call: Option<Call<C, M>>,
        request: PhantomData<fn(Req)>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { error: Option<CircuitOpen> },
    }
}

/// What an admitted call needs at completion. Dropping it unfinished (the caller gave up on the
/// future) frees a half-open probe slot, so a cancelled probe never wedges the breaker.
pub(crate) struct Call<C, M> {
    pub(crate) shared: Local<Shared>,
    pub(crate) admission: Admission,
    pub(crate) started: Option<Instant>,
    pub(crate) classifier: C,
    pub(crate) memo: M,
    pub(crate) finished: bool,
}

impl<C, M> Drop for Call<C, M> {
    fn drop(&mut self) {
        if let (false, Admission::Probe { generation }) = (self.finished, self.admission) {
            self.shared.core.release_probe(generation);
        }
    }
}

impl<F, C, M, Req> ResponseFuture<F, C, M, Req> {
    pub(crate) fn called(future: F, call: Call<C, M>) -> Self {
        ResponseFuture {
            kind: Kind::Called { future },
            call: Some(call),
            request: PhantomData,
        }
    }

    pub(crate) fn rejected(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { error: Some(error) },
            call: None,
            request: PhantomData,
        }
    }
}

impl<F, C, M, Req, T, E> Future for ResponseFuture<F, C, M, Req>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<Req, T, Memo = M>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                if let Some(mut call) = this.call.take() {
                    let outcome = classify::classify(&call.classifier, &call.memo, result.as_ref());
                    let shared = &call.shared;
                    let slow = match (call.started, shared.core.config().slow_call_threshold()) {
                        (Some(started), Some(threshold)) => started.elapsed() >= threshold,
                        _ => false,
                    };
                    shared.calls.completed(outcome.kind());
                    call.finished = true;
                    if let Some(transition) =
                        shared
                            .core
                            .on_result(call.admission, &outcome, slow, || shared.now())
                    {
                        shared.arc().announce(&transition);
                    }
                }
                Poll::Ready(result)
            }
            KindProj::Rejected { error } => {
                let error = error
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Err(Box::new(error)))
            }
        }
    }
}

impl<F, C, M, Req> fmt::Debug for ResponseFuture<F, C, M, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
