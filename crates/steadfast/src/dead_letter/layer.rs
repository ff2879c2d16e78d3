//! [`DeadLetterLayer`]: configuration; see the [module docs](super).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tower_layer::Layer;

use crate::classify::DefaultClassifier;
use crate::error::BoxError;
use crate::events::EventBus;
use crate::registry::Registry;
use crate::report::{ReportTo, Reporter};

use super::config::DeadLetterPolicy;
use super::service::DeadLetterService;
use super::sink::DeadLetterSink;

/// Returns the trace id to store with a record (called on the failure path only).
pub(crate) type TraceIdFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Turns a request into the bytes stored in its dead letter. Called only on the failure path.
///
/// Closures `Fn(&Req) -> Result<Bytes, BoxError>` implement it; [`DebugEncoder`] (the default)
/// stores the request's `Debug` text.
pub trait EncodeRequest<Req> {
    /// Encodes `request`.
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError>;
}

impl<Req, F> EncodeRequest<Req> for F
where
    F: Fn(&Req) -> Result<Bytes, BoxError>,
{
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError> {
        self(request)
    }
}

/// The default encoder: the request's `{:?}` text. Good for logs; use
/// [`DeadLetterLayer::encoder`] for a format a replay can decode.
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugEncoder;

impl<Req: fmt::Debug> EncodeRequest<Req> for DebugEncoder {
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError> {
        Ok(Bytes::from(format!("{request:?}")))
    }
}

/// An encoder that stores requests as JSON (feature `serde`):
/// `DeadLetterLayer::new(sink).encoder(json_encoder())`. Replay decodes with
/// `serde_json::from_slice(&record.request)`.
#[cfg(feature = "serde")]
pub fn json_encoder<Req: serde::Serialize>()
-> impl Fn(&Req) -> Result<Bytes, BoxError> + Clone + Send + Sync + 'static {
    |request: &Req| Ok(Bytes::from(serde_json::to_vec(request)?))
}

/// What every service of a layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) sink: Arc<dyn DeadLetterSink>,
    pub(crate) agent: Arc<str>,
    pub(crate) policy: DeadLetterPolicy,
    pub(crate) trace_id: Option<TraceIdFn>,
    pub(crate) report_to: ReportTo,
    /// `report_to` resolved for `agent`; refreshed whenever either changes.
    pub(crate) reporter: Reporter,
}

/// Stores requests whose final outcome is a failure in a [`DeadLetterSink`], and returns
/// [`DeadLettered`](super::DeadLettered) once the sink confirmed the record durable.
#[derive(Clone)]
pub struct DeadLetterLayer<En = DebugEncoder, C = DefaultClassifier> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) encoder: En,
    pub(crate) classifier: C,
}

impl DeadLetterLayer {
    /// Dead-letters into `sink` every final failure (caller faults included), encoding the
    /// request with [`DebugEncoder`] and classifying with [`DefaultClassifier`].
    pub fn new(sink: impl DeadLetterSink) -> Self {
        Self::from_arc(Arc::new(sink))
    }

    /// Like [`new`](Self::new), for a sink already shared behind an `Arc`.
    pub fn from_arc(sink: Arc<dyn DeadLetterSink>) -> Self {
        DeadLetterLayer {
            shared: Arc::new(Shared {
                sink,
                agent: Arc::from("agent"),
                policy: DeadLetterPolicy::default(),
                trace_id: None,
                report_to: ReportTo::default(),
                reporter: Reporter::default(),
            }),
            encoder: DebugEncoder,
            classifier: DefaultClassifier,
        }
    }
}

impl<En, C> DeadLetterLayer<En, C> {
    /// The agent name stored in records and used as the metrics label.
    pub fn named(mut self, agent: impl Into<Arc<str>>) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.agent = agent.into();
        shared.reporter = shared.report_to.resolve(&shared.agent);
        self
    }

    /// Reports to `registry`: each record the sink confirmed bumps the agent's `dead_lettered`
    /// counter and, unless [`events`](Self::events) gave a bus, is published on the registry's
    /// bus as [`Event::DeadLettered`](crate::events::Event::DeadLettered) with the outcome's
    /// reason (`"shutdown"` for a call a drain cancelled, `"timeout"`, `"circuit open"`, ...,
    /// or the outcome kind). Calls that succeed, or are not dead-lettered, report nothing.
    #[must_use]
    pub fn register(mut self, registry: &Registry) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.report_to.set_registry(registry);
        shared.reporter = shared.report_to.resolve(&shared.agent);
        self
    }

    /// Publishes `DeadLettered` events on `bus`, in place of a registry's bus. Counters still
    /// need [`register`](Self::register).
    #[must_use]
    pub fn events(mut self, bus: &EventBus) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.report_to.set_bus(bus);
        shared.reporter = shared.report_to.resolve(&shared.agent);
        self
    }

    /// Which outcome kinds are dead-lettered.
    pub fn policy(mut self, policy: DeadLetterPolicy) -> Self {
        Arc::make_mut(&mut self.shared).policy = policy;
        self
    }

    /// Where the trace id comes from (default: the current `tracing` span's id).
    pub fn trace_id(
        mut self,
        trace_id: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.shared).trace_id = Some(Arc::new(trace_id));
        self
    }

    /// How requests are encoded into records, e.g. `|req: &Prompt| Ok(Bytes::from(req.to_json()?))`.
    pub fn encoder<En2>(self, encoder: En2) -> DeadLetterLayer<En2, C> {
        DeadLetterLayer {
            shared: self.shared,
            encoder,
            classifier: self.classifier,
        }
    }

    /// How results are classified (the same classifier as the inner layers, so they agree).
    pub fn classifier<C2>(self, classifier: C2) -> DeadLetterLayer<En, C2> {
        DeadLetterLayer {
            shared: self.shared,
            encoder: self.encoder,
            classifier,
        }
    }

    /// The agent name.
    pub fn agent(&self) -> &str {
        &self.shared.agent
    }
}

impl<S, En: Clone, C: Clone> Layer<S> for DeadLetterLayer<En, C> {
    type Service = DeadLetterService<S, En, C>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadLetterService {
            inner,
            shared: self.shared.clone(),
            encoder: self.encoder.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<En, C> fmt::Debug for DeadLetterLayer<En, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterLayer")
            .field("agent", &self.shared.agent)
            .field("sink", &self.shared.sink)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}
