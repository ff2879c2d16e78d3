//! Where a layer reports its decisions: an optional [`EventBus`] and the agent's
//! [`AgentCounters`] in a [`Registry`]. Shared by the retry, fallback, degrade and dead-letter
//! layers so they all wire `register` / `events` the same way the circuit breaker does.

use std::fmt;
use std::sync::Arc;

use crate::events::{Event, EventBus};
use crate::registry::{AgentCounters, Registry};

/// What a layer's builder collected: a bus given with `events(&bus)` and a registry given with
/// `register(&registry)`. Resolved against the agent's name only when the layer is built, so
/// `named`, `register` and `events` may come in any order.
#[derive(Clone, Default)]
pub(crate) struct ReportTo {
    bus: Option<EventBus>,
    registry: Option<Registry>,
}

impl ReportTo {
    pub(crate) fn set_bus(&mut self, bus: &EventBus) {
        self.bus = Some(bus.clone());
    }

    pub(crate) fn set_registry(&mut self, registry: &Registry) {
        self.registry = Some(registry.clone());
    }

    /// The reporter for `agent`: the explicit bus, else the registry's; the registry's
    /// counters for `agent` (registering the agent).
    pub(crate) fn resolve(&self, agent: &str) -> Reporter {
        Reporter {
            bus: self
                .bus
                .clone()
                .or_else(|| self.registry.as_ref().map(|r| r.events().clone())),
            counters: self.registry.as_ref().map(|r| r.counters(agent)),
        }
    }
}

impl fmt::Debug for ReportTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportTo")
            .field("bus", &self.bus.is_some())
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

/// A built layer's reporting ends. Only ever touched on decision paths (a retry, a fallback,
/// a degraded answer, a dead letter), never on a success.
#[derive(Clone, Default)]
pub(crate) struct Reporter {
    bus: Option<EventBus>,
    counters: Option<Arc<AgentCounters>>,
}

impl Reporter {
    /// Emits the event `make` builds, if there is a bus (nothing is built otherwise), and
    /// bumps the counters with `count`, if registered.
    #[inline]
    pub(crate) fn report(&self, make: impl FnOnce() -> Event, count: impl FnOnce(&AgentCounters)) {
        if let Some(counters) = &self.counters {
            count(counters);
        }
        if let Some(bus) = &self.bus {
            bus.emit(make());
        }
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("bus", &self.bus.is_some())
            .field("registered", &self.counters.is_some())
            .finish()
    }
}
