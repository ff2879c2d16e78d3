//! Dead letters of streams that failed after their first byte (feature `dead-letter`).
//!
//! A dead-letter layer above the guard sees a started stream as a success (its head): by the
//! time the stream fails, the call has returned. So the guard keeps the encoded request of each
//! call (only when [`StreamGuardLayer::dead_letter`](super::StreamGuardLayer::dead_letter) is
//! set) and, when a stream fails mid-way, appends a record itself: the request, the outcome,
//! and an error chain whose first line says how much had been delivered.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterRecord, DeadLetterSink, EncodeRequest, Scrub};
use steadfast::events::Event;

use super::error::StreamError;

/// Encodes a request handed as `&dyn Any` (the guard's service is generic over its request).
type Encode = dyn Fn(&dyn Any) -> Option<Result<(Bytes, Box<dyn Scrub>), BoxError>> + Send + Sync;

/// Where a guard dead-letters its mid-stream failures, and how it encodes requests.
#[derive(Clone)]
pub(crate) struct StreamDeadLetters {
    sink: Arc<dyn DeadLetterSink>,
    encode: Arc<Encode>,
}

impl std::fmt::Debug for StreamDeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDeadLetters")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

/// One call's encoded request, kept until its stream ends.
pub(crate) struct Kept {
    sink: Arc<dyn DeadLetterSink>,
    request: Bytes,
    scrub: Box<dyn Scrub>,
}

impl StreamDeadLetters {
    pub(crate) fn new<Req: 'static, En>(sink: Arc<dyn DeadLetterSink>, encoder: En) -> Self
    where
        En: EncodeRequest<Req> + Send + Sync + 'static,
    {
        let encode = move |request: &dyn Any| {
            request
                .downcast_ref::<Req>()
                .map(|request| encoder.encode_redacted(request))
        };
        StreamDeadLetters {
            sink,
            encode: Arc::new(encode),
        }
    }

    /// Encodes `request` for a possible dead letter; `None` when it is not of the encoder's
    /// type or cannot be encoded (logged: the stream is guarded all the same).
    pub(crate) fn keep(&self, request: &dyn Any, agent: &str) -> Option<Kept> {
        match (self.encode)(request)? {
            Ok((request, scrub)) => Some(Kept {
                sink: Arc::clone(&self.sink),
                request,
                scrub,
            }),
            Err(error) => {
                tracing::warn!(target: "steadfast::stream", agent, %error, "request not kept for a dead letter: it could not be encoded");
                None
            }
        }
    }
}

impl Kept {
    /// Appends the record of `error` (off the caller's path) and reports it on `agent`'s event
    /// path once the sink confirmed it.
    pub(crate) fn dead_letter(self, agent: &steadfast::Agent<()>, error: &StreamError) {
        let outcome = error.outcome();
        let mut record = DeadLetterRecord::new(agent.name(), self.request, outcome.kind());
        outcome.reason_or_kind().clone_into(&mut record.reason);
        record.error_chain = steadfast::error::chain(error)
            .iter()
            .map(|line| self.scrub.scrub(line))
            .collect();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(target: "steadfast::stream", agent = agent.name(), "mid-stream failure not dead-lettered: no tokio runtime");
            return;
        };
        let (sink, agent) = (self.sink, agent.clone());
        runtime.spawn(async move {
            let id = record.id;
            match sink.append(record).await {
                Ok(()) => {
                    tracing::debug!(target: "steadfast::stream", agent = agent.name(), %id, "mid-stream failure dead-lettered");
                    agent.emit(Event::DeadLettered {
                        agent: Arc::clone(agent.name_arc()),
                        reason: "mid_stream",
                    });
                }
                Err(error) => {
                    tracing::error!(target: "steadfast::stream", agent = agent.name(), %error, "mid-stream failure could not be dead-lettered");
                }
            }
        });
    }
}
