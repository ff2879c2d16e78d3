//! Streaming-aware resilience: a streamed answer (server-sent events, a chunked body) is judged
//! while it streams, not when its head arrives.
//!
//! | piece | what it does |
//! |---|---|
//! | [`StreamBody`] | wraps any `http_body::Body` of `Bytes` (hyper, reqwest, axum): first-byte deadline, stall (idle) timeout, total deadline, in-band SSE errors |
//! | [`StreamGuardLayer`] | waits for the first data byte before the call completes, so a stall or failure before it is an ordinary error that retry and fallback act on |
//! | [`StreamError`] | the typed, classified failure, with what was [`Delivered`] |
//! | [`StreamInfo`] | the response extension a guarded stream carries: its time to first byte |
//! | [`StreamConfig`] | the deadlines |
//!
//! The rules (docs/streaming.md explains them):
//!
//! 1. **Before the first byte** reaches the caller, a stream that stalls, fails, or opens with
//!    an error event is a failed call: retry and fallback act on it and the caller sees only
//!    the answer that worked. The first chunk is held and handed on first: no byte is lost.
//! 2. **After the first byte**, nothing restarts the stream (no duplicated tokens): the caller
//!    gets the bytes it got, then a [`StreamError`] saying how many bytes and events were
//!    delivered; the agent's circuit breaker records the failure when it happens.
//! 3. In-band errors (OpenAI's `data: {"error": ...}`, Anthropic's `event: error`) are
//!    classified with the same vocabulary as error answers: `overloaded_error` is a transient
//!    failure, like a 529.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use steadfast::prelude::*;
//! use steadfast_http::stream::{StreamConfig, StreamError, StreamErrorKind, StreamGuardLayer};
//! use steadfast_http::HttpClassifier;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let agent = Agent::new("gpt-4o").classifier(HttpClassifier::llm());
//! let config = StreamConfig::builder().first_byte(Duration::from_secs(2)).build().unwrap();
//! // An agent whose answer head comes quickly but whose first token never does.
//! let stuck = service_fn(|_: http::Request<()>| async {
//!     let (_keep_open, body) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::convert::Infallible>>(1);
//!     let body = http_body_util::StreamBody::new(tokio_stream_of(body));
//!     std::mem::forget(_keep_open);
//!     Ok::<_, BoxError>(http::Response::new(body))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(StreamGuardLayer::new(&agent, config))
//!     .service(stuck);
//! let started = tokio::time::Instant::now();
//! let err = client.oneshot(http::Request::new(())).await.unwrap_err();
//! let err = err.downcast_ref::<StreamError>().unwrap();
//! assert_eq!(err.kind(), StreamErrorKind::FirstByteTimeout);
//! assert!(!err.is_mid_stream());
//! assert_eq!(started.elapsed(), Duration::from_secs(2));
//! # }
//! # fn tokio_stream_of<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> + Unpin {
//! #     struct Rx<T>(tokio::sync::mpsc::Receiver<T>);
//! #     impl<T> futures_core::Stream for Rx<T> {
//! #         type Item = T;
//! #         fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
//! #             self.0.poll_recv(cx)
//! #         }
//! #     }
//! #     Rx(rx)
//! # }
//! ```

mod body;
mod config;
#[cfg(feature = "dead-letter")]
mod dead_letter;
mod error;
mod future;
mod layer;
mod metrics;
mod service;
mod sse;

#[cfg(feature = "dead-letter")]
pub(crate) use dead_letter::{Kept, StreamDeadLetters};

/// Without the `dead-letter` feature no request is ever kept.
#[cfg(not(feature = "dead-letter"))]
pub(crate) enum Kept {}

#[cfg(not(feature = "dead-letter"))]
impl Kept {
    pub(crate) fn dead_letter(self, _agent: &steadfast::Agent<()>, _error: &StreamError) {
        match self {}
    }
}

pub use body::{Resumption, StreamBody, StreamInfo};
pub use config::{StreamConfig, StreamConfigBuilder};
pub use error::{Delivered, StreamError, StreamErrorKind};
pub use future::ResponseFuture;
pub use layer::StreamGuardLayer;
pub use service::StreamGuard;
