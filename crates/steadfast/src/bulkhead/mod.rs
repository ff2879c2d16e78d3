//! Bulkhead: at most N calls in flight to an agent; the rest wait briefly or are refused.
//!
//! A self-hosted model server (vLLM, TGI, Ollama) answers eight concurrent generations in two
//! seconds and sixty in forty, or not at all once its KV cache is full. A bulkhead keeps the
//! calls to it under the number it handles well, and refuses the rest at once with
//! [`BulkheadFull`], which a fallback layer outside sends to another agent (a hosted API, a
//! smaller model) instead of letting every caller time out together.
//!
//! - **Permits**: `max_concurrent` calls in flight, shared by every service the layer wraps
//!   and their clones. Taking and giving back a permit is one atomic each; no lock, no
//!   allocation, no clock read on the success path, and no reference count: a permit points
//!   at memory that outlives the bulkhead (its permit count, waiter count and wake-up, 256
//!   bytes, reused by the next bulkhead made once the last call of this one is done), so an
//!   admitted call costs two atomic read-modify-writes where tower's `ConcurrencyLimit` takes
//!   more (an `Arc` clone and drop beside its semaphore). An adaptive limit also counts a
//!   reference per call: each answer moves the limit.
//! - **Queue** (optional): up to `max_queue` calls wait at most `max_wait` for a permit, then
//!   fail with `BulkheadFull`. With no queue, a full bulkhead refuses without touching a timer.
//! - **Readiness**: by default `poll_ready` is always as ready as the inner service and the
//!   decision is taken in `call` (what axum needs); [`Readiness::WaitInPollReady`] makes it a
//!   classic tower limit whose `poll_ready` waits for a permit.
//! - **Classification**: `BulkheadFull` is an agent fault refused *locally*
//!   ([`Outcome::local`](crate::Outcome::local)): eligible for fallback, not retried against
//!   the same agent, never counted by a circuit breaker.
//! - **Adaptive limit** ([`AdaptiveConfig`]): an option of the bulkhead rather than a layer of
//!   its own, because it moves the same permit count: AIMD between `min_limit` and
//!   `max_concurrent`, lowered by overload answers (429, 503/529, timeouts, slow successes),
//!   raised by one after a limit's worth of successes. The limit in force is in the registry
//!   snapshot ([`BulkheadSnapshot`]) and the `steadfast_concurrency_limit{agent}` gauge; each
//!   decrease is an [`Event::ConcurrencyLimitLowered`](crate::events::Event::ConcurrencyLimitLowered).
//!
//! Put it inside the fallback layer (so a refusal falls back) and outside or inside the
//! breaker as you like (the breaker ignores refusals either way); inside the retry layer, a
//! retry takes a permit like any call.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast::bulkhead::BulkheadFull;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let llama = registry.agent("llama-70b");
//! let config = BulkheadConfig::builder().max_concurrent(2).build()?;
//! let mut agent = BulkheadLayer::new(&llama, config).layer(service_fn(|prompt: String| async move {
//!     tokio::time::sleep(Duration::from_secs(2)).await; // a long generation
//!     Ok::<_, BoxError>(prompt)
//! }));
//!
//! let first = agent.ready().await?.call("a".into());
//! let second = agent.ready().await?.call("b".into());
//! let third = agent.ready().await?.call("c".into()).await; // refused at once, not queued
//! assert!(third.unwrap_err().downcast_ref::<BulkheadFull>().is_some());
//! assert_eq!(first.await?, "a");
//! assert_eq!(second.await?, "b");
//! assert_eq!(registry.counters("llama-70b").unwrap().bulkhead_rejected, 1);
//! # Ok(()) }
//! ```

mod config;
mod error;
mod future;
mod handle;
mod layer;
mod service;
mod shared;
mod state;

pub use config::{
    AdaptiveConfig, BulkheadConfig, BulkheadConfigBuilder, MAX_CONCURRENT_LIMIT,
    MAX_LATENCY_THRESHOLD, MAX_QUEUE_LIMIT, MAX_WAIT_LIMIT, Readiness,
};
pub use error::BulkheadFull;
pub use future::ResponseFuture;
pub use handle::{BulkheadHandle, BulkheadSnapshot};
pub use layer::BulkheadLayer;
pub use service::Bulkhead;
