//! [`ResponseFuture`]: the inner call, then (on a final failure) the sink's append.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tracing::Span;

use crate::agent::Reporter;
use crate::classify::{self, Classify, FailedResponse};
use crate::error::BoxError;
use crate::events::Event;
use crate::rare::Rare;
use crate::sync::Local;
use crate::trace;

use super::error::{DeadLetterFailed, DeadLettered};
use super::id::DeadLetterId;
use super::layer::{EncodeRequest, Shared};
use super::record::DeadLetterRecord;
use super::sink::{SinkError, SinkFuture};

/// What a call keeps until it knows whether it failed.
pub(crate) struct Capture<Req, En, C, M> {
    pub(crate) memo: M,
    pub(crate) request: Req,
    pub(crate) shared: Local<Shared>,
    pub(crate) encoder: En,
    pub(crate) classifier: C,
}

struct Sinking {
    append: SinkFuture<'static, ()>,
    id: DeadLetterId,
    reason: &'static str,
    reporter: Arc<Reporter>,
    original: Option<BoxError>,
}

pin_project! {
    /// The future of a [`DeadLetter`](super::DeadLetter) call.
    pub struct ResponseFuture<F, Req, En, C, M> {
        #[pin]
        call: F,
        capture: Option<Capture<Req, En, C, M>>,
        // Boxed: only a failing call gets here, and the future is moved on every call.
        sinking: Option<Box<Sinking>>,
        // The call span, when this layer opened it (see `crate::trace`).
        trace: Rare<Box<Span>>,
    }
}

impl<F, Req, En, C, M> ResponseFuture<F, Req, En, C, M> {
    /// The inner call is made here, in place (see `fallback::ResponseFuture::new`).
    #[allow(
        clippy::inline_always,
        reason = "out of line, the future of the layers under it is copied in"
    )]
    #[inline(always)]
    pub(crate) fn new(
        call: impl FnOnce() -> F,
        capture: Capture<Req, En, C, M>,
        trace: Rare<Box<Span>>,
    ) -> Self {
        let _entered = crate::trace::enter(trace.as_deref());
        ResponseFuture {
            call: call(),
            capture: Some(capture),
            sinking: None,
            trace,
        }
    }
}

impl<F, Req, En, C, M, T, E> Future for ResponseFuture<F, Req, En, C, M>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    En: EncodeRequest<Req>,
    C: Classify<Req, T, Memo = M>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let own = this.trace.as_deref();
        trace::within(own, move || {
            if let Some(sinking) = this.sinking {
                return poll_sinking(sinking, own, cx);
            }
            let result = ready!(this.call.poll(cx)).map_err(Into::into);
            // Read where it lies, and moved out only on the failure path: moved out of the
            // `Option` on every call, it was read back in wider loads right after `call` wrote
            // it (a stalled load; see the breaker's future).
            let Some(capture) = this.capture.as_ref() else {
                return Poll::Ready(Err("dead-letter future polled after completion".into()));
            };
            let outcome = classify::classify(&capture.classifier, &capture.memo, result.as_ref());
            if let Some(call) = own {
                trace::record_outcome(call, &outcome);
            }
            if outcome.is_success() || !capture.shared.policy.covers(outcome.kind()) {
                *this.capture = None;
                return Poll::Ready(result);
            }
            let Some(capture) = this.capture.take() else {
                return Poll::Ready(result);
            };
            let original: BoxError = match result {
                Ok(_) => Box::new(FailedResponse::new(outcome)),
                Err(error) => error,
            };
            let shared = &capture.shared;
            let reason = outcome.reason_or_kind();
            let (request, secrets) = match capture.encoder.encode_redacted(&capture.request) {
                Ok(encoded) => encoded,
                Err(error) => {
                    return Poll::Ready(Err(fail(
                        &shared.reporter,
                        reason,
                        original,
                        SinkError::Encode(error),
                    )));
                }
            };
            let agent = &shared.reporter.name;
            let mut record = DeadLetterRecord::new(agent.to_string(), request, outcome.kind());
            record.reason = outcome.reason().unwrap_or_default().to_string();
            // The error chain often quotes the request (a client error names the URL): whatever the
            // encoder redacted must not come back through it.
            record.error_chain = crate::error::chain(original.as_ref())
                .iter()
                .map(|line| secrets.scrub(line))
                .collect();
            record.attempts = attempts(&original);
            record.trace_id = match &shared.trace_id {
                Some(trace_id) => trace_id(),
                None => tracing::Span::current()
                    .id()
                    .map(|id| id.into_u64().to_string()),
            };
            let id = record.id;
            let sink = Arc::clone(&shared.sink);
            let sinking = this.sinking.insert(Box::new(Sinking {
                append: Box::pin(async move { sink.append(record).await }),
                id,
                reason,
                reporter: Arc::clone(&shared.reporter),
                original: Some(original),
            }));
            poll_sinking(sinking, own, cx)
        })
    }
}

fn poll_sinking<T>(
    sinking: &mut Sinking,
    own: Option<&Span>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, BoxError>> {
    let appended = ready!(sinking.append.as_mut().poll(cx));
    let original = sinking
        .original
        .take()
        .unwrap_or_else(|| "dead-letter future polled after completion".into());
    let agent = &sinking.reporter.name;
    Poll::Ready(Err(match appended {
        Ok(()) => {
            if let Some(call) = trace::call_span(own) {
                call.record("dead_letter", sinking.id.to_string().as_str());
            }
            tracing::debug!(agent = %agent, id = %sinking.id, error = %original, "request dead-lettered");
            sinking.reporter.emit(Event::DeadLettered {
                agent: Arc::clone(agent),
                reason: sinking.reason,
            });
            Box::new(DeadLettered::new(sinking.id, Arc::clone(agent), original))
        }
        Err(sink_error) => fail(&sinking.reporter, sinking.reason, original, sink_error),
    }))
}

fn fail(
    reporter: &Reporter,
    reason: &'static str,
    original: BoxError,
    sink_error: SinkError,
) -> BoxError {
    tracing::error!(agent = %reporter.name, error = %original, %sink_error, "request could NOT be dead-lettered");
    reporter.emit(Event::DeadLetterFailed {
        agent: Arc::clone(&reporter.name),
        reason,
    });
    Box::new(DeadLetterFailed::new(
        Arc::clone(&reporter.name),
        original,
        sink_error,
    ))
}

fn attempts(error: &BoxError) -> u32 {
    attempts_in(error.as_ref())
}

/// Calls made, retries included, before giving up. Behind a fallback chain the final error is
/// `AllFailed`, whose `source()` is only the primary's error: counting from it alone stored 1
/// while the error said "4 attempts", so every answer tried counts, each with its own retries.
fn attempts_in(error: &(dyn std::error::Error + 'static)) -> u32 {
    #[cfg(feature = "fallback")]
    if let Some(all) = crate::error::find::<crate::fallback::AllFailed>(error) {
        return all
            .attempts()
            .iter()
            .map(|(_, tried)| attempts_in(tried.as_ref()))
            .fold(0_u32, u32::saturating_add)
            .max(1);
    }
    #[cfg(feature = "retry")]
    return crate::retry::attempts_of(error);
    #[cfg(not(feature = "retry"))]
    {
        let _ = error;
        1
    }
}

impl<F, Req, En, C, M> fmt::Debug for ResponseFuture<F, Req, En, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("failed", &self.sinking.is_some())
            .finish_non_exhaustive()
    }
}
