//! [`StreamGuardLayer`]: guards an agent's streamed answers.

use std::sync::Arc;

use steadfast::Agent;
use steadfast::classify;
use tower_layer::Layer;

use super::config::StreamConfig;
use super::error::StreamError;
use super::metrics::StreamMetrics;
use super::service::StreamGuard;

/// Guards the streamed answers of one agent: each success response's body becomes a
/// [`StreamBody`](super::StreamBody) with the config's deadlines, and the call completes only
/// once the first data byte arrived, so a stream that stalls or fails before its first byte is
/// an ordinary failed call ([`StreamError`]) that retry and fallback act on.
///
/// Place it inside the circuit breaker, right above the agent (or its timeout):
/// `Fallback > Retry > CircuitBreaker > StreamGuard > Timeout > agent`. The breaker then sees a
/// failure before the first byte as the call's error, and a stream that fails later when it
/// fails (the guard reports it with [`BreakerHandle::record`](steadfast::circuit_breaker::BreakerHandle::record),
/// the head having been classified [deferred](steadfast::Outcome::deferred) by
/// [`HttpClassifier`](crate::HttpClassifier)).
#[derive(Clone, Debug)]
pub struct StreamGuardLayer {
    pub(crate) shared: Arc<Shared>,
}

/// What every clone of a guard shares.
pub(crate) struct Shared {
    pub(crate) config: StreamConfig,
    pub(crate) agent: Agent<()>,
    pub(crate) metrics: StreamMetrics,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("agent", &self.agent.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StreamGuardLayer {
    /// A guard for `agent`'s streams with `config`'s deadlines.
    pub fn new<C: Clone>(agent: &Agent<C>, config: StreamConfig) -> Self {
        classify::register::<StreamError>();
        let agent = agent.clone().classifier(());
        StreamGuardLayer {
            shared: Arc::new(Shared {
                config,
                metrics: StreamMetrics::new(agent.name_arc()),
                agent,
            }),
        }
    }

    /// The config.
    pub fn config(&self) -> &StreamConfig {
        &self.shared.config
    }
}

impl<S> Layer<S> for StreamGuardLayer {
    type Service = StreamGuard<S>;

    fn layer(&self, inner: S) -> StreamGuard<S> {
        StreamGuard {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}
