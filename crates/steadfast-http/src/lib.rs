//! # steadfast-http
//!
//! HTTP and gRPC glue for [`steadfast`]: classifiers that turn HTTP responses, gRPC statuses and
//! client errors into [`Outcome`](steadfast::Outcome)s, `Retry-After` parsing in every form LLM
//! APIs send, and a cloneable, size-limited request body so hyper requests can be retried.
//!
//! | item | what it does |
//! |---|---|
//! | [`HttpClassifier`] | status codes, LLM providers' error bodies, `x-should-retry`, `Retry-After`, connect/reset/timeout errors |
//! | [`llm`] | the error vocabulary of OpenAI, Azure, Anthropic, Gemini/Vertex, Mistral, vLLM, TGI, Ollama |
//! | [`reason`] | the reasons classification reports, documented in one table |
//! | [`GrpcClassifier`] | `grpc-status` of trailers-only responses, `grpc-retry-pushback-ms` |
//! | [`parse_retry_after`] | `retry-after-ms`, `Retry-After` (seconds or HTTP-date), `x-ratelimit-reset-*` |
//! | [`BufferedBody`] | a cloneable request body, buffered under a size limit |
//! | [`BufferRequestLayer`] | makes requests retryable: `http::Request<B>` (axum, hyper) and `reqwest::Request` in, `http::Request<BufferedBody>` below |
//! | [`stream`] | streamed answers (SSE, chunked): first-byte deadline, stall timeout, in-band error events, failover before the first byte |
//! | [`Rebase`] | sends a request to an alternative's base URL with its own credentials (fallback across hosts) |
//! | `reqwest` (feature `reqwest`) | `ReqwestAgent`: a `reqwest::Client` under the layers; `Resilience` (feature `reqwest-middleware`): the stack as one `ClientWithMiddleware` `.with(..)` |
//! | `error_response` (feature `axum`) | `ErrorResponseLayer`: the layers' errors as HTTP answers (503 + `Retry-After`, 502, 504, 429, 400/422), for `Router::route_layer` |
//! | `redact` (feature `redact`) | takes secrets out of requests; scrubs the values it took out of other text |
//! | `dead_letter` (feature `dead-letter`) | stores requests with secrets redacted; decodes them for replay |
//! | `replay` (feature `replay`) | `HttpReplayer`: re-sends dead-lettered requests over rustls with credentials put back from the environment or a header file |
//! | `status` (feature `axum`) | `/health`, `/status`, `/status/ui`, guarded breaker control, `/metrics` |
//! | `notify` (features `webhook`, `email`) | `WebhookNotifier` (JSON or Slack-style POST over HTTPS), `EmailNotifier` (SMTP with implicit TLS or STARTTLS and AUTH) |
//!
//! ```
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast_http::{BufferedBody, HttpClassifier};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // An agent that is overloaded once, says when to come back, then answers.
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let agent = service_fn(move |_: http::Request<BufferedBody>| {
//!     let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
//!     async move {
//!         let response = if first {
//!             http::Response::builder().status(503).header("retry-after", "2").body(String::new())
//!         } else {
//!             http::Response::builder().status(200).body("hello".to_string())
//!         };
//!         Ok::<_, BoxError>(response.unwrap())
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(BackoffRetryLayer::new(&Agent::new("agent-v1").classifier(HttpClassifier::new()), RetryConfig::default()))
//!     .service(agent);
//!
//! let request = http::Request::post("http://agent/v1").body(BufferedBody::from("hi")).unwrap();
//! let started = tokio::time::Instant::now();
//! let response = client.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(started.elapsed(), Duration::from_secs(2)); // waited as told
//! # }
//! ```
#![forbid(unsafe_code)]

mod body;
mod buffer;
mod classify;
pub mod future;
pub mod llm;
pub mod reason;
pub mod rebase;
mod retry_after;
pub mod stream;

#[cfg(feature = "reqwest")]
pub mod reqwest;

#[cfg(feature = "axum")]
pub mod error_response;

#[cfg(feature = "checkpoint")]
pub mod checkpoint;
#[cfg(feature = "dead-letter")]
pub mod dead_letter;
#[cfg(feature = "redact")]
pub mod redact;
#[cfg(feature = "replay")]
pub mod replay;
#[cfg(feature = "axum")]
pub mod status;

#[cfg(any(feature = "webhook", feature = "email"))]
pub mod notify;

/// docs/http.md's examples, compiled (and run, where they need no network) as doc tests.
#[cfg(all(doctest, feature = "reqwest-middleware", feature = "axum"))]
#[doc = include_str!("../../../docs/http.md")]
pub struct HttpGuideDoctests;

/// docs/streaming.md's examples, compiled as doc tests.
#[cfg(all(doctest, feature = "reqwest"))]
#[doc = include_str!("../../../docs/streaming.md")]
pub struct StreamingGuideDoctests;

pub use body::{BodyTooLarge, BufferError, BufferedBody, buffer_request};
pub use buffer::{BufferRequest, BufferRequestLayer};
#[cfg(feature = "grpc")]
pub use classify::classify_grpc_error;
pub use classify::{
    GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, GrpcClassifier, HttpClassifier, IDEMPOTENCY_KEY,
    Idempotency, X_SHOULD_RETRY, classify_error, classify_http_response,
};
#[cfg(feature = "axum")]
pub use error_response::{AGENT_HEADER, ErrorResponseLayer};
pub use rebase::{Rebase, RebaseBuilder, RebaseError, Rebased};
pub use retry_after::{
    RETRY_AFTER_MS, X_RATELIMIT_RESET_REQUESTS, X_RATELIMIT_RESET_TOKENS, parse_go_duration,
    parse_retry_after, parse_retry_after_at, parse_retry_after_value,
};
