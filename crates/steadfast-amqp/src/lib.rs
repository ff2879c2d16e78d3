//! # steadfast-amqp
//!
//! [`AmqpSink`]: a [`DeadLetterSink`] that publishes dead letters to RabbitMQ (via lapin), and
//! spills them to a local [`SqliteSink`] while the broker is unreachable.
//!
//! ## Topology (declared on every connect, all durable)
//!
//! ```text
//! exchange <exchange> (direct) --routing key <queue>--> queue <queue>
//!                                                        | x-dead-letter-exchange
//!                                                        v
//! exchange <exchange>.rejected (fanout) -------------> queue <queue>.rejected
//! ```
//!
//! A consumer that replays dead letters acks the ones that succeed and rejects
//! (`requeue=false`) the ones it gives up on: RabbitMQ moves those to `<queue>.rejected`.
//!
//! ## Guarantees
//!
//! [`append`](DeadLetterSink::append) returns `Ok` only when the record is durable: the broker
//! confirmed the persistent message (publisher confirms; `mandatory`, so an unroutable message
//! is an error), or, if the broker could not be reached or did not confirm in time, the local
//! spill store committed it (fsynced, with the default [`Synchronous::Full`](steadfast_sqlite::Synchronous::Full)). Spilled records are published again, oldest first, before any new
//! record, as soon as the broker is back (on the next append, on [`AmqpSink::drain`], or by the
//! background drainer). Delivery is at-least-once: a record whose confirm was lost may be
//! published twice; its AMQP `message_id` is the record id, so consumers can de-duplicate.
//!
//! ```no_run
//! use steadfast::dead_letter::DeadLetterLayer;
//! use steadfast_amqp::{AmqpConfig, AmqpSink};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = AmqpConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "var/dlq-spill")
//!     .exchange("agents.dlx")
//!     .queue("agents.dead-letters");
//! let sink = AmqpSink::connect(config).await?;
//! let layer = DeadLetterLayer::new(&steadfast::Agent::new("gpt"), sink);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod config;
mod sink;

pub use config::AmqpConfig;
pub use sink::{AmqpError, AmqpSink, CONTENT_TYPE};

#[doc(no_inline)]
pub use steadfast::dead_letter::DeadLetterSink;
#[doc(no_inline)]
pub use steadfast_sqlite::SqliteSink;
