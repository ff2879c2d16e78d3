//! [`Registry`]: every named agent in one place, for status pages, metrics, events and other
//! layers.
//!
//! A registry makes the [`Agent`]s (the same name always gives the same agent) and holds, per
//! agent, its breaker handle, a [`Health`] derived from it, and the counters its layers' events
//! filled ([`CountersSnapshot`]). Its [`EventBus`] carries every agent's events.
//!
//! ```
//! # #[cfg(all(feature = "circuit-breaker", feature = "retry"))] {
//! use std::time::Duration;
//! use steadfast::prelude::*;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let registry = Registry::new();
//! let gpt = registry.agent("gpt");
//! let config = RetryConfig::builder().max_retries(1).base(Duration::from_millis(10)).build().unwrap();
//! let flaky = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let agent = BackoffRetryLayer::new(&gpt, config).layer(service_fn(move |_: ()| {
//!     let first = flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
//!     async move { if first { Err::<(), BoxError>("overloaded".into()) } else { Ok(()) } }
//! }));
//! agent.oneshot(()).await.unwrap();
//!
//! let snapshot = registry.snapshot();
//! assert_eq!(snapshot.agents[0].name, "gpt");
//! assert_eq!(snapshot.agents[0].health, Health::Healthy);
//! assert_eq!(snapshot.agents[0].counters.retries, 1);
//! # }
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
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::agent::{Agent, Scope};
#[cfg(feature = "bulkhead")]
use crate::bulkhead::{BulkheadHandle, BulkheadSnapshot};
#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::{BreakerHandle, BreakerSnapshot, BreakerState};
use crate::events::{Event, EventBus};

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
    agents: RwLock<BTreeMap<Arc<str>, Arc<Scope>>>,
    events: EventBus,
    policy: HealthPolicy,
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

/// What an agent's layers counted, from their [events](crate::events) (and, for `primary`, the
/// fallback layer's successes), at one moment. Each field matches one metric series; see the
/// table in [`crate::events`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CountersSnapshot {
    /// Retries scheduled.
    pub retries: u64,
    /// Calls whose retries ran out (`max_retries`).
    pub retries_exhausted: u64,
    /// Retries the retry budget refused.
    pub retry_budget_exhausted: u64,
    /// Calls whose retry deadline passed.
    pub deadlines_exceeded: u64,
    /// Calls through a fallback layer that the primary answered.
    pub primary: u64,
    /// Calls an alternative agent answered.
    pub fallbacks: u64,
    /// Calls the response cache answered.
    pub cache_hits: u64,
    /// Calls a degradation layer answered with a degraded answer.
    pub degraded: u64,
    /// Requests dead-lettered.
    pub dead_lettered: u64,
    /// Requests the dead-letter sink could not keep.
    pub dead_letter_failures: u64,
    /// Entries in the agent's dead-letter queue (set by a `dead_letter::Monitor`).
    pub dlq_depth: u64,
    /// Calls a bulkhead refused because it was full (`BulkheadFull`).
    pub bulkhead_rejected: u64,
    /// Times an adaptive bulkhead lowered its concurrency limit.
    pub concurrency_limit_lowered: u64,
}

/// [`Registry::wait_for_healthy`] gave up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "agent `{agent}` did not become healthy within {waited:?} (it is {health}); check its \
     breaker and recent failures in the registry snapshot"
)]
pub struct NotHealthy {
    agent: String,
    health: Health,
    waited: Duration,
}

impl NotHealthy {
    /// The agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// Its health when the wait ended (`unhealthy` for an agent never made).
    pub fn health(&self) -> Health {
        self.health
    }

    /// How long it was waited for.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// How often [`Registry::wait_for_healthy`] re-derives health between breaker transitions (the
/// failure rate moves without one).
const HEALTH_POLL: Duration = Duration::from_millis(250);

impl Registry {
    /// An empty registry with the default [`HealthPolicy`] and an event bus of
    /// [`crate::events::DEFAULT_CAPACITY`].
    pub fn new() -> Self {
        crate::telemetry::describe();
        Registry::default()
    }

    /// An empty registry deriving health with `policy` and an event bus of
    /// `event_capacity` events.
    pub fn with_policy(policy: HealthPolicy, event_capacity: usize) -> Self {
        crate::telemetry::describe();
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

    /// The agent named `name`, made on first use: the same name always gives the same agent
    /// (its scope: counters, breaker, event path), with the default classifier. Give it its
    /// classifier with [`Agent::classifier`].
    pub fn agent(&self, name: impl Into<Arc<str>>) -> Agent {
        let name = name.into();
        if let Some(scope) = self.read().get(&name) {
            return Agent::from_scope(scope.clone());
        }
        let scope = self
            .write()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Scope::new(name, self.inner.events.clone())))
            .clone();
        Agent::from_scope(scope)
    }

    /// Emits an event that belongs to no agent (a dead-letter queue's alert) on the registry's
    /// bus, with its log line; an agent's event goes through that agent's one event path.
    pub fn emit(&self, event: Event) {
        let scope = event
            .agent()
            .and_then(|name| self.read().get(name).cloned());
        if let Some(scope) = scope {
            scope.reporter.emit(event);
        } else {
            crate::events::trace(&event);
            self.inner.events.emit(event);
        }
    }

    /// The bulkhead of `agent`, if it has one.
    #[cfg(feature = "bulkhead")]
    pub fn bulkhead(&self, agent: &str) -> Option<BulkheadHandle> {
        self.read().get(agent).and_then(|scope| scope.bulkhead())
    }

    /// The breaker of `agent`, if it has one.
    #[cfg(feature = "circuit-breaker")]
    pub fn breaker(&self, agent: &str) -> Option<BreakerHandle> {
        self.read().get(agent).and_then(|scope| scope.breaker())
    }

    /// What the layers of `agent` counted; `None` for an agent never made.
    pub fn counters(&self, agent: &str) -> Option<CountersSnapshot> {
        self.read()
            .get(agent)
            .map(|scope| scope.reporter.counters())
    }

    /// Sets the dead-letter queue depth of `agent`, if it exists (a dead-letter monitor does).
    #[cfg(feature = "dead-letter")]
    pub(crate) fn set_dlq_depth(&self, agent: &str, depth: u64) -> bool {
        match self.read().get(agent) {
            Some(scope) => {
                scope.reporter.set_dlq_depth(depth);
                true
            }
            None => false,
        }
    }

    /// The names of the registered agents, sorted.
    pub fn agents(&self) -> Vec<String> {
        self.read().keys().map(ToString::to_string).collect()
    }

    /// The health of `agent` (see the [module docs](self#health)); `None` if it is unknown.
    pub fn agent_health(&self, agent: &str) -> Option<Health> {
        self.read().get(agent).map(|scope| scope.health(self))
    }

    /// The worst health of all agents (`Healthy` when there are none): what a load balancer's
    /// health check should see.
    pub fn health(&self) -> Health {
        self.read()
            .values()
            .map(|scope| scope.health(self))
            .max()
            .unwrap_or(Health::Healthy)
    }

    /// Waits until `agent` is [`Healthy`](Health::Healthy), for at most `timeout`. Wakes on
    /// every breaker transition and re-checks every 250 ms (the failure rate moves without
    /// one). An agent not registered yet counts as not healthy.
    pub async fn wait_for_healthy(&self, agent: &str, timeout: Duration) -> Result<(), NotHealthy> {
        let started = tokio::time::Instant::now();
        // A timeout past what the clock can hold (`Duration::MAX`) is no timeout.
        let deadline = started.checked_add(timeout);
        #[cfg(feature = "circuit-breaker")]
        let mut watch = None;
        loop {
            let health = self.agent_health(agent);
            if health == Some(Health::Healthy) {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Err(NotHealthy {
                    agent: agent.to_owned(),
                    health: health.unwrap_or(Health::Unhealthy),
                    waited: now.saturating_duration_since(started),
                });
            }
            let wake_at = deadline.map_or(now + HEALTH_POLL, |deadline| {
                deadline.min(now + HEALTH_POLL)
            });
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
            .map(|(name, scope)| AgentSnapshot {
                name: name.to_string(),
                health: scope.health(self),
                #[cfg(feature = "circuit-breaker")]
                breaker: scope.breaker().as_ref().map(BreakerHandle::snapshot),
                #[cfg(feature = "bulkhead")]
                bulkhead: scope.bulkhead().as_ref().map(BulkheadHandle::snapshot),
                counters: scope.reporter.counters(),
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

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Arc<str>, Arc<Scope>>> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Arc<str>, Arc<Scope>>> {
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
    /// Its bulkhead (in-flight calls, queue, the current and configured limits), if it has one.
    #[cfg(feature = "bulkhead")]
    pub bulkhead: Option<BulkheadSnapshot>,
    /// What its layers counted.
    pub counters: CountersSnapshot,
}

#[cfg(all(feature = "serde", feature = "circuit-breaker"))]
mod persist;
#[cfg(all(feature = "serde", feature = "circuit-breaker"))]
pub use persist::{STATE_FILE_VERSION, SavedState, StateFileError};

#[cfg(test)]
mod tests;
