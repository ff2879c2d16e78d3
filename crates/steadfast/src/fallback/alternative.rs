//! [`Alternative`]: one entry of a fallback chain.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::agent::{Agent, Scope};
use crate::cache::CacheTier;
use crate::circuit_breaker::{BreakerHandle, BreakerState};
use crate::classify::{self, Classify, Outcome};
use crate::error::BoxError;

type CallerFaultFilter = dyn Fn(&Outcome) -> bool + Send + Sync;
pub(crate) type ClassifyFn<Req, Res> =
    dyn Fn(&Req, Result<&Res, &BoxError>) -> Outcome + Send + Sync;

/// One alternative of a [`FallbackLayer`](super::FallbackLayer): another agent's service
/// (boxed: alternatives are only reached when the primary failed, so the indirection costs
/// nothing on the success path), its priority, and the caller faults it handles. The agent
/// gives the alternative its name, its classifier, and its breaker: while that breaker is open,
/// the alternative is skipped without a call.
///
/// ```
/// use steadfast::fallback::Alternative;
/// use steadfast::prelude::*;
/// use tower::service_fn;
///
/// let registry = Registry::new();
/// let big_context = registry.agent("big-context-model");
/// let alternative = Alternative::new(
///     &big_context,
///     service_fn(|prompt: String| async move { Ok::<_, BoxError>(format!("long answer to {prompt}")) }),
/// )
/// .priority(-1)
/// .handles_caller_fault(|outcome| outcome.reason() == Some("context too long"));
/// assert_eq!(alternative.name(), "big-context-model");
/// ```
pub struct Alternative<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) target: Target<Req, Res>,
    scope: Option<Arc<Scope>>,
    pub(crate) caller_faults: Option<Arc<CallerFaultFilter>>,
}

pub(crate) enum Target<Req, Res> {
    Service {
        service: BoxCloneSyncService<Req, Res, BoxError>,
        classify: Arc<ClassifyFn<Req, Res>>,
    },
    Cache(Arc<dyn CacheTier<Req, Res>>),
}

impl<Req, Res> Alternative<Req, Res> {
    /// `agent`'s `service` as an alternative, with priority 0. Wrap the service in the agent's
    /// own `CircuitBreakerLayer` (and a timeout) so the chain skips it while it is down.
    pub fn new<C, S>(agent: &Agent<C>, service: S) -> Self
    where
        C: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        let classifier = agent.classifier_ref().clone();
        let classify: Arc<ClassifyFn<Req, Res>> = Arc::new(move |request, result| {
            let memo = classifier.note(request);
            classify::classify(&classifier, &memo, result)
        });
        Alternative {
            name: agent.name_arc().clone(),
            priority: 0,
            target: Target::Service {
                service: BoxCloneSyncService::new(service.map_err(Into::<BoxError>::into)),
                classify,
            },
            scope: Some(agent.scope.clone()),
            caller_faults: None,
        }
    }

    pub(crate) fn cache(cache: Arc<dyn CacheTier<Req, Res>>) -> Self {
        Alternative {
            name: Arc::from("cache"),
            priority: i32::MAX,
            target: Target::Cache(cache),
            scope: None,
            caller_faults: None,
        }
    }

    /// Sets the priority: lower is tried first; equal priorities keep the order they were added.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sends caller faults (bad requests) that `filter` accepts to this alternative, e.g.
    /// "context too long" to a larger-context model. Without it, a caller fault never reaches
    /// this alternative.
    #[must_use]
    pub fn handles_caller_fault<F>(mut self, filter: F) -> Self
    where
        F: Fn(&Outcome) -> bool + Send + Sync + 'static,
    {
        self.caller_faults = Some(Arc::new(filter));
        self
    }

    /// The alternative's name (its agent's).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn handles(&self, outcome: &Outcome) -> bool {
        self.caller_faults
            .as_ref()
            .is_some_and(|filter| filter(outcome))
    }

    /// Whether its agent's breaker (if it has one) would let a call through now.
    pub(crate) fn is_callable(&self, now: Instant) -> bool {
        self.scope
            .as_ref()
            .and_then(|scope| scope.breaker())
            .is_none_or(|breaker| breaker_admits(&breaker, now))
    }
}

/// An open breaker whose open time has elapsed still reports `Open` until a call moves it to
/// half-open, so "next probe due" counts as callable: that call is the probe.
pub(crate) fn breaker_admits(handle: &BreakerHandle, now: Instant) -> bool {
    let state = handle.state();
    state.admits_calls()
        || (state == BreakerState::Open && handle.next_probe_at().is_some_and(|at| at <= now))
}

impl<Req, Res> Clone for Alternative<Req, Res> {
    fn clone(&self) -> Self {
        Alternative {
            name: self.name.clone(),
            priority: self.priority,
            target: match &self.target {
                Target::Service { service, classify } => Target::Service {
                    service: service.clone(),
                    classify: classify.clone(),
                },
                Target::Cache(cache) => Target::Cache(cache.clone()),
            },
            scope: self.scope.clone(),
            caller_faults: self.caller_faults.clone(),
        }
    }
}

impl<Req, Res> fmt::Debug for Alternative<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alternative")
            .field("name", &self.name)
            .field("priority", &self.priority)
            .field(
                "kind",
                &match self.target {
                    Target::Service { .. } => "service",
                    Target::Cache(_) => "cache",
                },
            )
            .field("handles_caller_faults", &self.caller_faults.is_some())
            .finish_non_exhaustive()
    }
}
