//! [`BulkheadHandle`] and [`BulkheadSnapshot`]: what the registry and status pages see.

use std::fmt;
use std::sync::Arc;

use super::config::Readiness;
use super::shared::Shared;

/// A handle on an agent's bulkhead: calls in flight, waiters, the limit. Cheap to clone.
#[derive(Clone)]
pub struct BulkheadHandle {
    pub(crate) shared: Arc<Shared>,
}

impl BulkheadHandle {
    /// The agent.
    pub fn agent(&self) -> &str {
        &self.shared.reporter.name
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u32 {
        self.shared.permits().in_flight()
    }

    /// Calls (or services, in readiness mode) waiting for a permit now.
    pub fn waiting(&self) -> u32 {
        self.shared.waiters()
    }

    /// The limit in force: `max_concurrent`, or where the adaptive limit stands.
    pub fn limit(&self) -> u32 {
        self.shared.permits().limit()
    }

    /// Whether the limit is adaptive.
    pub fn is_adaptive(&self) -> bool {
        self.shared.is_adaptive()
    }

    /// Whether `other` is the same bulkhead.
    pub fn same_bulkhead(&self, other: &BulkheadHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The bulkhead at this moment.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        let config = &self.shared.config;
        BulkheadSnapshot {
            limit: self.limit(),
            max_concurrent: config.max_concurrent,
            min_limit: config.adaptive.as_ref().map(|adaptive| adaptive.min_limit),
            in_flight: self.in_flight(),
            waiting: self.waiting(),
            max_queue: config.max_queue,
            adaptive: self.is_adaptive(),
            waits_in_poll_ready: config.readiness == Readiness::WaitInPollReady,
        }
    }
}

impl fmt::Debug for BulkheadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.shared, f)
    }
}

/// An agent's bulkhead at one moment, as the registry snapshot shows it. Refusals are counted
/// in the agent's counters (`bulkhead_rejected`, `concurrency_limit_lowered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BulkheadSnapshot {
    /// The limit in force (with an adaptive limit: where it stands now).
    pub limit: u32,
    /// The configured ceiling.
    pub max_concurrent: u32,
    /// The adaptive limit's floor, when adaptive.
    pub min_limit: Option<u32>,
    /// Calls in flight.
    pub in_flight: u32,
    /// Calls (or services) waiting for a permit.
    pub waiting: u32,
    /// The queue's size (0: no queue).
    pub max_queue: u32,
    /// Whether the limit is adaptive.
    pub adaptive: bool,
    /// Whether `poll_ready` waits for a permit (classic tower mode).
    pub waits_in_poll_ready: bool,
}
