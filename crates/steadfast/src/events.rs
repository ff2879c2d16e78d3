//! [`Event`]s: what the layers decided, on a non-blocking [`EventBus`].
//!
//! Every decision an operator may care about (a breaker opening, a retry, a fallback, a
//! dead letter, an agent turning unhealthy) is an [`Event`]. A layer emits it through its
//! [`Agent`](crate::Agent)'s one event path, which derives everything else from it in one
//! place: the agent's [counters](crate::registry::CountersSnapshot), the `steadfast_*`
//! metrics, one `tracing` event, and a message on the registry's [`EventBus`], a bounded
//! [`tokio::sync::broadcast`] channel. Emitting never blocks, never waits for a subscriber and
//! allocates nothing beyond the event itself (agent names are shared `Arc<str>`, reasons are
//! `&'static str`). A subscriber that falls behind loses the oldest events; each lost event is
//! counted in `steadfast_events_dropped_total` and the subscriber is told how many it missed.
//! Layers report only decisions, never a plain success.
//!
//! | layer | event | counter | metric |
//! |---|---|---|---|
//! | `CircuitBreakerLayer` | [`Event::CircuitOpened`], [`Event::CircuitHalfOpen`], [`Event::CircuitClosed`], then [`Event::AgentUnhealthy`] / [`Event::AgentRecovered`] | (breaker snapshot) | `steadfast_breaker_transitions_total`, `steadfast_breaker_state` |
//! | `BackoffRetryLayer` | [`Event::RetryScheduled`] per retry | `retries` | `steadfast_retries_total` |
//! | | [`Event::RetriesExhausted`] when `max_retries` ran out | `retries_exhausted` | `steadfast_retries_exhausted_total` |
//! | | [`Event::RetryBudgetExhausted`] when the budget refused a retry | `retry_budget_exhausted` | `steadfast_retry_budget_exhausted_total` |
//! | | [`Event::DeadlineExceeded`] when the overall deadline passed | `deadlines_exceeded` | `steadfast_retry_deadline_exceeded_total` |
//! | `HedgeLayer` | [`Event::HedgeSent`] per hedge | - | `steadfast_hedges_total` |
//! | `RateLimitLayer` | [`Event::RateLimited`] per refused call | - | `steadfast_rate_limited_total{limit}` |
//! | | [`Event::AgentPaused`] when a rate-limited answer paused the agent | - | `steadfast_agent_paused_total` |
//! | `FallbackLayer` | [`Event::FallbackUsed`] when an alternative (`source: "fallback"`) or the cache (`source: "cache"`) answered | `fallbacks`, `cache_hits` | `steadfast_served_total{source}` |
//! | `DegradeLayer` | [`Event::Degraded`] per degraded answer | `degraded` | `steadfast_served_total{source="degraded"}` |
//! | `DeadLetterLayer` | [`Event::DeadLettered`] once the sink confirmed the record | `dead_lettered` | `steadfast_dead_letters_total` |
//! | | [`Event::DeadLetterFailed`] when the sink could not keep it | `dead_letter_failures` | `steadfast_dead_letter_failures_total` |
//! | `BulkheadLayer` (adaptive) | [`Event::ConcurrencyLimitLowered`] when overload lowered the limit | `concurrency_limit_lowered` | `steadfast_concurrency_limit_lowered_total` |
//! | | (no event: counted per call) a call refused because the bulkhead was full | `bulkhead_rejected` | `steadfast_bulkhead_rejected_total` |
//! | fleet sync (`steadfast-redis`) | [`Event::FleetSyncLost`] once per outage of the shared store, [`Event::FleetSyncRestored`] when it is back | - | - |
//! | `dead_letter::Monitor` | [`Event::DlqOverThreshold`] at a check over `max_depth` | `dlq_depth` (set per agent) | `steadfast_dlq_depth` |
//!
//! ```
//! use std::sync::Arc;
//! use steadfast::events::{Event, EventBus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bus = EventBus::new(64);
//! let mut events = bus.subscribe();
//! bus.emit(Event::RetriesExhausted { agent: Arc::from("gpt"), attempts: 3, reason: Some("timeout") });
//! let event = events.recv().await.unwrap();
//! assert_eq!(event.agent(), Some("gpt"));
//! assert_eq!(event.name(), "retries_exhausted");
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics::Counter;
use tokio::sync::broadcast;

#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::{BreakerState, TransitionReason};

/// The default capacity of an [`EventBus`]: how many events a subscriber may fall behind
/// before it loses the oldest.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The largest [`EventBus`] capacity: the channel allocates every slot up front, so a larger
/// request is held to this (a subscriber that falls 65,536 events behind is lost anyway).
pub const MAX_CAPACITY: usize = 1 << 16;

/// Something a layer decided. `#[non_exhaustive]`: match with a wildcard arm.
///
/// With the `serde` feature an event serialises as `{"event": "<name>", ...fields}` (the
/// names of [`Event::name`]); durations are seconds (`f64`).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Event {
    /// A breaker opened (`state` is `open`, or `forced_open` when an operator opened it).
    #[cfg(feature = "circuit-breaker")]
    CircuitOpened {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The state it left.
        from: BreakerState,
        /// `open` or `forced_open`.
        state: BreakerState,
        /// Why.
        reason: TransitionReason,
        /// How long it stays open (none when forced open).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::opt_secs"))]
        open_for: Option<Duration>,
    },
    /// A breaker went half-open: probes are admitted.
    #[cfg(feature = "circuit-breaker")]
    CircuitHalfOpen {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The state it left (`open`, or `forced_open` restored).
        from: BreakerState,
        /// Why (open time elapsed, health check passed).
        reason: TransitionReason,
    },
    /// A breaker closed (`state` is `closed`, or `disabled` when an operator disabled it).
    #[cfg(feature = "circuit-breaker")]
    CircuitClosed {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The state it left.
        from: BreakerState,
        /// `closed` or `disabled`.
        state: BreakerState,
        /// Why.
        reason: TransitionReason,
    },
    /// A retry layer will call the agent again after `delay`.
    RetryScheduled {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        /// The wait before it.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::secs"))]
        delay: Duration,
        /// Why the previous attempt failed.
        reason: Option<&'static str>,
    },
    /// A hedge layer sent one more attempt of a slow call to the agent.
    HedgeSent {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The attempt sent (2 for the first hedge).
        attempt: u32,
        /// How long the call had gone without an answer.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::secs"))]
        after: Duration,
    },
    /// A rate-limit layer refused a call on the client side (`RateLimited`): its quota could
    /// not take it within the wait allowed, or the agent is paused.
    RateLimited {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Which quota refused: `requests`, `tokens` or `paused`.
        limit: &'static str,
    },
    /// The agent answered rate-limited with a wait, and its rate-limit layer paused calls to it.
    AgentPaused {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// How long no call goes to it.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::secs"))]
        pause: Duration,
    },
    /// A retry layer gave up.
    RetriesExhausted {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        reason: Option<&'static str>,
    },
    /// A retry layer did not retry because the retry budget was spent.
    RetryBudgetExhausted {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Attempts made.
        attempts: u32,
    },
    /// A retry layer's overall deadline passed (during an attempt, or before a retry's wait
    /// could end).
    DeadlineExceeded {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Attempts made.
        attempts: u32,
    },
    /// A fallback answered instead of the agent.
    FallbackUsed {
        /// The agent that failed.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Which alternative answered (its agent's name, or `cache`).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        fallback: Arc<str>,
        /// `fallback` for an alternative agent, `cache` for the response cache.
        source: &'static str,
        /// Why the agent's answer was not used.
        reason: Option<&'static str>,
    },
    /// A degradation layer answered with a degraded answer instead of the agent's: `from` is
    /// `"primary"`, `to` is `"degraded"`, `reason` what failed (`"shed"`, `"timeout"`,
    /// `"circuit open"`, `"shutdown"`, ... or `"error"`). Reserved as well for a service moving
    /// between degradation levels (`from`/`to` are then level names).
    Degraded {
        /// The agent (or service) whose level changed.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The level it left.
        from: &'static str,
        /// The level it is in now.
        to: &'static str,
        /// Why.
        reason: Option<&'static str>,
    },
    /// A request was written to a dead-letter queue.
    DeadLettered {
        /// The agent the request was for.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Why (`retries_exhausted`, `circuit_open`, `shutdown`, ...).
        reason: &'static str,
    },
    /// A request's final failure could NOT be dead-lettered (the sink failed): unless the
    /// caller keeps it, it is lost.
    DeadLetterFailed {
        /// The agent the request was for.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Why the call failed.
        reason: &'static str,
    },
    /// The process is going down in an emergency (SIGTERM, SIGINT, a panic, a time or resource
    /// limit): `steadfast::shutdown::Emergency` drained the calls and saved the state; its
    /// recovery notification names the workflows to resume.
    EmergencyShutdown {
        /// Why (`"SIGTERM"`, `"panic: ..."`, `"deadline of 3600s reached"`, ...).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        reason: Arc<str>,
        /// Workflows left open (to resume).
        open_workflows: usize,
        /// Calls cancelled at the drain deadline (dead-lettered by a layer outside the drain).
        cancelled: usize,
    },
    /// A dead-letter queue holds more entries than its alert threshold.
    DlqOverThreshold {
        /// The queue.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        queue: Arc<str>,
        /// Entries in it.
        depth: u64,
        /// The threshold.
        threshold: u64,
    },
    /// A bulkhead's adaptive concurrency limit went down: the agent answered with overload
    /// (a 429, a 503/529, a timeout) or slower than the latency threshold. Increases are not
    /// events (they come one at a time); the limit is in the registry snapshot.
    ConcurrencyLimitLowered {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// The limit before.
        from: u32,
        /// The limit now.
        to: u32,
        /// What the agent answered (the outcome's reason, or `"slow"`).
        reason: &'static str,
    },
    /// Fleet sync (e.g. `steadfast-redis`) lost its shared store: this replica goes on with its
    /// own breakers alone until the store answers again. Emitted once per outage.
    FleetSyncLost {
        /// The fleet (the application's key prefix).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        fleet: Arc<str>,
        /// What failed (`connect`, `connection_lost`, `timeout`, `command`).
        reason: &'static str,
    },
    /// Fleet sync reached its shared store again and resynchronised this replica's breakers.
    FleetSyncRestored {
        /// The fleet (the application's key prefix).
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        fleet: Arc<str>,
    },
    /// An agent became unhealthy (its breaker opened after being closed).
    AgentUnhealthy {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Why.
        reason: &'static str,
    },
    /// An agent that was unhealthy is healthy again (its breaker closed).
    AgentRecovered {
        /// The agent.
        #[cfg_attr(feature = "serde", serde(serialize_with = "ser::arc_str"))]
        agent: Arc<str>,
        /// Why.
        reason: &'static str,
    },
}

impl Event {
    /// The agent the event is about (`None` for queue-level events).
    pub fn agent(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitOpened { agent, .. }
            | Event::CircuitHalfOpen { agent, .. }
            | Event::CircuitClosed { agent, .. } => Some(agent),
            Event::RetryScheduled { agent, .. }
            | Event::HedgeSent { agent, .. }
            | Event::RateLimited { agent, .. }
            | Event::AgentPaused { agent, .. }
            | Event::RetriesExhausted { agent, .. }
            | Event::RetryBudgetExhausted { agent, .. }
            | Event::DeadlineExceeded { agent, .. }
            | Event::DeadLetterFailed { agent, .. }
            | Event::FallbackUsed { agent, .. }
            | Event::Degraded { agent, .. }
            | Event::DeadLettered { agent, .. }
            | Event::ConcurrencyLimitLowered { agent, .. }
            | Event::AgentUnhealthy { agent, .. }
            | Event::AgentRecovered { agent, .. } => Some(agent),
            Event::DlqOverThreshold { .. }
            | Event::FleetSyncLost { .. }
            | Event::FleetSyncRestored { .. }
            | Event::EmergencyShutdown { .. } => None,
        }
    }

    /// The stable snake_case name of the event (the `event` field of its JSON).
    pub const fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitOpened { .. } => "circuit_opened",
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitHalfOpen { .. } => "circuit_half_open",
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitClosed { .. } => "circuit_closed",
            Event::RetryScheduled { .. } => "retry_scheduled",
            Event::HedgeSent { .. } => "hedge_sent",
            Event::RateLimited { .. } => "rate_limited",
            Event::AgentPaused { .. } => "agent_paused",
            Event::RetriesExhausted { .. } => "retries_exhausted",
            Event::RetryBudgetExhausted { .. } => "retry_budget_exhausted",
            Event::DeadlineExceeded { .. } => "deadline_exceeded",
            Event::DeadLetterFailed { .. } => "dead_letter_failed",
            Event::FallbackUsed { .. } => "fallback_used",
            Event::Degraded { .. } => "degraded",
            Event::DeadLettered { .. } => "dead_lettered",
            Event::DlqOverThreshold { .. } => "dlq_over_threshold",
            Event::EmergencyShutdown { .. } => "emergency_shutdown",
            Event::ConcurrencyLimitLowered { .. } => "concurrency_limit_lowered",
            Event::FleetSyncLost { .. } => "fleet_sync_lost",
            Event::FleetSyncRestored { .. } => "fleet_sync_restored",
            Event::AgentUnhealthy { .. } => "agent_unhealthy",
            Event::AgentRecovered { .. } => "agent_recovered",
        }
    }
}

impl fmt::Display for Event {
    #[allow(clippy::too_many_lines)] // one arm per event, each its own sentence
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitOpened {
                agent,
                from,
                state,
                reason,
                open_for,
            } => {
                write!(f, "circuit of `{agent}` {state} (from {from}, {reason})")?;
                if let Some(open_for) = open_for {
                    write!(f, " for {open_for:?}")?;
                }
                Ok(())
            }
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitHalfOpen { agent, reason, .. } => {
                write!(f, "circuit of `{agent}` half-open, probing ({reason})")
            }
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitClosed {
                agent,
                from,
                state,
                reason,
            } => write!(f, "circuit of `{agent}` {state} (from {from}, {reason})"),
            Event::HedgeSent {
                agent,
                attempt,
                after,
            } => write!(
                f,
                "hedging `{agent}`: attempt {attempt} sent after {:.3}s without an answer",
                after.as_secs_f64()
            ),
            Event::RateLimited { agent, limit } => write!(
                f,
                "call to `{agent}` refused by its client-side rate limit ({limit})"
            ),
            Event::AgentPaused { agent, pause } => write!(
                f,
                "`{agent}` answered rate-limited: calls to it paused for {:.3}s",
                pause.as_secs_f64()
            ),
            Event::RetryScheduled {
                agent,
                attempt,
                delay,
                reason,
            } => write!(
                f,
                "retrying `{agent}`: attempt {attempt} in {delay:?} ({})",
                reason.unwrap_or("failed")
            ),
            Event::RetriesExhausted {
                agent,
                attempts,
                reason,
            } => write!(
                f,
                "gave up on `{agent}` after {attempts} attempts ({})",
                reason.unwrap_or("failed")
            ),
            Event::RetryBudgetExhausted { agent, attempts } => write!(
                f,
                "not retrying `{agent}` after {attempts} attempt(s): the retry budget is spent"
            ),
            Event::DeadlineExceeded { agent, attempts } => write!(
                f,
                "gave up on `{agent}` after {attempts} attempt(s): the deadline passed"
            ),
            Event::DeadLetterFailed { agent, reason } => write!(
                f,
                "request for `{agent}` failed ({reason}) and could NOT be dead-lettered"
            ),
            Event::FallbackUsed {
                agent,
                fallback,
                reason,
                ..
            } => write!(
                f,
                "`{fallback}` answered for `{agent}` ({})",
                reason.unwrap_or("failed")
            ),
            Event::Degraded {
                agent,
                from,
                to,
                reason,
            } => write!(
                f,
                "`{agent}` degraded from {from} to {to} ({})",
                reason.unwrap_or("policy")
            ),
            Event::DeadLettered { agent, reason } => {
                write!(f, "request for `{agent}` dead-lettered ({reason})")
            }
            Event::DlqOverThreshold {
                queue,
                depth,
                threshold,
            } => write!(
                f,
                "dead-letter queue `{queue}` holds {depth} entries (threshold {threshold})"
            ),
            Event::ConcurrencyLimitLowered {
                agent,
                from,
                to,
                reason,
            } => write!(f, "limit of `{agent}` lowered: {from} -> {to} ({reason})"),
            Event::FleetSyncLost { fleet, reason } => write!(
                f,
                "fleet sync of `{fleet}` lost its store ({reason}): going on with local state"
            ),
            Event::FleetSyncRestored { fleet } => {
                write!(f, "fleet sync of `{fleet}` reconnected and resynchronised")
            }
            Event::AgentUnhealthy { agent, reason } => {
                write!(f, "agent `{agent}` is unhealthy ({reason})")
            }
            Event::AgentRecovered { agent, reason } => {
                write!(f, "agent `{agent}` recovered ({reason})")
            }
            Event::EmergencyShutdown {
                reason,
                open_workflows,
                cancelled,
            } => write!(
                f,
                "emergency shutdown ({reason}): {cancelled} calls cancelled, {open_workflows} workflows to resume"
            ),
        }
    }
}

impl Event {
    /// How loud the one log line of this event is: failures that lose or refuse work are
    /// warnings (an error when a request is lost), recoveries and routine retries are info
    /// and debug.
    pub fn level(&self) -> tracing::Level {
        match self {
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitOpened { .. } => tracing::Level::WARN,
            Event::AgentUnhealthy { .. }
            | Event::RetriesExhausted { .. }
            | Event::RetryBudgetExhausted { .. }
            | Event::DeadlineExceeded { .. }
            | Event::DeadLettered { .. }
            | Event::DlqOverThreshold { .. }
            | Event::FleetSyncLost { .. } => tracing::Level::WARN,
            Event::DeadLetterFailed { .. } | Event::EmergencyShutdown { .. } => {
                tracing::Level::ERROR
            }
            Event::RetryScheduled { .. } | Event::HedgeSent { .. } | Event::RateLimited { .. } => {
                tracing::Level::DEBUG
            }
            _ => tracing::Level::INFO,
        }
    }
}

/// The one `tracing` event of an [`Event`] (target `steadfast::events`): the event's name, its
/// agent and its text as plain strings, at [`Event::level`].
pub(crate) fn trace(event: &Event) {
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                target: "steadfast::events",
                $level,
                event = event.name(),
                agent = event.agent().unwrap_or(""),
                "{event}"
            )
        };
    }
    match event.level() {
        tracing::Level::ERROR => at!(tracing::Level::ERROR),
        tracing::Level::WARN => at!(tracing::Level::WARN),
        tracing::Level::INFO => at!(tracing::Level::INFO),
        _ => at!(tracing::Level::DEBUG),
    }
}

/// A bounded, non-blocking broadcast of [`Event`]s. Cheap to clone: clones share the channel.
///
/// [`emit`](Self::emit) never blocks and never fails: with no subscriber the event is simply
/// discarded; a subscriber that lags loses the oldest events (counted in
/// `steadfast_events_dropped_total`).
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    sender: broadcast::Sender<Event>,
    capacity: usize,
    dropped: Counter,
    /// Receivers alive, kept here so that emitting with none costs one atomic load instead of
    /// the channel's lock.
    subscribers: Arc<AtomicUsize>,
}

impl EventBus {
    /// A bus whose subscribers may fall `capacity` events behind (at least 1, at most
    /// [`MAX_CAPACITY`]).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        let (sender, _) = broadcast::channel(capacity);
        EventBus {
            inner: Arc::new(BusInner {
                sender,
                capacity,
                dropped: metrics::counter!("steadfast_events_dropped_total"),
                subscribers: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Publishes `event` to every current subscriber. Never blocks.
    #[inline]
    pub fn emit(&self, event: Event) {
        if self.inner.subscribers.load(Ordering::Acquire) == 0 {
            return;
        }
        // An error only means nobody listens right now: nothing to do.
        let _ = self.inner.sender.send(event);
    }

    /// A new subscriber, seeing events emitted from now on.
    pub fn subscribe(&self) -> EventReceiver {
        // Counted before the receiver exists, so no event emitted after `subscribe` returns is
        // skipped for want of a subscriber.
        self.inner.subscribers.fetch_add(1, Ordering::AcqRel);
        EventReceiver {
            receiver: self.inner.sender.subscribe(),
            dropped_total: self.inner.dropped.clone(),
            capacity: self.inner.capacity,
            dropped: 0,
            subscribers: self.inner.subscribers.clone(),
        }
    }

    /// How many subscribers are listening.
    pub fn subscriber_count(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// The capacity given to [`new`](Self::new).
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Whether `other` is a clone of this bus.
    pub fn same_bus(&self, other: &EventBus) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for EventBus {
    /// A bus of [`DEFAULT_CAPACITY`].
    fn default() -> Self {
        EventBus::new(DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("capacity", &self.inner.capacity)
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

/// One subscription to an [`EventBus`].
pub struct EventReceiver {
    receiver: broadcast::Receiver<Event>,
    // Not the bus itself: a receiver must not keep the channel open.
    dropped_total: Counter,
    capacity: usize,
    dropped: u64,
    subscribers: Arc<AtomicUsize>,
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EventReceiver {
    /// The next event, waiting for one. Events lost because this subscriber lagged are skipped
    /// (and counted); `None` once every [`EventBus`] clone is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.receiver.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => self.note_lag(missed),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => self.note_lag(missed),
                Err(_) => return None,
            }
        }
    }

    /// Events this subscriber lost because it fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn note_lag(&mut self, missed: u64) {
        self.dropped += missed;
        self.dropped_total.increment(missed);
        tracing::warn!(
            missed,
            capacity = self.capacity,
            "event subscriber fell behind; oldest events dropped"
        );
    }
}

impl fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReceiver")
            .field("queued", &self.receiver.len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
mod ser {
    use std::sync::Arc;
    use std::time::Duration;

    #[cfg(feature = "circuit-breaker")]
    #[allow(clippy::ref_option)] // serde's `serialize_with` passes a reference
    pub(super) fn opt_secs<S: serde::Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_some(&duration.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn secs<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    #[allow(clippy::ptr_arg)]
    pub(super) fn arc_str<S: serde::Serializer>(
        value: &Arc<str>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exhausted(attempts: u32) -> Event {
        Event::RetriesExhausted {
            agent: Arc::from("gpt"),
            attempts,
            reason: None,
        }
    }

    #[tokio::test]
    async fn subscribers_see_events_in_emission_order() {
        let bus = EventBus::new(8);
        let mut first = bus.subscribe();
        let mut second = bus.clone().subscribe();
        for attempts in 1..=3 {
            bus.emit(exhausted(attempts));
        }
        for receiver in [&mut first, &mut second] {
            for attempts in 1..=3 {
                assert_eq!(receiver.recv().await, Some(exhausted(attempts)));
            }
            assert_eq!(receiver.try_recv(), None);
        }
    }

    #[test]
    fn emitting_without_subscribers_is_a_no_op() {
        let bus = EventBus::new(1);
        bus.emit(exhausted(1));
        assert_eq!(bus.subscriber_count(), 0);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_loses_the_oldest_events_and_counts_them() {
        let bus = EventBus::new(2);
        let mut receiver = bus.subscribe();
        for attempts in 1..=5 {
            bus.emit(exhausted(attempts));
        }
        assert_eq!(receiver.recv().await, Some(exhausted(4)));
        assert_eq!(receiver.recv().await, Some(exhausted(5)));
        assert_eq!(receiver.dropped(), 3);
    }

    #[tokio::test]
    async fn recv_ends_when_every_bus_is_dropped() {
        let bus = EventBus::new(2);
        let mut receiver = bus.subscribe();
        bus.emit(exhausted(1));
        drop(bus);
        assert_eq!(receiver.recv().await, Some(exhausted(1)));
        assert_eq!(receiver.recv().await, None);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn events_serialise_with_their_name_as_tag() {
        let json = serde_json::to_value(Event::RetryScheduled {
            agent: Arc::from("gpt"),
            attempt: 2,
            delay: Duration::from_millis(250),
            reason: Some("timeout"),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "retry_scheduled", "agent": "gpt", "attempt": 2,
                "delay": 0.25, "reason": "timeout"})
        );
    }
}
