//! [`Registry`]: every named agent in one place, for status pages, metrics and other layers.
//!
//! ```
//! # #[cfg(feature = "circuit-breaker")] {
//! use steadfast::prelude::*;
//!
//! let registry = Registry::new();
//! let _layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("gpt").register(&registry);
//! let snapshot = registry.snapshot();
//! assert_eq!(snapshot.agents[0].name, "gpt");
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::{BreakerHandle, BreakerSnapshot};

/// The version of the [`RegistrySnapshot`] JSON schema; bumped on any incompatible change.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Named agents and their breakers. Cheap to clone: clones share the same registry.
#[derive(Clone, Default)]
pub struct Registry {
    agents: Arc<RwLock<BTreeMap<String, AgentEntry>>>,
}

#[derive(Clone, Default)]
struct AgentEntry {
    #[cfg(feature = "circuit-breaker")]
    breaker: Option<BreakerHandle>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a breaker under its name, replacing an earlier one of that name.
    #[cfg(feature = "circuit-breaker")]
    pub fn register_breaker(&self, handle: BreakerHandle) {
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

    /// The names of the registered agents, sorted.
    pub fn agents(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every agent's state at this moment.
    pub fn snapshot(&self) -> RegistrySnapshot {
        #[cfg_attr(not(feature = "circuit-breaker"), allow(unused_variables))]
        let agents = self
            .read()
            .iter()
            .map(|(name, entry)| AgentSnapshot {
                name: name.clone(),
                #[cfg(feature = "circuit-breaker")]
                breaker: entry.breaker.as_ref().map(BreakerHandle::snapshot),
            })
            .collect();
        RegistrySnapshot {
            version: SNAPSHOT_VERSION,
            agents,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, AgentEntry>> {
        self.agents
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, AgentEntry>> {
        self.agents
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("agents", &self.agents())
            .finish()
    }
}

/// Every registered agent at one moment. With the `serde` feature it serialises to the status
/// JSON documented in `docs/circuit-breaker.md` (schema version [`SNAPSHOT_VERSION`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RegistrySnapshot {
    /// Schema version.
    pub version: u32,
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
    /// Its breaker, if it has one.
    #[cfg(feature = "circuit-breaker")]
    pub breaker: Option<BreakerSnapshot>,
}
