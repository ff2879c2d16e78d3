//! [`ResponseFuture`]: the primary call, then (only if it failed) the chain of alternatives.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::cache::CacheMiss;
use crate::classify::{Classify, Outcome, OutcomeKind};
use crate::error::BoxError;
use crate::events::Event;
use crate::provenance::{MarkServed, Served};
use crate::registry::AgentCounters;

use super::alternative::Target;
use super::error::{AllFailed, SkipReason, Skipped, UnsuccessfulResponse};
use super::service::Shared;

type ChainFuture<Res> = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

pin_project! {
    /// The future of a [`Fallback`](super::Fallback) call.
    pub struct ResponseFuture<F, Req, Res, C, P> {
        #[pin]
        state: State<F, Res>,
        request: Option<Req>,
        shared: Arc<Shared<Req, Res>>,
        classifier: C,
        marker: P,
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

impl<F, Req, Res, C, P> ResponseFuture<F, Req, Res, C, P> {
    pub(crate) fn new(
        future: F,
        request: Option<Req>,
        shared: Arc<Shared<Req, Res>>,
        classifier: C,
        marker: P,
    ) -> Self {
        ResponseFuture {
            state: State::Primary { future },
            request,
            shared,
            classifier,
            marker,
        }
    }
}

impl<F, Req, Res, C, P, E> Future for ResponseFuture<F, Req, Res, C, P>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    Req: Clone + Send + 'static,
    Res: Send + 'static,
    C: Classify<Res, BoxError> + Clone + Send + 'static,
    P: MarkServed<Res> + Clone + Send + 'static,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.as_mut().project();
        let primary = match this.state.project() {
            StateProj::Primary { future } => ready!(future.poll(cx)).map_err(Into::into),
            StateProj::Chain { future } => return future.as_mut().poll(cx),
        };
        let outcome = this.classifier.classify(primary.as_ref());
        if outcome.is_success() {
            if let (Ok(response), Some(cache), Some(request)) =
                (&primary, &this.shared.cache, this.request.as_ref())
            {
                cache.feed(request, response);
            }
            this.shared.counters.primary();
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
            this.classifier.clone(),
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
async fn fall_back<Req, Res, C, P>(
    shared: Arc<Shared<Req, Res>>,
    request: Req,
    primary: Result<Res, BoxError>,
    mut outcome: Outcome,
    classifier: C,
    marker: P,
) -> Result<Res, BoxError>
where
    Req: Clone + Send + 'static,
    Res: Send + 'static,
    C: Classify<Res, BoxError>,
    P: MarkServed<Res>,
{
    let mut primary = Some(primary);
    let mut attempts: Vec<(Arc<str>, BoxError)> = Vec::new();
    let mut skipped = Vec::new();
    let now = Instant::now();
    for alternative in &shared.alternatives {
        let name = &alternative.name;
        if outcome.kind() == OutcomeKind::CallerFault && !alternative.handles(&outcome) {
            skipped.push(Skipped {
                name: name.clone(),
                reason: SkipReason::CallerFaultNotHandled,
            });
            continue;
        }
        if !alternative.is_callable(shared.registry.as_ref(), now) {
            tracing::debug!(agent = %shared.agent, alternative = %name, "fallback skipped: breaker open");
            skipped.push(Skipped {
                name: name.clone(),
                reason: SkipReason::BreakerOpen,
            });
            continue;
        }
        if let Some(primary) = primary.take() {
            attempts.push((shared.agent.clone(), attempt_error(primary, outcome)));
        }
        tracing::debug!(agent = %shared.agent, alternative = %name, after = %outcome, "falling back");
        let (result, served) = match &alternative.target {
            Target::Service(service) => {
                let result = service.clone().oneshot(request.clone()).await;
                let served = Served::Fallback { name: name.clone() };
                (result, served)
            }
            Target::Cache(cache) => {
                let Some((response, age)) = cache.lookup(&request) else {
                    attempts.push((name.clone(), CacheMiss.into()));
                    continue;
                };
                (Ok(response), Served::Cache { age })
            }
        };
        let attempt_outcome = classifier.classify(result.as_ref());
        match result {
            Ok(mut response) if attempt_outcome.is_success() => {
                marker.mark(&mut response, &served);
                shared.counters.count(&served);
                shared.reporter.report(
                    || Event::FallbackUsed {
                        agent: shared.agent.clone(),
                        fallback: name.clone(),
                        reason: outcome.reason(),
                    },
                    AgentCounters::record_fallback,
                );
                return Ok(response);
            }
            result => {
                attempts.push((name.clone(), attempt_error(result, attempt_outcome)));
                outcome = attempt_outcome;
            }
        }
    }
    if let Some(primary) = primary {
        return primary; // nothing could be tried
    }
    let error = AllFailed::new(shared.agent.clone(), attempts, skipped);
    tracing::warn!(agent = %shared.agent, error = %error, "every fallback failed");
    Err(error.into())
}

fn attempt_error<Res>(result: Result<Res, BoxError>, outcome: Outcome) -> BoxError {
    match result {
        Err(error) => error,
        Ok(_) => UnsuccessfulResponse::new(outcome).into(),
    }
}

impl<F, Req, Res, C, P> fmt::Debug for ResponseFuture<F, Req, Res, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("agent", &self.shared.agent)
            .finish_non_exhaustive()
    }
}
