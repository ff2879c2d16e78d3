//! [`BackoffRetryLayer`]: retry policy, budget and classifier for one agent.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::classify::{DefaultClassifier, Outcome};
use crate::events::EventBus;
use crate::registry::Registry;

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::policy::SplitMix;
use super::service::BackoffRetry;
use super::shared::{Parts, Shared};

/// Retries an agent's transient failures with exponential backoff and jitter, within a budget
/// and a deadline.
///
/// Configure it in this order: `new(config)`, then [`named`](Self::named),
/// [`budget`](Self::budget), [`seed`](Self::seed), [`retry_on`](Self::retry_on),
/// [`register`](Self::register) / [`events`](Self::events), and
/// [`classifier`](Self::classifier). Every service the layer wraps, and every clone of those,
/// shares the layer's budget and jitter generator.
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast::retry::RetryBudget;
/// use tower::{service_fn, ServiceBuilder};
///
/// let shared_budget = RetryBudget::default();
/// let config = RetryConfig::builder().max_retries(2).deadline(Duration::from_secs(20)).build()?;
/// let layer = BackoffRetryLayer::new(config).named("gpt-primary").budget(shared_budget.clone());
/// let agent = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// # let _ = agent;
/// # Ok::<_, steadfast::retry::ConfigError>(())
/// ```
pub struct BackoffRetryLayer<C = DefaultClassifier> {
    shared: Arc<Shared>,
    classifier: C,
}

impl BackoffRetryLayer {
    /// A layer for an agent named `"agent"` with the default classifier, its own budget (from
    /// the config's `budget_*` settings) and a random jitter seed.
    pub fn new(config: RetryConfig) -> Self {
        let budget = RetryBudget::from_config(&config);
        BackoffRetryLayer {
            shared: Shared::new(Parts {
                name: Arc::from("agent"),
                config,
                budget,
                retry_on: None,
                seed: SplitMix::random_seed(),
                report_to: crate::report::ReportTo::default(),
            }),
            classifier: DefaultClassifier,
        }
    }
}

impl From<RetryConfig> for BackoffRetryLayer {
    /// [`BackoffRetryLayer::new`]: lets `ServiceBuilderExt::backoff_retry` take a config.
    fn from(config: RetryConfig) -> Self {
        BackoffRetryLayer::new(config)
    }
}

impl<C> BackoffRetryLayer<C> {
    fn with_parts(self, change: impl FnOnce(&mut Parts)) -> Self {
        let mut parts = self.shared.parts();
        change(&mut parts);
        BackoffRetryLayer {
            shared: Shared::new(parts),
            classifier: self.classifier,
        }
    }

    /// Names the agent (metrics labels, logs, errors).
    #[must_use]
    pub fn named(self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.with_parts(|parts| parts.name = name)
    }

    /// Draws retries from `budget`; pass clones of one budget to several layers to bound their
    /// retries together.
    #[must_use]
    pub fn budget(self, budget: RetryBudget) -> Self {
        self.with_parts(|parts| parts.budget = budget)
    }

    /// Seeds the jitter generator, so a test can replay the exact waits.
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        self.with_parts(|parts| parts.seed = seed)
    }

    /// Overrides which transient or rate-limited outcomes are retried (by default: every
    /// transient one, and rate-limited ones whose wait is known). Agent and caller faults,
    /// including an inner breaker's `CircuitOpen`, are never retried whatever it says.
    ///
    /// ```
    /// use steadfast::prelude::*;
    ///
    /// // Retry rate limits even when the agent gave no wait (the backoff decides it), but not
    /// // timeouts: the per-attempt timeout is already generous.
    /// let layer = BackoffRetryLayer::new(RetryConfig::default())
    ///     .retry_on(|outcome: &Outcome| outcome.reason() != Some("timeout"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn retry_on(self, retry_on: impl Fn(&Outcome) -> bool + Send + Sync + 'static) -> Self {
        let retry_on: super::shared::RetryOn = Arc::new(retry_on);
        self.with_parts(|parts| parts.retry_on = Some(retry_on))
    }

    /// Reports to `registry`: each retry scheduled and each give-up bump this agent's
    /// [`AgentCounters`](crate::registry::AgentCounters) (`retries`, `retries_exhausted`) and,
    /// unless [`events`](Self::events) gave a bus, are published on the registry's bus as
    /// [`Event::RetryScheduled`](crate::events::Event::RetryScheduled) and
    /// [`Event::RetriesExhausted`](crate::events::Event::RetriesExhausted). Only those decisions
    /// report: a call that succeeds first time touches neither. The counters are the ones of
    /// the agent's final name, whatever the order of `named` and `register`.
    ///
    /// ```
    /// use steadfast::prelude::*;
    ///
    /// let registry = Registry::new();
    /// let layer = BackoffRetryLayer::new(RetryConfig::default()).named("gpt").register(&registry);
    /// # let _ = layer;
    /// assert_eq!(registry.agents(), ["gpt"]);
    /// ```
    #[must_use]
    pub fn register(self, registry: &Registry) -> Self {
        self.with_parts(|parts| parts.report_to.set_registry(registry))
    }

    /// Publishes this layer's decisions (`RetryScheduled`, `RetriesExhausted`) on `bus`, in
    /// place of a registry's bus. Counters still need [`register`](Self::register).
    #[must_use]
    pub fn events(self, bus: &EventBus) -> Self {
        self.with_parts(|parts| parts.report_to.set_bus(bus))
    }

    /// Uses `classifier` to decide what a result means (see [`crate::classify`]).
    pub fn classifier<C2>(self, classifier: C2) -> BackoffRetryLayer<C2> {
        BackoffRetryLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// The budget this layer draws retries from.
    pub fn retry_budget(&self) -> RetryBudget {
        self.shared.budget.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.shared.config
    }
}

impl<S, C: Clone> Layer<S> for BackoffRetryLayer<C> {
    type Service = BackoffRetry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BackoffRetry {
            inner,
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: Clone> Clone for BackoffRetryLayer<C> {
    fn clone(&self) -> Self {
        BackoffRetryLayer {
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for BackoffRetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffRetryLayer")
            .field("retry", &self.shared)
            .finish_non_exhaustive()
    }
}
