//! Degrade: when everything failed, answer something useful and say so.
//!
//! [`DegradeLayer`] sits outermost. It turns the final failure (an error, or an answer the
//! agent's classifier calls a failure) into a degraded answer (a template, partial data, "try
//! again in 30 s") through a [`Degrader`], and passes the failure through when that returns
//! `None`. Successes go through untouched (no allocation, no lock). The function sees a *view* of the request, captured before the call by a cheap
//! `Fn(&Req) -> View` (no clone of the request), and the error.
//!
//! A [`DegradationLevel`] (`Normal`, `Reduced`, `Minimal`, `Emergency`) is a shared cell that
//! the degrade function, fan-outs and handlers read; set it by hand or from the
//! [`Registry`](crate::Registry) (share of breakers not closed), and optionally
//! [shed](DegradeLayer::shed_at) calls at a level.
//!
//! ```
//! use steadfast::degrade::{DegradationLevel, DegradeLayer, Level};
//! use steadfast::provenance::{Attributed, Provenance};
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let level = DegradationLevel::new();
//! let lvl = level.clone();
//! let assistant = Agent::new("assistant");
//! let agent = ServiceBuilder::new()
//!     .layer(
//!         DegradeLayer::new(&assistant, move |topic: &String, _err: &BoxError| {
//!             let text = match lvl.get() {
//!                 Level::Emergency => "Service unavailable, try again in a minute.".to_string(),
//!                 _ => format!("We cannot answer about {topic} right now."),
//!             };
//!             Some(Attributed::new(text))
//!         })
//!         .view(|prompt: &String| prompt.split_whitespace().next().unwrap_or("").to_string())
//!         .mark_responses(),
//!     )
//!     .service(service_fn(|_prompt: String| async move {
//!         Err::<Attributed<String>, BoxError>("all models down".into())
//!     }));
//!
//! let reply = agent.oneshot("weather tomorrow?".to_string()).await?;
//! assert_eq!(reply.value, "We cannot answer about weather right now.");
//! assert_eq!(reply.served().source(), "degraded");
//! # Ok(()) }
//! ```

mod error;
mod future;
mod layer;
mod level;
mod service;

pub use self::error::Shed;
pub use self::future::ResponseFuture;
pub use self::layer::{CaptureView, DegradeLayer, Degrader, NoView};
pub use self::level::{DegradationLevel, Level};
pub use self::service::Degrade;
