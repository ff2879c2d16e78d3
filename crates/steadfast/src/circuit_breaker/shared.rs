//! The state one breaker's layer, services, futures and handles share behind one `Arc`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::agent::{CallCounters, Reporter};
use crate::clock::{Nanos, Origin};
use crate::events::Event;
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
    /// Set (or replaced) by `CircuitBreakerLayer::health_check` in place, so that builder
    /// calls commute; read only when a check is due.
    health_check: RwLock<Option<Arc<dyn HealthCheck>>>,
    watch: watch::Sender<BreakerState>,
    /// The agent's one event path: transitions.
    pub(crate) reporter: Arc<Reporter>,
    /// `steadfast_calls_total` and `steadfast_attempt_duration_seconds`, counted per call.
    pub(crate) calls: CallCounters,
    /// When the last announced transition happened (the breaker's clock): the time spent in
    /// the state it left is `steadfast_breaker_state_seconds_total`.
    entered: AtomicU64,
}

impl Shared {
    pub(crate) fn new(reporter: Arc<Reporter>, config: BreakerConfig) -> Arc<Self> {
        let calls = reporter.breaker_created();
        Arc::new(Shared {
            calls,
            name: reporter.name.clone(),
            origin: Origin::now(),
            core: CachePadded(Core::new(config)),
            health_check: RwLock::new(None),
            watch: watch::Sender::new(BreakerState::Closed),
            reporter,
            entered: AtomicU64::new(0),
        })
    }

    #[inline]
    pub(crate) fn now(&self) -> Nanos {
        self.origin.elapsed()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.watch.subscribe()
    }

    pub(crate) fn health_check(&self) -> Option<Arc<dyn HealthCheck>> {
        self.health_check
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_health_check(&self, check: Arc<dyn HealthCheck>) {
        *self
            .health_check
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(check);
        self.core.set_uses_health_check(true);
    }

    pub(crate) fn next_probe_instant(&self) -> Option<Instant> {
        self.core.next_probe().map(|at| self.origin.instant_at(at))
    }

    pub(crate) fn instant_at(&self, at: Nanos) -> Instant {
        self.origin.instant_at(at)
    }

    /// Tells the world about a transition: the agent's event path (counters, metrics, log,
    /// bus), watchers, and the health-check task when the breaker has just opened.
    pub(crate) fn announce(self: &Arc<Self>, transition: &Transition) {
        let now = self.now();
        let entered = self.entered.swap(now, Ordering::Relaxed);
        self.reporter.breaker_time_in_state(
            transition.from.gauge_value() as usize,
            now.saturating_sub(entered),
        );
        self.watch.send_replace(transition.to);
        for event in transition_events(&self.name, transition) {
            self.reporter.emit(event);
        }
        if transition.to == BreakerState::Open && self.core.uses_health_check() {
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
            from,
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
            .field("health_check", &self.core.uses_health_check())
            .finish_non_exhaustive()
    }
}
