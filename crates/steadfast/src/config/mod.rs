//! A stack from a file: agents, their breakers, retries, rate limits, bulkheads, timeouts,
//! fallback chains, caches and dead-letter stores, described in TOML (or JSON) and built into one service per agent.
//!
//! ```toml
//! [agents.primary]
//! endpoint = "https://llm.example.com/v1"   # handed to the application's agent factory
//! classifier = "llm"                        # a kind the application maps to a classifier
//! timeout = "800ms"
//! fallback = ["backup"]                     # tried in this order once retries are spent
//!
//! [agents.primary.retry]                    # RetryConfig: every key optional
//! max_retries = 2
//! base = "50ms"
//!
//! [agents.primary.breaker]                  # BreakerConfig: every key optional
//! consecutive_failures = 5
//!
//! [agents.primary.rate_limit]               # RateLimitConfig: at least one quota
//! requests_per_minute = 500
//! tokens_per_minute = 30000                 # needs StackBuilder::token_cost (code)
//!
//! [agents.primary.bulkhead]                 # BulkheadConfig: every key optional
//! max_concurrent = 32                       # more calls at once are refused, and fall back
//!
//! [agents.primary.cache]                    # CacheConfig: served after every alternative failed
//! ttl = "10s"
//!
//! [agents.primary.dead_letter]
//! store = "sqlite"                          # memory | sqlite | amqp
//! path = "var/dlq"
//!
//! [agents.backup]
//! endpoint = "https://backup.example.com/v1"
//! timeout = "600ms"
//! breaker = { consecutive_failures = 4 }
//! ```
//!
//! Each layer's table is that layer's own config (`BreakerConfig`, `RetryConfig`,
//! `RateLimitConfig`, `BulkheadConfig`, `CacheConfig`), validated by its builder's own rules; durations are written as text
//! with units (`"1m30s"`, `"250ms"`); unknown keys are refused. Every error names the file, the
//! line and the field (`stack.toml:9:1: field `agents.primary.retry.bsae`: unknown field ...`).
//! The full reference of keys is `docs/config.md`.
//!
//! The services themselves come from the application: [`StackBuilder::agents`] makes each
//! agent's service from its [`AgentConfig`] (its name and `endpoint`). So does what a request's
//! tokens are: a `tokens_per_minute` quota needs [`StackBuilder::token_cost`] (and may be
//! corrected by [`StackBuilder::token_usage`]); the build fails on that line without one.
//!
//! ```
//! use steadfast::config::StackConfig;
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let config = StackConfig::from_toml(r#"
//!     [agents.primary]
//!     fallback = ["backup"]
//!     retry = { max_retries = 1, base = "1ms" }
//!
//!     [agents.backup]
//! "#)?;
//! let registry = Registry::new();
//! let stacks = config
//!     .builder(&registry)
//!     .agents(|agent| {
//!         let name = agent.name().to_owned();
//!         Ok(service_fn(move |prompt: String| {
//!             let name = name.clone();
//!             async move {
//!                 if name == "primary" {
//!                     Err::<String, BoxError>("overloaded".into())
//!                 } else {
//!                     Ok(format!("{name}: {prompt}"))
//!                 }
//!             }
//!         }))
//!     })
//!     .build()?;
//!
//! let reply = stacks.service("primary").unwrap().oneshot("hi".to_string()).await?;
//! assert_eq!(reply, "backup: hi");
//! assert_eq!(registry.counters("primary").unwrap().retries, 1);
//! # Ok(()) }
//! ```
//!
//! Keys this version does not know (a hedge, say) are refused as unknown, so a file written for
//! a later version fails loudly instead of running unprotected.

mod build;
mod error;
mod load;
mod locate;
mod schema;

#[cfg(test)]
mod tests;

pub use build::{BoxAgent, BuiltAgent, StackBuilder, Stacks};
pub use error::{ErrorKind, StackConfigError};
pub use load::MAX_AGENT_NAME;
pub use locate::Format;
pub use schema::{
    AgentConfig, DEFAULT_CLASSIFIER, DEFAULT_MEMORY_CAPACITY, DeadLetterConfig, DeadLetterStore,
    MAX_TIMEOUT, StackConfig,
};
