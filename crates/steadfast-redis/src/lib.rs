//! Fleet-wide state for steadfast, shared through Redis: one outage learned once by every
//! replica.
//!
//! Each replica of an application keeps its own breakers, as without this crate, and a
//! [`Fleet`] keeps them in step with the same agents' breakers on the other replicas:
//!
//! - **Shared trips.** A breaker that opens publishes its open period on the fleet's channel
//!   and in a key (so a replica that starts or reconnects later learns it); every other replica
//!   applies it as an open period with an expiry ([`BreakerHandle::open_until`]). Closing after
//!   successful probes is shared the same way ([`BreakerHandle::close_remote`]).
//! - **Shared failure streak.** Each replica reports its run of consecutive failures; when the
//!   runs add up to one breaker's `consecutive_failures`, the fleet opens, so a dead agent gets
//!   about one breaker's threshold of calls from the whole fleet, not one per replica.
//! - **Fleet-wide half-open.** When an open period ends, one replica takes a lease in Redis and
//!   runs its probes (or its health check); the others wait for its verdict, so the fleet sends
//!   no more than `half_open_probes` probes at once.
//! - **Shared retry budget.** [`FleetBudget`] leases tokens from a fleet-level budget in
//!   chunks, so Redis is not touched per call.
//!
//! The hot path never waits on Redis: a breaker learns the fleet's state asynchronously, and a
//! closed-circuit call costs what it costs without fleet sync (the sync task watches state
//! changes and failures, never successes). When Redis is down or slow, every replica goes on
//! with its local state, logs and reports it once ([`steadfast::events::Event::FleetSyncLost`]),
//! reconnects with backoff and resynchronises. `docs/fleet.md` gives the consistency model.
//!
//! ```no_run
//! use steadfast::prelude::*;
//! use steadfast_redis::{Fleet, FleetConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let registry = Registry::new();
//! let gpt = registry.agent("gpt-4o");
//! let breaker = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
//! // STEADFAST_REDIS_URL, or redis://127.0.0.1:6379; replicas of "billing-api" share state.
//! let fleet = Fleet::start(FleetConfig::from_env("billing-api")?, registry.events());
//! fleet.sync(&breaker.handle());
//! # Ok(())
//! # }
//! ```
//!
//! [`BreakerHandle::open_until`]: steadfast::circuit_breaker::BreakerHandle::open_until
//! [`BreakerHandle::close_remote`]: steadfast::circuit_breaker::BreakerHandle::close_remote

#![forbid(unsafe_code)]

mod breaker;
mod budget;
mod config;
mod fleet;
mod protocol;

pub use budget::FleetBudget;
pub use config::{
    DEFAULT_REDIS_URL, FleetConfig, FleetConfigBuilder, MAX_PREFIX_LEN, REDIS_URL_ENV, url_from_env,
};
pub use fleet::Fleet;
