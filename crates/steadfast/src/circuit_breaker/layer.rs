//! [`CircuitBreakerLayer`]: one breaker, for one agent, applied to any service.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::classify::DefaultClassifier;
use crate::events::EventBus;
use crate::registry::Registry;

use super::config::BreakerConfig;
use super::handle::BreakerHandle;
use super::health::HealthCheck;
use super::service::CircuitBreaker;
use super::shared::Shared;

/// Wraps an agent in a circuit breaker.
///
/// A layer *is* one breaker: every service it wraps (and every clone of those) shares the same
/// state, because the breaker stands for the agent's health, not for one connection. Configure
/// it in this order: `new(config)`, then [`named`](Self::named),
/// [`health_check`](Self::health_check), [`classifier`](Self::classifier), and last
/// [`register`](Self::register) (the first two start a fresh breaker).
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use tower::{service_fn, ServiceBuilder};
///
/// let registry = Registry::new();
/// let config = BreakerConfig::builder().consecutive_failures(3).build()?;
/// let layer = CircuitBreakerLayer::new(config).named("gpt-primary").register(&registry);
/// let agent = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// assert_eq!(layer.handle().state(), BreakerState::Closed);
/// assert!(registry.breaker("gpt-primary").is_some());
/// # Ok::<_, steadfast::circuit_breaker::ConfigError>(())
/// ```
pub struct CircuitBreakerLayer<C = DefaultClassifier> {
    shared: Arc<Shared>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A breaker named `"agent"` with the default classifier (every `Err` is a failure, except
    /// recognised caller faults).
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreakerLayer {
            shared: Shared::new(Arc::from("agent"), config, None),
            classifier: DefaultClassifier,
        }
    }
}

impl From<BreakerConfig> for CircuitBreakerLayer {
    /// [`CircuitBreakerLayer::new`]: lets `ServiceBuilderExt::circuit_breaker` take a config.
    fn from(config: BreakerConfig) -> Self {
        CircuitBreakerLayer::new(config)
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Names the agent (metrics labels, logs, registry, errors). Starts a fresh breaker.
    #[must_use]
    pub fn named(self, name: impl Into<Arc<str>>) -> Self {
        let shared = Shared::new(
            name.into(),
            self.shared.core.config().clone(),
            self.shared.health_check.clone(),
        );
        shared.set_events(self.shared.events(), false);
        CircuitBreakerLayer {
            shared,
            classifier: self.classifier,
        }
    }

    /// Adds an active health check: while open, only a passing check lets probes through.
    /// Starts a fresh breaker.
    #[must_use]
    pub fn health_check(self, check: impl HealthCheck) -> Self {
        let shared = Shared::new(
            self.shared.name.clone(),
            self.shared.core.config().clone(),
            Some(Arc::new(check)),
        );
        shared.set_events(self.shared.events(), false);
        CircuitBreakerLayer {
            shared,
            classifier: self.classifier,
        }
    }

    /// Uses `classifier` to decide what a result means (see [`crate::classify`]).
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// Registers this breaker in `registry` under its name (replacing an earlier one of that
    /// name). Unless [`events`](Self::events) gave it a bus, the breaker then publishes its
    /// transitions on the registry's bus ([`Registry::events`]).
    #[must_use]
    pub fn register(self, registry: &Registry) -> Self {
        registry.register_breaker(self.handle());
        self
    }

    /// Publishes this breaker's transitions on `bus` (see [`crate::events`]): `CircuitOpened`,
    /// `CircuitHalfOpen`, `CircuitClosed`, and `AgentUnhealthy` / `AgentRecovered` when the
    /// agent stops or resumes taking full traffic. Only a breaker not registered in a
    /// [`Registry`] needs this.
    #[must_use]
    pub fn events(self, bus: &EventBus) -> Self {
        self.shared.set_events(Some(bus.clone()), false);
        self
    }

    /// A handle on the breaker's state and controls.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            shared: self.shared.clone(),
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
