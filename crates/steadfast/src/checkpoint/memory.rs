//! [`MemoryCheckpointStore`]: a checkpoint store in this process's memory, for tests, benches
//! and single-process tools that need no durability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::key::{StepKey, check_workflow};
use super::store::{
    CheckpointStore, Claim, Retention, StepRecord, StepStatus, StoreError, StoreFuture,
    StoredAnswer, WorkflowState, WorkflowStatus, WorkflowSummary,
};

/// Checkpoints in memory: lost with the process. Leases run on tokio's clock, so paused-clock
/// tests control them. Cheap to clone (clones share the map).
#[derive(Clone, Debug, Default)]
pub struct MemoryCheckpointStore {
    inner: Arc<Mutex<HashMap<String, Workflow>>>,
}

#[derive(Debug)]
struct Workflow {
    status: WorkflowStatus,
    phase: Option<String>,
    state: Option<Vec<u8>>,
    interrupted: Option<String>,
    created_at: SystemTime,
    updated_at: SystemTime,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    step: String,
    owner: Option<String>,
    lease_until: Instant,
    answer: Option<StoredAnswer>,
    started_at: SystemTime,
}

impl Workflow {
    fn new() -> Self {
        let now = SystemTime::now();
        Workflow {
            status: WorkflowStatus::Open,
            phase: None,
            state: None,
            interrupted: None,
            created_at: now,
            updated_at: now,
            steps: Vec::new(),
        }
    }

    fn summary(&self, workflow: &str) -> WorkflowSummary {
        let done = self.steps.iter().filter(|s| s.answer.is_some()).count() as u64;
        WorkflowSummary {
            workflow: workflow.to_owned(),
            status: self.status,
            phase: self.phase.clone(),
            steps_done: done,
            steps_running: self.steps.len() as u64 - done,
            interrupted: self.interrupted.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryCheckpointStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Workflow>) -> T) -> T {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
        Box::pin(std::future::ready(result))
    }

    fn step_mut<'m>(
        map: &'m mut HashMap<String, Workflow>,
        key: &StepKey,
        owner: &str,
    ) -> Result<&'m mut Step, StoreError> {
        map.get_mut(key.workflow())
            .and_then(|wf| {
                wf.updated_at = SystemTime::now();
                wf.steps.iter_mut().find(|s| s.step == key.step())
            })
            .filter(|s| s.answer.is_none() && s.owner.as_deref() == Some(owner))
            .ok_or_else(|| StoreError::LeaseLost { key: key.clone() })
    }
}

fn not_found(workflow: &str) -> StoreError {
    StoreError::NotFound {
        workflow: workflow.to_owned(),
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn claim<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        let now = Instant::now();
        let claim = self.with(|map| {
            // Look up before inserting: `entry` would allocate the id on every claim.
            if !map.contains_key(key.workflow()) {
                map.insert(key.workflow().to_owned(), Workflow::new());
            }
            let Some(workflow) = map.get_mut(key.workflow()) else {
                // Cannot happen (inserted above under the same lock); claiming nothing is the
                // safe answer if it ever did.
                return Claim::Busy {
                    lease_remaining: Duration::ZERO,
                };
            };
            workflow.updated_at = SystemTime::now();
            let lease_until = now
                .checked_add(lease)
                .unwrap_or(now + Duration::from_secs(86_400 * 365));
            let Some(step) = workflow.steps.iter_mut().find(|s| s.step == key.step()) else {
                workflow.steps.push(Step {
                    step: key.step().to_owned(),
                    owner: Some(owner.to_owned()),
                    lease_until,
                    answer: None,
                    started_at: SystemTime::now(),
                });
                return Claim::Claimed;
            };
            if let Some(answer) = &step.answer {
                Claim::Done(answer.clone())
            } else if step.owner.is_some() && step.lease_until > now {
                Claim::Busy {
                    lease_remaining: step.lease_until - now,
                }
            } else {
                step.owner = Some(owner.to_owned());
                step.lease_until = lease_until;
                Claim::Claimed
            }
        });
        Self::ready(Ok(claim))
    }

    fn renew<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, ()> {
        let result = self.with(|map| {
            let step = Self::step_mut(map, key, owner)?;
            step.lease_until = Instant::now() + lease;
            Ok(())
        });
        Self::ready(result)
    }

    fn complete<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        response: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        let result = self.with(|map| {
            let step = Self::step_mut(map, key, owner)?;
            step.owner = None;
            step.answer = Some(StoredAnswer {
                response,
                completed_at: SystemTime::now(),
            });
            Ok(())
        });
        Self::ready(result)
    }

    fn release<'a>(&'a self, key: &'a StepKey, owner: &'a str) -> StoreFuture<'a, ()> {
        self.with(|map| {
            if let Some(workflow) = map.get_mut(key.workflow()) {
                workflow.steps.retain(|s| {
                    !(s.step == key.step()
                        && s.answer.is_none()
                        && s.owner.as_deref() == Some(owner))
                });
            }
        });
        Self::ready(Ok(()))
    }

    fn save<'a>(
        &'a self,
        workflow: &'a str,
        phase: &'a str,
        state: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        if let Err(error) = check_workflow(workflow) {
            return Self::ready(Err(error.into()));
        }
        self.with(|map| {
            let entry = map.entry(workflow.to_owned()).or_insert_with(Workflow::new);
            entry.phase = Some(phase.to_owned());
            entry.state = Some(state);
            entry.updated_at = SystemTime::now();
        });
        Self::ready(Ok(()))
    }

    fn resume<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, WorkflowState> {
        let result = self.with(|map| {
            let entry = map.get(workflow).ok_or_else(|| not_found(workflow))?;
            Ok(WorkflowState {
                summary: entry.summary(workflow),
                state: entry.state.clone(),
                steps: entry
                    .steps
                    .iter()
                    .map(|s| StepRecord {
                        step: s.step.clone(),
                        status: if s.answer.is_some() {
                            StepStatus::Done
                        } else {
                            StepStatus::Running
                        },
                        response_len: s.answer.as_ref().map_or(0, |a| a.response.len() as u64),
                        started_at: s.started_at,
                        completed_at: s.answer.as_ref().map(|a| a.completed_at),
                    })
                    .collect(),
            })
        });
        Self::ready(result)
    }

    fn answer<'a>(&'a self, key: &'a StepKey) -> StoreFuture<'a, Option<StoredAnswer>> {
        let answer = self.with(|map| {
            map.get(key.workflow())
                .and_then(|wf| wf.steps.iter().find(|s| s.step == key.step()))
                .and_then(|s| s.answer.clone())
        });
        Self::ready(Ok(answer))
    }

    fn list(&self) -> StoreFuture<'_, Vec<WorkflowSummary>> {
        let mut list: Vec<WorkflowSummary> =
            self.with(|map| map.iter().map(|(id, wf)| wf.summary(id)).collect());
        list.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then(a.workflow.cmp(&b.workflow))
        });
        Self::ready(Ok(list))
    }

    fn finish<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        let result = self.with(|map| {
            let entry = map.get_mut(workflow).ok_or_else(|| not_found(workflow))?;
            entry.status = WorkflowStatus::Finished;
            entry.updated_at = SystemTime::now();
            Ok(())
        });
        Self::ready(result)
    }

    fn interrupt<'a>(&'a self, workflow: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
        let result = self.with(|map| {
            let entry = map.get_mut(workflow).ok_or_else(|| not_found(workflow))?;
            entry.interrupted = Some(reason.to_owned());
            entry.updated_at = SystemTime::now();
            Ok(())
        });
        Self::ready(result)
    }

    fn forget<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        let result = self.with(|map| {
            map.remove(workflow)
                .map(drop)
                .ok_or_else(|| not_found(workflow))
        });
        Self::ready(result)
    }

    fn prune(&self, retention: Retention) -> StoreFuture<'_, u64> {
        let removed = self.with(|map| {
            let before = map.len();
            if let Some(max_age) = retention.max_age {
                let now = SystemTime::now();
                map.retain(|_, wf| {
                    now.duration_since(wf.updated_at)
                        .map_or(true, |age| age <= max_age)
                });
            }
            if let Some(keep) = retention.max_workflows
                && map.len() > keep
            {
                let mut by_age: Vec<(SystemTime, String)> = map
                    .iter()
                    .map(|(id, wf)| (wf.updated_at, id.clone()))
                    .collect();
                by_age.sort_by(|a, b| b.cmp(a));
                for (_, id) in by_age.into_iter().skip(keep) {
                    map.remove(&id);
                }
            }
            (before - map.len()) as u64
        });
        Self::ready(Ok(removed))
    }
}
