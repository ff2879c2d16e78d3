//! [`BackoffRetry`]: sends the first attempt and hands the retrying to the future.

use std::fmt;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower_service::Service;

use crate::classify::Classify;
use crate::clock::{NOT_TIMED, Nanos};
use crate::error::BoxError;
use crate::sync::Spread;

use super::future::{Failed, ResponseFuture};
use super::scope;
use super::shared::Shared;

/// Retries an agent's transient failures. Built by
/// [`BackoffRetryLayer`](super::BackoffRetryLayer); clones share the budget.
///
/// Each call keeps a clone of the request (when retries are allowed), to send again; the
/// success path creates no timer and allocates nothing itself (cloning a request may allocate:
/// prefer cheaply cloneable requests, such as `Arc`s or `steadfast-http`'s `BufferedBody`).
///
/// Retries go through a clone of the inner service as it was when the layer wrapped it (made
/// at the first retry of a call), not through a clone made on every call as tower's `Retry`
/// does: the success path then clones nothing. Clones of a tower service are handles on the
/// same thing, so this only differs for a service that keeps per-instance state of its own.
/// The inner service must be `Send` (the clone is kept where every thread's calls reach it).
pub struct BackoffRetry<S: Send, C> {
    pub(crate) inner: S,
    pub(crate) shared: Spread<Shared<S>>,
    pub(crate) classifier: C,
}

impl<S: Send, C> BackoffRetry<S, C> {
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

impl<S, C, Req> Service<Req> for BackoffRetry<S, C>
where
    S: Service<Req> + Clone + Send,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response> + Clone,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, C, C::Memo>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[allow(
        clippy::inline_always,
        reason = "out of line, the future it returns is copied into the caller's (hotpath retry row 40 -> 31 ns, 320 -> 313 instructions per call)"
    )]
    #[inline(always)]
    fn call(&mut self, request: Req) -> Self::Future {
        let shared = &self.shared;
        // The clock is read at most once here: for the call's duration
        // (`steadfast_call_duration_seconds`, only while a recorder takes it) and for the
        // deadline. Otherwise the budget samples the clock itself (its buckets are written per
        // thread).
        let (started, deadline) = if shared.calls.recorded() || shared.config.deadline.is_some() {
            clocked(shared)
        } else {
            shared.budget.deposit();
            (NOT_TIMED, None)
        };
        let memo = self.classifier.note(&request);
        let spare = (shared.config.max_retries > 0).then(|| request.clone());
        let failed = Failed::start(&shared.name, started);
        let shared = self.shared.local();
        ResponseFuture::new(
            &mut self.inner,
            request,
            deadline,
            spare,
            self.classifier.clone(),
            memo,
            shared,
            started,
            failed,
        )
    }
}

impl<S: Clone + Send, C: Clone> Clone for BackoffRetry<S, C> {
    fn clone(&self) -> Self {
        BackoffRetry {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<S: fmt::Debug + Send, C> fmt::Debug for BackoffRetry<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffRetry")
            .field("retry", &self.shared)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The start of a call that reads the clock (a recorder takes its duration, or the layer has a
/// deadline): the start on the budget's clock ([`NOT_TIMED`] when no recorder takes it) and the
/// deadline (none past what the clock can represent), with the budget's deposit. Out of line:
/// the common call reads no clock and stays small.
#[inline(never)]
fn clocked<S>(shared: &Shared<S>) -> (Nanos, Option<Instant>) {
    let now = Instant::now();
    let at = shared.budget.origin().nanos_at(now);
    shared.budget.deposit_at(at);
    let started = if shared.calls.recorded() {
        at
    } else {
        NOT_TIMED
    };
    let deadline = shared
        .config
        .deadline
        .and_then(|deadline| now.checked_add(deadline))
        .map(scope::tighter);
    (started, deadline)
}
