//! # steadfast-postgres
//!
//! [`PostgresCheckpointStore`]: workflow checkpoints on PostgreSQL, for a fleet of replicas
//! that share workflows. It implements [`CheckpointStore`], so a
//! [`CheckpointLayer`](steadfast::checkpoint::CheckpointLayer) and
//! [`Checkpoints`](steadfast::checkpoint::Checkpoints) use it as they use the SQLite store.
//!
//! ```no_run
//! use steadfast::checkpoint::Checkpoints;
//! use steadfast_postgres::PostgresCheckpointStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresCheckpointStore::connect("postgres://postgres@127.0.0.1:5432/test", "steadfast").await?;
//! let checkpoints = Checkpoints::new(store);
//! checkpoints.save("wf-1", "planned", b"{}".to_vec()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Replicas never run a step twice
//!
//! A claim is one `INSERT ... ON CONFLICT (workflow, step) DO UPDATE ... WHERE` statement: the
//! row is inserted as `running` with an owner and a lease end, or taken over only when it is
//! `running` and its lease has passed. PostgreSQL locks the conflicting row and re-checks the
//! condition on its latest version, so of any number of replicas claiming at once exactly one
//! gets the step; the others see it running and wait for its answer (the layer polls the
//! store), or see it done and decode the stored answer. Leases are measured by the database's
//! clock (`clock_timestamp()`), so replicas' clocks need not agree.
//!
//! **When the claimer dies** its lease is no longer renewed; after at most one lease the next
//! replica that asks claims the step and runs it (the dead claimer's answer was never stored).
//! A claimer that is alive but was cut off from the database longer than its lease loses the
//! step too: its `complete` fails with `StoreError::LeaseLost`, and the layer returns the
//! answer the new owner stored, if any.
//!
//! ## Schema
//!
//! Two tables in the schema given to [`connect`](PostgresCheckpointStore::connect) (created if
//! missing, under an advisory lock so replicas starting together do not race):
//! `workflows (workflow PK, status, phase, state bytea, interrupted, created_at, updated_at)`
//! and `steps (workflow, step, status, owner, lease_until, response bytea, started_at,
//! completed_at, PK (workflow, step))`, times as `timestamptz`.
//!
//! No TLS connector is built in (`NoTls`): reach the database over a local socket, a private
//! network or a TLS-terminating proxy. A lost connection fails every later call with
//! [`PostgresError::Query`]; open a new store to reconnect.
#![forbid(unsafe_code)]

mod store;

pub use store::{PostgresCheckpointStore, PostgresError};

#[doc(no_inline)]
pub use steadfast::checkpoint::CheckpointStore;
