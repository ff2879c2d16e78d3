//! [`ResponseFuture`]: an admitted call, counted until it ends, cancellable at the deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

use crate::error::BoxError;

use super::error::{CancelledByShutdown, ShuttingDown};
use super::handle::Tracker;

/// An admitted call: leaves the in-flight count when dropped, however it ends.
pub(crate) struct Tracked {
    pub(crate) tracker: Arc<Tracker>,
    /// When the call first had to wait (read then, so a call that completes at once never
    /// reads the clock).
    pub(crate) waiting_since: Option<Instant>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.tracker.state.exit();
    }
}

pin_project! {
    /// The future of a [`GracefulShutdown`](super::GracefulShutdown) call.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // Created only once the call is pending, so a call that completes at once never
        // touches the cancellation signal.
        #[pin]
        cancel: Option<OwnedNotified>,
        tracked: Option<Tracked>,
        refused: Option<ShuttingDown>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn admitted(inner: F, tracked: Tracked) -> Self {
        ResponseFuture {
            inner: Some(inner),
            cancel: None,
            tracked: Some(tracked),
            refused: None,
        }
    }

    pub(crate) fn refused(error: ShuttingDown) -> Self {
        ResponseFuture {
            inner: None,
            cancel: None,
            tracked: None,
            refused: Some(error),
        }
    }
}

impl<F, Res, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(tracked) = this.tracked.as_mut() else {
            let error = this
                .refused
                .take()
                .expect("a shutdown ResponseFuture polled after completion");
            return Poll::Ready(Err(error.into()));
        };
        let state = &tracked.tracker.state;
        if !state.cancelled.load(Ordering::SeqCst) {
            let inner = this
                .inner
                .as_mut()
                .as_pin_mut()
                .expect("a shutdown ResponseFuture polled after completion");
            if let Poll::Ready(result) = inner.poll(cx) {
                this.inner.set(None);
                this.tracked.take();
                return Poll::Ready(result.map_err(Into::into));
            }
            if this.cancel.is_none() {
                tracked.waiting_since = Some(Instant::now());
                this.cancel.set(Some(state.cancel.clone().notified_owned()));
            }
            let cancel = this.cancel.as_mut().as_pin_mut().expect("just set");
            if cancel.poll(cx).is_pending() && !state.cancelled.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // The drain deadline passed: drop the agent's call and report it.
        this.inner.set(None);
        let tracked = this.tracked.take().expect("checked above");
        let cancelled = CancelledByShutdown::new(
            tracked.tracker.agent.clone(),
            tracked
                .waiting_since
                .map_or(std::time::Duration::ZERO, |since| since.elapsed()),
        );
        tracked.tracker.state.report_cancelled(&cancelled);
        drop(tracked);
        Poll::Ready(Err(cancelled.into()))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("admitted", &self.tracked.is_some())
            .finish_non_exhaustive()
    }
}
