//! [`ResponseFuture`]: completes an admitted call (classify, record) or yields the rejection.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::classify::{self, Classify};
use crate::clock::Nanos;
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
        // Already boxed (the caller gets a `BoxError` anyway): two words instead of the
        // `CircuitOpen`'s four, in a future that is moved on every call.
        Rejected { error: Option<BoxError> },
    }
}

/// What an admitted call needs at completion. Dropping it unfinished (the caller gave up on the
/// future) frees a half-open probe slot, so a cancelled probe never wedges the breaker.
pub(crate) struct Call<C, M> {
    pub(crate) shared: Local<Shared>,
    /// [`Admission::to_word`]; set back to `Normal` once the outcome is recorded.
    pub(crate) admission: u64,
    /// When the call started (nanoseconds of the breaker's clock), if slow calls are tracked;
    /// [`NOT_TIMED`] otherwise.
    pub(crate) started: Nanos,
    pub(crate) classifier: C,
    pub(crate) memo: M,
}

pub(crate) use crate::clock::NOT_TIMED;

impl<C, M> Drop for Call<C, M> {
    fn drop(&mut self) {
        if let Admission::Probe { generation } = Admission::from_word(self.admission) {
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
            kind: Kind::Rejected {
                error: Some(Box::new(error)),
            },
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
                // Used where it lies and dropped there: moved out of the `Option` first, it was
                // read back 16 bytes at a time right after `call` wrote it 8 at a time, a
                // stalled load that took a fifth of a closed breaker's time.
                if let Some(call) = this.call.as_mut() {
                    let outcome = classify::classify(&call.classifier, &call.memo, result.as_ref());
                    let shared = &call.shared;
                    if outcome.is_deferred()
                        && matches!(Admission::from_word(call.admission), Admission::Normal)
                    {
                        // A stream that has begun: its holder reports the final outcome
                        // (`BreakerHandle::record`). A probe is judged at its head, so a
                        // half-open breaker never waits on a long stream.
                        *this.call = None;
                        return Poll::Ready(result);
                    }
                    let slow = match shared.core.config().slow_call_threshold() {
                        Some(threshold) if call.started != NOT_TIMED => {
                            shared.now().saturating_sub(call.started)
                                >= crate::clock::duration_to_nanos(threshold)
                        }
                        _ => false,
                    };
                    shared.calls.completed(outcome.kind());
                    let admission = Admission::from_word(std::mem::take(&mut call.admission));
                    if let Some(transition) =
                        shared
                            .core
                            .on_result(admission, &outcome, slow, || shared.now())
                    {
                        shared.arc().announce(&transition);
                    }
                    *this.call = None;
                }
                Poll::Ready(result)
            }
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "circuit breaker future polled after completion".into()))),
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
