//! [`ResponseFuture`]: classifies each attempt, waits, and sends the request again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use tracing::Span;

use crate::classify::{self, Classify, Outcome, OutcomeKind};
use crate::clock::{NOT_TIMED, Nanos};
use crate::error::BoxError;
use crate::rare::Rare;
use crate::sync::Local;
use crate::trace;

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
        // attempts (which always ends before the deadline). Boxed and made only when needed:
        // with a deadline, when an attempt first has to wait; without one, at the first retry.
        // An attempt that answers at once never makes it, and the future stays small (it is
        // moved on every call: its size is time).
        timer: Rare<Pin<Box<Sleep>>>,
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
    spare: Option<Req>,
    classifier: C,
    memo: M,
    shared: Local<Shared<S>>,
    attempts: u32,
    /// When the call started (the budget's clock), for `steadfast_call_duration_seconds`.
    started: Nanos,
    deadline: Option<Instant>,
    /// What only some calls need, boxed when first needed: at the first failure that is
    /// retried, or at the start while a subscriber listens to spans. One box for both keeps the
    /// future (moved on every call) one word smaller.
    failed: Rare<Box<Failed<S>>>,
}

/// The state of a call that failed at least once and is being retried, and its spans.
pub(crate) struct Failed<S> {
    previous_wait: Duration,
    last_error: Option<BoxError>,
    /// When the attempt in flight started (the budget's clock); the call's start for the first.
    attempt_started: Nanos,
    /// The call's spans, made only while a subscriber listens.
    trace: Option<Trace>,
    /// What retries are sent through: a clone of the layer's (`Shared::service`), made at the
    /// first retry. Here rather than in the future, which a call that succeeds moves whole.
    service: Option<S>,
}

impl<S> Failed<S> {
    fn new(attempt_started: Nanos, trace: Option<Trace>) -> Self {
        Failed {
            previous_wait: Duration::ZERO,
            last_error: None,
            attempt_started,
            trace,
            service: None,
        }
    }

    /// The state of a new call to `agent` that a subscriber listens to, its spans started:
    /// `None` when nobody listens. The spans ride here, off the future of an untraced call,
    /// and a call gets them boxed from the start: returned as an `Option<Trace>` (80 bytes,
    /// one word of it written when `None`) and then moved into the future, they were copied in
    /// 16-byte loads of what had just been stored 8 bytes at a time (a stalled load).
    #[inline]
    pub(crate) fn start(agent: &str, started: Nanos) -> Rare<Box<Self>> {
        if !trace::enabled() {
            return Rare::none();
        }
        Rare::from_option(Some(Self::traced(Trace::listened(agent), started)))
    }

    /// The spans of a call a subscriber listens to.
    pub(crate) fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    #[cold]
    #[allow(
        clippy::unnecessary_box_returns,
        reason = "boxed out of line: the untraced call never builds or moves a `Failed`"
    )]
    fn traced(trace: Trace, started: Nanos) -> Box<Self> {
        Box::new(Failed::new(started, Some(trace)))
    }

    /// The failure state in `slot`, made (untraced) if the call has none yet.
    fn in_slot(slot: &mut Rare<Box<Self>>) -> &mut Self {
        slot.get_or_insert_with(|| Box::new(Failed::new(0, None)))
    }
}

/// The spans of one call through the retry layer (see [`crate::trace`]).
pub(crate) struct Trace {
    /// The call span, when this layer opened it (no layer outside did).
    call: Option<Span>,
    /// The span of the attempt in flight.
    attempt: Span,
}

impl Trace {
    /// The spans of a new call to `agent`, once a subscriber listens ([`Failed::start`]).
    fn listened(agent: &str) -> Trace {
        let call = trace::open_call(agent);
        let attempt = {
            let _call = call.as_ref().map(Span::enter);
            trace::attempt(agent, 1)
        };
        Trace { call, attempt }
    }

    /// Runs `f` inside the call span (if owned), then the attempt's, when there is a `trace`
    /// (out of line, as [`trace::within`]).
    #[inline]
    pub(crate) fn within<R>(trace: Option<&Trace>, f: impl FnOnce() -> R) -> R {
        match trace {
            None => f(),
            Some(trace) => trace.entered(f),
        }
    }

    #[cold]
    #[inline(never)]
    fn entered<R>(&self, f: impl FnOnce() -> R) -> R {
        let _call = self.call.as_ref().map(Span::enter);
        let _attempt = self.attempt.enter();
        f()
    }

    /// Starts the span of attempt number `attempt` (closing the previous one).
    fn next_attempt(&mut self, agent: &str, attempt: u32) {
        let _call = self.call.as_ref().map(Span::enter);
        self.attempt = trace::attempt(agent, attempt);
    }

    /// The call ended after `attempts` attempts with `outcome`: recorded on the call span (the
    /// outcome only on one this layer opened: an outer layer records its own; the primary's
    /// answer as provenance either way, since a layer outside may not know who answered).
    fn ended(&self, outcome: &Outcome, attempts: u32) {
        if let Some(call) = &self.call {
            trace::record_outcome(call, outcome);
            if outcome.is_success() {
                trace::record_provenance(call, "primary", None);
            }
            call.record("attempts", i64::from(attempts));
        } else if let Some(call) = trace::call_span(None) {
            call.record("attempts", i64::from(attempts));
            if outcome.is_success() {
                trace::record_provenance(&call, "primary", None);
            }
        }
    }
}

/// The inner call of a retry, or of a first attempt that is traced or has a deadline: inside
/// the call's spans, with the deadline visible to [`scope::remaining`]. Out of line, so that
/// the first attempt of an untraced call without a deadline calls the inner service right in
/// the future's literal, which then writes its future in place (a closure making the call
/// stayed out of line and returned the inner future into a temporary, copied into the literal
/// with a stalled load).
#[cold]
#[inline(never)]
fn call_within<S: Service<Req>, Req>(
    inner: &mut S,
    request: Req,
    trace: Option<&Trace>,
    deadline: Option<Instant>,
) -> S::Future {
    Trace::within(trace, || match deadline {
        None => inner.call(request),
        Some(deadline) => scope::with_deadline(deadline, || inner.call(request)),
    })
}

impl<S, Req, C, M> Retrying<S, Req, C, M> {
    fn trace(&self) -> Option<&Trace> {
        self.failed.as_ref()?.trace.as_ref()
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
    /// The whole future in one literal, the inner call made inside it, within the call's spans
    /// when it has them (see `fallback::ResponseFuture::new`). A `Retrying` built first and
    /// passed in, and the inner future made before, went through temporaries, each hop a
    /// 16-byte reload of what was just stored 8 bytes at a time; with [`Failed::start`], the
    /// retry row went from 33.5 to 29 ns and the 3-layer stack from 70 to 63 ns (AMD EPYC).
    #[allow(
        clippy::inline_always,
        clippy::too_many_arguments,
        reason = "the future must be built where the caller keeps it; the arguments are its fields"
    )]
    #[inline(always)]
    pub(crate) fn new(
        inner: &mut S,
        request: Req,
        deadline: Option<Instant>,
        spare: Option<Req>,
        classifier: C,
        memo: M,
        shared: Local<Shared<S>>,
        started: Nanos,
        failed: Rare<Box<Failed<S>>>,
    ) -> Self {
        ResponseFuture {
            state: State::Called {
                future: match (failed.as_ref().and_then(|failed| failed.trace()), deadline) {
                    (None, None) => inner.call(request),
                    (trace, deadline) => call_within(inner, request, trace, deadline),
                },
            },
            timer: Rare::none(),
            retrying: Retrying {
                spare,
                classifier,
                memo,
                shared,
                started,
                attempts: 1,
                deadline,
                failed,
            },
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
        if let Some(trace) = self.trace() {
            trace::record_outcome(&trace.attempt, &outcome);
        }
        let timed = self.started != NOT_TIMED;
        if outcome.is_success() {
            // The one clock read of a call answered at once (the attempt's and the call's
            // end), and none when no recorder takes the durations.
            let now = if timed {
                let now = self.shared.budget.origin().elapsed();
                self.report_attempt(outcome.kind(), now);
                now
            } else {
                NOT_TIMED
            };
            return self.finish(result, &outcome, now);
        }
        self.after_failure(result, outcome)
    }

    /// [`Self::after_attempt`] for an attempt that failed: out of line, so that the success
    /// path stays small enough to inline across the layers of a stack.
    #[inline(never)]
    fn after_failure(
        &mut self,
        result: Result<S::Response, BoxError>,
        outcome: Outcome,
    ) -> Step<Result<S::Response, BoxError>> {
        let timed = self.started != NOT_TIMED;
        let clock = Instant::now();
        let now = self.shared.budget.origin().nanos_at(clock);
        if timed {
            self.report_attempt(outcome.kind(), now);
        }
        let shared = &*self.shared;
        // A request that must not be sent twice is retried only when the failure proves the
        // agent never acted on it (connection refused, 429, 503 with Retry-After, circuit open).
        let repeatable = outcome.is_unprocessed() || self.classifier.is_idempotent(&self.memo);
        if !repeatable && outcome.is_retryable() {
            tracing::debug!(agent = %shared.name, %outcome, "not retrying: the request is not idempotent and may have reached the agent");
        }
        let retryable = repeatable && shared.retryable(&outcome);
        let previous = self
            .failed
            .as_ref()
            .map_or(Duration::ZERO, |failed| failed.previous_wait);
        let attempts = self.attempts;
        let verdict = policy::decide(&shared.config, outcome, retryable, attempts, || {
            shared.backoff(attempts, previous)
        });
        let (wait, asked_by_agent) = match verdict {
            Verdict::GiveUp => return self.finish(result, &outcome, now),
            Verdict::Exhausted => {
                shared.report_exhausted(&outcome, attempts);
                return self.finish(
                    result.map_err(|error| {
                        RetriesExhausted::new(shared.name.clone(), attempts, error).into()
                    }),
                    &outcome,
                    now,
                );
            }
            Verdict::WaitTooLong => {
                tracing::debug!(
                    agent = %shared.name, attempts, %outcome,
                    max_retry_after_secs = shared.config.max_retry_after.as_secs_f64(),
                    "agent asked for a wait over max_retry_after: not retrying"
                );
                return self.finish(result, &outcome, now);
            }
            Verdict::Retry(wait, asked_by_agent) => (wait, asked_by_agent),
        };
        let Some(wake) = clock.checked_add(wait) else {
            // A wait past what the clock can hold (a `Retry-After` of centuries under a
            // `max_retry_after` of `Duration::MAX`) is no retry at all.
            tracing::debug!(agent = %shared.name, attempts, wait_secs = wait.as_secs_f64(), "the wait is past any instant: not retrying");
            return self.finish(result, &outcome, now);
        };
        if let Some(deadline) = self.deadline
            && wake >= deadline
        {
            shared.report_deadline_exceeded(attempts);
            let total = shared.config.deadline.unwrap_or_default();
            return self.finish(
                result.map_err(|error| {
                    DeadlineExceeded::new(shared.name.clone(), attempts, total, Some(error)).into()
                }),
                &outcome,
                now,
            );
        }
        if !shared.budget.try_withdraw_at(now) {
            shared.report_budget_exhausted(attempts);
            return self.finish(
                result.map_err(|error| {
                    BudgetExhausted::new(shared.name.clone(), attempts, error).into()
                }),
                &outcome,
                now,
            );
        }
        shared.report_retry(&outcome, attempts + 1, wait);
        tracing::debug!(agent = %shared.name, attempt = attempts + 1, wait_secs = wait.as_secs_f64(), asked_by_agent, "retrying");
        let failed = Failed::in_slot(&mut self.failed);
        failed.last_error = result.err();
        failed.previous_wait = wait;
        Step::Wait(wait, wake)
    }

    /// The call ends with `result`, classified as `outcome`.
    #[allow(
        clippy::inline_always,
        reason = "left to itself the compiler calls it out of line on every success (callgrind: retry 326 -> 293 instructions per call)"
    )]
    #[inline(always)]
    fn finish(
        &mut self,
        result: Result<S::Response, BoxError>,
        outcome: &Outcome,
        now: Nanos,
    ) -> Step<Result<S::Response, BoxError>> {
        self.ended(outcome, now);
        Step::Done(result)
    }

    /// The attempt in flight ended at `now` with `kind`: its duration, for the histogram.
    fn report_attempt(&self, kind: OutcomeKind, now: Nanos) {
        let attempt_started = self
            .failed
            .as_ref()
            .map_or(self.started, |failed| failed.attempt_started);
        self.shared.report_attempt(kind, attempt_started, now);
    }

    /// The call ends at `now` (the budget's clock; [`NOT_TIMED`] when no recorder takes the
    /// durations): tells an enclosing `count_attempts`, the metrics and the call span.
    #[inline]
    fn ended(&self, outcome: &Outcome, now: Nanos) {
        scope::record_attempts(self.attempts);
        if self.started != NOT_TIMED && now != NOT_TIMED {
            self.shared
                .report_call(outcome.is_success(), self.started, now, self.attempts);
        }
        if let Some(trace) = self.trace() {
            trace.ended(outcome, self.attempts);
        }
    }

    fn deadline_exceeded(&mut self) -> BoxError {
        let now = self.shared.budget.origin().elapsed();
        let outcome = Outcome::agent_fault("deadline exceeded");
        if let Some(trace) = self.trace() {
            trace::record_outcome(&trace.attempt, &outcome);
        }
        self.ended(&outcome, now);
        self.shared.report_deadline_exceeded(self.attempts);
        DeadlineExceeded::new(
            self.shared.name.clone(),
            self.attempts,
            self.shared.config.deadline.unwrap_or_default(),
            self.failed
                .as_mut()
                .and_then(|failed| failed.last_error.take()),
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

/// Whether the deadline has passed, arming the timer for it first if the attempt is the first
/// to wait (outside `Waiting`, the timer is armed for the deadline whenever there is one).
fn deadline_passed(
    deadline: Option<Instant>,
    timer: &mut Rare<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    timer
        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)))
        .as_mut()
        .poll(cx)
        .is_ready()
}

/// Arms `timer` to fire at `at`, creating it on first use.
fn arm(timer: &mut Rare<Pin<Box<Sleep>>>, at: Instant) {
    match timer.as_mut() {
        Some(sleep) => sleep.as_mut().reset(at),
        None => timer.set(Box::pin(tokio::time::sleep_until(at))),
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
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let retrying = &mut *this.retrying;
                    let deadline = retrying.deadline;
                    let polled = Trace::within(retrying.trace(), || match deadline {
                        None => future.poll(cx),
                        Some(deadline) => scope::with_deadline(deadline, || future.poll(cx)),
                    });
                    let Poll::Ready(result) = polled else {
                        if deadline_passed(retrying.deadline, this.timer, cx) {
                            return Poll::Ready(Err(retrying.deadline_exceeded()));
                        }
                        return Poll::Pending;
                    };
                    match retrying.after_attempt(result) {
                        Step::Done(result) => return Poll::Ready(result),
                        Step::Wait(wait, _) if wait.is_zero() => this.state.set(State::Readying),
                        Step::Wait(_, wake) => {
                            arm(this.timer, wake);
                            this.state.set(State::Waiting);
                        }
                    }
                }
                StateProj::Waiting => {
                    if let Some(sleep) = this.timer.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    if let Some(deadline) = this.retrying.deadline {
                        arm(this.timer, deadline);
                    }
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let retrying = &mut *this.retrying;
                    let shared = &retrying.shared;
                    let failed = Failed::in_slot(&mut retrying.failed);
                    let service = failed.service.get_or_insert_with(|| shared.service());
                    match service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => {
                            let now = retrying.shared.budget.origin().elapsed();
                            retrying.ended(&Outcome::agent_fault("not ready"), now);
                            return Poll::Ready(Err(error.into()));
                        }
                        Poll::Pending => {
                            if deadline_passed(retrying.deadline, this.timer, cx) {
                                return Poll::Ready(Err(retrying.deadline_exceeded()));
                            }
                            return Poll::Pending;
                        }
                    }
                    let Some(request) = retrying.next_request() else {
                        // Unreachable: a retry is only decided while attempts <= max_retries,
                        // and the spare is only taken for the last one. Fail rather than panic.
                        let error = retrying
                            .failed
                            .as_mut()
                            .and_then(|failed| failed.last_error.take())
                            .unwrap_or_else(|| "steadfast retry: no request left to send".into());
                        return Poll::Ready(Err(error));
                    };
                    retrying.attempts += 1;
                    if let Some(failed) = retrying.failed.as_mut() {
                        failed.attempt_started = retrying.shared.budget.origin().elapsed();
                        if let Some(trace) = failed.trace.as_mut() {
                            trace.next_attempt(&retrying.shared.name, retrying.attempts);
                        }
                    }
                    // Field by field: the spans are entered while the service is called.
                    let shared = &retrying.shared;
                    let failed = Failed::in_slot(&mut retrying.failed);
                    let Failed { trace, service, .. } = failed;
                    let service = service.get_or_insert_with(|| shared.service());
                    let future = call_within(service, request, trace.as_ref(), retrying.deadline);
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
