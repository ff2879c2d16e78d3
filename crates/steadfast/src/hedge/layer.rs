//! [`HedgeLayer`]: the delay, the cap and the budget of one agent's hedges.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::agent::Agent;
use crate::clock::Origin;
use crate::retry::RetryBudget;
use crate::sync::Spread;

use super::config::{HedgeConfig, HedgeDelay};
use super::service::Hedge;
use super::shared::Shared;
use super::state::Latencies;

/// Sends a slow request to the agent once more after a delay, and takes the first good answer.
///
/// Every service the layer wraps, and every clone of those, shares the layer's latencies and
/// budget. Requests must be `Clone` (as for retries), and so must the inner service.
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast::hedge::{HedgeConfig, HedgeLayer};
/// use tower::{service_fn, ServiceBuilder};
///
/// let gpt = Agent::new("gpt-4o-mini");
/// let retry = BackoffRetryLayer::new(&gpt, RetryConfig::default());
/// // Hedge the slowest 5 % of calls, drawing hedges from the retry layer's budget.
/// let hedge = HedgeLayer::new(&gpt, HedgeConfig::builder().percentile(95.0).build()?)
///     .budget(retry.retry_budget());
/// let agent = ServiceBuilder::new()
///     .layer(retry)
///     .layer(hedge)
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// # let _ = agent;
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
pub struct HedgeLayer<C> {
    classifier: C,
    shared: Arc<Shared>,
}

impl<C: Clone> HedgeLayer<C> {
    /// Hedges for `agent`, judged by its classifier, with a budget of their own (from the
    /// config's `budget_*` settings, over 10 s).
    pub fn new(agent: &Agent<C>, config: HedgeConfig) -> Self {
        let budget = RetryBudget::new(
            config.budget_ratio,
            config.budget_min_per_sec,
            Duration::from_secs(10),
        )
        .expect("a validated hedge configuration makes a valid budget");
        HedgeLayer {
            classifier: agent.classifier_ref().clone(),
            shared: Arc::new(Shared {
                name: agent.name_arc().clone(),
                scope: agent.scope.clone(),
                latencies: matches!(config.delay, HedgeDelay::Percentile(_))
                    .then(|| Latencies::new(config.window)),
                config,
                budget,
                deposits: true,
                origin: Origin::now(),
            }),
        }
    }
}

impl<C> HedgeLayer<C> {
    /// Draws hedges from `budget`, typically a retry layer's
    /// ([`retry_budget`](crate::retry::BackoffRetryLayer::retry_budget)), so hedges and retries
    /// together stay within one share of the load. The budget's owner counts the requests: this
    /// layer then only withdraws.
    #[must_use]
    pub fn budget(self, budget: RetryBudget) -> Self {
        let shared = &self.shared;
        HedgeLayer {
            classifier: self.classifier,
            shared: Arc::new(Shared {
                name: shared.name.clone(),
                scope: shared.scope.clone(),
                config: shared.config.clone(),
                budget,
                deposits: false,
                origin: shared.origin,
                latencies: matches!(shared.config.delay, HedgeDelay::Percentile(_))
                    .then(|| Latencies::new(shared.config.window)),
            }),
        }
    }

    /// The budget hedges draw from.
    pub fn hedge_budget(&self) -> RetryBudget {
        self.shared.budget.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &HedgeConfig {
        &self.shared.config
    }
}

impl<S, C: Clone> Layer<S> for HedgeLayer<C> {
    type Service = Hedge<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge {
            inner,
            shared: Spread::from_arc(self.shared.clone()),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: Clone> Clone for HedgeLayer<C> {
    fn clone(&self) -> Self {
        HedgeLayer {
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C> fmt::Debug for HedgeLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("hedge", &self.shared)
            .finish_non_exhaustive()
    }
}
