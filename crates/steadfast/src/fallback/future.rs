//! [`ResponseFuture`]: the primary call, then (only if it failed) the chain of alternatives.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{Instrument, Span};

use crate::cache::CacheMiss;
use crate::classify::{self, Classify, FailedResponse, Outcome, OutcomeKind};
use crate::error::BoxError;
use crate::events::Event;
use crate::provenance::{MarkServed, Served};
use crate::rare::Rare;
use crate::sync::Local;
use crate::trace;

use super::alternative::Target;
use super::error::{AllFailed, SkipReason, Skipped};
use super::service::Shared;

type ChainFuture<Res> = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

pin_project! {
    /// The future of a [`Fallback`](super::Fallback) call.
    pub struct ResponseFuture<F, Req, Res, C, M, P> {
        #[pin]
        state: State<F, Res>,
        request: Option<Req>,
        memo: M,
        shared: Local<Shared<Req, Res>>,
        classifier: C,
        marker: P,
        // The call span, when this layer opened it (boxed, and only while a subscriber
        // listens: see `crate::trace`).
        trace: Rare<Box<Span>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, Res> {
        Primary { #[pin] future: F },
        // Boxed: the failure path may await several alternatives of erased types.
        Chain { future: ChainFuture<Res> },
    }
}

impl<F, Req, Res, C, M, P> ResponseFuture<F, Req, Res, C, M, P> {
    /// The primary's future is made by `call` in place: built before and passed in, it was
    /// moved through `memcpy` twice per call (the future of the layers under this one is the
    /// largest part of this one).
    #[allow(
        clippy::inline_always,
        reason = "out of line, the future of the layers under it is copied in (callgrind: 3-layer stack 834 -> 817 instructions per call)"
    )]
    #[inline(always)]
    pub(crate) fn new(
        call: impl FnOnce() -> F,
        request: Option<Req>,
        memo: M,
        shared: Local<Shared<Req, Res>>,
        classifier: C,
        marker: P,
        trace: Rare<Box<Span>>,
    ) -> Self {
        let _entered = crate::trace::enter(trace.as_deref());
        ResponseFuture {
            state: State::Primary { future: call() },
            request,
            memo,
            shared,
            classifier,
            marker,
            trace,
        }
    }
}

impl<F, Req, Res, C, M, P, E> Future for ResponseFuture<F, Req, Res, C, M, P>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    Req: Clone + Send + 'static,
    Res: Send + 'static,
    C: Classify<Req, Res, Memo = M>,
    P: MarkServed<Res> + Clone + Send + 'static,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.as_mut().project();
        let own = this.trace.as_deref();
        let primary = match this.state.project() {
            StateProj::Primary { future } => {
                ready!(trace::within(own, || future.poll(cx))).map_err(Into::into)
            }
            StateProj::Chain { future } => return trace::within(own, || future.as_mut().poll(cx)),
        };
        let outcome = classify::classify(&*this.classifier, this.memo, primary.as_ref());
        // The call ends here unless the alternatives are tried.
        if (outcome.is_success() || this.request.is_none())
            && let Some(call) = trace::call_span(this.trace.as_deref())
        {
            trace::record_outcome(&call, &outcome);
            if outcome.is_success() {
                trace::record_provenance(&call, "primary", None);
            }
        }
        if outcome.is_success() {
            if let (Ok(response), Some(cache), Some(request)) =
                (&primary, &this.shared.cache, this.request.as_ref())
            {
                cache.feed(request, response);
            }
            this.shared.reporter.count_primary();
            return Poll::Ready(primary);
        }
        let Some(request) = this.request.take() else {
            return Poll::Ready(primary); // no alternatives
        };
        let chain = fall_back(
            this.shared.clone(),
            request,
            primary,
            outcome,
            this.marker.clone(),
        );
        self.as_mut().project().state.set(State::Chain {
            future: Box::pin(chain),
        });
        self.poll(cx)
    }
}

/// Tries the alternatives in order after the primary failed with `outcome`.
///
/// Each alternative is called at most once. A caller fault is passed only to alternatives that
/// handle it; the outcome that decides is the latest failure's (a "context too long" from one
/// model targets the next larger-context model). A cache miss does not change that outcome.
/// When no alternative was called, the primary's result is returned untouched.
async fn fall_back<Req, Res, P>(
    shared: Local<Shared<Req, Res>>,
    request: Req,
    primary: Result<Res, BoxError>,
    mut outcome: Outcome,
    marker: P,
) -> Result<Res, BoxError>
where
    Req: Clone + Send + 'static,
    Res: Send + 'static,
    P: MarkServed<Res>,
{
    let agent = &shared.reporter.name;
    let mut primary = Some(primary);
    let mut attempts: Vec<(Arc<str>, BoxError)> = Vec::new();
    let mut skipped = Vec::new();
    let now = Instant::now();
    for alternative in &shared.alternatives {
        let name = &alternative.name;
        if outcome.kind() == OutcomeKind::CallerFault && !alternative.handles(&outcome) {
            skipped.push(Skipped::new(
                name.clone(),
                SkipReason::CallerFaultNotHandled,
            ));
            continue;
        }
        if !alternative.is_callable(now) {
            tracing::debug!(agent = %agent, alternative = %name, "fallback skipped: breaker open");
            skipped.push(Skipped::new(name.clone(), SkipReason::BreakerOpen));
            continue;
        }
        if let Some(primary) = primary.take() {
            attempts.push((agent.clone(), attempt_error(primary, outcome)));
        }
        tracing::debug!(agent = %agent, alternative = %name, after = %outcome, "falling back");
        let source = match &alternative.target {
            Target::Service { .. } => "fallback",
            Target::Cache(_) => "cache",
        };
        let hop = trace::fallback(agent, name, source);
        let (result, attempt_outcome, served) = match &alternative.target {
            Target::Service { service, classify } => {
                let result = service
                    .clone()
                    .oneshot(request.clone())
                    .instrument(hop.clone())
                    .await;
                let attempt_outcome = classify(&request, result.as_ref());
                (
                    result,
                    attempt_outcome,
                    Served::Fallback { name: name.clone() },
                )
            }
            Target::Cache(cache) => {
                let Some((response, age)) = cache.lookup(&request) else {
                    trace::record_outcome(&hop, &Outcome::agent_fault("cache miss"));
                    attempts.push((name.clone(), CacheMiss.into()));
                    continue;
                };
                (Ok(response), Outcome::success(), Served::Cache { age })
            }
        };
        trace::record_outcome(&hop, &attempt_outcome);
        match result {
            Ok(mut response) if attempt_outcome.is_success() => {
                if let Some(call) = trace::call_span(None) {
                    trace::record_outcome(&call, &attempt_outcome);
                    trace::record_provenance(&call, served.source(), Some(name));
                }
                marker.mark(&mut response, &served);
                shared.reporter.emit(Event::FallbackUsed {
                    agent: agent.clone(),
                    fallback: name.clone(),
                    source: served.source(),
                    reason: outcome.reason(),
                });
                return Ok(response);
            }
            result => {
                attempts.push((name.clone(), attempt_error(result, attempt_outcome)));
                outcome = attempt_outcome;
            }
        }
    }
    if let Some(call) = trace::call_span(None) {
        trace::record_outcome(&call, &outcome);
    }
    if let Some(primary) = primary {
        return primary; // nothing could be tried
    }
    let error = AllFailed::new(agent.clone(), attempts, skipped, outcome);
    tracing::warn!(agent = %agent, error = %error, "every fallback failed");
    Err(error.into())
}

fn attempt_error<Res>(result: Result<Res, BoxError>, outcome: Outcome) -> BoxError {
    match result {
        Err(error) => error,
        Ok(_) => FailedResponse::new(outcome).into(),
    }
}

impl<F, Req, Res, C, M, P> fmt::Debug for ResponseFuture<F, Req, Res, C, M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.shared.reporter.name)
            .finish_non_exhaustive()
    }
}
