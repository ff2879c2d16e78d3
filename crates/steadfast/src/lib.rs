//! # steadfast
//!
//! Resilience middleware for the agents an application calls (LLM APIs, model servers, tool
//! services, in-process workers), as [`tower`] layers. Every concern is a `Layer` that wraps any
//! `Service` standing for an agent, so an HTTP agent, a gRPC agent and an in-process agent get
//! the same pipeline from one `ServiceBuilder`.
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | [`classify`] | always | turns a call's result into an [`Outcome`] every layer agrees on |
//! | `circuit_breaker` | `circuit-breaker` | stops calling an agent that keeps failing, probes it, recovers |
//! | [`registry`] | always | named agents, their breaker handles, a JSON-able snapshot |
//! | `dead_letter` | `dead-letter` | durably keeps requests no agent could answer; journal, replay |
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
//! let agent = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(BreakerConfig::default()).named("echo").register(&registry))
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
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod classify;
pub mod error;
pub mod registry;

#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
#[cfg(feature = "dead-letter")]
pub mod dead_letter;
#[cfg(feature = "retry")]
pub mod retry;

#[allow(dead_code)] // used by the layers; a build with none of them has no clock to read
pub(crate) mod clock;

pub use classify::{Classify, DefaultClassifier, Outcome, OutcomeKind};
pub use error::BoxError;
pub use registry::Registry;

/// The layers, their configs, [`Outcome`] and [`Registry`]: `use steadfast::prelude::*;`.
pub mod prelude {
    pub use crate::classify::{Classify, DefaultClassifier, Outcome, OutcomeKind};
    pub use crate::error::BoxError;
    pub use crate::registry::Registry;

    #[cfg(feature = "circuit-breaker")]
    pub use crate::circuit_breaker::{
        BreakerConfig, BreakerHandle, BreakerState, CircuitBreakerLayer, CircuitOpen,
    };
    #[cfg(feature = "dead-letter")]
    pub use crate::dead_letter::{
        DeadLetterLayer, DeadLetterSink, DeadLettered, JournalSink, MemorySink,
    };
}
