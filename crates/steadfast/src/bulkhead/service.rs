//! [`Bulkhead`]: admits a call while a permit is free, queues or refuses it otherwise.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::classify::Classify;
use crate::error::BoxError;
use crate::sync::Spread;

use super::config::Readiness;
use super::future::{Queued, ResponseFuture};
use super::handle::BulkheadHandle;
use super::shared::{Gate, Shared, Slot, Waiter};

/// A concurrency limit around one agent. Built by [`BulkheadLayer`](super::BulkheadLayer);
/// clones share the permits.
///
/// In the default mode ([`Readiness::ShedInCall`]) `poll_ready` forwards the inner service's
/// readiness and `call` decides: a free permit → the call goes to the agent; none free → the
/// call waits in the queue (with the ready inner service, which is why `S: Clone`; the service
/// keeps a clone) or fails at once with [`BulkheadFull`](super::BulkheadFull). In
/// [`Readiness::WaitInPollReady`] mode `poll_ready` waits for a permit, as tower's
/// `ConcurrencyLimit` does.
pub struct Bulkhead<S, C> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared>,
    /// The shared state's gate and whether its limit is adaptive, kept here so an admitted
    /// call reads them without going through the shared pointers.
    pub(crate) gate: &'static Gate,
    pub(crate) adaptive: bool,
    pub(crate) classifier: C,
    /// A permit reserved by `poll_ready` (readiness mode only).
    pub(crate) reserved: Option<Slot>,
    /// This service's place among the waiters while `poll_ready` waits (readiness mode only).
    pub(crate) waiter: Option<Waiter>,
}

impl<S, C> Bulkhead<S, C> {
    /// The permit just taken: a pointer to the gate, and a counted reference to the bulkhead
    /// only if its limit is adaptive.
    #[inline]
    fn slot(&mut self) -> Slot {
        let adaptive = self.adaptive.then(|| self.shared.local());
        Slot::taken(self.gate, adaptive)
    }

    /// A handle on this bulkhead's counts and limit.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            shared: self.shared.arc().clone(),
        }
    }

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

impl<S, C, Req> Service<Req> for Bulkhead<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S, Req, C, C::Memo>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.shared.config.readiness == Readiness::WaitInPollReady && self.reserved.is_none() {
            if self.shared.permits().try_acquire() {
                self.reserved = Some(self.slot());
                self.waiter = None;
            } else {
                let local = self.shared.local();
                let waiter = self.waiter.get_or_insert_with(|| Waiter::unbounded(local));
                match waiter.poll_permit(cx) {
                    Poll::Ready(slot) => {
                        self.reserved = Some(slot);
                        self.waiter = None;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let memo = self.classifier.note(&request);
        let slot = match self.reserved.take() {
            Some(slot) => Some(slot),
            None => self.gate.permits.try_acquire().then(|| self.slot()),
        };
        if let Some(slot) = slot {
            return ResponseFuture::called(
                self.inner.call(request),
                slot,
                self.classifier.clone(),
                memo,
            );
        }
        if self.shared.config.max_queue == 0 {
            // Refused here, inline: the queueing path's frame (a timer, a waiter, the
            // request) is not set up for a refusal.
            self.shared.refused();
            return ResponseFuture::full(self.classifier.clone(), memo);
        }
        match self.queue(request) {
            Some(queued) => ResponseFuture::queued(queued, self.classifier.clone(), memo),
            None => ResponseFuture::full(self.classifier.clone(), memo),
        }
    }
}

impl<S: Clone, C: Clone> Bulkhead<S, C> {
    /// No permit free and a queue configured: the call's place in the queue if one is free,
    /// else `None` (refused, and counted).
    ///
    /// Returns only the box, and every future is built in `call`: when this function built
    /// the whole future (returned through memory), the admitted call's future went through a
    /// temporary as well, copied into the caller's state 16 bytes at a time from what had
    /// just been stored 8 at a time (a stalled load, several nanoseconds of the call).
    #[cold]
    #[inline(never)]
    fn queue<Req>(&mut self, request: Req) -> Option<Pin<Box<Queued<S, Req>>>> {
        let config = &self.shared.config;
        if let (Some(max_wait), max_queue @ 1..) = (config.max_wait, config.max_queue)
            && let Some(waiter) = Waiter::queue(self.shared.local(), max_queue)
        {
            // The service that was made ready goes with the call; this one keeps a clone.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            return Some(Queued::boxed(
                ready,
                request,
                waiter,
                tokio::time::sleep(max_wait),
            ));
        }
        self.shared.refused();
        None
    }
}

impl<S: Clone, C: Clone> Clone for Bulkhead<S, C> {
    /// A clone shares the permits but not a permit this service reserved in `poll_ready`.
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            gate: self.gate,
            adaptive: self.adaptive,
            classifier: self.classifier.clone(),
            reserved: None,
            waiter: None,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Bulkhead<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("bulkhead", &self.shared)
            .field("reserved", &self.reserved.is_some())
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
