//! Graceful shutdown: stop admitting calls, drain those in flight, hand over the rest.
//!
//! One [`Shutdown`] handle is shared by the [`ShutdownLayer`] of every agent. On shutdown,
//! [`Shutdown::drain`]:
//!
//! 1. stops admitting calls: new ones fail at once with [`ShuttingDown`];
//! 2. waits for the calls in flight, up to its timeout;
//! 3. cancels those still running: each fails with [`CancelledByShutdown`] and is handed to
//!    the hook given to [`Shutdown::with_hook`], so a dead-letter layer (outside this one, it
//!    holds the request) or the hook can record it with reason `"shutdown"` and nothing is lost;
//! 4. returns a [`DrainReport`]. It flushes nothing itself: flush sinks and save breaker state
//!    (`Registry::save_state`) after it.
//!
//! [`Emergency`] wires SIGTERM and SIGINT (feature `signals`), a panic hook, a time limit and
//! a memory limit to this drain, then marks open workflows interrupted, saves breaker state,
//! sends a recovery notification and returns the exit code (0 clean, 1 work left).
//!
//! Put the layer outermost, so a refused call never counts as the agent's failure. An admitted
//! call that completes at once costs two atomic operations and one `Arc` clone; the clock read
//! and the cancellation signal come only if the call has to wait.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::shutdown::{CancelledByShutdown, Shutdown, ShutdownLayer, ShuttingDown};
//! use steadfast::BoxError;
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let shutdown = Shutdown::with_hook(|call| eprintln!("dead-letter: {call}"));
//! let agent = ShutdownLayer::new(&steadfast::Agent::new("gpt"), &shutdown).layer(service_fn(|secs: u64| async move {
//!     tokio::time::sleep(Duration::from_secs(secs)).await;
//!     Ok::<_, BoxError>(secs)
//! }));
//!
//! let slow = tokio::spawn(agent.clone().oneshot(60));
//! tokio::task::yield_now().await; // the call starts
//! let report = shutdown.drain(Duration::from_secs(5)).await;
//! assert_eq!(report.cancelled, 1);
//! let error = slow.await.unwrap().unwrap_err();
//! assert!(error.downcast_ref::<CancelledByShutdown>().is_some());
//!
//! let refused = agent.oneshot(1).await.unwrap_err();
//! assert!(refused.downcast_ref::<ShuttingDown>().is_some());
//! # }
//! ```

mod emergency;
mod error;
mod future;
mod handle;
mod layer;
mod service;

#[cfg(test)]
mod tests;

pub use emergency::{DEFAULT_DRAIN_TIMEOUT, Emergency, EmergencyReport, EmergencyTrigger, Trigger};
pub use error::{CancelledByShutdown, CancelledCall, ShuttingDown};
pub use future::ResponseFuture;
pub use handle::{DEFAULT_CANCEL_GRACE, DrainReport, Shutdown};
pub use layer::ShutdownLayer;
pub use service::GracefulShutdown;
