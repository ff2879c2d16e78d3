//! [`ResponseFuture`]: the call, then the wait for the first data byte.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Body;
use pin_project_lite::pin_project;
use steadfast::BoxError;
use tokio::time::{Instant, Sleep};

use super::Kept;
use super::body::{StreamBody, StreamInfo, is_event_stream};
use super::error::{Delivered, StreamError, StreamErrorKind};
use super::layer::Shared;
use super::metrics::Report;

pin_project! {
    /// The future of a [`StreamGuard`](super::StreamGuard) call: the agent's response head
    /// (within the first-byte deadline), then its first data byte.
    pub struct ResponseFuture<F, B> {
        #[pin]
        future: F,
        state: State<B>,
        shared: Arc<Shared>,
        started: Instant,
        kept: Option<Kept>,
    }
}

// The priming variant is large (the head's parts and the body), but it is the state the
// future spends its time in once called, and a future is moved only before its first poll.
#[allow(clippy::large_enum_variant)]
enum State<B> {
    /// Waiting for the head; the timer bounds it by the first-byte (or total) deadline.
    Calling {
        timer: Option<Pin<Box<Sleep>>>,
    },
    /// Waiting for the first data byte.
    Priming {
        parts: Option<http::response::Parts>,
        body: Option<StreamBody<B>>,
    },
    Done,
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(
        future: F,
        shared: Arc<Shared>,
        started: Instant,
        timer: Option<Pin<Box<Sleep>>>,
        kept: Option<Kept>,
    ) -> Self {
        ResponseFuture {
            future,
            state: State::Calling { timer },
            shared,
            started,
            kept,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<StreamBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Calling { timer } => {
                    let response = match this.future.as_mut().poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into)?,
                        Poll::Pending => {
                            if let Some(timer) = timer {
                                ready!(timer.as_mut().poll(cx));
                                let waited =
                                    Instant::now().saturating_duration_since(*this.started);
                                let total_passed = this
                                    .shared
                                    .config
                                    .total
                                    .is_some_and(|total| waited >= total);
                                let kind = if total_passed {
                                    StreamErrorKind::DeadlineExceeded
                                } else {
                                    StreamErrorKind::FirstByteTimeout
                                };
                                let error =
                                    StreamError::timeout(kind, Delivered::default(), waited)
                                        .for_agent(Some(this.shared.agent.name_arc()));
                                *this.state = State::Done;
                                return Poll::Ready(Err(Box::new(error)));
                            }
                            return Poll::Pending;
                        }
                    };
                    let timer = timer.take();
                    let shared = &**this.shared;
                    if !response.status().is_success() {
                        // An error answer is judged at its head, by the classifier.
                        *this.state = State::Done;
                        return Poll::Ready(Ok(response.map(StreamBody::passthrough)));
                    }
                    let sse = shared.config.scan_sse && is_event_stream(response.headers());
                    let report = Report {
                        agent: Arc::clone(shared.agent.name_arc()),
                        kept: this.kept.take().map(|kept| (kept, shared.agent.clone())),
                        breaker: shared.agent.breaker(),
                        settle: false,
                        metrics: shared.metrics.clone(),
                    };
                    let (parts, body) = response.into_parts();
                    let mut body = StreamBody::with_timer(
                        body,
                        shared.config,
                        *this.started,
                        sse,
                        Some(report),
                        timer,
                    );
                    body.set_priming(true);
                    *this.state = State::Priming {
                        parts: Some(parts),
                        body: Some(body),
                    };
                }
                State::Priming { parts, body } => {
                    let Some(stream) = body.as_mut() else {
                        return Poll::Ready(Err("stream guard polled after completion".into()));
                    };
                    ready!(Pin::new(&mut *stream).poll_prime(cx))?;
                    let (Some(mut parts), Some(mut stream)) = (parts.take(), body.take()) else {
                        return Poll::Ready(Err("stream guard polled after completion".into()));
                    };
                    *this.state = State::Done;
                    if !stream.is_done() {
                        // The stream runs on: its end is reported to the breaker, which
                        // records nothing for the head (`Outcome::deferred`).
                        stream.settle_breaker();
                        parts.extensions.insert(StreamInfo::new(
                            stream.time_to_first_byte(),
                            Arc::clone(this.shared.agent.name_arc()),
                        ));
                    }
                    return Poll::Ready(Ok(http::Response::from_parts(parts, stream)));
                }
                State::Done => {
                    return Poll::Ready(Err("stream guard polled after completion".into()));
                }
            }
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Priming { .. } => "priming",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
