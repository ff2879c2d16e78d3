//! [`BackoffRetryLayer`]: retry policy, budget and classifier for one agent.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::{Agent, Reporter};
use crate::classify::Outcome;
use crate::rng::SplitMix;
use crate::sync::Spread;

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::service::BackoffRetry;
use super::shared::{RetryOn, Shared};

/// Retries an agent's transient failures with exponential backoff and jitter, within a budget
/// and a deadline.
///
/// Every service the layer wraps, and every clone of those, shares the layer's budget. The
/// builder methods may come in any order.
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast::retry::RetryBudget;
/// use tower::{service_fn, ServiceBuilder};
///
/// let gpt = Agent::new("gpt-primary");
/// let shared_budget = RetryBudget::default();
/// let config = RetryConfig::builder().max_retries(2).deadline(Duration::from_secs(20)).build()?;
/// let layer = BackoffRetryLayer::new(&gpt, config).budget(shared_budget.clone());
/// let agent = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// # let _ = agent;
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
pub struct BackoffRetryLayer<C> {
    reporter: Arc<Reporter>,
    classifier: C,
    config: RetryConfig,
    budget: RetryBudget,
    seed: Option<u64>,
    retry_on: Option<RetryOn>,
}

impl<C: Clone> BackoffRetryLayer<C> {
    /// Retries for `agent`, classified by its classifier, with a budget of its own (from the
    /// config's `budget_*` settings) and a random jitter seed.
    pub fn new(agent: &Agent<C>, config: RetryConfig) -> Self {
        super::error::register();
        BackoffRetryLayer {
            reporter: agent.reporter().clone(),
            classifier: agent.classifier_ref().clone(),
            budget: RetryBudget::from_config(&config),
            config,
            seed: None,
            retry_on: None,
        }
    }
}

impl<C> BackoffRetryLayer<C> {
    /// Draws retries from `budget`; pass clones of one budget to several layers to bound their
    /// retries together.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Seeds the jitter generator, so a test can replay the exact waits. Each service the
    /// layer makes starts the sequence from this seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Overrides which transient or rate-limited outcomes are retried (by default: every
    /// transient one, and rate-limited ones whose wait is known). Agent and caller faults,
    /// including an inner breaker's `CircuitOpen`, are never retried whatever it says, and a
    /// request the classifier calls non-idempotent is retried only after a failure that never
    /// reached the agent ([`Outcome::is_unprocessed`]).
    ///
    /// ```
    /// use steadfast::prelude::*;
    ///
    /// // Retry rate limits even when the agent gave no wait (the backoff decides it), but not
    /// // timeouts: the per-attempt timeout is already generous.
    /// let layer = BackoffRetryLayer::new(&Agent::new("gpt"), RetryConfig::default())
    ///     .retry_on(|outcome: &Outcome| outcome.reason() != Some("timeout"));
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn retry_on(mut self, retry_on: impl Fn(&Outcome) -> bool + Send + Sync + 'static) -> Self {
        self.retry_on = Some(Arc::new(retry_on));
        self
    }

    /// The budget this layer draws retries from.
    pub fn retry_budget(&self) -> RetryBudget {
        self.budget.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }
}

impl<S: Clone + Send, C: Clone> Layer<S> for BackoffRetryLayer<C> {
    type Service = BackoffRetry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BackoffRetry {
            shared: Spread::new(Shared::new(
                self.reporter.clone(),
                self.config.clone(),
                self.budget.clone(),
                self.retry_on.clone(),
                SplitMix::new(self.seed.unwrap_or_else(SplitMix::random_seed)),
                inner.clone(),
            )),
            inner,
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: Clone> Clone for BackoffRetryLayer<C> {
    fn clone(&self) -> Self {
        BackoffRetryLayer {
            reporter: self.reporter.clone(),
            classifier: self.classifier.clone(),
            config: self.config.clone(),
            budget: self.budget.clone(),
            seed: self.seed,
            retry_on: self.retry_on.clone(),
        }
    }
}

impl<C> fmt::Debug for BackoffRetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffRetryLayer")
            .field("agent", &self.reporter.name)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .field("seed", &self.seed)
            .field("retry_on", &self.retry_on.is_some())
            .finish_non_exhaustive()
    }
}
