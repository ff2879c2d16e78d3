//! Hedged requests: when an agent is slow to answer, ask it once more and take the first good
//! answer.
//!
//! LLM latencies have long tails: the same prompt to the same model answers in 2 s most of the
//! time and in 20 s now and then (a cold replica, a long queue, a stalled connection). A second
//! attempt sent when the first is already slower than most finishes, far more often than not,
//! before the first does. [`HedgeLayer`] does that, within bounds:
//!
//! - **Delay**: a fixed one, or a percentile of the agent's recent latencies (p95 by default,
//!   read from a lock-free rotating histogram, as tower's `hedge` does); no hedging until
//!   `min_samples` calls were seen.
//! - **First good answer wins**: an answer the agent's classifier calls a success (or the
//!   request's own fault, which another attempt would share) is returned, and every other
//!   attempt is dropped at once, which cancels it. A failed attempt waits for the others; only
//!   when none is left is the last failure returned (retrying is the retry layer's business).
//! - **Bounded**: at most `max_hedges` per request (1 by default), each taken from a
//!   [`RetryBudget`](crate::retry::RetryBudget) (the layer's own, or a retry layer's with
//!   [`HedgeLayer::budget`]), so hedging never multiplies the load of an agent in trouble;
//!   never while the agent's circuit breaker is open or half-open (a hedge must not take a
//!   probe's place). The breaker is found through the agent scope. Put the hedge inside retry
//!   and outside the rate limit (so hedges count against the quota) and the breaker: Retry >
//!   Hedge > RateLimit > CircuitBreaker.
//! - **To the agent or the next alternative**: hedges go to a clone of the inner service, or,
//!   with [`HedgeLayer::to`], to other agents (a second provider, another model), in order,
//!   skipping those whose circuit is not closed; each answer is judged by its own agent's
//!   classifier.
//! - **Provenance**: [`answered_by`] says which attempt answered (1: the first, 2: the first
//!   hedge, ...) and which agent it went to.
//!
//! Requests must be `Clone` (as for retries), and so must the inner service: a hedge goes
//! through a clone of it, made ready first. The layer has no error of its own: it returns an
//! attempt's answer or failure. A call answered before the delay creates no timer, allocates
//! nothing and, with a fixed delay, reads no clock.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast::hedge::{answered_by, HedgeConfig, HedgeLayer};
//! use tower::{service_fn, Layer, ServiceExt};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! // The first call is stuck for 30 s; the next answers in 1 s.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let model = service_fn(move |prompt: &'static str| {
//!     let slow = counter.fetch_add(1, Ordering::SeqCst) == 0;
//!     async move {
//!         let latency = if slow { 30 } else { 1 };
//!         tokio::time::sleep(Duration::from_secs(latency)).await;
//!         Ok::<_, BoxError>(prompt.len())
//!     }
//! });
//! let config = HedgeConfig::builder().delay(Duration::from_secs(2)).build()?;
//! let agent = HedgeLayer::new(&Agent::new("gpt"), config).layer(model);
//!
//! let started = tokio::time::Instant::now();
//! let (reply, answered) = answered_by(agent.oneshot("hello")).await;
//! assert_eq!(reply?, 5);
//! assert_eq!(answered.map(|a| a.attempt()), Some(2)); // the hedge answered
//! assert_eq!(started.elapsed(), Duration::from_secs(3)); // 2 s delay + 1 s
//! # Ok(()) }
//! ```

mod config;
mod future;
mod layer;
mod service;
mod shared;
mod state;
mod target;

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

pub use config::{HedgeConfig, HedgeConfigBuilder, HedgeDelay, MAX_DELAY, MAX_HEDGES_LIMIT};
pub use future::ResponseFuture;
pub use layer::HedgeLayer;
pub use service::Hedge;
pub use target::{Alternatives, SameAgent};

tokio::task_local! {
    static ANSWERED_BY: RefCell<Option<Answered>>;
}

/// Which attempt of a hedged call answered, and which agent it went to (see [`answered_by`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    attempt: u32,
    agent: Arc<str>,
}

impl Answered {
    /// 1 for the first attempt, 2 for the first hedge, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The agent that answered: the layer's own, or the alternative the hedge went to
    /// ([`HedgeLayer::to`]).
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Whether a hedge (not the first attempt) answered.
    pub fn is_hedge(&self) -> bool {
        self.attempt > 1
    }
}

/// Runs `future` and reports which attempt of the hedge layer it went through answered, and
/// from which agent (`None`: no hedge layer answered in this task). With hedge layers nested,
/// the outermost (the last to answer) has the last word.
pub async fn answered_by<F: Future>(future: F) -> (F::Output, Option<Answered>) {
    ANSWERED_BY
        .scope(RefCell::new(None), async move {
            let output = future.await;
            (output, ANSWERED_BY.with(|cell| cell.borrow_mut().take()))
        })
        .await
}

#[inline]
fn record_answer(attempt: u32, agent: &Arc<str>) {
    let _ = ANSWERED_BY.try_with(|cell| {
        *cell.borrow_mut() = Some(Answered {
            attempt,
            agent: agent.clone(),
        });
    });
}

#[cfg(test)]
mod tests;
