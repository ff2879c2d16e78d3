//! [`ResponseFuture`]: the inner call, then (on a final failure) the sink's append.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::classify::{Classify, classify_known_error};
use crate::error::BoxError;
use crate::events::Event;
use crate::registry::AgentCounters;

use super::error::{DeadLetterFailed, DeadLettered, FailedResponse};
use super::id::DeadLetterId;
use super::layer::{EncodeRequest, Shared};
use super::record::DeadLetter;
use super::sink::{SinkError, SinkFuture};

/// What a call keeps until it knows whether it failed.
pub(crate) struct Capture<Req, En, C> {
    pub(crate) request: Req,
    pub(crate) shared: Arc<Shared>,
    pub(crate) encoder: En,
    pub(crate) classifier: C,
}

struct Sinking {
    append: SinkFuture<'static, ()>,
    id: DeadLetterId,
    agent: Arc<str>,
    reason: &'static str,
    shared: Arc<Shared>,
    original: Option<BoxError>,
}

pin_project! {
    /// The future of a [`DeadLetterService`](super::DeadLetterService) call.
    pub struct ResponseFuture<F, Req, En, C> {
        #[pin]
        call: F,
        capture: Option<Capture<Req, En, C>>,
        sinking: Option<Sinking>,
    }
}

impl<F, Req, En, C> ResponseFuture<F, Req, En, C> {
    pub(crate) fn new(call: F, capture: Capture<Req, En, C>) -> Self {
        ResponseFuture {
            call,
            capture: Some(capture),
            sinking: None,
        }
    }
}

impl<F, Req, En, C, T, E> Future for ResponseFuture<F, Req, En, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError> + 'static,
    En: EncodeRequest<Req>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(sinking) = this.sinking {
            return poll_sinking(sinking, cx);
        }
        let result = ready!(this.call.poll(cx));
        let Some(capture) = this.capture.take() else {
            return Poll::Ready(Err("dead-letter future polled after completion".into()));
        };
        let outcome = match &result {
            Ok(response) => capture.classifier.classify(Ok(response)),
            // What steadfast itself recognises (a drain's `CancelledByShutdown`, `CircuitOpen`,
            // timeouts) means the same here as in every other layer, whatever the classifier.
            Err(error) => classify_known_error(error)
                .unwrap_or_else(|| capture.classifier.classify(Err(error))),
        };
        if outcome.is_success() || !capture.shared.policy.covers(outcome.kind()) {
            return Poll::Ready(result.map_err(Into::into));
        }
        let original: BoxError = match result {
            Ok(_) => Box::new(FailedResponse::new(
                outcome.kind().as_str(),
                outcome
                    .reason()
                    .unwrap_or("classified as a failure")
                    .to_string(),
            )),
            Err(error) => error.into(),
        };
        let shared = &capture.shared;
        let request = match capture.encoder.encode(&capture.request) {
            Ok(bytes) => bytes,
            Err(error) => {
                return Poll::Ready(Err(fail(&shared.agent, original, SinkError::Encode(error))));
            }
        };
        let mut record = DeadLetter::new(shared.agent.to_string(), request, outcome.kind());
        record.reason = outcome.reason().unwrap_or_default().to_string();
        record.error_chain = crate::error::chain(original.as_ref());
        record.attempts = attempts(&original);
        record.trace_id = match &shared.trace_id {
            Some(trace_id) => trace_id(),
            None => tracing::Span::current()
                .id()
                .map(|id| id.into_u64().to_string()),
        };
        let id = record.id;
        let sink = Arc::clone(&shared.sink);
        let sinking = this.sinking.insert(Sinking {
            append: Box::pin(async move { sink.append(record).await }),
            id,
            agent: Arc::clone(&shared.agent),
            reason: outcome.reason().unwrap_or(outcome.kind().as_str()),
            shared: Arc::clone(shared),
            original: Some(original),
        });
        poll_sinking(sinking, cx)
    }
}

fn poll_sinking<T>(sinking: &mut Sinking, cx: &mut Context<'_>) -> Poll<Result<T, BoxError>> {
    let appended = ready!(sinking.append.as_mut().poll(cx));
    let original = sinking
        .original
        .take()
        .unwrap_or_else(|| "dead-letter future polled after completion".into());
    Poll::Ready(Err(match appended {
        Ok(()) => {
            metrics::counter!("steadfast_dead_letters_total", "agent" => sinking.agent.to_string())
                .increment(1);
            tracing::warn!(agent = %sinking.agent, id = %sinking.id, error = %original, "request dead-lettered");
            sinking.shared.reporter.report(
                || Event::DeadLettered {
                    agent: Arc::clone(&sinking.agent),
                    reason: sinking.reason,
                },
                AgentCounters::record_dead_letter,
            );
            Box::new(DeadLettered::new(
                sinking.id,
                Arc::clone(&sinking.agent),
                original,
            ))
        }
        Err(sink_error) => fail(&sinking.agent, original, sink_error),
    }))
}

fn fail(agent: &Arc<str>, original: BoxError, sink_error: SinkError) -> BoxError {
    metrics::counter!("steadfast_dead_letter_failures_total", "agent" => agent.to_string())
        .increment(1);
    tracing::error!(agent = %agent, error = %original, %sink_error, "request could NOT be dead-lettered");
    Box::new(DeadLetterFailed::new(
        Arc::clone(agent),
        original,
        sink_error,
    ))
}

#[cfg(feature = "retry")]
fn attempts(error: &BoxError) -> u32 {
    crate::retry::attempts_of(error.as_ref())
}

#[cfg(not(feature = "retry"))]
fn attempts(_: &BoxError) -> u32 {
    1
}

impl<F, Req, En, C> fmt::Debug for ResponseFuture<F, Req, En, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("failed", &self.sinking.is_some())
            .finish_non_exhaustive()
    }
}
