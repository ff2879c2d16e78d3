//! [`Checkpoints`]: the workflow-state face of a store (save, resume, list, finish, forget,
//! prune), shared with the layers.

use std::fmt;
use std::sync::Arc;

use super::key::check_workflow;
use super::store::{
    CheckpointStore, Retention, StoreError, WorkflowState, WorkflowStatus, WorkflowSummary,
};

/// A handle on a [`CheckpointStore`] for the application's own workflow state: what phase a
/// workflow is in and whatever it needs to go on from there. Cheap to clone.
#[derive(Clone)]
pub struct Checkpoints {
    store: Arc<dyn CheckpointStore>,
}

impl fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Checkpoints").field(&self.store).finish()
    }
}

impl Checkpoints {
    /// A handle on `store`.
    pub fn new(store: impl CheckpointStore) -> Self {
        Checkpoints {
            store: Arc::new(store),
        }
    }

    /// A handle on a store already shared (with a [`CheckpointLayer`](super::CheckpointLayer):
    /// pass it `checkpoints.store().clone()`).
    pub fn from_shared(store: Arc<dyn CheckpointStore>) -> Self {
        Checkpoints { store }
    }

    /// The store, to hand to a [`CheckpointLayer`](super::CheckpointLayer).
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    /// Saves `workflow`'s `phase` and `state` (replacing the previous ones); durable when `Ok`.
    pub async fn save(
        &self,
        workflow: &str,
        phase: &str,
        state: impl Into<Vec<u8>>,
    ) -> Result<(), StoreError> {
        check_workflow(workflow)?;
        self.store.save(workflow, phase, state.into()).await
    }

    /// Saves `state` as JSON (feature `serde`).
    #[cfg(feature = "serde")]
    pub async fn save_json<T: serde::Serialize + ?Sized>(
        &self,
        workflow: &str,
        phase: &str,
        state: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(state).map_err(StoreError::backend)?;
        self.save(workflow, phase, bytes).await
    }

    /// What is stored about `workflow`: [`StoreError::NotFound`] if nothing.
    pub async fn resume(&self, workflow: &str) -> Result<WorkflowState, StoreError> {
        check_workflow(workflow)?;
        self.store.resume(workflow).await
    }

    /// The phase and the JSON state last saved (feature `serde`); `None` when the workflow
    /// exists (it has steps) but saved no state.
    #[cfg(feature = "serde")]
    pub async fn resume_json<T: serde::de::DeserializeOwned>(
        &self,
        workflow: &str,
    ) -> Result<Option<(String, T)>, StoreError> {
        let state = self.resume(workflow).await?;
        match (state.summary.phase, state.state) {
            (Some(phase), Some(bytes)) => {
                let value = serde_json::from_slice(&bytes).map_err(StoreError::backend)?;
                Ok(Some((phase, value)))
            }
            _ => Ok(None),
        }
    }

    /// Every workflow, most recently updated first.
    pub async fn list(&self) -> Result<Vec<WorkflowSummary>, StoreError> {
        self.store.list().await
    }

    /// The ids of the workflows still open (what an emergency shutdown lists for resumption).
    pub async fn open_workflows(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|w| w.status == WorkflowStatus::Open)
            .map(|w| w.workflow)
            .collect())
    }

    /// Marks `workflow` finished (no longer listed for resumption).
    pub async fn finish(&self, workflow: &str) -> Result<(), StoreError> {
        check_workflow(workflow)?;
        self.store.finish(workflow).await
    }

    /// Records why `workflow` was interrupted.
    pub async fn interrupt(&self, workflow: &str, reason: &str) -> Result<(), StoreError> {
        check_workflow(workflow)?;
        self.store.interrupt(workflow, reason).await
    }

    /// Deletes `workflow`, its state and its steps (its steps run again next time).
    pub async fn forget(&self, workflow: &str) -> Result<(), StoreError> {
        check_workflow(workflow)?;
        self.store.forget(workflow).await
    }

    /// Deletes the workflows `retention` does not keep; returns how many.
    pub async fn prune(&self, retention: Retention) -> Result<u64, StoreError> {
        self.store.prune(retention).await
    }
}
