//! reqwest as an agent (feature `reqwest`; [`Resilience`] with feature `reqwest-middleware`).
//!
//! Two ways in, one classification:
//!
//! | you have | you write |
//! |---|---|
//! | a `reqwest::Client` | a tower stack: [`BufferRequestLayer`](crate::BufferRequestLayer) > the layers > [`ReqwestAgent`]; call it with `reqwest::Request`s |
//! | a `reqwest_middleware::ClientWithMiddleware` | `.with(`[`Resilience`]`::new().backoff_retry(..).circuit_breaker(..))`; or a tower stack over `ReqwestAgent::new(client_with_middleware)` |
//!
//! [`HttpClassifier`](crate::HttpClassifier) classifies `reqwest::Response`s and
//! `reqwest::Error`s (and `reqwest_middleware::Error`s) by the same rules, with the same
//! idempotency memo and the same [`llm()`](crate::HttpClassifier::llm) switch, as
//! `http::Response`s: give the agent one classifier whatever its client.
//!
//! **Why the stack carries `http::Request<BufferedBody>`.** A `reqwest::Request` is not `Clone`
//! (only `try_clone()`, which fails for streaming bodies), and retry and fallback must keep a
//! copy. So the top of the stack turns each `reqwest::Request` into a [`ReplayableRequest`]
//! (its body copied once into a reference-counted buffer; method, URL, headers, version,
//! extensions and timeout kept) and [`ReqwestAgent`] turns each attempt's copy back. A request
//! with a streaming body is refused with [`StreamingBody`], a caller fault, instead of being
//! sent once and failing a retry later. The same request type is what
//! [`Rebase`](crate::Rebase) rewrites for an alternative on another host and what the
//! dead-letter encoder stores.
//!
//! **Why error bodies are read.** The classifier sees `&reqwest::Response` and cannot read its
//! body stream, yet a 400 means "context too long" (send it to a bigger model) or "bad request"
//! (give it back) only by its body. [`ReqwestAgent`] and [`Resilience`] therefore read the body
//! of an error answer (4xx, 5xx) up to 64 KiB, keep it for the classifier and give the caller a
//! response whose body is still complete; successes are never read. With a plain
//! `reqwest::Client` under the layers (no `ReqwestAgent`), error answers are classified from
//! status and headers only.
//!
//! ```no_run
//! use std::time::Duration;
//! use steadfast::fallback::{Alternative, FallbackLayer};
//! use steadfast::prelude::*;
//! use steadfast_http::reqwest::ReqwestAgent;
//! use steadfast_http::{reason, BufferRequestLayer, HttpClassifier, Rebase};
//! use tower::{Layer, ServiceBuilder, ServiceExt};
//!
//! # async fn demo() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let gpt = registry.agent("gpt-4o").classifier(HttpClassifier::llm());
//! let long = registry.agent("long-context").classifier(HttpClassifier::llm());
//! let client = reqwest::Client::new();
//!
//! // A self-hosted, OpenAI-compatible model with a bigger window, on its own host and key.
//! let long_context = ServiceBuilder::new()
//!     .circuit_breaker(CircuitBreakerLayer::new(&long, BreakerConfig::default()))
//!     .service(
//!         Rebase::builder("http://vllm.internal:8000")
//!             .bearer_token(std::env::var("VLLM_API_KEY")?)
//!             .build()?
//!             .layer(ReqwestAgent::new(client.clone())),
//!     );
//! let stack = ServiceBuilder::new()
//!     .layer(BufferRequestLayer::new(1 << 20))
//!     .fallback(FallbackLayer::new(&gpt).then_alternative(
//!         Alternative::new(&long, long_context)
//!             .handles_caller_fault(|outcome| outcome.reason() == Some(reason::CONTEXT_LENGTH_EXCEEDED)),
//!     ))
//!     .backoff_retry(BackoffRetryLayer::new(&gpt, RetryConfig::default()))
//!     .circuit_breaker(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
//!     .timeout(Duration::from_secs(60))
//!     .service(ReqwestAgent::new(client.clone()));
//!
//! let request = client
//!     .post("https://api.openai.com/v1/chat/completions")
//!     .bearer_auth(std::env::var("OPENAI_API_KEY")?)
//!     .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"a very long prompt"}]}"#)
//!     .build()?;
//! let answer = stack.oneshot(request).await?;
//! # let _ = answer; Ok(()) }
//! ```

mod agent;
mod classify;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod peek;
pub(crate) use peek::PeekedBody;
mod request;

pub use agent::{ReqwestAgent, ResponseFuture};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::{MiddlewareError, Resilience};
pub use request::{ReplayError, ReplayableRequest, StreamingBody, replayable};
