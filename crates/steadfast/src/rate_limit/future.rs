//! [`ResponseFuture`]: the call admitted at once (fast path), or its wait for quota, then the
//! call; on the answer, a pause when the agent asked for one and the usage correction.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::classify::{self, Classify, OutcomeKind};
use crate::clock::Nanos;
use crate::error::BoxError;
use crate::sync::{Address, Local};

use super::cost::TokenUsage;
use super::error::RateLimited;
use super::shared::Shared;
use super::state::{Limit, Refusal};

pin_project! {
    /// The future of a [`RateLimit`](super::RateLimit) call. Dropping it while it waits for
    /// quota gives nothing back: the quota it reserved stays spent, which errs on the side of
    /// the provider's limit.
    pub struct ResponseFuture<S, Req, C, M, U>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, S, Req>,
        finish: Finish<C, M, U>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        Called { #[pin] future: F },
        // Boxed: only a call that has to wait carries the timer, the service and the request.
        Waiting { waiting: Pin<Box<Waiting<S, Req>>> },
        Refused { error: Option<BoxError> },
    }
}

pin_project! {
    pub(crate) struct Waiting<S, Req> {
        #[pin]
        sleep: Sleep,
        service: S,
        request: Option<Req>,
        // A waiting call holds a counted reference: it reads the quotas on every wake.
        shared: Local<Shared>,
        tokens: u64,
        // Whether the quotas hold a reservation for this call (otherwise it waits for a pause
        // to end and is admitted then).
        reserved: bool,
        admitted: bool,
        give_up_at: Nanos,
    }
}

/// What the answer needs: the classifier and memo (to see a rate-limited answer), the usage
/// reader, and the way back to the quotas.
pub(crate) struct Finish<C, M, U> {
    pub(crate) home: Home,
    pub(crate) classifier: C,
    pub(crate) memo: M,
    pub(crate) usage: U,
}

/// How a call reaches its limiter after the answer.
pub(crate) enum Home {
    /// With a usage reader, every answer may correct the token quota: a counted reference,
    /// and the tokens charged.
    Held { shared: Local<Shared>, tokens: u64 },
    /// Without one, only a rate-limited answer (which pauses the agent) needs the limiter:
    /// its address, which costs the call no atomic read-modify-write (a counted reference
    /// costs two, about a third of the call's own time).
    Addressed(Address<Shared>),
}

impl Home {
    /// Runs `f` on the limiter, if it still lives (a rate-limited answer to a limiter that is
    /// gone has nothing left to pause).
    fn with<R>(&self, f: impl FnOnce(&Shared) -> R) -> Option<R> {
        match self {
            Home::Held { shared, .. } => Some(f(shared)),
            Home::Addressed(address) => address.find().map(|shared| f(&shared)),
        }
    }
}

impl<S, Req, C, M, U> ResponseFuture<S, Req, C, M, U>
where
    S: Service<Req>,
{
    #[inline]
    pub(crate) fn called(future: S::Future, finish: Finish<C, M, U>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            finish,
        }
    }

    pub(crate) fn refused(error: BoxError, finish: Finish<C, M, U>) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
            finish,
        }
    }

    /// A call that waits for quota, or for a pause to end (its wait made by
    /// [`Waiting::boxed`]).
    #[inline]
    pub(crate) fn waiting(waiting: Pin<Box<Waiting<S, Req>>>, finish: Finish<C, M, U>) -> Self {
        ResponseFuture {
            state: State::Waiting { waiting },
            finish,
        }
    }
}

impl<S, Req> Waiting<S, Req> {
    /// The wait of a call until `until` (nanoseconds since the quotas' origin), on a clone of
    /// the inner service.
    pub(crate) fn boxed(
        service: S,
        request: Req,
        shared: Local<Shared>,
        tokens: u64,
        until: Nanos,
        reserved: bool,
        give_up_at: Nanos,
    ) -> Pin<Box<Self>> {
        let sleep = tokio::time::sleep_until(shared.origin.instant_at(until));
        Box::pin(Waiting {
            sleep,
            service,
            request: Some(request),
            shared,
            tokens,
            reserved,
            admitted: false,
            give_up_at,
        })
    }

    /// Waits until the call is admitted (through any pause that starts meanwhile), or refuses
    /// it when that would take past its `max_wait`.
    fn poll_admitted(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            let waiting = self.as_mut().project();
            let shared = &**waiting.shared;
            if *waiting.admitted {
                return Poll::Ready(Ok(()));
            }
            let mut sleep = waiting.sleep;
            ready!(sleep.as_mut().poll(cx));
            // The instant slept until is "now": no clock read.
            let at = shared.origin.nanos_at(sleep.deadline());
            if let Some(until) = shared.limits.paused_at(at) {
                if until > *waiting.give_up_at {
                    if *waiting.reserved {
                        shared.limits.refund(at, *waiting.tokens);
                    }
                    return Poll::Ready(Err(shared.refused(Limit::Paused, Some(until - at))));
                }
                sleep.reset(shared.origin.instant_at(until));
                continue;
            }
            if *waiting.reserved {
                *waiting.admitted = true;
                continue;
            }
            match shared
                .limits
                .admit(at, *waiting.tokens, waiting.give_up_at.saturating_sub(at))
            {
                Ok(wait) => {
                    *waiting.reserved = true;
                    if wait == 0 {
                        *waiting.admitted = true;
                    } else {
                        sleep.reset(shared.origin.instant_at(at + wait));
                    }
                }
                Err((limit, Refusal::Wait(wait))) => {
                    return Poll::Ready(Err(shared.refused(limit, Some(wait))));
                }
                Err((limit, Refusal::TooLarge)) => {
                    return Poll::Ready(Err(shared.refused(limit, None)));
                }
            }
        }
    }
}

impl<C, M, U> Finish<C, M, U> {
    /// The answer: a pause if the agent asked for one, the usage correction, then the result.
    #[inline]
    fn complete<Req, Res, E>(&self, result: Result<Res, E>) -> Result<Res, BoxError>
    where
        E: Into<BoxError>,
        C: Classify<Req, Res, Memo = M>,
        U: TokenUsage<Res>,
    {
        let result = result.map_err(Into::into);
        let outcome = classify::classify(&self.classifier, &self.memo, result.as_ref());
        match &result {
            Ok(response) if outcome.is_success() => {
                if let Home::Held { shared, tokens } = &self.home
                    && let Some(actual) = self.usage.actual(response)
                    && actual != *tokens
                {
                    let now = shared.origin.nanos_at(Instant::now());
                    shared.limits.correct(now, *tokens, actual);
                }
                return result;
            }
            // An inner limiter's refusal is no word from the agent.
            Err(error) if crate::error::find::<RateLimited>(error.as_ref()).is_some() => {
                return result;
            }
            _ => {}
        }
        if outcome.kind() == OutcomeKind::RateLimited
            && let Some(wait) = outcome.retry_after()
        {
            self.home.with(|shared| {
                let now = shared.origin.nanos_at(Instant::now());
                shared.pause(now, crate::clock::duration_to_nanos(wait));
            });
        }
        result
    }
}

impl<S, Req, C, M, U> Future for ResponseFuture<S, Req, C, M, U>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<Req, S::Response, Memo = M>,
    U: TokenUsage<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx));
                    return Poll::Ready(this.finish.complete(result));
                }
                StateProj::Refused { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .unwrap_or_else(|| "rate-limit future polled after completion".into())));
                }
                StateProj::Waiting { waiting } => {
                    if let Err(error) = ready!(waiting.as_mut().poll_admitted(cx)) {
                        this.state.set(State::Refused { error: None });
                        return Poll::Ready(Err(error));
                    }
                    let waiting = waiting.as_mut().project();
                    if let Err(error) = ready!(waiting.service.poll_ready(cx)) {
                        return Poll::Ready(Err(error.into()));
                    }
                    let Some(request) = waiting.request.take() else {
                        return Poll::Ready(
                            Err("rate-limit future polled after completion".into()),
                        );
                    };
                    let future = waiting.service.call(request);
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S, Req, C, M, U> fmt::Debug for ResponseFuture<S, Req, C, M, U>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Waiting { .. } => "waiting for quota",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field(
                "agent",
                &self.finish.home.with(|shared| shared.name.clone()),
            )
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
