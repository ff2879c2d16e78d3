//! Durable workflow steps: resume a multi-step agent workflow without paying for its completed
//! LLM calls again.
//!
//! A request that carries a step key (a workflow id plus a step id, taken from the request by
//! a function you give) goes through [`CheckpointLayer`]:
//!
//! 1. the layer **claims** the step in the [`CheckpointStore`]. If the step completed before
//!    (in this process, before a crash, or on another replica), the stored answer is decoded
//!    and returned, marked [`Served::Checkpoint`](crate::provenance::Served::Checkpoint), and
//!    the agent is **not called**;
//! 2. otherwise this caller owns the step for a **lease** (renewed every third of it while the
//!    agent runs), calls the agent, encodes the answer with the [`CheckpointCodec`] (where
//!    secrets are left out: [`JsonCodec`] redacts `api_key`, `token`, ... fields) and
//!    **stores it durably before returning it**. A failed call releases the claim, so a retry
//!    runs the step again; nothing is stored for it;
//! 3. **concurrent callers** of the same step (same process or another replica sharing the
//!    store) do not call the agent: they wait, asking the store every
//!    [`poll_interval`](CheckpointLayer::poll_interval), for the stored answer, and return it;
//!    after [`wait`](CheckpointLayer::wait) without one they fail with the typed [`InProgress`].
//!    If the owner fails, a waiter claims the step and runs it.
//!
//! **When the owner dies** (SIGKILL, OOM, power) while its step runs, nothing renews the lease:
//! the step stays claimed for at most one [`lease`](CheckpointLayer::lease), then the next
//! caller runs it again (the dead owner's answer was never stored, so this is the only case a
//! step's agent call happens twice, and only if the agent had received it). A cancelled call
//! (timeout, shutdown drain) releases its claim at once.
//!
//! [`Checkpoints`] is the workflow-state half: `save(workflow, phase, state)`, `resume`,
//! `list`, `finish`, `forget` with [`StoreError::NotFound`], and retention by age and count
//! ([`Retention`]). Stores: [`MemoryCheckpointStore`] (tests), `steadfast_sqlite::SqliteCheckpointStore`
//! (embedded, the default for one process), `steadfast_postgres::PostgresCheckpointStore`
//! (fleets: replicas sharing it never run a step twice).
//!
//! Place it outside dead-letter, fallback and retry (so a step's answer is whatever the whole
//! stack finally produced) and inside degrade (a degraded answer is not stored as the step's):
//! `Shutdown > Degrade > Checkpoint > DeadLetter > Fallback > Retry > Breaker > agent`.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use steadfast::checkpoint::{CheckpointLayer, JsonCodec, MemoryCheckpointStore, StepKey};
//! use steadfast::BoxError;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! #[derive(Clone)]
//! struct Prompt { workflow: String, step: String, text: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counted = calls.clone();
//! let llm = service_fn(move |prompt: Prompt| {
//!     counted.fetch_add(1, Ordering::SeqCst);
//!     async move { Ok::<_, BoxError>(format!("answer to {}", prompt.text)) }
//! });
//! let store = MemoryCheckpointStore::new();
//! let layer = CheckpointLayer::new(
//!     &steadfast::Agent::new("planner"),
//!     store.clone(),
//!     |p: &Prompt| StepKey::new(&p.workflow, &p.step).ok(),
//!     JsonCodec::new(),
//! );
//! let agent = layer.layer(llm);
//! let plan = Prompt { workflow: "wf-1".into(), step: "plan".into(), text: "plan it".into() };
//!
//! let first = agent.clone().oneshot(plan.clone()).await?;
//! let again = agent.oneshot(plan).await?; // resumed: from the store
//! assert_eq!(first, again);
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(()) }
//! # }
//! ```

mod codec;
mod error;
mod key;
mod layer;
mod memory;
mod service;
mod store;
mod workflow;

#[cfg(test)]
mod tests;

#[cfg(feature = "serde")]
pub use codec::JsonCodec;
pub use codec::{CheckpointCodec, FnCodec, REDACTED};
pub use error::{CheckpointError, InProgress};
pub use key::{InvalidStepKey, MAX_KEY_LEN, StepKey, check_workflow};
pub use layer::{
    CheckpointLayer, DEFAULT_LEASE, DEFAULT_POLL_INTERVAL, DEFAULT_WAIT, MIN_INTERVAL,
};
pub use memory::MemoryCheckpointStore;
pub use service::{Checkpointed, ResponseFuture};
pub use store::{
    CheckpointStore, Claim, Retention, StepRecord, StepStatus, StoreError, StoreFuture,
    StoredAnswer, WorkflowState, WorkflowStatus, WorkflowSummary,
};
pub use workflow::Checkpoints;
