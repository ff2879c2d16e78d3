//! [`CheckpointStore`]: where step answers and workflow state live. Implement it for another
//! database; `MemoryCheckpointStore` (here), `steadfast_sqlite::SqliteCheckpointStore` and
//! `steadfast_postgres::PostgresCheckpointStore` ship with steadfast.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use crate::error::BoxError;

use super::key::StepKey;

/// The boxed future a store returns (one allocation per store call buys an object-safe trait;
/// a store call is I/O anyway).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What [`CheckpointStore::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The step completed before: here is its stored answer.
    Done(StoredAnswer),
    /// The caller now owns the step until its lease expires: run it, then
    /// [`complete`](CheckpointStore::complete) (or [`release`](CheckpointStore::release)) it.
    Claimed,
    /// Another caller (this process or another replica) is running the step; its lease ends in
    /// `lease_remaining` unless renewed.
    Busy {
        /// Time left on the other caller's lease.
        lease_remaining: Duration,
    },
}

/// A completed step's stored answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The answer as the layer's codec encoded it.
    pub response: Vec<u8>,
    /// When it was stored.
    pub completed_at: SystemTime,
}

impl StoredAnswer {
    /// How long ago it was stored (zero if the clock went back).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.completed_at)
            .unwrap_or(Duration::ZERO)
    }
}

/// Whether a step is running or done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Claimed and running (or its claimer died and the lease has not expired yet).
    Running,
    /// Completed; the answer is stored.
    Done,
}

impl StepStatus {
    /// `running` or `done`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Done => "done",
        }
    }
}

/// One step as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    /// The step id.
    pub step: String,
    /// Running or done.
    pub status: StepStatus,
    /// The stored answer's size in bytes (0 while running).
    pub response_len: u64,
    /// When it was first claimed.
    pub started_at: SystemTime,
    /// When it completed.
    pub completed_at: Option<SystemTime>,
}

/// Whether a workflow is still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowStatus {
    /// Steps may still run; an emergency shutdown lists it for resumption.
    Open,
    /// [`finish`](CheckpointStore::finish)ed: kept for inspection until retention removes it.
    Finished,
}

impl WorkflowStatus {
    /// `open` or `finished`.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Open => "open",
            WorkflowStatus::Finished => "finished",
        }
    }
}

/// A workflow as [`list`](CheckpointStore::list) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowSummary {
    /// The workflow id.
    pub workflow: String,
    /// Open or finished.
    pub status: WorkflowStatus,
    /// The phase last [`save`](CheckpointStore::save)d, if any.
    pub phase: Option<String>,
    /// Steps completed.
    pub steps_done: u64,
    /// Steps claimed and not completed.
    pub steps_running: u64,
    /// Why it was interrupted (an emergency shutdown's reason), if it was.
    pub interrupted: Option<String>,
    /// When it was first seen.
    pub created_at: SystemTime,
    /// When anything about it last changed.
    pub updated_at: SystemTime,
}

/// Everything needed to resume a workflow ([`resume`](CheckpointStore::resume)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowState {
    /// Status, phase, counts and times.
    pub summary: WorkflowSummary,
    /// The state last saved with the phase (as the application encoded it), if any.
    pub state: Option<Vec<u8>>,
    /// Its steps, in the order they were first claimed.
    pub steps: Vec<StepRecord>,
}

/// Which workflows [`prune`](CheckpointStore::prune) removes: those not updated for `max_age`,
/// and all but the `max_workflows` most recently updated. Open workflows are pruned too (an
/// open workflow nobody touched for `max_age` was abandoned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Remove workflows not updated for this long.
    pub max_age: Option<Duration>,
    /// Keep at most this many workflows (the most recently updated).
    pub max_workflows: Option<usize>,
}

impl Retention {
    /// Keep everything.
    pub const fn keep_all() -> Self {
        Retention {
            max_age: None,
            max_workflows: None,
        }
    }

    /// Remove workflows not updated for `max_age`.
    #[must_use]
    pub const fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Keep at most `count` workflows.
    #[must_use]
    pub const fn max_workflows(mut self, count: usize) -> Self {
        self.max_workflows = Some(count);
        self
    }
}

/// A durable home for workflow steps and state, shared by every process that runs the same
/// workflows.
///
/// The contract every implementation keeps (the tests in `steadfast-sqlite` and
/// `steadfast-postgres` check it against real databases):
///
/// * [`claim`](Self::claim) is atomic: of any number of concurrent claims on a step that is not
///   done and not leased, exactly one gets [`Claim::Claimed`]; the others get
///   [`Claim::Busy`]. A lease that expired (its owner died) can be claimed again.
/// * [`complete`](Self::complete) returns `Ok` only once the answer is durable, and only for
///   the current owner ([`StoreError::LeaseLost`] otherwise: the step was taken over).
/// * Every write on a workflow (a claim, a completed step, a save) refreshes its `updated_at`
///   and creates it if needed (open); answering a completed step is a read and writes nothing.
pub trait CheckpointStore: fmt::Debug + Send + Sync + 'static {
    /// Answers with the stored step, or claims it for `owner` for `lease`, or says who is busy.
    fn claim<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim>;

    /// Extends `owner`'s lease on a running step; [`StoreError::LeaseLost`] if it is not the
    /// owner any more.
    fn renew<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, ()>;

    /// Stores the step's answer durably and marks it done.
    fn complete<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        response: Vec<u8>,
    ) -> StoreFuture<'a, ()>;

    /// Gives the claim up (the call failed): the next caller may run the step at once.
    fn release<'a>(&'a self, key: &'a StepKey, owner: &'a str) -> StoreFuture<'a, ()>;

    /// Stores the workflow's `phase` and application `state`, replacing the previous ones.
    fn save<'a>(&'a self, workflow: &'a str, phase: &'a str, state: Vec<u8>)
    -> StoreFuture<'a, ()>;

    /// The workflow's state, phase and steps; [`StoreError::NotFound`] if unknown.
    fn resume<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, WorkflowState>;

    /// One step's stored answer, if it completed.
    fn answer<'a>(&'a self, key: &'a StepKey) -> StoreFuture<'a, Option<StoredAnswer>>;

    /// Every workflow, most recently updated first.
    fn list(&self) -> StoreFuture<'_, Vec<WorkflowSummary>>;

    /// Marks the workflow finished; [`StoreError::NotFound`] if unknown.
    fn finish<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()>;

    /// Records on an open workflow why it was interrupted (an emergency shutdown);
    /// [`StoreError::NotFound`] if unknown.
    fn interrupt<'a>(&'a self, workflow: &'a str, reason: &'a str) -> StoreFuture<'a, ()>;

    /// Deletes the workflow, its state and its steps; [`StoreError::NotFound`] if unknown.
    fn forget<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()>;

    /// Deletes the workflows `retention` does not keep; returns how many.
    fn prune(&self, retention: Retention) -> StoreFuture<'_, u64>;
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: CheckpointStore + ?Sized> CheckpointStore for $ty {
            fn claim<'a>(&'a self, key: &'a StepKey, owner: &'a str, lease: Duration) -> StoreFuture<'a, Claim> {
                (**self).claim(key, owner, lease)
            }
            fn renew<'a>(&'a self, key: &'a StepKey, owner: &'a str, lease: Duration) -> StoreFuture<'a, ()> {
                (**self).renew(key, owner, lease)
            }
            fn complete<'a>(&'a self, key: &'a StepKey, owner: &'a str, response: Vec<u8>) -> StoreFuture<'a, ()> {
                (**self).complete(key, owner, response)
            }
            fn release<'a>(&'a self, key: &'a StepKey, owner: &'a str) -> StoreFuture<'a, ()> {
                (**self).release(key, owner)
            }
            fn save<'a>(&'a self, workflow: &'a str, phase: &'a str, state: Vec<u8>) -> StoreFuture<'a, ()> {
                (**self).save(workflow, phase, state)
            }
            fn resume<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, WorkflowState> {
                (**self).resume(workflow)
            }
            fn answer<'a>(&'a self, key: &'a StepKey) -> StoreFuture<'a, Option<StoredAnswer>> {
                (**self).answer(key)
            }
            fn list(&self) -> StoreFuture<'_, Vec<WorkflowSummary>> {
                (**self).list()
            }
            fn finish<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
                (**self).finish(workflow)
            }
            fn interrupt<'a>(&'a self, workflow: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
                (**self).interrupt(workflow, reason)
            }
            fn forget<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
                (**self).forget(workflow)
            }
            fn prune(&self, retention: Retention) -> StoreFuture<'_, u64> {
                (**self).prune(retention)
            }
        }
    )*};
}

forward_store!(std::sync::Arc<S>, Box<S>);

/// A checkpoint store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No workflow with this id is stored.
    #[error(
        "no checkpointed workflow `{workflow}`: check the id (`steadfast checkpoints list` shows the stored ones)"
    )]
    NotFound {
        /// The id asked for.
        workflow: String,
    },
    /// The caller no longer owns the step: its lease expired and another caller claimed it.
    #[error(
        "lost the claim on step `{key}`: its lease expired and another caller took it over; make the lease longer than the step's longest call"
    )]
    LeaseLost {
        /// The step.
        key: StepKey,
    },
    /// A workflow or step id is not valid.
    #[error(transparent)]
    InvalidKey(#[from] super::key::InvalidStepKey),
    /// The backend failed (database unreachable, disk full, ...): downcast the source for the
    /// backend's own typed error.
    #[error("checkpoint store failed: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// A backend failure.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        StoreError::Backend(error.into())
    }
}
