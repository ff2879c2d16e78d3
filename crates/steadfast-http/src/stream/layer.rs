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
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: StreamConfig,
    pub(crate) agent: Agent<()>,
    pub(crate) metrics: StreamMetrics,
    #[cfg(feature = "dead-letter")]
    pub(crate) dead_letters: Option<super::StreamDeadLetters>,
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
                #[cfg(feature = "dead-letter")]
                dead_letters: None,
            }),
        }
    }

    /// Dead-letters the requests whose streams fail after their first byte (feature
    /// `dead-letter`): a dead-letter layer above the guard only sees their heads, which
    /// succeeded. `encoder` encodes each request when it is called (use
    /// [`HttpRequestEncoder`](crate::dead_letter::HttpRequestEncoder) for HTTP requests: it
    /// redacts secrets); the record's error chain starts with the [`StreamError`], which says
    /// how many bytes and events had been delivered. Records are appended off the caller's
    /// path; a `DeadLettered` event (reason `mid_stream`) follows once the sink confirmed one.
    /// Requests of another type than `Req` are not kept.
    #[cfg(feature = "dead-letter")]
    #[must_use]
    pub fn dead_letter<Req: 'static, En>(
        self,
        sink: Arc<dyn steadfast::dead_letter::DeadLetterSink>,
        encoder: En,
    ) -> Self
    where
        En: steadfast::dead_letter::EncodeRequest<Req> + Send + Sync + 'static,
    {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        shared.dead_letters = Some(super::StreamDeadLetters::new(sink, encoder));
        StreamGuardLayer {
            shared: Arc::new(shared),
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
