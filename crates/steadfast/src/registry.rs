//! [`Registry`]: every named agent in one place, for status pages, metrics, events and other
//! layers.
//!
//! A registry holds, per agent, its breaker handle, a [`Health`] derived from it, counters the
//! other layers fill ([`AgentCounters`]: retries, fallbacks, dead letters, DLQ depth), and the
//! [`EventBus`] every registered layer publishes on.
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use steadfast::prelude::*;
//! use steadfast::registry::Health;
//!
//! let registry = Registry::new();
//! let _layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("gpt").register(&registry);
//! registry.counters("gpt").record_retry();
//! let snapshot = registry.snapshot();
//! assert_eq!(snapshot.agents[0].name, "gpt");
//! assert_eq!(snapshot.agents[0].health, Health::Healthy);
//! assert_eq!(snapshot.agents[0].counters.retries, 1);
//! assert_eq!(registry.health(), Health::Healthy);
//! # }
//! ```
//!
//! # Health
//!
//! [`Registry::agent_health`] derives an agent's [`Health`] from its breaker:
//!
//! | breaker | failure rate over the window | health |
//! |---|---|---|
//! | `open`, `forced_open` | any | `unhealthy` |
//! | `half_open` | any | `degraded` |
//! | `closed` | at or over [`HealthPolicy::degraded_failure_rate`] (10 % by default), once the window holds `min_calls` | `degraded` |
//! | `closed` | below it, or too few calls to tell | `healthy` |
//! | `disabled` | not watched | `healthy` |
//!
//! An agent without a breaker is `healthy` (nothing says otherwise). The overall
//! [`Registry::health`] is the worst of all agents (`healthy` with no agents).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::{BreakerHandle, BreakerSnapshot, BreakerState};
use crate::events::EventBus;

/// The version of the [`RegistrySnapshot`] JSON schema; bumped on any incompatible change
/// (fields are only ever added within a version).
pub const SNAPSHOT_VERSION: u32 = 1;

/// Named agents, their breakers, health, counters and event bus. Cheap to clone: clones share
/// the same registry.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    agents: RwLock<BTreeMap<String, AgentEntry>>,
    events: EventBus,
    policy: HealthPolicy,
}

#[derive(Clone, Default)]
struct AgentEntry {
    #[cfg(feature = "circuit-breaker")]
    breaker: Option<BreakerHandle>,
    counters: Arc<AgentCounters>,
}

/// How [`Health`] is derived from a breaker (see the [module docs](self#health)).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct HealthPolicy {
    /// A closed breaker whose window failure rate reaches this (0..=1) is `degraded`.
    pub degraded_failure_rate: f64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            degraded_failure_rate: 0.1,
        }
    }
}

impl HealthPolicy {
    /// Marks a closed breaker `degraded` from this failure rate on (clamped to 0..=1).
    #[must_use]
    pub fn degraded_failure_rate(mut self, rate: f64) -> Self {
        self.degraded_failure_rate = if rate.is_nan() {
            HealthPolicy::default().degraded_failure_rate
        } else {
            rate.clamp(0.0, 1.0)
        };
        self
    }

    /// The health of a breaker in `state` whose window failure rate is `failure_rate` (`None`
    /// until the window holds `min_calls`).
    #[cfg(feature = "circuit-breaker")]
    pub fn health_of(&self, state: BreakerState, failure_rate: Option<f64>) -> Health {
        match state {
            BreakerState::Open | BreakerState::ForcedOpen => Health::Unhealthy,
            BreakerState::HalfOpen => Health::Degraded,
            BreakerState::Disabled => Health::Healthy,
            BreakerState::Closed => match failure_rate {
                Some(rate) if rate > 0.0 && rate >= self.degraded_failure_rate => Health::Degraded,
                _ => Health::Healthy,
            },
        }
    }
}

/// How well an agent is doing. Ordered from best to worst, so `max` is the worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Health {
    /// Taking full traffic, failing rarely.
    Healthy,
    /// Taking traffic but failing often, or being probed after an outage.
    Degraded,
    /// Refusing calls: its breaker is open.
    Unhealthy,
}

impl Health {
    /// The stable lower-case name used in JSON and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters the retry, fallback, degrade and dead-letter layers fill for one agent (get them with
/// [`Registry::counters`]). Lock-free; every method is one relaxed atomic operation.
#[derive(Debug, Default)]
pub struct AgentCounters {
    retries: AtomicU64,
    retries_exhausted: AtomicU64,
    fallbacks: AtomicU64,
    dead_lettered: AtomicU64,
    dlq_depth: AtomicU64,
    degraded: AtomicU64,
}

impl AgentCounters {
    /// A retry was scheduled.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A retry layer gave up.
    pub fn record_retries_exhausted(&self) {
        self.retries_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    /// A fallback answered instead of the agent.
    pub fn record_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// A degradation layer answered with a degraded answer instead of the agent's.
    pub fn record_degraded(&self) {
        self.degraded.fetch_add(1, Ordering::Relaxed);
    }

    /// A request for the agent was dead-lettered.
    pub fn record_dead_letter(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// The agent's dead-letter queue now holds `depth` entries.
    pub fn set_dlq_depth(&self, depth: u64) {
        self.dlq_depth.store(depth, Ordering::Relaxed);
    }

    /// The counters at this moment.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            retries: self.retries.load(Ordering::Relaxed),
            retries_exhausted: self.retries_exhausted.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dlq_depth: self.dlq_depth.load(Ordering::Relaxed),
            degraded: self.degraded.load(Ordering::Relaxed),
        }
    }
}

/// [`AgentCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CountersSnapshot {
    /// Retries scheduled.
    pub retries: u64,
    /// Calls whose retries ran out.
    pub retries_exhausted: u64,
    /// Calls a fallback answered.
    pub fallbacks: u64,
    /// Requests dead-lettered.
    pub dead_lettered: u64,
    /// Entries in the agent's dead-letter queue.
    pub dlq_depth: u64,
    /// Calls a degradation layer answered with a degraded answer.
    pub degraded: u64,
}

/// [`Registry::wait_for_healthy`] gave up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "agent `{agent}` did not become healthy within {waited:?} (it is {health}); check its \
     breaker and recent failures in the registry snapshot"
)]
#[non_exhaustive]
pub struct NotHealthy {
    /// The agent.
    pub agent: String,
    /// Its health when the wait ended.
    pub health: Health,
    /// How long it was waited for.
    pub waited: Duration,
}

/// How often [`Registry::wait_for_healthy`] re-derives health between breaker transitions (the
/// failure rate moves without one).
const HEALTH_POLL: Duration = Duration::from_millis(250);

impl Registry {
    /// An empty registry with the default [`HealthPolicy`] and an event bus of
    /// [`crate::events::DEFAULT_CAPACITY`].
    pub fn new() -> Self {
        Registry::default()
    }

    /// An empty registry deriving health with `policy` and an event bus of
    /// `event_capacity` events.
    pub fn with_policy(policy: HealthPolicy, event_capacity: usize) -> Self {
        Registry {
            inner: Arc::new(Inner {
                agents: RwLock::default(),
                events: EventBus::new(event_capacity),
                policy,
            }),
        }
    }

    /// The bus the registered layers publish their events on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The health policy.
    pub fn health_policy(&self) -> HealthPolicy {
        self.inner.policy
    }

    /// Registers a breaker under its name, replacing an earlier one of that name. The breaker
    /// publishes its transitions on this registry's [bus](Self::events) unless it was given
    /// one of its own.
    #[cfg(feature = "circuit-breaker")]
    pub fn register_breaker(&self, handle: BreakerHandle) {
        handle
            .shared
            .set_events(Some(self.inner.events.clone()), true);
        let mut agents = self.write();
        let name = handle.name().to_owned();
        agents.entry(name).or_default().breaker = Some(handle);
    }

    /// The breaker registered for `agent`.
    #[cfg(feature = "circuit-breaker")]
    pub fn breaker(&self, agent: &str) -> Option<BreakerHandle> {
        self.read()
            .get(agent)
            .and_then(|entry| entry.breaker.clone())
    }

    /// The counters of `agent` (registering the agent if it is new), for layers to fill.
    pub fn counters(&self, agent: &str) -> Arc<AgentCounters> {
        if let Some(entry) = self.read().get(agent) {
            return entry.counters.clone();
        }
        self.write()
            .entry(agent.to_owned())
            .or_default()
            .counters
            .clone()
    }

    /// The names of the registered agents, sorted.
    pub fn agents(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// The health of `agent` (see the [module docs](self#health)); `None` if it is unknown.
    pub fn agent_health(&self, agent: &str) -> Option<Health> {
        self.read().get(agent).map(|entry| self.entry_health(entry))
    }

    /// The worst health of all agents (`Healthy` when there are none): what a load balancer's
    /// health check should see.
    pub fn health(&self) -> Health {
        self.read()
            .values()
            .map(|entry| self.entry_health(entry))
            .max()
            .unwrap_or(Health::Healthy)
    }

    #[cfg_attr(not(feature = "circuit-breaker"), allow(clippy::unused_self))]
    fn entry_health(&self, entry: &AgentEntry) -> Health {
        #[cfg(feature = "circuit-breaker")]
        if let Some(breaker) = &entry.breaker {
            return self
                .inner
                .policy
                .health_of(breaker.state(), breaker.failure_rate());
        }
        #[cfg(not(feature = "circuit-breaker"))]
        let _ = entry;
        Health::Healthy
    }

    /// Waits until `agent` is [`Healthy`](Health::Healthy), for at most `timeout`. Wakes on
    /// every breaker transition and re-checks every 250 ms (the failure rate moves without
    /// one). An agent not registered yet counts as not healthy.
    pub async fn wait_for_healthy(&self, agent: &str, timeout: Duration) -> Result<(), NotHealthy> {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        #[cfg(feature = "circuit-breaker")]
        let mut watch = None;
        loop {
            let health = self.agent_health(agent);
            if health == Some(Health::Healthy) {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(NotHealthy {
                    agent: agent.to_owned(),
                    health: health.unwrap_or(Health::Unhealthy),
                    waited: now.saturating_duration_since(started),
                });
            }
            let wake_at = deadline.min(now + HEALTH_POLL);
            #[cfg(feature = "circuit-breaker")]
            {
                if watch.is_none() {
                    watch = self.breaker(agent).map(|breaker| breaker.watch());
                }
                if let Some(receiver) = watch.as_mut() {
                    receiver.mark_unchanged();
                    let _ = tokio::time::timeout_at(wake_at, receiver.changed()).await;
                    continue;
                }
            }
            tokio::time::sleep_until(wake_at).await;
        }
    }

    /// Every agent's state at this moment.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let agents: Vec<AgentSnapshot> = self
            .read()
            .iter()
            .map(|(name, entry)| AgentSnapshot {
                name: name.clone(),
                health: self.entry_health(entry),
                #[cfg(feature = "circuit-breaker")]
                breaker: entry.breaker.as_ref().map(BreakerHandle::snapshot),
                counters: entry.counters.snapshot(),
            })
            .collect();
        RegistrySnapshot {
            version: SNAPSHOT_VERSION,
            health: agents
                .iter()
                .map(|agent| agent.health)
                .max()
                .unwrap_or(Health::Healthy),
            agents,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, AgentEntry>> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, AgentEntry>> {
        self.inner
            .agents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("agents", &self.agents())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// Every registered agent at one moment. With the `serde` feature it serialises to the status
/// JSON documented in `docs/operations.md` (schema version [`SNAPSHOT_VERSION`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RegistrySnapshot {
    /// Schema version.
    pub version: u32,
    /// The worst health of all agents.
    pub health: Health,
    /// The agents, sorted by name.
    pub agents: Vec<AgentSnapshot>,
}

impl RegistrySnapshot {
    /// The snapshot as pretty JSON.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a registry snapshot always serialises")
    }
}

/// One agent in a [`RegistrySnapshot`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AgentSnapshot {
    /// The agent's name.
    pub name: String,
    /// Its health.
    pub health: Health,
    /// Its breaker, if it has one.
    #[cfg(feature = "circuit-breaker")]
    pub breaker: Option<BreakerSnapshot>,
    /// What the retry, fallback and dead-letter layers counted.
    pub counters: CountersSnapshot,
}

#[cfg(all(feature = "serde", feature = "circuit-breaker"))]
mod persist;
#[cfg(all(feature = "serde", feature = "circuit-breaker"))]
pub use persist::{STATE_FILE_VERSION, SavedState, StateFileError};

#[cfg(test)]
mod tests;
