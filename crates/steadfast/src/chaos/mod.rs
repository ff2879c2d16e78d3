//! Chaos: seeded fault injection for tests and game days (feature `chaos`).
//!
//! A [`ChaosLayer`] sits in front of an agent and, while enabled, fails calls with
//! [`ChaosError`], answers them with a fake response, or delays them, each at its own
//! rate; and fails every call during outage windows ([`Outage`], or
//! [`ChaosHandle::start_outage`] at runtime). One random draw per call (SplitMix64 from the
//! configured seed) picks at most one fault, so a test with a seed and a fixed call order sees
//! the same faults every run. Disabled, it costs one relaxed atomic load per call.
//!
//! [`ChaosConfig::from_env`] reads `STEADFAST_CHAOS=on|off` (off by default),
//! `STEADFAST_CHAOS_SEED`, `STEADFAST_CHAOS_FAIL_RATE`, `STEADFAST_CHAOS_RESPONSE_RATE`,
//! `STEADFAST_CHAOS_LATENCY_RATE` and `STEADFAST_CHAOS_LATENCY_MS`, so chaos can ship in a
//! binary and stay inert until switched on.
//!
//! Put it *inside* the resilience layers (closest to the agent) so they see the faults as the
//! agent's:
//!
//! ```
//! use std::time::Duration;
//! use steadfast::chaos::{ChaosConfig, ChaosError, ChaosLayer};
//! use steadfast::BoxError;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let config = ChaosConfig::builder().seed(7).error_rate(0.3).build().unwrap();
//! let chaos = ChaosLayer::new(&steadfast::Agent::new("gpt"), &config);
//! let switch = chaos.handle();
//! let mut agent = chaos.layer(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
//!
//! switch.set_error_rate(1.0).unwrap(); // "fail the primary"
//! let error = agent.ready().await.unwrap().call("hi".into()).await.unwrap_err();
//! assert!(error.downcast_ref::<ChaosError>().is_some());
//!
//! switch.disable();
//! assert_eq!(agent.ready().await.unwrap().call("hi".into()).await.unwrap(), "hi");
//! # }
//! ```

mod config;
mod error;
mod future;
mod handle;
mod layer;
mod policy;
mod service;

#[cfg(test)]
mod tests;

pub use config::{ChaosConfig, ChaosConfigBuilder, Outage, Rates, env};
pub use error::ChaosError;
pub use future::ResponseFuture;
pub use handle::{ChaosHandle, InjectedCounts};
pub use layer::{ChaosLayer, InjectResponse, NoResponse};
pub use service::Chaos;
