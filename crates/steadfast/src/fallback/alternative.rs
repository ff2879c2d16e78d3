//! [`Alternative`]: one entry of a fallback chain.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::cache::CacheTier;
use crate::circuit_breaker::{BreakerHandle, BreakerState};
use crate::classify::Outcome;
use crate::error::BoxError;
use crate::registry::Registry;

type CallerFaultFilter = dyn Fn(&Outcome) -> bool + Send + Sync;

/// One alternative of a [`FallbackLayer`](super::FallbackLayer): a named service (boxed: the
/// alternatives are only reached when the primary failed, so the indirection costs nothing on the
/// success path), its priority, an optional circuit breaker to consult before calling it, and
/// the caller faults it handles.
///
/// ```
/// use steadfast::fallback::Alternative;
/// use steadfast::prelude::*;
/// use tower::service_fn;
///
/// let big_context = Alternative::new(
///     "big-context-model",
///     service_fn(|prompt: String| async move { Ok::<_, BoxError>(format!("long answer to {prompt}")) }),
/// )
/// .priority(-1)
/// .handles_caller_fault(|outcome| outcome.reason() == Some("context too long"));
/// # let _ = big_context;
/// ```
pub struct Alternative<Req, Res> {
    pub(crate) name: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) target: Target<Req, Res>,
    pub(crate) breaker: Option<BreakerHandle>,
    pub(crate) caller_faults: Option<Arc<CallerFaultFilter>>,
}

pub(crate) enum Target<Req, Res> {
    Service(BoxCloneSyncService<Req, Res, BoxError>),
    Cache(Arc<dyn CacheTier<Req, Res>>),
}

impl<Req, Res> Alternative<Req, Res> {
    /// An alternative named `name` (metrics, logs, [`Served::Fallback`](crate::provenance::Served),
    /// registry lookups), with priority 0.
    pub fn new<S>(name: impl Into<Arc<str>>, service: S) -> Self
    where
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        Alternative {
            name: name.into(),
            priority: 0,
            target: Target::Service(BoxCloneSyncService::new(
                service.map_err(Into::<BoxError>::into),
            )),
            breaker: None,
            caller_faults: None,
        }
    }

    pub(crate) fn cache(cache: Arc<dyn CacheTier<Req, Res>>) -> Self {
        Alternative {
            name: Arc::from("cache"),
            priority: i32::MAX,
            target: Target::Cache(cache),
            breaker: None,
            caller_faults: None,
        }
    }

    /// Sets the priority: lower is tried first; equal priorities keep the order they were added.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Skips this alternative without calling it while `breaker` is open. Without this, the
    /// layer's [`Registry`] (if given) is asked for a breaker of the alternative's name.
    #[must_use]
    pub fn guarded_by(mut self, breaker: BreakerHandle) -> Self {
        self.breaker = Some(breaker);
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

    /// The alternative's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn handles(&self, outcome: &Outcome) -> bool {
        self.caller_faults
            .as_ref()
            .is_some_and(|filter| filter(outcome))
    }

    /// Whether its breaker (own, or found in `registry` by name) would let a call through now.
    pub(crate) fn is_callable(&self, registry: Option<&Registry>, now: Instant) -> bool {
        let found;
        let handle = match (&self.breaker, registry) {
            (Some(handle), _) => handle,
            (None, Some(registry)) => match registry.breaker(&self.name) {
                Some(handle) => {
                    found = handle;
                    &found
                }
                None => return true,
            },
            (None, None) => return true,
        };
        breaker_admits(handle, now)
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
                Target::Service(service) => Target::Service(service.clone()),
                Target::Cache(cache) => Target::Cache(cache.clone()),
            },
            breaker: self.breaker.clone(),
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
                    Target::Service(_) => "service",
                    Target::Cache(_) => "cache",
                },
            )
            .field("breaker", &self.breaker.as_ref().map(BreakerHandle::name))
            .field("handles_caller_faults", &self.caller_faults.is_some())
            .finish()
    }
}
