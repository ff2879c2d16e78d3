//! The state one breaker's layer, services, futures and handles share behind one `Arc`.

use std::fmt;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::classify::OutcomeKind;
use crate::clock::{Nanos, Origin};
use crate::events::{Event, EventBus};
use crate::sync::CachePadded;

use super::config::BreakerConfig;
use super::health::{self, HealthCheck};
use super::state::{BreakerState, Core, Transition};

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) origin: Origin,
    /// On lines of its own: the `Arc` header next to it is written on every call (the future's
    /// clone), and the state the core holds is read on every call by every thread.
    pub(crate) core: CachePadded<Core>,
    pub(crate) health_check: Option<Arc<dyn HealthCheck>>,
    watch: watch::Sender<BreakerState>,
    /// Where transitions are published; read only when announcing one.
    events: Mutex<Option<EventBus>>,
    calls: OutcomeCounters,
    state_gauge: Gauge,
}

/// `steadfast_calls_total{agent, outcome}` handles, registered once so the hot path only
/// increments.
struct OutcomeCounters {
    by_kind: [Counter; 5],
    rejected: Counter,
}

impl OutcomeCounters {
    fn new(agent: &Arc<str>) -> Self {
        let counter = |outcome: &'static str| metrics::counter!("steadfast_calls_total", "agent" => agent.to_string(), "outcome" => outcome);
        OutcomeCounters {
            by_kind: OutcomeKind::ALL.map(|kind| counter(kind.as_str())),
            rejected: counter("rejected"),
        }
    }
}

impl Shared {
    pub(crate) fn new(
        name: Arc<str>,
        config: BreakerConfig,
        health_check: Option<Arc<dyn HealthCheck>>,
    ) -> Arc<Self> {
        let core = Core::new(config);
        core.set_uses_health_check(health_check.is_some());
        let state_gauge = metrics::gauge!("steadfast_breaker_state", "agent" => name.to_string());
        state_gauge.set(BreakerState::Closed.gauge_value());
        Arc::new(Shared {
            calls: OutcomeCounters::new(&name),
            state_gauge,
            name,
            origin: Origin::now(),
            core: CachePadded(core),
            health_check,
            watch: watch::Sender::new(BreakerState::Closed),
            events: Mutex::new(None),
        })
    }

    #[inline]
    pub(crate) fn now(&self) -> Nanos {
        self.origin.elapsed()
    }

    #[inline]
    pub(crate) fn count_call(&self, kind: OutcomeKind) {
        self.calls.by_kind[kind as usize].increment(1);
    }

    pub(crate) fn count_rejection(&self) {
        self.calls.rejected.increment(1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.watch.subscribe()
    }

    pub(crate) fn events(&self) -> Option<EventBus> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes transitions on `bus` from now on; with `only_if_unset`, keeps a bus given
    /// earlier.
    pub(crate) fn set_events(&self, bus: Option<EventBus>, only_if_unset: bool) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !(only_if_unset && events.is_some()) {
            *events = bus;
        }
    }

    pub(crate) fn next_probe_instant(&self) -> Option<Instant> {
        self.core.next_probe().map(|at| self.origin.instant_at(at))
    }

    pub(crate) fn instant_at(&self, at: Nanos) -> Instant {
        self.origin.instant_at(at)
    }

    /// Tells the world about a transition: tracing, metrics, watchers, and the health-check task
    /// when the breaker has just opened.
    pub(crate) fn announce(self: &Arc<Self>, transition: &Transition) {
        let (from, to, reason) = (
            transition.from.as_str(),
            transition.to.as_str(),
            transition.reason.as_str(),
        );
        match transition.to {
            BreakerState::Open | BreakerState::ForcedOpen => tracing::warn!(
                agent = %self.name, from, to, reason, open_for = ?transition.open_for,
                "circuit opened"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(agent = %self.name, from, to, reason, "circuit half-open: probing");
            }
            BreakerState::Closed | BreakerState::Disabled => {
                tracing::info!(agent = %self.name, from, to, reason, "circuit closed");
            }
        }
        metrics::counter!(
            "steadfast_breaker_transitions_total",
            "agent" => self.name.to_string(), "from" => from, "to" => to
        )
        .increment(1);
        self.state_gauge.set(transition.to.gauge_value());
        self.watch.send_replace(transition.to);
        if let Some(bus) = self.events() {
            for event in transition_events(&self.name, transition) {
                bus.emit(event);
            }
        }
        if transition.to == BreakerState::Open && self.health_check.is_some() {
            self.spawn_health_check(transition.generation);
        }
    }

    fn spawn_health_check(self: &Arc<Self>, generation: u64) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(health::run(Arc::downgrade(self), generation));
        } else {
            tracing::warn!(
                agent = %self.name,
                "no tokio runtime to run the health check; probes start when the open time elapses"
            );
            self.core.stop_awaiting_health_check();
        }
    }
}

/// The events a transition publishes, in order: the breaker's own event, then, when the agent
/// stops (or starts again) taking full traffic, `AgentUnhealthy` (or `AgentRecovered`).
pub(crate) fn transition_events(
    agent: &Arc<str>,
    transition: &Transition,
) -> impl Iterator<Item = Event> {
    let agent = agent.clone();
    let Transition {
        from, to, reason, ..
    } = *transition;
    let breaker_event = match to {
        BreakerState::Open | BreakerState::ForcedOpen => Event::CircuitOpened {
            agent: agent.clone(),
            from,
            state: to,
            reason,
            open_for: transition.open_for,
        },
        BreakerState::HalfOpen => Event::CircuitHalfOpen {
            agent: agent.clone(),
            reason,
        },
        BreakerState::Closed | BreakerState::Disabled => Event::CircuitClosed {
            agent: agent.clone(),
            from,
            state: to,
            reason,
        },
    };
    let was_serving = matches!(from, BreakerState::Closed | BreakerState::Disabled);
    let serves = matches!(to, BreakerState::Closed | BreakerState::Disabled);
    let health_event = match (was_serving, to) {
        (true, BreakerState::Open | BreakerState::ForcedOpen) => Some(Event::AgentUnhealthy {
            agent,
            reason: reason.as_str(),
        }),
        (false, _) if serves => Some(Event::AgentRecovered {
            agent,
            reason: reason.as_str(),
        }),
        _ => None,
    };
    std::iter::once(breaker_event).chain(health_event)
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("agent", &self.name)
            .field("state", &self.core.state())
            .field("config", self.core.config())
            .field("health_check", &self.health_check.is_some())
            .finish_non_exhaustive()
    }
}
