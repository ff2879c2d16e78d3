//! [`FallbackLayer`]: the chain of alternatives, applied to a primary service.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use crate::agent::{Agent, Reporter};
use crate::cache::{CacheTier, ResponseCache};
use crate::classify::Classify;
use crate::error::BoxError;
use crate::provenance::{Marked, Unmarked};
use crate::sync::Spread;

use super::alternative::Alternative;
use super::service::{Fallback, Shared};

/// Wraps a primary agent with an ordered chain of alternatives: other agents, then a
/// [`ResponseCache`].
///
/// When the primary fails with an outcome worth falling back on (transient, rate limited, agent
/// fault, circuit open), the alternatives are tried once each in priority order, skipping those
/// whose agent's circuit breaker is open; a caller fault goes only to alternatives that
/// [handle it](Alternative::handles_caller_fault) and is otherwise returned as is. The first
/// success is returned; when everything failed, [`AllFailed`](super::AllFailed) carries every
/// error. Each result is classified by its own agent's classifier.
///
/// The primary stays unboxed: a successful primary call costs a clone of the request (kept in
/// case an alternative is needed), an `Arc` clone and one classification, and allocates nothing
/// when the request's clone does not. Make requests cheap to clone (`Arc<Prompt>`, `Bytes`
/// bodies, `http::Request<Full<Bytes>>`). With [`then_cache`](Self::then_cache), each success
/// is also stored in the cache (a key computation, a response clone and a lock): opt-in.
///
/// `Req`/`Res` are the request and response types shared by the primary and the alternatives;
/// `C` is the primary's classifier; `P` chooses whether responses are marked with their
/// [`Served`](crate::provenance::Served) ([`mark_responses`](Self::mark_responses)).
pub struct FallbackLayer<Req, Res, C, P = Unmarked> {
    reporter: Arc<Reporter>,
    classifier: C,
    alternatives: Vec<Alternative<Req, Res>>,
    cache: Option<Arc<dyn CacheTier<Req, Res>>>,
    marker: P,
}

impl<Req, Res, C: Clone> FallbackLayer<Req, Res, C> {
    /// An empty chain for `primary`, classified by its classifier.
    pub fn new(primary: &Agent<C>) -> Self {
        crate::classify::register::<super::AllFailed>();
        primary.reporter().fallback_created();
        FallbackLayer {
            reporter: primary.reporter().clone(),
            classifier: primary.classifier_ref().clone(),
            alternatives: Vec::new(),
            cache: None,
            marker: Unmarked,
        }
    }
}

impl<Req, Res, C, P> FallbackLayer<Req, Res, C, P> {
    /// Appends `agent`'s `service` as an alternative with priority 0 (see
    /// [`Alternative::new`]).
    #[must_use]
    pub fn then<C2, S>(self, agent: &Agent<C2>, service: S) -> Self
    where
        C2: Classify<Req, Res> + Clone + Send + Sync + 'static,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: 'static,
        Res: 'static,
    {
        self.then_alternative(Alternative::new(agent, service))
    }

    /// Adds a configured [`Alternative`] (priority, caller faults it handles).
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
    pub fn then_cache<K>(self, cache: ResponseCache<Req, Res, K>) -> Self
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        Res: Clone + Send + Sync + 'static,
        Req: Send + Sync + 'static,
    {
        self.then_cache_tier(Arc::new(cache))
    }

    /// [`then_cache`](Self::then_cache) for a cache whose key type is already erased (the
    /// stacks `steadfast::config` builds).
    #[must_use]
    pub(crate) fn then_cache_tier(mut self, cache: Arc<dyn CacheTier<Req, Res>>) -> Self {
        self.alternatives.retain(|alternative| {
            !matches!(alternative.target, super::alternative::Target::Cache(_))
        });
        self.alternatives.push(Alternative::cache(cache.clone()));
        self.cache = Some(cache);
        self
    }

    /// Marks answers from alternatives and the cache with their
    /// [`Served`](crate::provenance::Served) (requires `Res:`
    /// [`Provenance`](crate::provenance::Provenance)). The primary's answers stay unmarked, which
    /// reads as `Served::Primary`.
    #[must_use]
    pub fn mark_responses(self) -> FallbackLayer<Req, Res, C, Marked> {
        self.with_marker(Marked)
    }

    /// The same chain, marking responses with `marker`.
    pub(crate) fn with_marker<P2>(self, marker: P2) -> FallbackLayer<Req, Res, C, P2> {
        FallbackLayer {
            reporter: self.reporter,
            classifier: self.classifier,
            alternatives: self.alternatives,
            cache: self.cache,
            marker,
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
        Fallback {
            inner,
            shared: Spread::new(Shared {
                reporter: self.reporter.clone(),
                alternatives: alternatives.into_boxed_slice(),
                cache: self.cache.clone(),
            }),
            classifier: self.classifier.clone(),
            marker: self.marker.clone(),
        }
    }
}

impl<Req, Res, C: Clone, P: Clone> Clone for FallbackLayer<Req, Res, C, P> {
    fn clone(&self) -> Self {
        FallbackLayer {
            reporter: self.reporter.clone(),
            classifier: self.classifier.clone(),
            alternatives: self.alternatives.clone(),
            cache: self.cache.clone(),
            marker: self.marker.clone(),
        }
    }
}

impl<Req, Res, C, P> fmt::Debug for FallbackLayer<Req, Res, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("agent", &self.reporter.name)
            .field("alternatives", &self.alternatives)
            .field("feeds_cache", &self.cache.is_some())
            .field("classifier", &std::any::type_name::<C>())
            .field("marker", &std::any::type_name::<P>())
            .finish()
    }
}
