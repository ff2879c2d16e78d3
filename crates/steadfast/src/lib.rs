//! # steadfast
//!
//! Resilience middleware for the agents an application calls (LLM APIs, model servers, tool
//! services, in-process workers), as [`tower`] layers. Every concern is a `Layer` that wraps any
//! `Service` standing for an agent, so an HTTP agent, a gRPC agent and an in-process agent get
//! the same pipeline from one `ServiceBuilder`.
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`agent`] | always | [`Agent`]: an agent named once, with its classifier and one event path, handed to every layer |
//! | [`classify`] | always | turns a call's result into an [`Outcome`] every layer agrees on; errors that classify themselves |
//! | `bulkhead` | `bulkhead` | at most N calls in flight per agent, a short wait queue, an adaptive (AIMD) limit |
//! | `circuit_breaker` | `circuit-breaker` | stops calling an agent that keeps failing, probes it, recovers |
//! | [`registry`] | always | named agents, their breaker handles, a JSON-able snapshot |
//! | `retry` | `retry` | retries with backoff, jitter, `Retry-After`, a budget and a deadline |
//! | [`events`] | always | what the layers decided, on a non-blocking bus |
//! | [`builder`] | always | `ServiceBuilderExt`: `.circuit_breaker(layer).backoff_retry(layer)` on `ServiceBuilder` |
//! | [`notify`] | always | the `Notifier` trait (policy and delivery: `steadfast-notify`) |
//! | [`backoff`] | always | the one exponential backoff (retry waits, open times, reconnects) |
//! | [`shutdown`] | always | stop admitting, drain in-flight calls, hand over the rest |
//! | `config` | `config` | a stack (agents, layers, fallback chains) read from a TOML or JSON file |
//! | `chaos` | `chaos` | seeded fault injection: errors, fake responses, latency, outages |
//! | `fallback`, `cache` | `fallback` | alternatives in priority order, stale-if-error response cache |
//! | `degrade` | `degrade` | turns the final error into a marked degraded answer; degradation levels |
//! | `fanout` | `fanout` | calls N agents in parallel; quorum or success ratio, required agents |
//! | [`provenance`] | always | who answered: primary, fallback, cache or degraded |
//! | `hedge` | `hedge` | sends a slow call once more after a delay; the first good answer wins |
//! | `rate_limit` | `rate-limit` | LLM quotas: requests and tokens per minute, a pause on `Retry-After` |
//! | `checkpoint` | `checkpoint` | durable workflow steps: a completed step is answered from its checkpoint, never paid twice |
//! | `dead_letter` | `dead-letter` | durably keeps requests no agent could answer; sink trait, memory sink, replay, monitor |
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let echo = registry.agent("echo");
//! let agent = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(&echo, BreakerConfig::default()))
//!     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt.to_uppercase()) }));
//!
//! let reply = agent.oneshot("hello".to_string()).await?;
//! assert_eq!(reply, "HELLO");
//! assert_eq!(registry.breaker("echo").unwrap().state(), BreakerState::Closed);
//! # Ok(()) }
//! # }
//! ```
//!
//! [`tower`]: https://docs.rs/tower
// `unsafe` is denied everywhere but in `sync::counted` (a deferred reference count, tested
// under Miri by `.ci/run`).
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

pub mod agent;
pub mod backoff;
pub mod builder;
pub mod classify;
pub mod error;
pub mod events;
pub mod notify;
pub mod registry;
pub mod shutdown;
pub mod telemetry;
#[cfg(any(
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]
mod trace;

#[cfg(feature = "bulkhead")]
pub mod bulkhead;
#[cfg(feature = "fallback")]
pub mod cache;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "checkpoint")]
pub mod checkpoint;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "dead-letter")]
pub mod dead_letter;
#[cfg(feature = "degrade")]
pub mod degrade;
#[cfg(feature = "fallback")]
pub mod fallback;
#[cfg(feature = "fanout")]
pub mod fanout;
#[cfg(feature = "hedge")]
pub mod hedge;
pub mod provenance;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "retry")]
pub mod retry;

#[allow(dead_code)] // used by the layers; a build with none of them has no clock to read
pub(crate) mod clock;
#[allow(dead_code)] // used by the layers whose futures box what only some calls need
pub(crate) mod rare;
#[allow(dead_code)] // used by the retry and chaos layers
pub(crate) mod rng;
#[allow(dead_code)] // used by the layers; a build with none of them needs none of it
pub(crate) mod sync;

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples (docs/guide.md), compiled and run as doc tests.
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../../../docs/guide.md")]
pub struct GuideDoctests;

pub use agent::Agent;
pub use classify::{Classify, ClassifyError, DefaultClassifier, Outcome, OutcomeKind};
pub use error::{BoxError, ConfigError};
pub use registry::Registry;

/// The layers, their configs, [`Agent`], [`Outcome`] and [`Registry`]: `use steadfast::prelude::*;`.
///
/// The builder extension is imported anonymously, so `use tower_http::ServiceBuilderExt;`
/// beside this glob still works.
pub mod prelude {
    pub use crate::agent::Agent;
    pub use crate::builder::ServiceBuilderExt as _;
    pub use crate::classify::{Classify, ClassifyError, DefaultClassifier, Outcome, OutcomeKind};
    pub use crate::error::{BoxError, ConfigError};
    pub use crate::registry::Registry;

    #[cfg(feature = "chaos")]
    pub use crate::chaos::{ChaosConfig, ChaosHandle, ChaosLayer};
    pub use crate::events::{Event, EventBus};
    pub use crate::registry::Health;
    pub use crate::shutdown::{Shutdown, ShutdownLayer};

    #[cfg(feature = "bulkhead")]
    pub use crate::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadFull, BulkheadLayer};
    #[cfg(feature = "fallback")]
    pub use crate::cache::{CacheConfig, ResponseCache};
    #[cfg(feature = "checkpoint")]
    pub use crate::checkpoint::{CheckpointLayer, Checkpoints, InProgress, StepKey};
    #[cfg(feature = "circuit-breaker")]
    pub use crate::circuit_breaker::{
        BreakerConfig, BreakerHandle, BreakerState, CircuitBreakerLayer, CircuitOpen,
    };
    #[cfg(feature = "dead-letter")]
    pub use crate::dead_letter::{DeadLetterLayer, DeadLetterSink, DeadLettered, MemorySink};
    #[cfg(feature = "degrade")]
    pub use crate::degrade::{DegradationLevel, DegradeLayer};
    #[cfg(feature = "fallback")]
    pub use crate::fallback::{AllFailed, Alternative, FallbackLayer};
    #[cfg(feature = "fanout")]
    pub use crate::fanout::Fanout;
    #[cfg(feature = "hedge")]
    pub use crate::hedge::{HedgeConfig, HedgeLayer};
    pub use crate::provenance::{Provenance, Served};
    #[cfg(feature = "rate-limit")]
    pub use crate::rate_limit::{RateLimitConfig, RateLimitLayer, RateLimited};
    #[cfg(feature = "retry")]
    pub use crate::retry::{
        BackoffRetryLayer, BudgetExhausted, DeadlineExceeded, Jitter, RetriesExhausted,
        RetryBudget, RetryConfig,
    };
}
