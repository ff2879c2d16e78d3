//! [`ResponseFuture`]: classifies each attempt, waits, and sends the request again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::classify::{self, Classify};
use crate::error::BoxError;

use super::error::{BudgetExhausted, DeadlineExceeded, RetriesExhausted};
use super::policy::{self, Verdict};
use super::scope;
use super::shared::Shared;

pin_project! {
    /// The future of a [`BackoffRetry`](super::BackoffRetry) call. Dropping it cancels the
    /// attempt in flight or the pending wait.
    pub struct ResponseFuture<S, Req, C, M>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        // One timer for both the overall deadline (while an attempt runs) and the wait between
        // attempts (which always ends before the deadline). Armed at once only with a
        // deadline; without one, first at the first retry: no timer on the success path.
        #[pin]
        timer: Option<Sleep>,
        retrying: Retrying<S, Req, C, M>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Waiting,
        Readying,
    }
}

/// Everything needed to send the request again.
pub(crate) struct Retrying<S, Req, C, M> {
    service: S,
    spare: Option<Req>,
    classifier: C,
    memo: M,
    shared: Arc<Shared>,
    attempts: u32,
    previous_wait: Duration,
    deadline: Option<Instant>,
    last_error: Option<BoxError>,
    span: Option<tracing::Span>,
}

impl<S, Req, C, M> Retrying<S, Req, C, M> {
    pub(crate) fn new(
        service: S,
        spare: Option<Req>,
        classifier: C,
        memo: M,
        shared: Arc<Shared>,
    ) -> Self {
        Retrying {
            service,
            spare,
            classifier,
            memo,
            shared,
            attempts: 1,
            previous_wait: Duration::ZERO,
            deadline: None,
            last_error: None,
            span: None,
        }
    }
}

enum Step<T> {
    Done(T),
    /// Wait until this instant (now, for a zero wait), then send again.
    Wait(Duration, Instant),
}

impl<S, Req, C, M> ResponseFuture<S, Req, C, M>
where
    S: Service<Req>,
{
    pub(crate) fn new(
        future: S::Future,
        deadline: Option<Instant>,
        mut retrying: Retrying<S, Req, C, M>,
    ) -> Self {
        retrying.deadline = deadline;
        ResponseFuture {
            state: State::Called { future },
            timer: deadline.map(tokio::time::sleep_until),
            retrying,
        }
    }
}

impl<S, Req, C, M> Retrying<S, Req, C, M>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, Memo = M>,
    Req: Clone,
{
    /// Decides what a finished attempt leads to.
    fn after_attempt(
        &mut self,
        result: Result<S::Response, S::Error>,
    ) -> Step<Result<S::Response, BoxError>> {
        let result = result.map_err(Into::into);
        let outcome = classify::classify(&self.classifier, &self.memo, result.as_ref());
        if outcome.is_success() {
            return self.finish(result);
        }
        let shared = &*self.shared;
        // A request that must not be sent twice is retried only when the failure proves the
        // agent never acted on it (connection refused, 429, 503 with Retry-After, circuit open).
        let repeatable = outcome.is_unprocessed() || self.classifier.is_idempotent(&self.memo);
        if !repeatable && outcome.is_retryable() {
            tracing::debug!(agent = %shared.name, %outcome, "not retrying: the request is not idempotent and may have reached the agent");
        }
        let retryable = repeatable && shared.retryable(&outcome);
        let (attempts, previous) = (self.attempts, self.previous_wait);
        let verdict = policy::decide(&shared.config, outcome, retryable, attempts, || {
            shared.backoff(attempts, previous)
        });
        let (wait, asked_by_agent) = match verdict {
            Verdict::GiveUp => return self.finish(result),
            Verdict::Exhausted => {
                shared.report_exhausted(&outcome, attempts);
                return self.finish(result.map_err(|error| {
                    RetriesExhausted::new(shared.name.clone(), attempts, error).into()
                }));
            }
            Verdict::WaitTooLong => {
                tracing::debug!(
                    agent = %shared.name, attempts, %outcome,
                    max_retry_after_secs = shared.config.max_retry_after.as_secs_f64(),
                    "agent asked for a wait over max_retry_after: not retrying"
                );
                return self.finish(result);
            }
            Verdict::Retry(wait, asked_by_agent) => (wait, asked_by_agent),
        };
        let now = Instant::now();
        let Some(wake) = now.checked_add(wait) else {
            // A wait past what the clock can hold (a `Retry-After` of centuries under a
            // `max_retry_after` of `Duration::MAX`) is no retry at all.
            tracing::debug!(agent = %shared.name, attempts, wait_secs = wait.as_secs_f64(), "the wait is past any instant: not retrying");
            return self.finish(result);
        };
        if let Some(deadline) = self.deadline
            && wake >= deadline
        {
            shared.report_deadline_exceeded(attempts);
            let total = shared.config.deadline.unwrap_or_default();
            return self.finish(result.map_err(|error| {
                DeadlineExceeded::new(shared.name.clone(), attempts, total, Some(error)).into()
            }));
        }
        if !shared
            .budget
            .try_withdraw_at(shared.budget.origin().nanos_at(now))
        {
            shared.report_budget_exhausted(attempts);
            return self.finish(result.map_err(|error| {
                BudgetExhausted::new(shared.name.clone(), attempts, error).into()
            }));
        }
        shared.report_retry(&outcome, attempts + 1, wait);
        tracing::debug!(agent = %shared.name, attempt = attempts + 1, wait_secs = wait.as_secs_f64(), asked_by_agent, "retrying");
        self.last_error = result.err();
        self.previous_wait = wait;
        Step::Wait(wait, wake)
    }

    fn finish(
        &mut self,
        result: Result<S::Response, BoxError>,
    ) -> Step<Result<S::Response, BoxError>> {
        scope::record_attempts(self.attempts);
        Step::Done(result)
    }

    fn deadline_exceeded(&mut self) -> BoxError {
        scope::record_attempts(self.attempts);
        self.shared.report_deadline_exceeded(self.attempts);
        DeadlineExceeded::new(
            self.shared.name.clone(),
            self.attempts,
            self.shared.config.deadline.unwrap_or_default(),
            self.last_error.take(),
        )
        .into()
    }

    /// The request for the next attempt: a clone while more retries may follow, else the spare
    /// itself.
    fn next_request(&mut self) -> Option<Req> {
        if self.attempts < self.shared.config.max_retries {
            self.spare.clone()
        } else {
            self.spare.take()
        }
    }
}

/// Whether the deadline has passed; `timer` must be armed for the deadline (it is, outside
/// `Waiting`, whenever there is one).
fn deadline_passed(
    deadline: Option<Instant>,
    timer: Pin<&mut Option<Sleep>>,
    cx: &mut Context<'_>,
) -> bool {
    deadline.is_some()
        && timer
            .as_pin_mut()
            .is_some_and(|timer| timer.poll(cx).is_ready())
}

/// Arms `timer` to fire at `at`, creating it on first use.
fn arm(mut timer: Pin<&mut Option<Sleep>>, at: Instant) {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(tokio::time::sleep_until(at))),
    }
}

impl<S, Req, C, M> Future for ResponseFuture<S, Req, C, M>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, Memo = M>,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let retrying = &mut *this.retrying;
                    let polled = {
                        let _entered = retrying.span.as_ref().map(tracing::Span::enter);
                        match retrying.deadline {
                            None => future.poll(cx),
                            Some(deadline) => scope::with_deadline(deadline, || future.poll(cx)),
                        }
                    };
                    let Poll::Ready(result) = polled else {
                        if deadline_passed(retrying.deadline, this.timer.as_mut(), cx) {
                            return Poll::Ready(Err(retrying.deadline_exceeded()));
                        }
                        return Poll::Pending;
                    };
                    match retrying.after_attempt(result) {
                        Step::Done(result) => return Poll::Ready(result),
                        Step::Wait(wait, _) if wait.is_zero() => this.state.set(State::Readying),
                        Step::Wait(_, wake) => {
                            arm(this.timer.as_mut(), wake);
                            this.state.set(State::Waiting);
                        }
                    }
                }
                StateProj::Waiting => {
                    if let Some(sleep) = this.timer.as_mut().as_pin_mut() {
                        ready!(sleep.poll(cx));
                    }
                    if let Some(deadline) = this.retrying.deadline {
                        arm(this.timer.as_mut(), deadline);
                    }
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let retrying = &mut *this.retrying;
                    match retrying.service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => {
                            scope::record_attempts(retrying.attempts);
                            return Poll::Ready(Err(error.into()));
                        }
                        Poll::Pending => {
                            if deadline_passed(retrying.deadline, this.timer.as_mut(), cx) {
                                return Poll::Ready(Err(retrying.deadline_exceeded()));
                            }
                            return Poll::Pending;
                        }
                    }
                    let Some(request) = retrying.next_request() else {
                        // Unreachable: a retry is only decided while attempts <= max_retries,
                        // and the spare is only taken for the last one. Fail rather than panic.
                        let error = retrying
                            .last_error
                            .take()
                            .unwrap_or_else(|| "steadfast retry: no request left to send".into());
                        return Poll::Ready(Err(error));
                    };
                    retrying.attempts += 1;
                    let span = tracing::debug_span!(
                        "retry_attempt", agent = %retrying.shared.name, attempt = retrying.attempts
                    );
                    let future = {
                        let _entered = span.enter();
                        match retrying.deadline {
                            None => retrying.service.call(request),
                            Some(deadline) => {
                                scope::with_deadline(deadline, || retrying.service.call(request))
                            }
                        }
                    };
                    retrying.span = Some(span);
                    this.state.set(State::Called { future });
                }
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
            .field("agent", &self.retrying.shared.name)
            .field("attempts", &self.retrying.attempts)
            .finish_non_exhaustive()
    }
}
