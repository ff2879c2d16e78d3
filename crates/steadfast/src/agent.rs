//! [`Agent`]: an agent named once, with its classifier, and handed to every layer.
//!
//! An agent scope carries what every layer needs to know about the agent it wraps: its name
//! (metrics labels, logs, errors, dead letters), its [classifier](crate::classify::Classify),
//! and the one path its layers report on. Make it once from a [`Registry`] and give a reference
//! to each layer:
//!
//! ```
//! # #[cfg(all(feature = "circuit-breaker", feature = "retry"))] {
//! use steadfast::prelude::*;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let registry = Registry::new();
//! let gpt = registry.agent("gpt-4o");
//! let stack = ServiceBuilder::new()
//!     .layer(BackoffRetryLayer::new(&gpt, RetryConfig::default()))
//!     .layer(CircuitBreakerLayer::new(&gpt, BreakerConfig::default()))
//!     .service(service_fn(|prompt: String| async move { Ok::<_, BoxError>(prompt) }));
//!
//! assert_eq!(stack.oneshot("hi".to_string()).await?, "hi");
//! assert_eq!(registry.agents(), ["gpt-4o"]);
//! assert!(registry.breaker("gpt-4o").is_some());
//! # Ok(()) }
//! # }
//! ```
//!
//! # One event path
//!
//! Every decision a layer takes for the agent (a retry, a fallback, a breaker transition, a
//! dead letter) is one [`Event`], emitted through the scope. The scope derives everything else
//! from it in one place: the registry's counters ([`CountersSnapshot`]), the metrics
//! (`steadfast_*`), one `tracing` event, and the registry's [`EventBus`] that notifications
//! subscribe to. A `/status` page and a `/metrics` scrape therefore always agree.

use std::fmt;
#[cfg(any(feature = "circuit-breaker", feature = "bulkhead"))]
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram};

#[cfg(feature = "bulkhead")]
use crate::bulkhead::BulkheadHandle;
#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::BreakerHandle;
use crate::classify::{DefaultClassifier, OutcomeKind};
use crate::events::{Event, EventBus};
use crate::registry::{CountersSnapshot, Health, Registry};
use crate::sync::PerThreadCounter;

/// One agent: its name, its classifier, and the path its layers report on. Cheap to clone.
///
/// Get one from [`Registry::agent`] (the same name always gives the same agent) or, for an
/// agent no registry needs to see, [`Agent::new`]. Set the classifier with
/// [`classifier`](Self::classifier); the default treats every `Err` as transient.
pub struct Agent<C = DefaultClassifier> {
    pub(crate) scope: Arc<Scope>,
    classifier: C,
}

/// What every layer of one agent shares, whatever its classifier.
pub(crate) struct Scope {
    pub(crate) reporter: Arc<Reporter>,
    /// The agent's circuit breaker, once a `CircuitBreakerLayer` was made for it. The breaker
    /// reports through `reporter`, never through this scope, so nothing here is a cycle.
    #[cfg(feature = "circuit-breaker")]
    pub(crate) breaker: RwLock<Option<BreakerHandle>>,
    /// The agent's bulkhead, once a `BulkheadLayer` was made for it.
    #[cfg(feature = "bulkhead")]
    pub(crate) bulkhead: RwLock<Option<BulkheadHandle>>,
}

impl Agent {
    /// An agent in a registry of its own. Prefer [`Registry::agent`] when a status page,
    /// metrics or notifications should see it.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Registry::new().agent(name)
    }

    pub(crate) fn from_scope(scope: Arc<Scope>) -> Self {
        Agent {
            scope,
            classifier: DefaultClassifier,
        }
    }
}

impl<C> Agent<C> {
    /// Classifies this agent's results with `classifier` in every layer made from the returned
    /// agent (see [`crate::classify`]).
    pub fn classifier<C2>(self, classifier: C2) -> Agent<C2> {
        Agent {
            scope: self.scope,
            classifier,
        }
    }

    /// The classifier.
    pub fn classifier_ref(&self) -> &C {
        &self.classifier
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.scope.reporter.name
    }

    /// The name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.scope.reporter.name
    }

    /// Emits `event` on the agent's one event path: counters, metrics, a `tracing` event and
    /// the registry's bus. For layers of your own; steadfast's layers emit theirs.
    pub fn emit(&self, event: Event) {
        self.scope.reporter.emit(event);
    }

    /// The bus this agent's events are published on (the registry's).
    pub fn events(&self) -> &EventBus {
        &self.scope.reporter.bus
    }

    /// What this agent's layers counted so far.
    pub fn counters(&self) -> CountersSnapshot {
        self.scope.reporter.counters.snapshot()
    }

    /// The agent's circuit breaker, once a `CircuitBreakerLayer` was made for it.
    #[cfg(feature = "circuit-breaker")]
    pub fn breaker(&self) -> Option<BreakerHandle> {
        self.scope.breaker()
    }

    #[allow(dead_code)] // used by whichever layers are compiled in
    pub(crate) fn reporter(&self) -> &Arc<Reporter> {
        &self.scope.reporter
    }

    /// Whether `other` is the same agent (same scope).
    pub fn same_agent<C2>(&self, other: &Agent<C2>) -> bool {
        Arc::ptr_eq(&self.scope, &other.scope)
    }
}

impl Scope {
    pub(crate) fn new(name: Arc<str>, bus: EventBus) -> Self {
        // Descriptions go to the recorder in effect when the agent is made, as its metric
        // handles do.
        crate::telemetry::describe();
        Scope {
            reporter: Arc::new(Reporter::new(name, bus)),
            #[cfg(feature = "circuit-breaker")]
            breaker: RwLock::new(None),
            #[cfg(feature = "bulkhead")]
            bulkhead: RwLock::new(None),
        }
    }

    #[cfg(feature = "bulkhead")]
    pub(crate) fn bulkhead(&self) -> Option<BulkheadHandle> {
        self.bulkhead
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    #[cfg(feature = "bulkhead")]
    pub(crate) fn set_bulkhead(&self, handle: BulkheadHandle) {
        let mut bulkhead = self
            .bulkhead
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bulkhead.is_some() {
            tracing::warn!(
                agent = %self.reporter.name,
                "a second bulkhead was made for this agent; the registry now shows the new one"
            );
        }
        *bulkhead = Some(handle);
    }

    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn breaker(&self) -> Option<BreakerHandle> {
        self.breaker
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn set_breaker(&self, handle: BreakerHandle) {
        let mut breaker = self
            .breaker
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if breaker.is_some() {
            tracing::warn!(
                agent = %self.reporter.name,
                "a second circuit breaker was made for this agent; the registry now shows the new one"
            );
        }
        *breaker = Some(handle);
    }

    /// The agent's health: its breaker's (see [`crate::registry`]), `Healthy` without one.
    #[cfg_attr(not(feature = "circuit-breaker"), allow(clippy::unused_self))]
    pub(crate) fn health(&self, registry: &Registry) -> Health {
        #[cfg(feature = "circuit-breaker")]
        if let Some(breaker) = self.breaker() {
            return registry
                .health_policy()
                .health_of(breaker.state(), breaker.failure_rate());
        }
        let _ = registry;
        Health::Healthy
    }
}

impl<C: Clone> Clone for Agent<C> {
    fn clone(&self) -> Self {
        Agent {
            scope: self.scope.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for Agent<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name())
            .field("classifier", &std::any::type_name::<C>())
            .finish()
    }
}

/// The one path an agent's layers report on: it turns each [`Event`] into counter updates,
/// metrics, a log line and a bus message, and counts calls and who served them.
pub(crate) struct Reporter {
    pub(crate) name: Arc<str>,
    bus: EventBus,
    counters: AgentCounters,
    metrics: AgentMetrics,
}

#[allow(dead_code)] // each method is used by the layer that needs it, when compiled in
impl Reporter {
    fn new(name: Arc<str>, bus: EventBus) -> Self {
        Reporter {
            metrics: AgentMetrics::default(),
            counters: AgentCounters::default(),
            name,
            bus,
        }
    }

    /// The one event path: counters, metrics, tracing, bus, in that order.
    pub(crate) fn emit(&self, event: Event) {
        self.counters.apply(&event);
        self.metrics.apply(&self.name, &event);
        crate::events::trace(&event);
        self.bus.emit(event);
    }

    /// Registers the breaker's per-call metrics (a closed state gauge, zeroed call counters)
    /// and hands the breaker its own copies of the call counters, so counting a call is one
    /// increment with nothing to look up.
    pub(crate) fn breaker_created(&self) -> CallCounters {
        let metrics = self.metrics.breaker(&self.name);
        metrics.set_state(0);
        CallCounters {
            by_kind: metrics.calls.clone(),
            rejected: metrics.rejected.clone(),
            recorded: recorder_takes_handles(),
        }
    }

    /// The breaker spent `nanos` in the state numbered `state` (see
    /// `BreakerState::gauge_value`): `steadfast_breaker_state_seconds_total`.
    pub(crate) fn breaker_time_in_state(&self, state: usize, nanos: u64) {
        self.metrics.breaker(&self.name).time_in_state(state, nanos);
    }

    /// The retry layer's per-call handles (`steadfast_call_duration_seconds`,
    /// `steadfast_attempt_duration_seconds`, `steadfast_call_attempts`), registered on first
    /// use.
    pub(crate) fn call_metrics(&self) -> CallMetrics {
        self.metrics
            .calls
            .get_or_init(|| {
                let agent = || self.name.to_string();
                let duration = |outcome: &'static str| {
                    metrics::histogram!("steadfast_call_duration_seconds", "agent" => agent(), "outcome" => outcome)
                };
                let attempt = |outcome: &'static str| {
                    metrics::histogram!("steadfast_attempt_duration_seconds", "agent" => agent(), "outcome" => outcome)
                };
                CallMetrics {
                    succeeded: duration("success"),
                    failed: duration("error"),
                    attempt_durations: Arc::new(OutcomeKind::ALL.map(|kind| attempt(kind.as_str()))),
                    attempts: metrics::histogram!("steadfast_call_attempts", "agent" => agent()),
                    recorded: recorder_takes_handles(),
                }
            })
            .clone()
    }

    /// Registers the `steadfast_served_total{source="primary"}` counter.
    pub(crate) fn fallback_created(&self) {
        self.served_primary_counter();
    }

    /// `None` while no recorder takes the handle (it would count nothing).
    fn served_primary_counter(&self) -> Option<&Counter> {
        self.metrics
            .served_primary
            .get_or_init(|| {
                let counter = metrics::counter!("steadfast_served_total", "agent" => self.name.to_string(), "source" => "primary");
                recorder_takes_handles().then_some(counter)
            })
            .as_ref()
    }

    /// The primary agent answered a call that went through a fallback layer. Per call: one
    /// per-thread counter and one metrics increment.
    #[inline]
    pub(crate) fn count_primary(&self) {
        self.counters.primary.increment();
        if let Some(counter) = self.served_primary_counter() {
            counter.increment(1);
        }
    }

    /// Registers the bulkhead's metrics (`steadfast_bulkhead_rejected_total` and the
    /// `steadfast_concurrency_limit` gauge) and sets the gauge to `limit`.
    pub(crate) fn bulkhead_created(&self, limit: u32) {
        self.metrics
            .bulkhead(&self.name)
            .limit
            .set(f64::from(limit));
    }

    /// An adaptive bulkhead raised its limit (decreases are events).
    pub(crate) fn set_concurrency_limit(&self, limit: u32) {
        if let Some(metrics) = self.metrics.bulkhead.get() {
            metrics.limit.set(f64::from(limit));
        }
    }

    /// A bulkhead refused a call. Per refusal: one per-thread counter and one metrics
    /// increment, no event (a full bulkhead refuses in bursts).
    #[inline]
    pub(crate) fn count_bulkhead_rejected(&self) {
        self.counters.bulkhead_rejected.increment();
        if let Some(metrics) = self.metrics.bulkhead.get() {
            metrics.rejected.increment(1);
        }
    }

    /// The dead-letter store holds `depth` records for this agent.
    pub(crate) fn set_dlq_depth(&self, depth: u64) {
        self.counters.dlq_depth.store(depth, Ordering::Relaxed);
    }

    pub(crate) fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("agent", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether the installed `metrics` recorder takes the handles made now. `metrics` cannot say
/// whether its recorder is the no-op one; that one is zero-sized and every real recorder holds
/// state, so the size tells (docs/operations.md). A handle made while no recorder listens
/// counts nothing for its whole life, so the hot paths skip it.
pub(crate) fn recorder_takes_handles() -> bool {
    metrics::with_recorder(|recorder| std::mem::size_of_val(recorder) != 0)
}

/// `steadfast_calls_total{agent, outcome}`, as the breaker keeps them.
#[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
pub(crate) struct CallCounters {
    by_kind: [Counter; 5],
    rejected: Counter,
    /// Whether a recorder took these handles ([`recorder_takes_handles`]): without one they
    /// count nothing, and each increment would still be a call out of line.
    recorded: bool,
}

#[cfg_attr(not(feature = "circuit-breaker"), allow(dead_code))]
impl CallCounters {
    /// A call the breaker admitted completed with `kind`.
    #[inline]
    pub(crate) fn completed(&self, kind: OutcomeKind) {
        if self.recorded {
            self.by_kind[kind as usize].increment(1);
        }
    }

    /// A call the breaker refused.
    #[inline]
    pub(crate) fn rejected(&self) {
        if self.recorded {
            self.rejected.increment(1);
        }
    }
}

/// Counters filled from events (and the primary's answers); read by the registry snapshot.
#[derive(Debug, Default)]
struct AgentCounters {
    retries: AtomicU64,
    retries_exhausted: AtomicU64,
    retry_budget_exhausted: AtomicU64,
    deadlines_exceeded: AtomicU64,
    primary: PerThreadCounter,
    fallbacks: AtomicU64,
    cache_hits: AtomicU64,
    degraded: AtomicU64,
    dead_lettered: AtomicU64,
    dead_letter_failures: AtomicU64,
    dlq_depth: AtomicU64,
    bulkhead_rejected: PerThreadCounter,
    concurrency_limit_lowered: AtomicU64,
}

impl AgentCounters {
    fn apply(&self, event: &Event) {
        let counter = match event {
            Event::RetryScheduled { .. } => &self.retries,
            Event::RetriesExhausted { .. } => &self.retries_exhausted,
            Event::RetryBudgetExhausted { .. } => &self.retry_budget_exhausted,
            Event::DeadlineExceeded { .. } => &self.deadlines_exceeded,
            Event::FallbackUsed { source, .. } if *source == "cache" => &self.cache_hits,
            Event::FallbackUsed { .. } => &self.fallbacks,
            Event::Degraded { .. } => &self.degraded,
            Event::DeadLettered { .. } => &self.dead_lettered,
            Event::DeadLetterFailed { .. } => &self.dead_letter_failures,
            Event::ConcurrencyLimitLowered { .. } => &self.concurrency_limit_lowered,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CountersSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            retries: load(&self.retries),
            retries_exhausted: load(&self.retries_exhausted),
            retry_budget_exhausted: load(&self.retry_budget_exhausted),
            deadlines_exceeded: load(&self.deadlines_exceeded),
            primary: self.primary.sum(),
            fallbacks: load(&self.fallbacks),
            cache_hits: load(&self.cache_hits),
            degraded: load(&self.degraded),
            dead_lettered: load(&self.dead_lettered),
            dead_letter_failures: load(&self.dead_letter_failures),
            dlq_depth: load(&self.dlq_depth),
            bulkhead_rejected: self.bulkhead_rejected.sum(),
            concurrency_limit_lowered: load(&self.concurrency_limit_lowered),
        }
    }
}

/// The agent's metric handles, each registered once, the first time it is needed (so an agent
/// without a breaker shows no `steadfast_calls_total` series, and counting an event never
/// allocates or looks a series up again).
#[derive(Default)]
#[allow(dead_code)] // filled by the layers compiled in
struct AgentMetrics {
    breaker: OnceLock<BreakerMetrics>,
    calls: OnceLock<CallMetrics>,
    served_primary: OnceLock<Option<Counter>>,
    served_fallback: OnceLock<Counter>,
    served_cache: OnceLock<Counter>,
    served_degraded: OnceLock<Counter>,
    retries_exhausted: OnceLock<Counter>,
    retry_budget_exhausted: OnceLock<Counter>,
    deadlines_exceeded: OnceLock<Counter>,
    dead_letters: OnceLock<Counter>,
    dead_letter_failures: OnceLock<Counter>,
    concurrency_limit_lowered: OnceLock<Counter>,
    bulkhead: OnceLock<BulkheadMetrics>,
    hedges: OnceLock<Counter>,
    paused: OnceLock<Counter>,
    /// `steadfast_retries_total{reason}`: one handle per reason seen (a handful).
    retries: std::sync::Mutex<Vec<(&'static str, Counter)>>,
}

/// The retry layer's per-call handles: the call's and each attempt's duration by outcome, and
/// the attempts per call.
#[derive(Clone)]
#[cfg_attr(not(feature = "retry"), allow(dead_code))]
pub(crate) struct CallMetrics {
    succeeded: Histogram,
    failed: Histogram,
    /// By `OutcomeKind` (shared: five handles are not cloned per layer).
    attempt_durations: Arc<[Histogram; 5]>,
    attempts: Histogram,
    /// Whether a recorder took these handles: see [`CallMetrics::recorded`].
    recorded: bool,
}

#[cfg_attr(not(feature = "retry"), allow(dead_code))]
impl CallMetrics {
    /// Whether a metrics recorder was installed when these handles were made. Without one the
    /// handles drop what they are given, so the retry layer reads no clock to time a call
    /// answered at once (two clock reads are most of its cost on that path). `metrics` gives
    /// no way to ask whether a recorder is its no-op one; the no-op recorder is zero-sized
    /// and every real one (Prometheus, `metrics-util`'s debugging recorder) holds state, so
    /// the size tells. As with every steadfast metric, install the recorder before building
    /// the layers: handles are taken once, when a layer is made.
    #[inline]
    pub(crate) fn recorded(&self) -> bool {
        self.recorded
    }

    /// An attempt ended with `kind` after `seconds`.
    #[inline]
    pub(crate) fn attempt(&self, kind: OutcomeKind, seconds: f64) {
        self.attempt_durations[kind as usize].record(seconds);
    }

    /// A call ended (`ok`: successfully) after `seconds` and `attempts` attempts.
    #[inline]
    pub(crate) fn finished(&self, ok: bool, seconds: f64, attempts: u32) {
        if ok { &self.succeeded } else { &self.failed }.record(seconds);
        self.attempts.record(f64::from(attempts));
    }
}

/// The breaker states, in the order of `BreakerState::gauge_value` (a label value each).
const BREAKER_STATES: [&str; 5] = ["closed", "open", "half_open", "forced_open", "disabled"];

#[allow(dead_code)]
struct BulkheadMetrics {
    rejected: Counter,
    limit: metrics::Gauge,
}

#[allow(dead_code)]
struct BreakerMetrics {
    calls: [Counter; 5],
    rejected: Counter,
    /// `steadfast_breaker_state{state}`: 1 for the current state, 0 for the others.
    state: [Gauge; 5],
    /// `steadfast_breaker_state_seconds_total{state}`, in whole seconds.
    state_seconds: [Counter; 5],
    /// The exact time in each state, so whole seconds are added without losing the rest.
    state_nanos: [AtomicU64; 5],
}

#[allow(dead_code)]
impl BreakerMetrics {
    /// Sets the state gauges: 1 for `current`, 0 for the others.
    fn set_state(&self, current: usize) {
        for (index, gauge) in self.state.iter().enumerate() {
            gauge.set(if index == current { 1.0 } else { 0.0 });
        }
    }

    fn time_in_state(&self, state: usize, nanos: u64) {
        const NANOS_PER_SEC: u64 = 1_000_000_000;
        let (Some(total), Some(counter)) =
            (self.state_nanos.get(state), self.state_seconds.get(state))
        else {
            return;
        };
        let before = total.fetch_add(nanos, Ordering::Relaxed);
        let whole = before.saturating_add(nanos) / NANOS_PER_SEC - before / NANOS_PER_SEC;
        if whole > 0 {
            counter.increment(whole);
        }
    }
}

impl AgentMetrics {
    fn apply(&self, agent: &Arc<str>, event: &Event) {
        let counter = |cell: &OnceLock<Counter>, name: &'static str| {
            cell.get_or_init(|| metrics::counter!(name, "agent" => agent.to_string()))
                .increment(1);
        };
        let served = |cell: &OnceLock<Counter>, source: &'static str| {
            cell.get_or_init(|| {
                metrics::counter!("steadfast_served_total", "agent" => agent.to_string(), "source" => source)
            })
            .increment(1);
        };
        match event {
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitOpened { from, state, .. } | Event::CircuitClosed { from, state, .. } => {
                self.transition(agent, *from, *state);
            }
            #[cfg(feature = "circuit-breaker")]
            Event::CircuitHalfOpen { from, .. } => {
                self.transition(agent, *from, crate::circuit_breaker::BreakerState::HalfOpen);
            }
            Event::RetryScheduled { reason, .. } => self.retry(agent, reason.unwrap_or("failure")),
            Event::RetriesExhausted { .. } => {
                counter(&self.retries_exhausted, "steadfast_retries_exhausted_total");
            }
            Event::RetryBudgetExhausted { .. } => counter(
                &self.retry_budget_exhausted,
                "steadfast_retry_budget_exhausted_total",
            ),
            Event::DeadlineExceeded { .. } => counter(
                &self.deadlines_exceeded,
                "steadfast_retry_deadline_exceeded_total",
            ),
            Event::FallbackUsed { source, .. } if *source == "cache" => {
                served(&self.served_cache, "cache");
            }
            Event::FallbackUsed { .. } => served(&self.served_fallback, "fallback"),
            Event::Degraded { .. } => served(&self.served_degraded, "degraded"),
            Event::DeadLettered { .. } => {
                counter(&self.dead_letters, "steadfast_dead_letters_total");
            }
            Event::DeadLetterFailed { .. } => counter(
                &self.dead_letter_failures,
                "steadfast_dead_letter_failures_total",
            ),
            Event::ConcurrencyLimitLowered { to, .. } => {
                counter(
                    &self.concurrency_limit_lowered,
                    "steadfast_concurrency_limit_lowered_total",
                );
                if let Some(bulkhead) = self.bulkhead.get() {
                    bulkhead.limit.set(f64::from(*to));
                }
            }
            Event::HedgeSent { .. } => counter(&self.hedges, "steadfast_hedges_total"),
            Event::AgentPaused { .. } => counter(&self.paused, "steadfast_agent_paused_total"),
            Event::RateLimited { limit, .. } => {
                metrics::counter!(
                    "steadfast_rate_limited_total", "agent" => agent.to_string(), "limit" => *limit
                )
                .increment(1);
            }
            _ => {}
        }
    }

    fn retry(&self, agent: &Arc<str>, reason: &'static str) {
        let mut retries = self
            .retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, counter)) = retries.iter().find(|(seen, _)| *seen == reason) {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!(
            "steadfast_retries_total", "agent" => agent.to_string(), "reason" => reason
        );
        counter.increment(1);
        retries.push((reason, counter));
    }

    #[allow(dead_code)]
    fn bulkhead(&self, agent: &Arc<str>) -> &BulkheadMetrics {
        self.bulkhead.get_or_init(|| BulkheadMetrics {
            rejected: metrics::counter!("steadfast_bulkhead_rejected_total", "agent" => agent.to_string()),
            limit: metrics::gauge!("steadfast_concurrency_limit", "agent" => agent.to_string()),
        })
    }

    #[allow(dead_code)]
    fn breaker(&self, agent: &Arc<str>) -> &BreakerMetrics {
        self.breaker.get_or_init(|| {
            let call = |outcome: &'static str| metrics::counter!("steadfast_calls_total", "agent" => agent.to_string(), "outcome" => outcome);
            BreakerMetrics {
                calls: OutcomeKind::ALL.map(|kind| call(kind.as_str())),
                rejected: call("rejected"),
                state: BREAKER_STATES.map(|state| metrics::gauge!("steadfast_breaker_state", "agent" => agent.to_string(), "state" => state)),
                state_seconds: BREAKER_STATES.map(|state| metrics::counter!("steadfast_breaker_state_seconds_total", "agent" => agent.to_string(), "state" => state)),
                state_nanos: Default::default(),
            }
        })
    }

    #[cfg(feature = "circuit-breaker")]
    fn transition(
        &self,
        agent: &Arc<str>,
        from: crate::circuit_breaker::BreakerState,
        to: crate::circuit_breaker::BreakerState,
    ) {
        metrics::counter!(
            "steadfast_breaker_transitions_total",
            "agent" => agent.to_string(), "from" => from.as_str(), "to" => to.as_str()
        )
        .increment(1);
        self.breaker(agent).set_state(to.gauge_value() as usize);
    }
}

#[cfg(all(test, feature = "circuit-breaker"))]
mod tests {
    use super::BREAKER_STATES;
    use crate::circuit_breaker::BreakerState;

    #[test]
    fn breaker_state_labels_follow_the_state_numbers() {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
            BreakerState::ForcedOpen,
            BreakerState::Disabled,
        ] {
            assert_eq!(BREAKER_STATES[state.gauge_value() as usize], state.as_str());
        }
    }
}
