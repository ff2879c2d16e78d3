//! [`ResponseFuture`]: the first attempt, the timer, the hedges, and the first good answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::util::Oneshot;
use tower_service::Service;

use crate::classify::{self, Classify};
use crate::error::BoxError;
use crate::sync::Local;

use super::shared::Shared;

pin_project! {
    /// The future of a [`Hedge`](super::Hedge) call. When one attempt answers well, the others
    /// are dropped at once (cancelled: an HTTP client closes their connections); dropping the
    /// future cancels every attempt.
    pub struct ResponseFuture<S, Req, C, M>
    where
        S: Service<Req>,
    {
        #[pin]
        primary: Option<S::Future>,
        // Inline, not boxed: a call that outlasts the first poll (every real agent call) arms
        // it, and boxing would allocate on each of them.
        #[pin]
        timer: Option<Sleep>,
        hedges: Vec<Option<Pin<Box<Oneshot<S, Req>>>>>,
        // The last failed attempt's result, returned if no other attempt answers well.
        failed: Option<Result<S::Response, BoxError>>,
        hedging: Hedging<S, Req, C, M>,
    }
}

/// Everything needed to hedge.
pub(crate) struct Hedging<S, Req, C, M> {
    service: S,
    spare: Option<Req>,
    classifier: C,
    memo: M,
    shared: Local<Shared>,
    /// When the first attempt was found pending (the clock is read only then).
    start: Option<Instant>,
    delay: Duration,
    hedges_sent: u32,
    /// No more hedges for this request (all sent, budget spent, circuit not closed, no delay).
    done_hedging: bool,
}

impl<S, Req, C, M> Hedging<S, Req, C, M> {
    pub(crate) fn new(
        service: S,
        spare: Req,
        classifier: C,
        memo: M,
        shared: Local<Shared>,
    ) -> Self {
        Hedging {
            service,
            spare: Some(spare),
            classifier,
            memo,
            shared,
            start: None,
            delay: Duration::ZERO,
            hedges_sent: 0,
            done_hedging: false,
        }
    }
}

impl<S, Req, C, M> ResponseFuture<S, Req, C, M>
where
    S: Service<Req>,
{
    pub(crate) fn new(primary: S::Future, hedging: Hedging<S, Req, C, M>) -> Self {
        ResponseFuture {
            primary: Some(primary),
            timer: None,
            hedges: Vec::new(),
            failed: None,
            hedging,
        }
    }
}

impl<S, Req, C, M> Hedging<S, Req, C, M>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, Memo = M>,
{
    /// An attempt (1: the first) finished: the answer if it is good (or the request's own
    /// fault, which another attempt would share), else `None` after keeping it as the failure.
    fn judge(
        &self,
        result: Result<S::Response, S::Error>,
        attempt: u32,
        failed: &mut Option<Result<S::Response, BoxError>>,
    ) -> Option<Result<S::Response, BoxError>> {
        let result = result.map_err(Into::into);
        let outcome = classify::classify(&self.classifier, &self.memo, result.as_ref());
        if outcome.is_success() || !outcome.counts_against_agent() {
            self.shared.record(self.start);
            super::record_answer(attempt);
            if attempt > 1 {
                tracing::debug!(agent = %self.shared.name, attempt, "a hedge answered first");
            }
            return Some(result);
        }
        *failed = Some(result);
        None
    }
}

impl<S, Req, C, M> Future for ResponseFuture<S, Req, C, M>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, Memo = M>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(primary) = this.primary.as_mut().as_pin_mut()
            && let Poll::Ready(result) = primary.poll(cx)
        {
            this.primary.set(None);
            if let Some(answer) = this.hedging.judge(result, 1, this.failed) {
                this.hedges.clear();
                this.timer.set(None);
                return Poll::Ready(answer);
            }
        }
        loop {
            for (index, slot) in this.hedges.iter_mut().enumerate() {
                let Some(hedge) = slot else { continue };
                if let Poll::Ready(result) = hedge.as_mut().poll(cx) {
                    *slot = None;
                    let attempt = index as u32 + 2;
                    if let Some(answer) = this.hedging.judge(result, attempt, this.failed) {
                        // The slower attempts are cancelled here, not when the caller drops us.
                        this.primary.set(None);
                        this.hedges.clear();
                        this.timer.set(None);
                        return Poll::Ready(answer);
                    }
                }
            }
            let in_flight = this.primary.is_some() || this.hedges.iter().any(Option::is_some);
            if !in_flight {
                this.timer.set(None);
                this.hedging.shared.record(this.hedging.start);
                return Poll::Ready(
                    this.failed
                        .take()
                        .unwrap_or_else(|| Err("hedge future polled after completion".into())),
                );
            }
            let hedging = &mut *this.hedging;
            if hedging.done_hedging {
                return Poll::Pending;
            }
            if hedging.start.is_none() {
                // The first attempt did not answer at once: now the clock matters.
                let start = Instant::now();
                hedging.start = Some(start);
                let Some(delay) = hedging.shared.delay(start) else {
                    hedging.done_hedging = true;
                    return Poll::Pending;
                };
                hedging.delay = delay;
                this.timer
                    .set(Some(tokio::time::sleep_until(start + delay)));
            }
            let Some(mut timer) = this.timer.as_mut().as_pin_mut() else {
                return Poll::Pending;
            };
            ready!(timer.as_mut().poll(cx));
            // The instant the timer was set for is "now": no clock read.
            let now = timer.deadline();
            let shared = &hedging.shared;
            if !shared.may_hedge(now) {
                hedging.done_hedging = true;
                this.timer.set(None);
                return Poll::Pending;
            }
            hedging.hedges_sent += 1;
            let last = hedging.hedges_sent >= shared.config.max_hedges;
            let request = if last {
                hedging.done_hedging = true;
                hedging.spare.take()
            } else {
                hedging.spare.clone()
            };
            let Some(request) = request else {
                hedging.done_hedging = true;
                return Poll::Pending;
            };
            shared.scope.reporter.emit(crate::events::Event::HedgeSent {
                agent: shared.name.clone(),
                attempt: hedging.hedges_sent + 1,
                after: hedging
                    .start
                    .map_or(Duration::ZERO, |start| now.saturating_duration_since(start)),
            });
            this.hedges.push(Some(Box::pin(Oneshot::new(
                hedging.service.clone(),
                request,
            ))));
            if last {
                this.timer.set(None);
            } else {
                timer.reset(now + hedging.delay);
            }
        }
    }
}

impl<S, Req, C, M> fmt::Debug for ResponseFuture<S, Req, C, M>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.hedging.shared.name)
            .field("hedges_sent", &self.hedging.hedges_sent)
            .finish_non_exhaustive()
    }
}
