//! [`ResponseFuture`]: an admitted call, a queued call waiting for a permit, or a refusal.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use crate::classify::{self, Classify};
use crate::clock::{NOT_TIMED, Nanos};
use crate::error::BoxError;

use super::error::BulkheadFull;
use super::shared::{Shared, Slot, Waiter};

pin_project! {
    /// The future of a [`Bulkhead`](super::Bulkhead) call.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<F, S, Req, C, M> {
        #[pin]
        kind: Kind<F, S, Req>,
        call: Call<C, M>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, S, Req> {
        Called { #[pin] future: F },
        // Boxed: only a call that found the bulkhead full waits, and the success path should
        // not carry the waiting call's service, request and timer.
        Queued { queued: Pin<Box<Queued<S, Req>>> },
        // Zero-sized error, made when polled: refusing allocates nothing.
        Full,
    }
}

pin_project! {
    /// A call waiting for a permit, with the (ready) inner service it will be sent to.
    pub(crate) struct Queued<S, Req> {
        service: S,
        request: Option<Req>,
        waiter: Waiter,
        #[pin]
        deadline: Sleep,
    }
}

/// What a call carries to its end: its permit (given back when it is dropped, also when the
/// caller drops the future) and, for an adaptive limit, what the outcome is judged with.
pub(crate) struct Call<C, M> {
    slot: Option<Slot>,
    generation: u32,
    /// When the call was first found pending, if calls are timed.
    /// (`NOT_TIMED` if not: a plain word, so the future stays within its size bound.)
    started: Nanos,
    /// Whether the call was polled once already (the clock is read only after that).
    polled: bool,
    classifier: C,
    memo: M,
}

impl<F, S, Req, C, M> ResponseFuture<F, S, Req, C, M> {
    pub(crate) fn called(future: F, slot: Slot, classifier: C, memo: M) -> Self {
        let generation = slot.adaptive().map_or(0, Shared::generation);
        ResponseFuture {
            kind: Kind::Called { future },
            call: Call {
                slot: Some(slot),
                generation,
                started: NOT_TIMED,
                polled: false,
                classifier,
                memo,
            },
        }
    }

    /// A call waiting for a permit (its place made by [`Queued::boxed`]).
    #[inline]
    pub(crate) fn queued(queued: Pin<Box<Queued<S, Req>>>, classifier: C, memo: M) -> Self {
        ResponseFuture {
            kind: Kind::Queued { queued },
            call: Call {
                slot: None,
                generation: 0,
                started: NOT_TIMED,
                polled: false,
                classifier,
                memo,
            },
        }
    }

    pub(crate) fn full(classifier: C, memo: M) -> Self {
        ResponseFuture {
            kind: Kind::Full,
            call: Call {
                slot: None,
                generation: 0,
                started: NOT_TIMED,
                polled: false,
                classifier,
                memo,
            },
        }
    }
}

impl<S, Req> Queued<S, Req> {
    pub(crate) fn boxed(
        service: S,
        request: Req,
        waiter: Waiter,
        deadline: Sleep,
    ) -> Pin<Box<Self>> {
        Box::pin(Queued {
            service,
            request: Some(request),
            waiter,
            deadline,
        })
    }
}

impl<F, S, Req, C, M, T, E> Future for ResponseFuture<F, S, Req, C, M>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    S: Service<Req, Future = F>,
    C: Classify<Req, T, Memo = M>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            match this.kind.project() {
                KindProj::Called { future } => {
                    let Poll::Ready(result) = future.poll(cx) else {
                        if !this.call.polled {
                            this.call.polled = true;
                            this.call.started = this
                                .call
                                .slot
                                .as_ref()
                                .and_then(Slot::adaptive)
                                .and_then(Shared::timed_now)
                                .unwrap_or(NOT_TIMED);
                        }
                        return Poll::Pending;
                    };
                    let result = result.map_err(Into::into);
                    if let Some(slot) = this.call.slot.take() {
                        if let Some(shared) = slot.adaptive() {
                            let outcome = classify::classify(
                                &this.call.classifier,
                                &this.call.memo,
                                result.as_ref(),
                            );
                            let started = Some(this.call.started).filter(|&at| at != NOT_TIMED);
                            shared.completed(&outcome, this.call.generation, started);
                        }
                        drop(slot);
                    }
                    return Poll::Ready(result);
                }
                KindProj::Queued { queued } => {
                    let queued = queued.as_mut().project();
                    if let Poll::Ready(slot) = queued.waiter.poll_permit(cx) {
                        let Some(request) = queued.request.take() else {
                            return Poll::Ready(Err(
                                "bulkhead future polled after completion".into()
                            ));
                        };
                        let future = queued.service.call(request);
                        this.call.generation = slot.adaptive().map_or(0, Shared::generation);
                        this.call.slot = Some(slot);
                        self.as_mut().project().kind.set(Kind::Called { future });
                        continue;
                    }
                    if queued.deadline.poll(cx).is_ready() {
                        queued.waiter.shared().refused();
                        self.as_mut().project().kind.set(Kind::Full);
                        continue;
                    }
                    return Poll::Pending;
                }
                KindProj::Full => return Poll::Ready(Err(Box::new(BulkheadFull::new()))),
            }
        }
    }
}

impl<F, S, Req, C, M> fmt::Debug for ResponseFuture<F, S, Req, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Queued { .. } => "queued",
            Kind::Full => "full",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
