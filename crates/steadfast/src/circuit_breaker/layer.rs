//! [`CircuitBreakerLayer`]: the breaker of one agent, applied to any service.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::Agent;
use crate::sync::Spread;

use super::config::BreakerConfig;
use super::error::CircuitOpen;
use super::handle::BreakerHandle;
use super::health::HealthCheck;
use super::service::CircuitBreaker;
use super::shared::Shared;

/// Wraps an agent in its circuit breaker.
///
/// A layer *is* the agent's breaker: every service it wraps (and every clone of those) shares
/// the same state, because the breaker stands for the agent's health, not for one connection.
/// Making it registers it with the agent (so [`Registry::breaker`](crate::Registry::breaker),
/// the status page and fallbacks that name this agent see it) and classifies with the agent's
/// classifier. [`health_check`](Self::health_check) may be called before or after the layer
/// wraps services: it changes this breaker in place.
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use tower::{service_fn, ServiceBuilder};
///
/// let registry = Registry::new();
/// let gpt = registry.agent("gpt-primary");
/// let config = BreakerConfig::builder().consecutive_failures(3).build()?;
/// let layer = CircuitBreakerLayer::new(&gpt, config);
/// let agent = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// assert_eq!(layer.handle().state(), BreakerState::Closed);
/// assert!(registry.breaker("gpt-primary").unwrap().same_breaker(&layer.handle()));
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
pub struct CircuitBreakerLayer<C> {
    shared: Spread<Shared>,
    classifier: C,
}

impl<C: Clone> CircuitBreakerLayer<C> {
    /// The breaker of `agent`, configured by `config`. A second breaker made for the same agent
    /// replaces the first in the registry (a warning is logged): an agent has one breaker.
    pub fn new(agent: &Agent<C>, config: BreakerConfig) -> Self {
        crate::classify::register::<CircuitOpen>();
        let shared = Shared::new(agent.reporter().clone(), config);
        agent.scope.set_breaker(BreakerHandle {
            shared: shared.clone(),
        });
        CircuitBreakerLayer {
            shared: Spread::from_arc(shared),
            classifier: agent.classifier_ref().clone(),
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Adds an active health check: while open, only a passing check lets probes through.
    /// Replaces an earlier check; takes effect from the next time the breaker opens.
    #[must_use]
    pub fn health_check(self, check: impl HealthCheck) -> Self {
        self.shared.set_health_check(Arc::new(check));
        self
    }

    /// [`health_check`](Self::health_check) with a check already shared (the stacks
    /// `steadfast::config` builds).
    #[cfg(feature = "config")]
    pub(crate) fn set_health_check(&self, check: Arc<dyn HealthCheck>) {
        self.shared.set_health_check(check);
    }

    /// A handle on the breaker's state and controls.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.arc().clone(),
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: Clone> Clone for CircuitBreakerLayer<C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for CircuitBreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.shared)
            .finish_non_exhaustive()
    }
}
