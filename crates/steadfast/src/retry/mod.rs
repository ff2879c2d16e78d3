//! Retry with exponential backoff, jitter, `Retry-After`, a retry budget and a deadline.
//!
//! [`BackoffRetryLayer`] sends a failed request again when the classifier says the failure is
//! worth retrying ([`Outcome::is_retryable`](crate::Outcome::is_retryable): transient failures,
//! and rate limits whose wait is known), and never otherwise:
//!
//! - **Backoff**: `base x multiplier^(retry-1)`, capped by `max_backoff`, randomised by
//!   [`Jitter`] (full jitter by default; seed it with [`BackoffRetryLayer::seed`] in tests).
//! - **`Retry-After`**: a wait the agent asked for ([`Outcome::retry_after`](crate::Outcome::retry_after))
//!   replaces the computed one; over `max_retry_after` (60 s) the layer stops at once rather
//!   than sleep uselessly.
//! - **Budget**: [`RetryBudget`] lets retries add at most 20 % to the load over 10 s (plus 10
//!   per second), so an outage never multiplies traffic; then [`BudgetExhausted`].
//! - **Deadline**: an optional overall deadline covers every attempt and wait; a wait that would
//!   pass it is not started ([`DeadlineExceeded`]). Inner layers read the time left with
//!   [`remaining`], to shrink a per-attempt timeout.
//! - **Breaker**: an inner breaker's `CircuitOpen` (and any agent or caller fault) is returned
//!   at once, unchanged, so an outer fallback can act: retrying a rejected call only spins.
//! - **Idempotency**: the agent's classifier may note that a request must not be sent twice
//!   (`steadfast-http`'s classifier does so for `POST` and `PATCH` without an
//!   `Idempotency-Key`). Such a request is retried only after a failure that proves the agent
//!   never acted on it ([`Outcome::is_unprocessed`](crate::Outcome::is_unprocessed): connection
//!   refused, 429, 503 with `Retry-After`, circuit open), never after a response timeout.
//! - **Nesting**: the errors this layer stops with classify themselves as agent faults, so a
//!   retry layer outside this one (or outside a fallback over it) never retries them: the
//!   attempts multiply no further.
//! - **Errors**: after the last allowed attempt an `Err` becomes [`RetriesExhausted`]; each of
//!   these errors keeps the last attempt's error as `source()` and says how many attempts were
//!   made ([`attempts_of`]). A failed *response* (an HTTP 503 is an `Ok`) is returned as it is
//!   when retrying stops, so the caller sees the agent's own answer. On success, the attempt
//!   count is reported to [`count_attempts`].
//!
//! Every decision is an [event](crate::events) on the agent's one event path (`RetryScheduled`,
//! `RetriesExhausted`, `RetryBudgetExhausted`, `DeadlineExceeded`), which counts it in the
//! registry and in `steadfast_retries_total{agent,reason}` and friends. The layer also records
//! the latency histograms (`steadfast_call_duration_seconds`,
//! `steadfast_attempt_duration_seconds`) and `steadfast_call_attempts`. Tracing: a
//! `steadfast.attempt` span per attempt, under the call's `steadfast.call` span (which this
//! layer opens when no layer outside did; see `docs/operations.md`).
//!
//! The success path (first attempt succeeds, no deadline) creates no timer and allocates
//! nothing (spans only while a subscriber listens); it reads the clock twice (the call's start
//! and end); the request is cloned once, up front, when retries are allowed.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let flaky = service_fn(move |prompt: &'static str| {
//!     let call = counter.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if call < 2 { Err::<_, BoxError>("connection reset".into()) } else { Ok(prompt.len()) }
//!     }
//! });
//! let config = RetryConfig::builder().jitter(Jitter::None).build().unwrap();
//! let agent = ServiceBuilder::new()
//!     .layer(BackoffRetryLayer::new(&Agent::new("flaky"), config))
//!     .service(flaky);
//!
//! let started = tokio::time::Instant::now();
//! let (reply, attempts) = steadfast::retry::count_attempts(agent.oneshot("hello")).await;
//! assert_eq!(reply.unwrap(), 5);
//! assert_eq!(attempts, Some(3));
//! assert_eq!(started.elapsed(), Duration::from_millis(500 + 1000)); // two backoffs
//! # }
//! ```

mod budget;
mod config;
mod error;
mod future;
mod layer;
mod policy;
mod scope;
mod service;
mod shared;

pub use budget::{RetryAllowance, RetryBudget};
pub use config::{Jitter, MAX_MULTIPLIER, MAX_RETRIES_LIMIT, RetryConfig, RetryConfigBuilder};
pub use error::{BudgetExhausted, DeadlineExceeded, RetriesExhausted, attempts_of};
pub use future::ResponseFuture;
pub use layer::BackoffRetryLayer;
pub use scope::{count_attempts, deadline, remaining};
pub use service::BackoffRetry;
