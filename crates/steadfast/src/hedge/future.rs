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

use crate::classify::{self, Classify, Outcome};
use crate::error::BoxError;
use crate::sync::Local;

use super::shared::Shared;
use super::target::{AlternativeFuture, TargetList};

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
        hedges: Vec<Option<Attempt<S, Req>>>,
        // The last failed attempt's result, returned if no other attempt answers well.
        failed: Option<Result<S::Response, BoxError>>,
        hedging: Hedging<S, Req, S::Response, C, M>,
    }
}

/// A hedge in flight.
enum Attempt<S, Req>
where
    S: Service<Req>,
{
    /// To the agent itself, through a clone of its service.
    Same(Pin<Box<Oneshot<S, Req>>>),
    /// To `alternatives[index]`, judged by that agent's classifier.
    Alternative {
        index: usize,
        future: AlternativeFuture<S::Response>,
    },
}

/// Everything needed to hedge.
pub(crate) struct Hedging<S, Req, Res, C, M> {
    /// Where hedges go.
    to: To<S, Req, Res>,
    /// The first alternative the next hedge may go to.
    next_alternative: u32,
    spare: Option<Req>,
    classifier: C,
    memo: M,
    shared: Local<Shared>,
    /// When the first attempt was found pending (the clock is read only then).
    start: Option<Instant>,
    delay: Duration,
    /// At most `MAX_HEDGES_LIMIT` (4): a byte, so this and `next_alternative` share the word
    /// the future had (futures are moved on every call: their size is time).
    hedges_sent: u8,
    /// No more hedges for this request (all sent, budget spent, circuit not closed, no delay).
    done_hedging: bool,
}

/// Where a request's hedges go.
pub(crate) enum To<S, Req, Res> {
    /// To this agent, through clones of its service ([`SameAgent`](super::SameAgent)).
    Same(S),
    /// To other agents ([`Alternatives`](super::Alternatives)).
    Alternatives(TargetList<Req, Res>),
}

impl<S, Req, Res, C, M> Hedging<S, Req, Res, C, M> {
    pub(crate) fn new(
        to: To<S, Req, Res>,
        spare: Req,
        classifier: C,
        memo: M,
        shared: Local<Shared>,
    ) -> Self {
        Hedging {
            to,
            next_alternative: 0,
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
    pub(crate) fn new(primary: S::Future, hedging: Hedging<S, Req, S::Response, C, M>) -> Self {
        ResponseFuture {
            primary: Some(primary),
            timer: None,
            hedges: Vec::new(),
            failed: None,
            hedging,
        }
    }
}

impl<S, Req, Res, C, M> Hedging<S, Req, Res, C, M>
where
    C: Classify<Req, Res, Memo = M>,
{
    /// An attempt (1: the first) of this agent finished: the answer if it is good (or the
    /// request's own fault, which another attempt would share), else `None` after keeping it
    /// as the failure.
    fn judge(
        &self,
        result: Result<Res, BoxError>,
        attempt: u32,
        failed: &mut Option<Result<Res, BoxError>>,
    ) -> Option<Result<Res, BoxError>> {
        let outcome = classify::classify(&self.classifier, &self.memo, result.as_ref());
        self.accept(result, &outcome, attempt, None, failed)
    }

    /// [`judge`](Self::judge), for an attempt already classified (by `alternative`'s agent,
    /// if it went to one).
    fn accept(
        &self,
        result: Result<Res, BoxError>,
        outcome: &Outcome,
        attempt: u32,
        alternative: Option<usize>,
        failed: &mut Option<Result<Res, BoxError>>,
    ) -> Option<Result<Res, BoxError>> {
        if outcome.is_success() || !outcome.counts_against_agent() {
            self.shared.record(self.start);
            let agent = match (&self.to, alternative) {
                (To::Alternatives(alternatives), Some(index)) => alternatives
                    .get(index)
                    .map_or(&self.shared.name, |target| &target.name),
                _ => &self.shared.name,
            };
            super::record_answer(attempt, agent);
            if attempt > 1 {
                tracing::debug!(agent = %self.shared.name, attempt, answered_by = %agent, "a hedge answered first");
            }
            return Some(result);
        }
        *failed = Some(result);
        None
    }

    /// Where the next hedge goes, budget taken; `None` when no hedge may go (circuit not
    /// closed, budget spent, no alternative left). Never a hedge to an open circuit, and none
    /// taken from the budget then.
    fn next_target(&mut self, now: Instant) -> Option<Route> {
        let shared = &self.shared;
        let To::Alternatives(alternatives) = &self.to else {
            if !super::shared::circuit_closed(&shared.scope) {
                tracing::debug!(agent = %shared.name, "no hedge: the agent's circuit is not closed");
                return None;
            }
            return shared.withdraw(&shared.name, now).then_some(Route::Same);
        };
        let index = (self.next_alternative as usize..alternatives.len()).find(|&index| {
            let target = &alternatives[index];
            let closed = super::shared::circuit_closed(&target.scope);
            if !closed {
                tracing::debug!(agent = %shared.name, to = %target.name, "no hedge to this alternative: its circuit is not closed");
            }
            closed
        })?;
        self.next_alternative = u32::try_from(index + 1).unwrap_or(u32::MAX);
        shared
            .withdraw(&alternatives[index].name, now)
            .then_some(Route::Alternative(index))
    }

    /// Whether a hedge could follow the one just sent.
    fn more_targets(&self) -> bool {
        u32::from(self.hedges_sent) < self.shared.config.max_hedges
            && match &self.to {
                To::Same(_) => true,
                To::Alternatives(alternatives) => {
                    (self.next_alternative as usize) < alternatives.len()
                }
            }
    }
}

/// Where one hedge goes.
#[derive(Clone, Copy)]
enum Route {
    /// To this agent.
    Same,
    /// To `alternatives[index]`.
    Alternative(usize),
}

impl<S, Req, C, M> Hedging<S, Req, S::Response, C, M>
where
    S: Service<Req> + Clone,
    C: Classify<Req, S::Response, Memo = M>,
    Req: Clone,
{
    /// Sends a hedge now, if one may go: the attempt, and whether it is the request's last.
    fn send(&mut self, now: Instant) -> Option<(Attempt<S, Req>, bool)> {
        let route = self.next_target(now)?;
        self.hedges_sent = self.hedges_sent.saturating_add(1);
        let last = !self.more_targets();
        let request = if last {
            self.done_hedging = true;
            self.spare.take()
        } else {
            self.spare.clone()
        }?;
        let shared = &self.shared;
        shared.scope.reporter.emit(crate::events::Event::HedgeSent {
            agent: shared.name.clone(),
            attempt: u32::from(self.hedges_sent) + 1,
            after: self
                .start
                .map_or(Duration::ZERO, |start| now.saturating_duration_since(start)),
        });
        let attempt = match (route, &self.to) {
            (Route::Alternative(index), To::Alternatives(alternatives)) => {
                let alternative = &alternatives[index];
                tracing::debug!(agent = %shared.name, to = %alternative.name, "hedging to an alternative");
                Attempt::Alternative {
                    index,
                    future: alternative.start(request),
                }
            }
            (Route::Same, To::Same(service)) => {
                Attempt::Same(Box::pin(Oneshot::new(service.clone(), request)))
            }
            // Routes come from `to`: a same-agent route only with a service, and so on.
            _ => return None,
        };
        Some((attempt, last))
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
            if let Some(answer) = this
                .hedging
                .judge(result.map_err(Into::into), 1, this.failed)
            {
                this.hedges.clear();
                this.timer.set(None);
                return Poll::Ready(answer);
            }
        }
        loop {
            for (index, slot) in this.hedges.iter_mut().enumerate() {
                let Some(hedge) = slot else { continue };
                let attempt = index as u32 + 2;
                let answer = match hedge {
                    Attempt::Same(future) => match future.as_mut().poll(cx) {
                        Poll::Ready(result) => {
                            this.hedging
                                .judge(result.map_err(Into::into), attempt, this.failed)
                        }
                        Poll::Pending => continue,
                    },
                    Attempt::Alternative { index, future } => match future.as_mut().poll(cx) {
                        Poll::Ready((result, outcome)) => this.hedging.accept(
                            result,
                            &outcome,
                            attempt,
                            Some(*index),
                            this.failed,
                        ),
                        Poll::Pending => continue,
                    },
                };
                *slot = None;
                if let Some(answer) = answer {
                    // The slower attempts are cancelled here, not when the caller drops us.
                    this.primary.set(None);
                    this.hedges.clear();
                    this.timer.set(None);
                    return Poll::Ready(answer);
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
            let Some((attempt, last)) = hedging.send(now) else {
                hedging.done_hedging = true;
                this.timer.set(None);
                return Poll::Pending;
            };
            this.hedges.push(Some(attempt));
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
