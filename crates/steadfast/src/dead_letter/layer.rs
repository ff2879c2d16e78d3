//! [`DeadLetterLayer`]: configuration; see the [module docs](super).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tower_layer::Layer;

use crate::agent::{Agent, Reporter};
use crate::error::BoxError;
use crate::sync::Spread;

use super::config::DeadLetterPolicy;
use super::service::DeadLetter;
use super::sink::DeadLetterSink;

/// Returns the trace id to store with a record (called on the failure path only).
pub(crate) type TraceIdFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Turns a request into the bytes stored in its dead letter. Called only on the failure path.
///
/// Closures `Fn(&Req) -> Result<Bytes, BoxError>` implement it; [`DebugEncoder`] (the default)
/// stores the request's `Debug` text. An encoder that redacts secrets should also say which
/// values it removed ([`encode_redacted`](Self::encode_redacted)), so the layer can scrub them
/// from the other text it stores (the error chain quotes URLs and headers).
pub trait EncodeRequest<Req> {
    /// Encodes `request`.
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError>;

    /// Encodes `request` and returns what scrubs the secrets it left out from every other
    /// stored text (the error chain). The default scrubs nothing.
    fn encode_redacted(&self, request: &Req) -> Result<(Bytes, Box<dyn Scrub>), BoxError> {
        Ok((self.encode(request)?, Box::new(Secrets::default())))
    }
}

/// Removes secrets from text the dead-letter layer stores beside the request (each line of the
/// error chain). [`Secrets`] is the plain implementation; `steadfast-http`'s redactor brings
/// one that also knows URLs.
pub trait Scrub: Send + Sync {
    /// `text` without the secrets.
    fn scrub(&self, text: &str) -> String;
}

impl<Req, F> EncodeRequest<Req> for F
where
    F: Fn(&Req) -> Result<Bytes, BoxError>,
{
    fn encode(&self, request: &Req) -> Result<Bytes, BoxError> {
        self(request)
    }
}

/// Secret values an encoder removed from a request. [`scrub`](Self::scrub) replaces each of them
/// in other text with [`Secrets::MARK`]. Values shorter than [`Secrets::MIN_LEN`] bytes are
/// ignored: scrubbing a 2-byte value everywhere would destroy the text and protect nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: Vec<String>,
}

impl Secrets {
    /// What replaces a secret.
    pub const MARK: &'static str = "[REDACTED]";
    /// The shortest value scrubbed from other text.
    pub const MIN_LEN: usize = 4;

    /// No secrets.
    pub fn new() -> Self {
        Secrets::default()
    }

    /// Adds a value to scrub (ignored when shorter than [`MIN_LEN`](Self::MIN_LEN)).
    pub fn insert(&mut self, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= Self::MIN_LEN && !self.values.contains(&value) {
            self.values.push(value);
        }
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by [`MARK`](Self::MARK), longest secrets first (so a
    /// secret that contains another is removed whole).
    pub fn scrub(&self, text: &str) -> String {
        let mut values: Vec<&String> = self.values.iter().collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        let mut out = text.to_owned();
        for value in values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), Self::MARK);
            }
        }
        out
    }
}

impl Scrub for Secrets {
    fn scrub(&self, text: &str) -> String {
        Secrets::scrub(self, text)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the values themselves.
        f.debug_struct("Secrets")
            .field("count", &self.values.len())
            .finish()
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
/// `DeadLetterLayer::new(&agent, sink).encoder(json_encoder())`. Replay decodes with
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
    pub(crate) reporter: Arc<Reporter>,
    pub(crate) policy: DeadLetterPolicy,
    pub(crate) trace_id: Option<TraceIdFn>,
}

/// Stores requests whose final outcome is a failure in a [`DeadLetterSink`], and returns
/// [`DeadLettered`](super::DeadLettered) once the sink confirmed the record durable.
pub struct DeadLetterLayer<C, En = DebugEncoder> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) encoder: En,
    pub(crate) classifier: C,
}

impl<C: Clone> DeadLetterLayer<C> {
    /// Dead-letters into `sink` every final failure of `agent` (as its classifier calls it;
    /// caller faults included), encoding the request with [`DebugEncoder`].
    pub fn new(agent: &Agent<C>, sink: impl DeadLetterSink) -> Self {
        Self::from_arc(agent, Arc::new(sink))
    }

    /// Like [`new`](Self::new), for a sink already shared behind an `Arc`.
    pub fn from_arc(agent: &Agent<C>, sink: Arc<dyn DeadLetterSink>) -> Self {
        DeadLetterLayer {
            shared: Arc::new(Shared {
                sink,
                reporter: agent.reporter().clone(),
                policy: DeadLetterPolicy::default(),
                trace_id: None,
            }),
            encoder: DebugEncoder,
            classifier: agent.classifier_ref().clone(),
        }
    }
}

impl<C, En> DeadLetterLayer<C, En> {
    /// Which outcome kinds are dead-lettered.
    #[must_use]
    pub fn policy(mut self, policy: DeadLetterPolicy) -> Self {
        Arc::make_mut(&mut self.shared).policy = policy;
        self
    }

    /// Where the trace id comes from (default: the current `tracing` span's id).
    #[must_use]
    pub fn trace_id(
        mut self,
        trace_id: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.shared).trace_id = Some(Arc::new(trace_id));
        self
    }

    /// How requests are encoded into records, e.g. `|req: &Prompt| Ok(Bytes::from(req.to_json()?))`.
    pub fn encoder<En2>(self, encoder: En2) -> DeadLetterLayer<C, En2> {
        DeadLetterLayer {
            shared: self.shared,
            encoder,
            classifier: self.classifier,
        }
    }

    /// The agent's name.
    pub fn agent(&self) -> &str {
        &self.shared.reporter.name
    }
}

impl<S, C: Clone, En: Clone> Layer<S> for DeadLetterLayer<C, En> {
    type Service = DeadLetter<S, En, C>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadLetter {
            inner,
            shared: Spread::from_arc(self.shared.clone()),
            encoder: self.encoder.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: Clone, En: Clone> Clone for DeadLetterLayer<C, En> {
    fn clone(&self) -> Self {
        DeadLetterLayer {
            shared: self.shared.clone(),
            encoder: self.encoder.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C, En> fmt::Debug for DeadLetterLayer<C, En> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetterLayer")
            .field("agent", &self.shared.reporter.name)
            .field("sink", &self.shared.sink)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Secrets;

    #[test]
    fn scrubs_every_secret_longest_first_and_ignores_short_ones() {
        let mut secrets = Secrets::new();
        secrets.insert("sk-live-123");
        secrets.insert("sk-live-123456");
        secrets.insert("ab");
        let text = "GET https://x/?key=sk-live-123456 failed; also sk-live-123; ab stays";
        assert_eq!(
            secrets.scrub(text),
            "GET https://x/?key=[REDACTED] failed; also [REDACTED]; ab stays"
        );
        assert_eq!(format!("{secrets:?}"), "Secrets { count: 2 }");
    }
}
