//! Partial success: call N agents in parallel, succeed with enough of them.
//!
//! A [`Fanout`] sends the same request to every agent at once, each under its own deadline.
//! Agents are **required** (any failure fails the fan-out) or **optional** (they count towards
//! the threshold). It succeeds when every required agent answered and either the success ratio
//! (default 50 % of all agents) or a quorum count (replicated agents: 2 of 3) is met; it fails as
//! soon as a required agent fails or the threshold can no longer be met. Once decided, the
//! calls still running are dropped, which cancels them; the result lists who answered, who
//! failed and why, and who was cancelled.
//!
//! Fan-outs live behind the `fanout` feature (on by default, no extra dependency). With the
//! `degrade` feature, `FanoutBuilder::skip_optional_at(level, at)` stops calling optional
//! agents while a `DegradationLevel` is at `at` or worse (they are listed as `skipped`, and the
//! threshold counts only the agents called). Every agent's call runs under a tokio timer: call
//! fan-outs inside a tokio runtime with time enabled.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::fanout::Fanout;
//! use steadfast::BoxError;
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let planner = service_fn(|task: &'static str| async move { Ok::<_, BoxError>(format!("plan for {task}")) });
//! let critic = service_fn(|_task: &'static str| async move { Err::<String, BoxError>("critic down".into()) });
//! let registry = steadfast::Registry::new();
//! let fanout = Fanout::builder()
//!     .optional(&registry.agent("critic"), critic)
//!     .required(&registry.agent("planner"), planner)
//!     .deadline(Duration::from_secs(20))
//!     .success_ratio(0.5)
//!     .build()?;
//!
//! let report = fanout.call("release notes").await?;
//! assert_eq!(report.answer_of("planner").map(String::as_str), Some("plan for release notes"));
//! assert_eq!(&*report.failed[0].agent, "critic");
//! # Ok(()) }
//! ```

#[allow(clippy::module_inception)]
mod fanout;
mod policy;
mod report;

pub use self::fanout::{
    DEFAULT_DEADLINE, DEFAULT_SUCCESS_RATIO, Fanout, FanoutAgent, FanoutBuilder,
};
pub use self::policy::Threshold;
pub use self::report::{
    AgentFailure, Answer, FailureReason, FanoutError, FanoutFailure, FanoutReport,
};
