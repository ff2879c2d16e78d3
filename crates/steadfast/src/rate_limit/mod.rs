//! Client-side rate limits for LLM quotas: requests and tokens per minute, and a pause when
//! the agent answers rate-limited.
//!
//! LLM providers limit each key and model in requests per minute (RPM) and tokens per minute
//! (TPM), and answer 429 past either. Collecting those 429s costs a round trip each, counts
//! against the agent's health, and teaches nothing the provider did not already say.
//! [`RateLimitLayer`] keeps the calls within the quotas on the client side:
//!
//! - **Two quotas**: one request and the request's estimated tokens (from the layer's
//!   [`cost`](RateLimitLayer::cost) function: prompt plus `max_tokens`) are charged before each
//!   call. A [`usage`](RateLimitLayer::usage) reader corrects the token quota from the answer's
//!   `usage`, charging more or giving back the difference.
//! - **Wait or refuse**: a call the quotas cannot take now waits for its turn, up to
//!   `max_wait`; past that, or when one call costs more than a whole burst, it is refused with
//!   [`RateLimited`], at once and without calling the agent.
//! - **Pause**: an answer the classifier calls rate-limited with a wait (`Retry-After`,
//!   `retry-after-ms`, OpenAI's `x-ratelimit-reset-*`, Anthropic's reset headers: steadfast-http's
//!   LLM classifier reads them all into [`Outcome::retry_after`](crate::Outcome::retry_after))
//!   pauses the agent: no call goes to it until the wait is over (capped by `max_pause`), calls
//!   meanwhile wait (within their `max_wait`) instead of collecting 429s, and the quotas refill
//!   from nothing after the pause, so the waiting calls do not all go at once.
//! - **Classification**: [`RateLimited`] classifies itself as rate-limited, unprocessed, with
//!   the wait it would have needed: a fallback outside answers from another agent, a retry
//!   layer outside may try again after the wait. Put the limiter inside retry and hedge (so
//!   their extra attempts are counted) and outside the circuit breaker (Retry > Hedge >
//!   RateLimit > CircuitBreaker), so the breaker never counts a refusal the agent never saw.
//!
//! The quotas are GCRA (a token bucket in one atomic per quota, refilled continuously, with
//! `burst` of a minute's quota available at once): a call admitted at once reads the clock
//! once, takes one compare-and-swap per quota, allocates nothing and takes no lock. Nor does
//! it count a reference to the quotas: its answer needs them only to pause the agent (a
//! rate-limited answer), so it carries the limiter's address, a number a process-wide table
//! maps to a weak reference, looked up on that rare path. With a [`usage`](RateLimitLayer::usage)
//! reader every answer may correct the token quota, and each call holds a counted reference
//! instead. A call that waits clones the inner service and boxes its timer.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use steadfast::rate_limit::{RateLimitConfig, RateLimitLayer, RateLimited};
//! use tower::{service_fn, Layer, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let gpt = Agent::new("gpt-4o");
//! let config = RateLimitConfig::builder()
//!     .tokens_per_minute(1_000)
//!     .max_wait(Duration::from_secs(30))
//!     .build()?;
//! let mut agent = RateLimitLayer::new(&gpt, config)
//!     .cost(|prompt: &String| prompt.len() as u64)
//!     .layer(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt.len()) }));
//!
//! let started = tokio::time::Instant::now();
//! let long_prompt = "x".repeat(1_000);
//! agent.ready().await?.call(long_prompt.clone()).await?; // a whole minute's tokens, at once
//! agent.ready().await?.call("x".repeat(250)).await?;     // waits for 250 tokens to refill
//! assert_eq!(started.elapsed(), Duration::from_secs(15));
//!
//! // 1,000 more tokens would take 60 s: longer than max_wait, so refused without a call.
//! let error = agent.ready().await?.call(long_prompt).await.unwrap_err();
//! let refused = error.downcast_ref::<RateLimited>().unwrap();
//! assert_eq!(refused.wait(), Some(Duration::from_secs(60)));
//! # Ok(()) }
//! ```

mod config;
mod cost;
mod error;
mod future;
mod layer;
mod service;
mod shared;
mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use config::{MAX_WAIT_LIMIT, RateLimitConfig, RateLimitConfigBuilder};
pub use cost::{NoCost, NoUsage, TokenCost, TokenUsage};
pub use error::RateLimited;
pub use future::ResponseFuture;
pub use layer::RateLimitLayer;
pub use service::RateLimit;
pub use state::Limit;

/// A handle on one [`RateLimitLayer`]'s quotas: what is left, and a pause from outside.
#[derive(Clone, Debug)]
pub struct RateLimitHandle {
    shared: Arc<shared::Shared>,
}

impl RateLimitHandle {
    fn now(&self) -> crate::clock::Nanos {
        self.shared.origin.nanos_at(Instant::now())
    }

    /// Requests that could go at once now (`None`: no request quota).
    pub fn available_requests(&self) -> Option<u64> {
        let now = self.now();
        self.shared
            .limits
            .requests
            .as_ref()
            .map(|q| q.available(now))
    }

    /// Tokens that could go at once now (`None`: no token quota).
    pub fn available_tokens(&self) -> Option<u64> {
        let now = self.now();
        self.shared.limits.tokens.as_ref().map(|q| q.available(now))
    }

    /// The time left of a pause the agent asked for, if one is running.
    pub fn paused_for(&self) -> Option<Duration> {
        let now = self.now();
        self.shared
            .limits
            .paused_at(now)
            .map(|until| Duration::from_nanos(until - now))
    }

    /// Pauses calls to the agent for `wait` (capped by `max_pause`), as a rate-limited answer
    /// asking for that wait would.
    pub fn pause(&self, wait: Duration) {
        let now = self.now();
        self.shared
            .pause(now, crate::clock::duration_to_nanos(wait));
    }
}

#[cfg(test)]
mod tests;
