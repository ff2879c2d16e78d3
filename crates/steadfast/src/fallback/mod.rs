//! Fallback: when the primary agent fails, try alternatives in priority order.
//!
//! ```text
//!  primary ──ok──▶ answer (unmarked = Served::Primary; fed to the cache, if any)
//!     │ transient / rate limited / agent fault / circuit open
//!     ▼
//!  alternative 1 (skipped while its breaker is open) ──ok──▶ answer, Served::Fallback { name }
//!     │ failed
//!     ▼
//!  ... ──▶ cache (stale-if-error) ──hit──▶ answer, Served::Cache { age }
//!     │ all failed
//!     ▼
//!  AllFailed { attempts: [(primary, error), (alternative 1, error), ...], skipped }
//! ```
//!
//! - The outcome of each result comes from its agent's classifier (the primary's for the
//!   primary, each alternative's for that alternative): an `Ok` can be a failure (an HTTP 503),
//!   and the primary's `CircuitOpen` is an agent fault that goes straight to the first healthy
//!   alternative.
//! - A **caller fault** (bad request) goes only to alternatives that
//!   [handle it](Alternative::handles_caller_fault), e.g. "context too long" to a
//!   larger-context model; when none does, the primary's result is returned unchanged.
//! - An alternative whose agent's breaker is open is skipped without a call. An open breaker
//!   whose open time has elapsed counts as callable: that call is its probe.
//! - Each alternative is tried at most once per call. When none could be tried, the primary's
//!   result is returned as is; when all tried failed, [`AllFailed`] holds every error.
//!
//! **Requests must be `Clone`**, because the primary consumes its request: the layer clones it
//! once per call before calling the primary, so keep requests cheap to clone (`Arc<Prompt>`,
//! `http::Request<Bytes>`-like buffered bodies). With an `Arc`-backed request the success path
//! allocates nothing (tested with a counting allocator).
//!
//! ```
//! use steadfast::fallback::FallbackLayer;
//! use steadfast::provenance::{Attributed, Provenance, Served};
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let (assistant, cheap) = (registry.agent("assistant"), registry.agent("cheap-model"));
//! let cheap_model = service_fn(|prompt: String| async move {
//!     Ok::<_, BoxError>(Attributed::new(format!("(cheap) {prompt}")))
//! });
//! let agent = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(&assistant).then(&cheap, cheap_model).mark_responses())
//!     .service(service_fn(|_prompt: String| async move {
//!         Err::<Attributed<String>, BoxError>("primary model overloaded".into())
//!     }));
//!
//! let reply = agent.oneshot("hello".to_string()).await?;
//! assert_eq!(reply.value, "(cheap) hello");
//! assert_eq!(reply.served(), Served::Fallback { name: "cheap-model".into() });
//! assert_eq!(registry.counters("assistant").unwrap().fallbacks, 1);
//! # Ok(()) }
//! ```

mod alternative;
mod error;
mod future;
mod layer;
mod service;

pub use self::alternative::Alternative;
pub use self::error::{AllFailed, SkipReason, Skipped};
pub use self::future::ResponseFuture;
pub use self::layer::FallbackLayer;
pub use self::service::Fallback;

/// The guide's examples run as doc tests.
#[cfg(all(doctest, feature = "degrade"))]
#[doc = include_str!("../../../../docs/fallback-and-degrade.md")]
struct FallbackAndDegradeGuide;
