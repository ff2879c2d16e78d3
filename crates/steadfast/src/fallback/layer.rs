//! [`FallbackLayer`]: the chain of alternatives, applied to a primary service.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use crate::cache::{CacheTier, ResponseCache};
use crate::classify::DefaultClassifier;
use crate::error::BoxError;
use crate::events::EventBus;
use crate::provenance::{Marked, ServedCounters};
use crate::registry::Registry;

use super::alternative::Alternative;
use super::service::{Fallback, Shared};

/// Wraps a primary agent with an ordered chain of alternatives: other agents, a
/// [`ResponseCache`], a static answer.
///
/// When the primary fails with an outcome worth falling back on (transient, rate limited, agent
/// fault, circuit open), the alternatives are tried once each in priority order, skipping those
/// whose circuit breaker is open; a caller fault goes only to alternatives that
/// [handle it](Alternative::handles_caller_fault) and is otherwise returned as is. The first
/// success is returned; when everything failed, [`AllFailed`](super::AllFailed) carries every
/// error.
///
/// The primary stays unboxed: a successful primary call costs a clone of the request (kept in
/// case an alternative is needed), an `Arc` clone and one classification, and allocates nothing
/// when the request's clone does not. Make requests cheap to clone (`Arc<Prompt>`, `Bytes`
/// bodies, `http::Request<Full<Bytes>>`). With [`then_cache`](Self::then_cache), each success
/// is also stored in the cache (a key computation, a response clone and a lock): opt-in.
///
/// `Req`/`Res` are the request and response types shared by the primary and the alternatives;
/// `C` classifies results as `Classify<Res, BoxError>`; `P` chooses whether responses are
/// marked with their [`Served`](crate::provenance::Served) ([`mark_responses`](Self::mark_responses)).
pub struct FallbackLayer<Req, Res, C = DefaultClassifier, P = crate::provenance::Unmarked> {
    agent: Arc<str>,
    alternatives: Vec<Alternative<Req, Res>>,
    cache: Option<Arc<dyn CacheTier<Req, Res>>>,
    registry: Option<Registry>,
    report_to: crate::report::ReportTo,
    classifier: C,
    marker: P,
}

impl<Req, Res> FallbackLayer<Req, Res> {
    /// An empty chain for an agent named `"agent"`, with the default classifier.
    pub fn new() -> Self {
        FallbackLayer {
            agent: Arc::from("agent"),
            alternatives: Vec::new(),
            cache: None,
            registry: None,
            report_to: crate::report::ReportTo::default(),
            classifier: DefaultClassifier,
            marker: crate::provenance::Unmarked,
        }
    }
}

impl<Req, Res> Default for FallbackLayer<Req, Res> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Req, Res, C, P> FallbackLayer<Req, Res, C, P> {
    /// Names the agent (the primary): metrics label `agent`, logs, [`AllFailed`](super::AllFailed).
    #[must_use]
    pub fn named(mut self, agent: impl Into<Arc<str>>) -> Self {
        self.agent = agent.into();
        self
    }

    /// Appends an alternative named `fallback-N` (N counts from 1) with priority 0.
    #[must_use]
    pub fn then<S>(self, service: S) -> Self
    where
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        let name = format!("fallback-{}", self.alternatives.len() + 1);
        self.then_alternative(Alternative::new(name, service))
    }

    /// Appends a named alternative with priority 0.
    #[must_use]
    pub fn then_named<S>(self, name: impl Into<Arc<str>>, service: S) -> Self
    where
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        self.then_alternative(Alternative::new(name, service))
    }

    /// Adds a named alternative with an explicit priority: lower is tried first, equal
    /// priorities in the order added (`then` and `then_named` use 0).
    #[must_use]
    pub fn then_with_priority<S>(self, priority: i32, name: impl Into<Arc<str>>, service: S) -> Self
    where
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        self.then_alternative(Alternative::new(name, service).priority(priority))
    }

    /// Adds a fully configured [`Alternative`] (breaker, caller faults, priority).
    #[must_use]
    pub fn then_alternative(mut self, alternative: Alternative<Req, Res>) -> Self {
        self.alternatives.push(alternative);
        self
    }

    /// Feeds `cache` with every successful answer of the primary and serves from it, fresh or
    /// stale, after every other alternative failed (priority `i32::MAX`), marked
    /// [`Served::Cache { age }`](crate::provenance::Served::Cache). A second call replaces the
    /// first cache.
    #[must_use]
    pub fn then_cache<K>(mut self, cache: ResponseCache<Req, Res, K>) -> Self
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        Res: Clone + Send + Sync + 'static,
        Req: Send + Sync + 'static,
    {
        let cache: Arc<dyn CacheTier<Req, Res>> = Arc::new(cache);
        self.alternatives.retain(|alternative| {
            !matches!(alternative.target, super::alternative::Target::Cache(_))
        });
        self.alternatives.push(Alternative::cache(cache.clone()));
        self.cache = Some(cache);
        self
    }

    /// Looks up alternatives' breakers by name in `registry` (for alternatives not
    /// [`guarded_by`](Alternative::guarded_by) a handle), so an alternative wrapped in its own
    /// registered `CircuitBreakerLayer` is skipped while open.
    #[must_use]
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Reports to `registry`: each answer an alternative (or the cache) gives in the
    /// primary's place bumps the agent's `fallbacks` counter and, unless
    /// [`events`](Self::events) gave a bus, is published on the registry's bus as
    /// [`Event::FallbackUsed`](crate::events::Event::FallbackUsed). Also looks up
    /// alternatives' breakers in it, as [`registry`](Self::registry) does. A call the primary
    /// answers reports nothing.
    #[must_use]
    pub fn register(mut self, registry: &Registry) -> Self {
        self.report_to.set_registry(registry);
        self.registry = Some(registry.clone());
        self
    }

    /// Publishes `FallbackUsed` events on `bus`, in place of a registry's bus. Counters still
    /// need [`register`](Self::register).
    #[must_use]
    pub fn events(mut self, bus: &EventBus) -> Self {
        self.report_to.set_bus(bus);
        self
    }

    /// Classifies results (the primary's and the alternatives') with `classifier`.
    #[must_use]
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<Req, Res, C2, P> {
        FallbackLayer {
            agent: self.agent,
            alternatives: self.alternatives,
            cache: self.cache,
            registry: self.registry,
            report_to: self.report_to,
            classifier,
            marker: self.marker,
        }
    }

    /// Marks answers from alternatives and the cache with their
    /// [`Served`](crate::provenance::Served) (requires `Res:`
    /// [`Provenance`](crate::provenance::Provenance)). The primary's answers stay unmarked, which
    /// reads as `Served::Primary`.
    #[must_use]
    pub fn mark_responses(self) -> FallbackLayer<Req, Res, C, Marked> {
        FallbackLayer {
            agent: self.agent,
            alternatives: self.alternatives,
            cache: self.cache,
            registry: self.registry,
            report_to: self.report_to,
            classifier: self.classifier,
            marker: Marked,
        }
    }

    /// The alternatives, in the order they will be tried.
    pub fn alternatives(&self) -> Vec<&str> {
        let mut sorted: Vec<&Alternative<Req, Res>> = self.alternatives.iter().collect();
        sorted.sort_by_key(|alternative| alternative.priority);
        sorted.into_iter().map(Alternative::name).collect()
    }
}

impl<S, Req, Res, C: Clone, P: Clone> Layer<S> for FallbackLayer<Req, Res, C, P> {
    type Service = Fallback<S, Req, Res, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut alternatives = self.alternatives.clone();
        alternatives.sort_by_key(|alternative| alternative.priority); // stable: ties keep order
        let shared = Shared {
            counters: ServedCounters::new(&self.agent),
            agent: self.agent.clone(),
            alternatives: alternatives.into_boxed_slice(),
            cache: self.cache.clone(),
            registry: self.registry.clone(),
            reporter: self.report_to.resolve(&self.agent),
        };
        Fallback {
            inner,
            shared: Arc::new(shared),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
        }
    }
}

impl<Req, Res, C: Clone, P: Clone> Clone for FallbackLayer<Req, Res, C, P> {
    fn clone(&self) -> Self {
        FallbackLayer {
            agent: self.agent.clone(),
            alternatives: self.alternatives.clone(),
            cache: self.cache.clone(),
            registry: self.registry.clone(),
            report_to: self.report_to.clone(),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
        }
    }
}

impl<Req, Res, C, P> fmt::Debug for FallbackLayer<Req, Res, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("agent", &self.agent)
            .field("alternatives", &self.alternatives)
            .field("feeds_cache", &self.cache.is_some())
            .field("registry", &self.registry.is_some())
            .field("report_to", &self.report_to)
            .field("classifier", &std::any::type_name::<C>())
            .field("marker", &std::any::type_name::<P>())
            .finish()
    }
}
