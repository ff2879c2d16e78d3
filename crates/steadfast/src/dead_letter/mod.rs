//! Dead letters: keep every request no agent could answer, durably, for inspection and replay.
//!
//! [`DeadLetterLayer`] sits outside retry and fallback. When a call's final outcome is a failure
//! its policy covers (default: every failure, caller faults included as "poison"), it encodes
//! the request, appends a [`DeadLetterRecord`] to a [`DeadLetterSink`], and only once the sink
//! confirmed the record durable returns [`DeadLettered`] (whose `source()` is the original
//! error). If the sink fails, the call returns [`DeadLetterFailed`] carrying both errors and
//! an [`Event::DeadLetterFailed`](crate::events::Event::DeadLetterFailed) is emitted (counted in
//! `steadfast_dead_letter_failures_total{agent}`): nothing is swallowed. Whatever the encoder
//! redacted from the request ([`EncodeRequest::encode_redacted`]) is scrubbed from the stored
//! error chain too.
//!
//! The request is captured before the inner call consumes it by cloning it, so requests should
//! be cheap to clone (`Bytes`, `Arc`, a buffered http body). The encoder runs only on failure,
//! so the success path costs one clone and no allocation for such requests.
//!
//! Sinks: [`MemorySink`] (bounded, tests), `steadfast_sqlite::SqliteSink` (embedded, durable
//! default; several processes can read, replay and purge while the application writes) and
//! `steadfast_amqp::AmqpSink` (RabbitMQ). [`Monitor`] publishes depth and age gauges and alerts
//! on thresholds; [`Replay`] feeds records back through any service.
//!
//! ```
//! use bytes::Bytes;
//! use steadfast::BoxError;
//! use steadfast::dead_letter::{DeadLetterLayer, DeadLettered, MemorySink};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sink = MemorySink::new(1_000);
//! let summariser = steadfast::Agent::new("summariser");
//! let agent = ServiceBuilder::new()
//!     .layer(
//!         DeadLetterLayer::new(&summariser, sink.clone())
//!             .encoder(|prompt: &String| Ok::<_, BoxError>(Bytes::from(prompt.clone()))),
//!     )
//!     .service(service_fn(|_prompt: String| async { Err::<String, BoxError>("model overloaded".into()) }));
//!
//! let err = agent.oneshot("summarise this".to_string()).await.unwrap_err();
//! let dead = err.downcast_ref::<DeadLettered>().expect("stored");
//! let record = &sink.records()[0];
//! assert_eq!(record.id, dead.id());
//! assert_eq!(record.request, Bytes::from("summarise this"));
//! assert_eq!(record.error_chain, vec!["model overloaded"]);
//! # }
//! ```

mod config;
mod error;
mod future;
mod id;
mod layer;
mod memory;
mod record;
mod replay;
mod service;
mod sink;
mod stats;

/// The byte buffer records hold requests in (re-exported so users need no `bytes` dependency).
pub use bytes::Bytes;
pub use config::DeadLetterPolicy;
pub use error::{DeadLetterFailed, DeadLettered};
pub use future::ResponseFuture;
pub use id::{DeadLetterId, ParseIdError};
#[cfg(feature = "serde")]
pub use layer::json_encoder;
pub use layer::{DeadLetterLayer, DebugEncoder, EncodeRequest, Scrub, Secrets};
pub use memory::MemorySink;
pub use record::{DeadLetterRecord, DecodeError, RECORD_VERSION};
pub use replay::{MAX_CONCURRENCY, MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND, Replay, ReplayReport};
pub use service::DeadLetter;
pub use sink::{DeadLetterSink, SinkError, SinkFuture};
pub use stats::{DeadLetterStats, DlqAlert, Monitor};
