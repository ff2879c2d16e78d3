//! [`RateLimitLayer`]: one agent's quotas, cost function and usage reader.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::Agent;
use crate::clock::{Origin, duration_to_nanos};
use crate::sync::{Listing, Spread};

use super::config::{RateLimitConfig, WINDOW};
use super::cost::{NoCost, NoUsage};
use super::service::RateLimit;
use super::shared::Shared;
use super::state::{Gcra, Limits};

/// Keeps calls to an agent within its provider's quotas, in requests and tokens per minute,
/// and pauses the agent when it answers rate-limited with a wait.
///
/// Every service the layer wraps, and every clone of those, shares one set of quotas (make one
/// layer per API key and model). The cost function estimates a request's tokens before the call;
/// a usage reader corrects the quota from the answer.
///
/// ```
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer};
/// use tower::{service_fn, ServiceBuilder};
///
/// struct Prompt { text: String, max_tokens: u64 }
/// struct Reply { text: String, total_tokens: u64 }
///
/// let gpt = Agent::new("gpt-4o");
/// let config = RateLimitConfig::builder()
///     .requests_per_minute(500)
///     .tokens_per_minute(30_000)
///     .max_wait(Duration::from_secs(5))
///     .build()?;
/// let layer = RateLimitLayer::new(&gpt, config)
///     // About four characters a token, plus what the answer may use.
///     .cost(|prompt: &Prompt| prompt.text.len() as u64 / 4 + prompt.max_tokens)
///     .usage(|reply: &Reply| Some(reply.total_tokens));
/// let agent = ServiceBuilder::new().layer(layer).service(service_fn(|prompt: Prompt| async move {
///     Ok::<_, BoxError>(Reply { total_tokens: prompt.text.len() as u64 / 4 + 12, text: prompt.text })
/// }));
/// # let _ = agent;
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
pub struct RateLimitLayer<C, Cost = NoCost, Usage = NoUsage> {
    classifier: C,
    shared: Arc<Shared>,
    cost: Cost,
    usage: Usage,
    /// Whether [`usage`](Self::usage) was set: then every call holds a counted reference to
    /// the quotas (it corrects them after the answer); otherwise only an address.
    reads_usage: bool,
}

impl<C: Clone> RateLimitLayer<C> {
    /// Quotas for `agent`, classified by its classifier (to see its rate-limited answers).
    /// Every request costs one request and no tokens until [`cost`](Self::cost) says otherwise.
    pub fn new(agent: &Agent<C>, config: RateLimitConfig) -> Self {
        super::error::register();
        let window = duration_to_nanos(WINDOW);
        let limits = Limits::new(
            config
                .requests_per_minute
                .map(|rpm| Gcra::new(u64::from(rpm), window, config.burst)),
            config
                .tokens_per_minute
                .map(|tpm| Gcra::new(tpm, window, config.burst)),
        );
        RateLimitLayer {
            classifier: agent.classifier_ref().clone(),
            shared: Arc::new_cyclic(|weak| Shared {
                name: agent.name_arc().clone(),
                reporter: agent.reporter().clone(),
                origin: Origin::now(),
                max_wait: duration_to_nanos(config.max_wait),
                max_pause: duration_to_nanos(config.max_pause),
                limits,
                config,
                listing: Listing::new(weak.clone()),
            }),
            cost: NoCost,
            usage: NoUsage,
            reads_usage: false,
        }
    }
}

impl<C, Cost, Usage> RateLimitLayer<C, Cost, Usage> {
    /// Estimates the tokens a request will use (prompt plus the answer it may get: its
    /// `max_tokens`), charged to the token quota before the call. Providers count the answer's
    /// tokens too, so an estimate without them lets calls through that will collect 429s.
    pub fn cost<Cost2>(self, cost: Cost2) -> RateLimitLayer<C, Cost2, Usage> {
        RateLimitLayer {
            classifier: self.classifier,
            shared: self.shared,
            cost,
            usage: self.usage,
            reads_usage: self.reads_usage,
        }
    }

    /// Reads the tokens an answer actually used (its `usage.total_tokens`); the token quota is
    /// corrected by the difference from the estimate (charged more, or given back).
    pub fn usage<Usage2>(self, usage: Usage2) -> RateLimitLayer<C, Cost, Usage2> {
        RateLimitLayer {
            classifier: self.classifier,
            shared: self.shared,
            cost: self.cost,
            usage,
            reads_usage: true,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// A handle on the quotas this layer's services share (to inspect them, or to pause the
    /// agent from outside, e.g. on a provider's status page).
    pub fn handle(&self) -> super::RateLimitHandle {
        super::RateLimitHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<S, C: Clone, Cost: Clone, Usage: Clone> Layer<S> for RateLimitLayer<C, Cost, Usage> {
    type Service = RateLimit<S, C, Cost, Usage>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            shared: Spread::from_arc(self.shared.clone()),
            classifier: self.classifier.clone(),
            cost: self.cost.clone(),
            usage: self.usage.clone(),
            reads_usage: self.reads_usage,
        }
    }
}

impl<C: Clone, Cost: Clone, Usage: Clone> Clone for RateLimitLayer<C, Cost, Usage> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            classifier: self.classifier.clone(),
            shared: self.shared.clone(),
            cost: self.cost.clone(),
            usage: self.usage.clone(),
            reads_usage: self.reads_usage,
        }
    }
}

impl<C, Cost, Usage> fmt::Debug for RateLimitLayer<C, Cost, Usage> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("agent", &self.shared.name)
            .field("config", &self.shared.config)
            .field("cost", &std::any::type_name::<Cost>())
            .field("usage", &std::any::type_name::<Usage>())
            .finish_non_exhaustive()
    }
}
