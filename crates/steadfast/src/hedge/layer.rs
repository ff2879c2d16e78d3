//! [`HedgeLayer`]: the delay, the cap and the budget of one agent's hedges.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use crate::agent::Agent;
use crate::classify::Classify;
use crate::clock::Origin;
use crate::error::BoxError;
use crate::retry::RetryBudget;
use crate::sync::Spread;

use super::config::{HedgeConfig, HedgeDelay};
use super::service::Hedge;
use super::shared::Shared;
use super::state::Latencies;
use super::target::{Alternatives, SameAgent, Target};

/// Sends a slow request once more after a delay, to the agent itself or (with
/// [`to`](Self::to)) to the next alternative agent, and takes the first good answer.
///
/// Every service the layer wraps, and every clone of those, shares the layer's latencies and
/// budget. Requests must be `Clone` (as for retries), and so must the inner service. `T` says
/// where hedges go: [`SameAgent`] or [`Alternatives`].
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
pub struct HedgeLayer<C, T = SameAgent> {
    classifier: C,
    shared: Arc<Shared>,
    target: T,
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
            target: SameAgent,
        }
    }

    /// Sends hedges to `agent`'s `service` instead of the agent this layer wraps: a slow call
    /// to a congested model is hedged on another (a second provider, a smaller model). Call it
    /// again to add more alternatives: a request's first hedge goes to the first one whose
    /// circuit breaker is closed, its next hedge (with `max_hedges` above 1) to the next one.
    /// An alternative whose circuit is open or half-open is skipped; with none left, no hedge
    /// is sent (and none is taken from the budget).
    ///
    /// The alternative's answer is judged by its own agent's classifier, and
    /// [`answered_by`](super::answered_by) names the agent that answered. Wrap `service` in
    /// the alternative's own `CircuitBreakerLayer` (and rate limit, timeout) as for a fallback.
    pub fn to<C2, S, Req, Res>(
        self,
        agent: &Agent<C2>,
        service: S,
    ) -> HedgeLayer<C, Alternatives<Req, Res>>
    where
        C2: Classify<Req, Res> + Clone + Send + Sync + 'static,
        C2::Memo: Send,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: Send + 'static,
        Res: Send + 'static,
    {
        HedgeLayer {
            classifier: self.classifier,
            shared: self.shared,
            target: Alternatives::new(vec![Target::new(agent, service)]),
        }
    }
}

impl<C, Req, Res> HedgeLayer<C, Alternatives<Req, Res>> {
    /// Adds `agent`'s `service` after the alternatives already set (see
    /// [`HedgeLayer::to`]).
    #[must_use]
    pub fn to<C2, S>(self, agent: &Agent<C2>, service: S) -> Self
    where
        C2: Classify<Req, Res> + Clone + Send + Sync + 'static,
        C2::Memo: Send,
        S: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: Send + 'static,
        Res: Send + 'static,
    {
        let mut targets: Vec<_> = self.target.targets.iter().cloned().collect();
        targets.push(Target::new(agent, service));
        HedgeLayer {
            classifier: self.classifier,
            shared: self.shared,
            target: Alternatives::new(targets),
        }
    }
}

impl<C, T> HedgeLayer<C, T> {
    /// Draws hedges from `budget`, typically a retry layer's
    /// ([`retry_budget`](crate::retry::BackoffRetryLayer::retry_budget)), so hedges and retries
    /// together stay within one share of the load. The budget's owner counts the requests: this
    /// layer then only withdraws.
    #[must_use]
    pub fn budget(self, budget: RetryBudget) -> Self {
        let shared = &self.shared;
        HedgeLayer {
            classifier: self.classifier,
            target: self.target,
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

    /// Where hedges go: [`SameAgent`], or the [`Alternatives`] set with [`to`](HedgeLayer::to).
    pub fn target(&self) -> &T {
        &self.target
    }
}

impl<S, C: Clone, T: Clone> Layer<S> for HedgeLayer<C, T> {
    type Service = Hedge<S, C, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge {
            inner,
            shared: Spread::from_arc(self.shared.clone()),
            classifier: self.classifier.clone(),
            target: self.target.clone(),
        }
    }
}

impl<C: Clone, T: Clone> Clone for HedgeLayer<C, T> {
    fn clone(&self) -> Self {
        HedgeLayer {
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
            target: self.target.clone(),
        }
    }
}

impl<C, T: fmt::Debug> fmt::Debug for HedgeLayer<C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("hedge", &self.shared)
            .field("to", &self.target)
            .finish_non_exhaustive()
    }
}
