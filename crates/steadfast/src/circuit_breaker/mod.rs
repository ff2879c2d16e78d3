//! Circuit breaker: stop calling an agent that keeps failing, probe it, recover.
//!
//! ```text
//!            trip rule fires                 open time elapsed
//!  Closed ─────────────────────▶ Open ─────────────────────────▶ HalfOpen
//!    ▲                            ▲  (or health check passed)       │
//!    │                            └──────── a probe fails ──────────┤
//!    └─────────────── success_threshold probes succeed ─────────────┘
//! ```
//!
//! - **Closed**: calls flow. The breaker trips on `consecutive_failures` failures in a row, or
//!   when the sliding window (last N calls, or last T seconds) holds at least `min_calls` and its
//!   failure rate or slow-call rate reaches the threshold. Caller faults are ignored.
//! - **Open**: calls fail fast with [`CircuitOpen`]. The open time starts at 1 s and grows x1.5
//!   on each trip that follows a failed recovery, up to `max_open_duration` (60 s by default,
//!   never over 120 s, so recovery is always attempted within two minutes).
//! - **HalfOpen**: up to `half_open_probes` concurrent probe calls; `success_threshold` successes
//!   close the breaker (and reset the open-time growth), any failure re-opens it.
//! - With a [`HealthCheck`], an open breaker stays open until the check passes, run in the
//!   background once the open time has elapsed and then every `health_check_interval`.
//! - **ForcedOpen** and **Disabled** are set by hand through the [`BreakerHandle`].
//!
//! The success path through a closed breaker takes no lock and allocates nothing.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use tower::{service_fn, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let config = BreakerConfig::builder().consecutive_failures(2).build().unwrap();
//! let flaky = Agent::new("flaky");
//! let layer = CircuitBreakerLayer::new(&flaky, config);
//! let mut agent = tower::ServiceBuilder::new()
//!     .layer(layer.clone())
//!     .service(service_fn(|fail: bool| async move {
//!         if fail { Err::<&str, BoxError>("model overloaded".into()) } else { Ok("ok") }
//!     }));
//!
//! for _ in 0..2 {
//!     let _ = agent.ready().await.unwrap().call(true).await;
//! }
//! assert_eq!(layer.handle().state(), BreakerState::Open);
//! let err = agent.ready().await.unwrap().call(false).await.unwrap_err();
//! assert!(err.downcast_ref::<CircuitOpen>().is_some());
//!
//! tokio::time::advance(Duration::from_secs(1)).await; // the open time elapses
//! for _ in 0..3 {
//!     assert_eq!(agent.ready().await.unwrap().call(false).await.unwrap(), "ok"); // probes
//! }
//! assert_eq!(layer.handle().state(), BreakerState::Closed);
//! # }
//! ```

mod config;
mod error;
mod future;
mod handle;
mod health;
mod layer;
mod service;
mod shared;
mod state;
mod window;

#[cfg(test)]
mod tests;

pub use config::{
    BreakerConfig, BreakerConfigBuilder, MAX_COUNT_WINDOW, MAX_OPEN_DURATION_LIMIT,
    MAX_OPEN_DURATION_MULTIPLIER, SlidingWindow,
};
pub use error::CircuitOpen;
pub use future::ResponseFuture;
pub use handle::{
    BreakerCounts, BreakerHandle, BreakerSnapshot, RecentFailure, RecentFailureSnapshot,
    SavedBreaker,
};
pub use health::{HealthCheck, HealthFuture};
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreaker;
pub use state::{BreakerState, TransitionReason};
