//! [`BulkheadLayer`]: the bulkhead of one agent, applied to any service.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::agent::Agent;
use crate::sync::Spread;

use super::config::BulkheadConfig;
use super::error::BulkheadFull;
use super::handle::BulkheadHandle;
use super::service::Bulkhead;
use super::shared::Shared;

/// Wraps an agent in its bulkhead: at most `max_concurrent` calls in flight (or an adaptive
/// limit), shared by every service the layer wraps and their clones, because the limit stands
/// for what the agent can take, not for one connection.
///
/// Making it registers it with the agent (the registry snapshot shows its limit and counts)
/// and registers [`BulkheadFull`] as an error that classifies itself.
///
/// ```
/// use steadfast::prelude::*;
/// use tower::{service_fn, ServiceBuilder};
///
/// let registry = Registry::new();
/// let llama = registry.agent("llama-70b");
/// let layer = BulkheadLayer::new(&llama, BulkheadConfig::max_concurrent(4)?);
/// let agent = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
/// assert_eq!(layer.handle().limit(), 4);
/// assert!(registry.bulkhead("llama-70b").unwrap().same_bulkhead(&layer.handle()));
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
pub struct BulkheadLayer<C> {
    shared: Spread<Shared>,
    classifier: C,
}

impl<C: Clone> BulkheadLayer<C> {
    /// The bulkhead of `agent`, configured by `config`. A second bulkhead made for the same
    /// agent replaces the first in the registry (a warning is logged).
    pub fn new(agent: &Agent<C>, config: BulkheadConfig) -> Self {
        crate::classify::register::<BulkheadFull>();
        let shared = Arc::new(Shared::new(agent.reporter().clone(), config));
        agent.scope.set_bulkhead(BulkheadHandle {
            shared: shared.clone(),
        });
        BulkheadLayer {
            shared: Spread::from_arc(shared),
            classifier: agent.classifier_ref().clone(),
        }
    }
}

impl<C> BulkheadLayer<C> {
    /// A handle on the bulkhead's counts and limit.
    pub fn handle(&self) -> BulkheadHandle {
        BulkheadHandle {
            shared: self.shared.arc().clone(),
        }
    }
}

impl<S, C: Clone> Layer<S> for BulkheadLayer<C> {
    type Service = Bulkhead<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead {
            inner,
            shared: self.shared.clone(),
            gate: self.shared.gate,
            adaptive: self.shared.is_adaptive(),
            classifier: self.classifier.clone(),
            reserved: None,
            waiter: None,
        }
    }
}

impl<C: Clone> Clone for BulkheadLayer<C> {
    fn clone(&self) -> Self {
        BulkheadLayer {
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for BulkheadLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("bulkhead", &self.shared)
            .finish_non_exhaustive()
    }
}
