//! The breaker's state machine.
//!
//! [`Core`] decides; it never reads a clock, sleeps or spawns. Time comes in as nanoseconds (a
//! closure, so the hot path reads the clock only when a rule needs it) and every transition comes
//! back out as a [`Transition`] for the caller to announce (tracing, metrics, health-check task).
//! That keeps it testable without tokio, and lets property tests drive it against a model.
//!
//! The hot path (closed, success) touches only atomics: one ring slot and index of the window
//! and the completion counter. Transitions, and the record of recent failures, take a mutex:
//! they are rare, and a failing call is not the path that must be fast.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::classify::{Outcome, OutcomeKind};
use crate::clock::{Nanos, duration_to_nanos};
use crate::sync::{PerThreadCounter, PerThreadLatest};

use super::config::BreakerConfig;
use super::window::{Window, WindowStats};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BreakerState {
    /// Calls flow; outcomes are watched.
    Closed,
    /// Calls are refused until the open time elapses (or a health check passes).
    Open,
    /// A bounded number of probe calls test the agent.
    HalfOpen,
    /// An operator opened the circuit; only an operator closes it.
    ForcedOpen,
    /// The breaker lets everything through and watches nothing.
    Disabled,
}

impl BreakerState {
    const fn to_u8(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::ForcedOpen => 3,
            BreakerState::Disabled => 4,
        }
    }

    const fn from_u8(value: u8) -> Self {
        match value {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            3 => BreakerState::ForcedOpen,
            _ => BreakerState::Disabled,
        }
    }

    /// The stable lower-case name used in metrics labels, events and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }

    /// The state's number: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled. (The
    /// `steadfast_breaker_state` gauge is labelled by [`as_str`](Self::as_str) instead.)
    pub const fn gauge_value(self) -> f64 {
        self.to_u8() as f64
    }

    /// Whether calls are admitted (some of them, when half-open).
    pub const fn admits_calls(self) -> bool {
        matches!(
            self,
            BreakerState::Closed | BreakerState::HalfOpen | BreakerState::Disabled
        )
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the breaker changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TransitionReason {
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// The window's failure rate reached `failure_rate_threshold`.
    FailureRate,
    /// The window's slow-call rate reached `slow_call_rate_threshold`.
    SlowCallRate,
    /// A half-open probe failed.
    ProbeFailed,
    /// The open time elapsed: probes are admitted.
    OpenTimeElapsed,
    /// A background health check passed: probes are admitted.
    HealthCheckPassed,
    /// Enough probes succeeded.
    ProbesSucceeded,
    /// `force_open()`.
    ForcedOpen,
    /// `force_closed()`.
    ForcedClosed,
    /// `reset()`.
    Reset,
    /// `disable()`.
    Disabled,
    /// State saved before a restart was restored (`BreakerHandle::restore`).
    Restored,
    /// Another replica's breaker decided, and fleet sync applied its decision here
    /// (`BreakerHandle::open_until`, `BreakerHandle::close_remote`).
    Remote,
}

impl TransitionReason {
    /// The stable snake_case name used in events and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransitionReason::ConsecutiveFailures => "consecutive_failures",
            TransitionReason::FailureRate => "failure_rate",
            TransitionReason::SlowCallRate => "slow_call_rate",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::OpenTimeElapsed => "open_time_elapsed",
            TransitionReason::HealthCheckPassed => "health_check_passed",
            TransitionReason::ProbesSucceeded => "probes_succeeded",
            TransitionReason::ForcedOpen => "forced_open",
            TransitionReason::ForcedClosed => "forced_closed",
            TransitionReason::Reset => "reset",
            TransitionReason::Disabled => "disabled",
            TransitionReason::Restored => "restored",
            TransitionReason::Remote => "remote",
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change, for the caller to announce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Transition {
    pub(crate) from: BreakerState,
    pub(crate) to: BreakerState,
    pub(crate) reason: TransitionReason,
    /// The generation the breaker entered (bumped on every transition).
    pub(crate) generation: u64,
    /// When entering `Open`: how long it stays open.
    pub(crate) open_for: Option<Duration>,
}

/// Permission to call the agent, obtained from [`Core::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Admitted while closed (or disabled): the outcome feeds the window.
    Normal,
    /// A half-open probe of the given generation: holds one probe slot until it completes or is
    /// dropped.
    Probe { generation: u64 },
}

impl Admission {
    /// In one word, for the response future (moved on every call, so kept small): 0 for
    /// `Normal`, the generation for a probe (a half-open period's generation is never 0: the
    /// breaker starts closed in generation 0 and every transition adds one).
    pub(crate) const fn to_word(self) -> u64 {
        match self {
            Admission::Normal => 0,
            Admission::Probe { generation } => generation,
        }
    }

    pub(crate) const fn from_word(word: u64) -> Self {
        match word {
            0 => Admission::Normal,
            generation => Admission::Probe { generation },
        }
    }
}

/// A refusal, from [`Core::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) state: BreakerState,
    /// While open: when probes (or the next health check) are due. An instant, not a wait, so
    /// that refusing never needs the clock; the wait is worked out if someone asks for it.
    pub(crate) probe_at: Option<Nanos>,
}

/// A failure kept for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FailureEntry {
    pub(crate) at: Nanos,
    pub(crate) kind: OutcomeKind,
    pub(crate) reason: Option<&'static str>,
    pub(crate) slow: bool,
}

/// Lifetime counters of a breaker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) completed: u64,
    pub(crate) failures: u64,
    pub(crate) caller_faults: u64,
    pub(crate) slow: u64,
    pub(crate) rejected: u64,
}

/// The part of the state that changes only on transitions and failures.
#[derive(Debug, Default)]
struct Cold {
    /// Trips since the last clean close: drives the growing open time.
    trips: u32,
    open_duration: Option<Duration>,
    state_since: Nanos,
    recent_failures: VecDeque<FailureEntry>,
    last_reason: Option<TransitionReason>,
}

pub(crate) struct Core {
    config: BreakerConfig,
    state: AtomicU8,
    generation: AtomicU64,
    consecutive_failures: AtomicU32,
    window: Window,
    /// While open: when probes may start (or the next health check is due).
    open_until: AtomicU64,
    /// While open with a health check running: only the check may move to half-open.
    awaiting_health_check: AtomicBool,
    uses_health_check: AtomicBool,
    /// The probe slots of the current half-open period, in one word so that a slot can only be
    /// taken or given back in the period it belongs to: the low 32 bits of the generation in
    /// the high half, probes in flight in the low half. A transition replaces the whole word.
    probe_slots: AtomicU64,
    probe_successes: AtomicU32,
    /// Completed calls, counted per thread: written on every call.
    completed: PerThreadCounter,
    failures: AtomicU64,
    caller_faults: AtomicU64,
    slow: AtomicU64,
    /// Refusals, counted per thread: written on every refusal, by every thread, in an outage.
    rejected: PerThreadCounter,
    /// Time + 1 of the last success / failure (0: never). Successes are recorded per thread:
    /// written every [`LAST_SUCCESS_SAMPLE`] calls by every thread.
    last_success: PerThreadLatest,
    last_failure: AtomicU64,
    /// Signalled on every recorded failure (never on a success): what a background task that
    /// shares failures (fleet sync) waits on instead of polling the counters.
    failure_signal: tokio::sync::Notify,
    cold: Mutex<Cold>,
}

/// The half-open period a generation stamps on the slot word (its low 32 bits: a stale probe
/// would need exactly 2^32 transitions to pass for a current one).
const fn period_of(generation: u64) -> u32 {
    generation as u32
}

/// The slot word of `generation` with `in_flight` probes.
const fn slots(generation: u64, in_flight: u32) -> u64 {
    ((period_of(generation) as u64) << 32) | in_flight as u64
}

/// `(period, in_flight)` of a slot word.
const fn split_slots(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// How often (in completed calls) a long run of successes refreshes `last_success`, so the hot
/// path reads the clock for it once per this many calls rather than on every call.
const LAST_SUCCESS_SAMPLE: u64 = 64;

impl Core {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Core {
            window: Window::new(config.window),
            config,
            state: AtomicU8::new(BreakerState::Closed.to_u8()),
            generation: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            awaiting_health_check: AtomicBool::new(false),
            uses_health_check: AtomicBool::new(false),
            probe_slots: AtomicU64::new(slots(0, 0)),
            probe_successes: AtomicU32::new(0),
            completed: PerThreadCounter::default(),
            failures: AtomicU64::new(0),
            caller_faults: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            rejected: PerThreadCounter::default(),
            last_success: PerThreadLatest::default(),
            last_failure: AtomicU64::new(0),
            failure_signal: tokio::sync::Notify::new(),
            cold: Mutex::new(Cold::default()),
        }
    }

    pub(crate) fn config(&self) -> &BreakerConfig {
        &self.config
    }

    #[inline]
    pub(crate) fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a health check decides when an open breaker admits probes.
    pub(crate) fn uses_health_check(&self) -> bool {
        self.uses_health_check.load(Ordering::Acquire)
    }

    /// With a health check, leaving `Open` waits for the check instead of the clock alone.
    pub(crate) fn set_uses_health_check(&self, uses: bool) {
        self.uses_health_check.store(uses, Ordering::Release);
        if !uses {
            self.awaiting_health_check.store(false, Ordering::Release);
        }
    }

    /// Whether a call is admitted without asking (closed or disabled): the hot path's one load.
    #[inline]
    pub(crate) fn admits_without_asking(&self) -> bool {
        matches!(self.state(), BreakerState::Closed | BreakerState::Disabled)
    }

    /// Asks to call the agent. `now` is read only when the breaker is open and not waiting for
    /// a health check.
    #[inline]
    pub(crate) fn try_acquire(
        &self,
        now: impl Fn() -> Nanos,
    ) -> (Result<Admission, Rejection>, Option<Transition>) {
        match self.state() {
            BreakerState::Closed | BreakerState::Disabled => (Ok(Admission::Normal), None),
            BreakerState::HalfOpen => (self.try_probe(), None),
            BreakerState::ForcedOpen => (Err(self.reject(BreakerState::ForcedOpen, None)), None),
            BreakerState::Open => self.acquire_while_open(now),
        }
    }

    #[cold]
    fn acquire_while_open(
        &self,
        now: impl Fn() -> Nanos,
    ) -> (Result<Admission, Rejection>, Option<Transition>) {
        let open_until = self.open_until.load(Ordering::Acquire);
        let refuse = || (Err(self.reject(BreakerState::Open, Some(open_until))), None);
        // Until a health check passes the answer is no, whatever the time. Otherwise the clock
        // decides: a timer task could tell when the open time has passed without reading it on
        // every refusal, but a task runs after the caller that its timer woke (always so under
        // tokio's paused clock, where a test advancing by the open time would be refused), and
        // the first call after the open time must probe.
        if self.awaiting_health_check.load(Ordering::Acquire) {
            return refuse();
        }
        let now = now();
        if now < open_until {
            return refuse();
        }
        let transition = {
            let mut cold = self.lock();
            if self.state() == BreakerState::Open
                && !self.awaiting_health_check.load(Ordering::Acquire)
            {
                Some(self.enter_half_open(&mut cold, now, TransitionReason::OpenTimeElapsed))
            } else {
                None
            }
        };
        let admission = match self.state() {
            BreakerState::HalfOpen => self.try_probe(),
            BreakerState::Closed | BreakerState::Disabled => Ok(Admission::Normal),
            state => Err(self.reject(state, None)),
        };
        (admission, transition)
    }

    fn try_probe(&self) -> Result<Admission, Rejection> {
        self.try_probe_in(self.generation())
    }

    /// Takes a probe slot of the half-open period `generation`, if that period is still the
    /// current one and has a slot left: the check and the increment are one compare-and-swap on
    /// the slot word, so a transition between reading the generation and taking the slot makes
    /// the swap fail instead of leaking a slot into the next period.
    pub(crate) fn try_probe_in(&self, generation: u64) -> Result<Admission, Rejection> {
        let limit = self.config.half_open_probes;
        let admitted = self
            .probe_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (period, in_flight) = split_slots(word);
                (period == period_of(generation) && in_flight < limit)
                    .then(|| slots(generation, in_flight + 1))
            })
            .is_ok();
        if admitted {
            Ok(Admission::Probe { generation })
        } else {
            Err(self.reject(BreakerState::HalfOpen, None))
        }
    }

    fn reject(&self, state: BreakerState, probe_at: Option<Nanos>) -> Rejection {
        self.rejected.increment();
        Rejection { state, probe_at }
    }

    /// A probe of `generation` ended without deciding the period (dropped by its caller, a
    /// caller fault, or a success short of the threshold): free its slot, if its period is
    /// still the current one (a new period starts from zero).
    pub(crate) fn release_probe(&self, generation: u64) {
        let _ = self
            .probe_slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (period, in_flight) = split_slots(word);
                (period == period_of(generation) && in_flight > 0)
                    .then(|| slots(generation, in_flight - 1))
            });
    }

    /// Records the outcome of an admitted call. `slow` says whether it exceeded the slow-call
    /// threshold. `now` is read only when a rule needs the time.
    #[inline]
    pub(crate) fn on_result(
        &self,
        admission: Admission,
        outcome: &Outcome,
        slow: bool,
        now: impl Fn() -> Nanos,
    ) -> Option<Transition> {
        // A local refusal that waited in a bulkhead's queue is not a slow answer of the agent.
        let slow = slow && !outcome.is_local();
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
        match admission {
            Admission::Normal => self.on_normal_result(outcome, slow, now),
            Admission::Probe { generation } => {
                self.completed.increment();
                self.on_probe_result(generation, outcome, slow, &now)
            }
        }
    }

    #[inline]
    fn on_normal_result(
        &self,
        outcome: &Outcome,
        slow: bool,
        now: impl Fn() -> Nanos,
    ) -> Option<Transition> {
        let failed = outcome.counts_against_agent();
        let state = self.state();
        if failed || slow || state != BreakerState::Closed || outcome.kind() != OutcomeKind::Success
        {
            return self.on_other_result(state, outcome, failed, slow, now());
        }
        // The hot path: a plain success while closed.
        let had_failures = self.consecutive_failures.load(Ordering::Relaxed) != 0;
        if had_failures {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        let completed_before = self.completed.increment();
        let sample = if self.window.needs_time() {
            let at = now();
            self.window.record(false, false, at);
            Some(at)
        } else {
            self.window.record(false, false, 0);
            (had_failures || completed_before.is_multiple_of(LAST_SUCCESS_SAMPLE)).then(&now)
        };
        if let Some(at) = sample {
            self.last_success.record(at + 1);
        }
        None
    }

    /// Everything but a plain success while closed: failures, slow calls, caller faults, and
    /// calls that complete after the breaker left `Closed`.
    #[cold]
    fn on_other_result(
        &self,
        state: BreakerState,
        outcome: &Outcome,
        failed: bool,
        slow: bool,
        now: Nanos,
    ) -> Option<Transition> {
        self.completed.increment();
        if outcome.is_local() {
            // Refused on this side (a full bulkhead inside the breaker): not a call the agent
            // answered, so neither a failure nor a success, and it leaves the streak alone.
            return None;
        }
        if outcome.kind() == OutcomeKind::CallerFault {
            self.caller_faults.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if failed {
            self.note_failure(outcome, slow, now);
        } else {
            self.last_success.record(now + 1);
        }
        if state != BreakerState::Closed {
            return None;
        }
        let consecutive = if failed {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            0
        };
        let generation = self.generation();
        self.window.record(failed, slow, now);
        let stats = self.window.stats(now);
        let reason = trip_reason(&self.config, consecutive, stats)?;
        let mut cold = self.lock();
        if self.state() == BreakerState::Closed && self.generation() == generation {
            Some(self.enter_open(&mut cold, now, reason))
        } else {
            None
        }
    }

    fn on_probe_result(
        &self,
        generation: u64,
        outcome: &Outcome,
        slow: bool,
        now: &impl Fn() -> Nanos,
    ) -> Option<Transition> {
        let kind = outcome.kind();
        if outcome.is_local() {
            // Never reached the agent: give the slot back for a probe that will.
            self.release_probe(generation);
            return None;
        }
        if kind == OutcomeKind::CallerFault {
            // Says nothing about the agent: give the slot back for another probe.
            self.caller_faults.fetch_add(1, Ordering::Relaxed);
            self.release_probe(generation);
            return None;
        }
        let now = now();
        // A slow probe is a failed probe: the agent is not yet fit for full traffic.
        let failed = outcome.counts_against_agent() || slow;
        if outcome.counts_against_agent() {
            self.note_failure(outcome, slow, now);
        } else {
            self.last_success.record(now + 1);
        }
        let mut cold = self.lock();
        if self.state() != BreakerState::HalfOpen || self.generation() != generation {
            return None;
        }
        if failed {
            return Some(self.enter_open(&mut cold, now, TransitionReason::ProbeFailed));
        }
        let successes = self.probe_successes.fetch_add(1, Ordering::AcqRel) + 1;
        if successes >= self.config.success_threshold {
            return Some(self.enter_closed(
                &mut cold,
                now,
                BreakerState::Closed,
                TransitionReason::ProbesSucceeded,
            ));
        }
        drop(cold);
        self.release_probe(generation);
        None
    }

    fn note_failure(&self, outcome: &Outcome, slow: bool, now: Nanos) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.last_failure.store(now + 1, Ordering::Relaxed);
        self.failure_signal.notify_one();
        let keep = self.config.recent_failures;
        if keep == 0 {
            return;
        }
        let mut cold = self.lock();
        if cold.recent_failures.len() >= keep {
            cold.recent_failures.pop_front();
        }
        cold.recent_failures.push_back(FailureEntry {
            at: now,
            kind: outcome.kind(),
            reason: outcome.reason(),
            slow,
        });
    }

    /// A background health check passed while open in `generation`: admit probes.
    pub(crate) fn health_check_passed(&self, generation: u64, now: Nanos) -> Option<Transition> {
        let mut cold = self.lock();
        if self.state() == BreakerState::Open && self.generation() == generation {
            Some(self.enter_half_open(&mut cold, now, TransitionReason::HealthCheckPassed))
        } else {
            None
        }
    }

    /// A background health check failed while open in `generation`: the next one is due at
    /// `next_check` (shown as the next probe time).
    pub(crate) fn health_check_failed(&self, generation: u64, next_check: Nanos) {
        let _cold = self.lock();
        if self.state() == BreakerState::Open && self.generation() == generation {
            self.open_until.store(next_check, Ordering::Release);
        }
    }

    /// The health-check task could not be started (no tokio runtime): fall back to admitting
    /// probes when the open time elapses.
    pub(crate) fn stop_awaiting_health_check(&self) {
        self.awaiting_health_check.store(false, Ordering::Release);
    }

    /// Operator control: moves to `to` whatever the current state.
    pub(crate) fn force(
        &self,
        to: BreakerState,
        reason: TransitionReason,
        now: Nanos,
    ) -> Option<Transition> {
        let mut cold = self.lock();
        let from = self.state();
        if from == to && reason != TransitionReason::Reset {
            return None;
        }
        match to {
            BreakerState::Closed | BreakerState::Disabled => {
                Some(self.enter_closed(&mut cold, now, to, reason))
            }
            BreakerState::ForcedOpen => {
                self.awaiting_health_check.store(false, Ordering::Release);
                Some(self.set_state(&mut cold, now, to, reason, None))
            }
            BreakerState::Open => Some(self.enter_open(&mut cold, now, reason)),
            BreakerState::HalfOpen => Some(self.enter_half_open(&mut cold, now, reason)),
        }
    }

    /// Another replica says the agent is down until `until`: open until then. A closed or
    /// half-open breaker opens (a trip, reason `Remote`); an open one only moves its probe time
    /// (earlier or later: no transition, no event). An operator's `ForcedOpen` or `Disabled`
    /// wins: nothing changes.
    pub(crate) fn open_until(&self, until: Nanos, now: Nanos) -> Option<Transition> {
        let mut cold = self.lock();
        match self.state() {
            BreakerState::ForcedOpen | BreakerState::Disabled => None,
            BreakerState::Open => {
                self.open_until.store(until, Ordering::Release);
                None
            }
            BreakerState::Closed | BreakerState::HalfOpen => {
                cold.trips = cold.trips.saturating_add(1);
                let open_for = Duration::from_nanos(until.saturating_sub(now));
                self.open_until.store(until, Ordering::Release);
                self.awaiting_health_check.store(
                    self.uses_health_check.load(Ordering::Acquire),
                    Ordering::Release,
                );
                Some(self.set_state(
                    &mut cold,
                    now,
                    BreakerState::Open,
                    TransitionReason::Remote,
                    Some(open_for),
                ))
            }
        }
    }

    /// Another replica's probes succeeded: an open or half-open breaker closes (reason
    /// `Remote`). Closed, forced open and disabled breakers are left alone.
    pub(crate) fn close_remote(&self, now: Nanos) -> Option<Transition> {
        let mut cold = self.lock();
        match self.state() {
            BreakerState::Open | BreakerState::HalfOpen => Some(self.enter_closed(
                &mut cold,
                now,
                BreakerState::Closed,
                TransitionReason::Remote,
            )),
            _ => None,
        }
    }

    /// Restores an open period saved before a restart: open for `remaining` more, with `trips`
    /// driving the growth of later open times.
    pub(crate) fn restore_open(&self, trips: u32, remaining: Duration, now: Nanos) -> Transition {
        let mut cold = self.lock();
        cold.trips = trips.max(1);
        self.open_until.store(
            now.saturating_add(duration_to_nanos(remaining)),
            Ordering::Release,
        );
        self.awaiting_health_check.store(
            self.uses_health_check.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.set_state(
            &mut cold,
            now,
            BreakerState::Open,
            TransitionReason::Restored,
            Some(remaining),
        )
    }

    fn enter_open(&self, cold: &mut Cold, now: Nanos, reason: TransitionReason) -> Transition {
        cold.trips = cold.trips.saturating_add(1);
        let open_for = self.config.open_duration_for_trip(cold.trips);
        self.open_until.store(
            now.saturating_add(duration_to_nanos(open_for)),
            Ordering::Release,
        );
        self.awaiting_health_check.store(
            self.uses_health_check.load(Ordering::Acquire),
            Ordering::Release,
        );
        self.set_state(cold, now, BreakerState::Open, reason, Some(open_for))
    }

    fn enter_half_open(&self, cold: &mut Cold, now: Nanos, reason: TransitionReason) -> Transition {
        self.awaiting_health_check.store(false, Ordering::Release);
        self.set_state(cold, now, BreakerState::HalfOpen, reason, None)
    }

    fn enter_closed(
        &self,
        cold: &mut Cold,
        now: Nanos,
        to: BreakerState,
        reason: TransitionReason,
    ) -> Transition {
        cold.trips = 0;
        self.awaiting_health_check.store(false, Ordering::Release);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.window.reset();
        self.set_state(cold, now, to, reason, None)
    }

    fn set_state(
        &self,
        cold: &mut Cold,
        now: Nanos,
        to: BreakerState,
        reason: TransitionReason,
        open_for: Option<Duration>,
    ) -> Transition {
        let from = self.state();
        // Probe slots belong to one half-open period: every transition starts afresh, and the
        // slot word carries the new period, so no stale probe can take or free a slot of it.
        self.probe_successes.store(0, Ordering::Release);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.probe_slots
            .store(slots(generation, 0), Ordering::Release);
        self.state.store(to.to_u8(), Ordering::Release);
        cold.open_duration = open_for;
        cold.state_since = now;
        cold.last_reason = Some(reason);
        Transition {
            from,
            to,
            reason,
            generation,
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cold> {
        // A panic while holding this lock cannot leave `Cold` half-updated in a way that matters
        // (it holds statistics), so a poisoned lock is simply taken over.
        self.cold
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    // ---- reads for the handle ----

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            completed: self.completed.sum(),
            failures: self.failures.load(Ordering::Relaxed),
            caller_faults: self.caller_faults.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            rejected: self.rejected.sum(),
        }
    }

    pub(crate) fn failure_signal(&self) -> &tokio::sync::Notify {
        &self.failure_signal
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn window_stats(&self, now: Nanos) -> WindowStats {
        self.window.stats(now)
    }

    pub(crate) fn last_success(&self) -> Option<Nanos> {
        self.last_success.latest().checked_sub(1)
    }

    pub(crate) fn last_failure(&self) -> Option<Nanos> {
        self.last_failure.load(Ordering::Relaxed).checked_sub(1)
    }

    /// While open: when probes (or the next health check) are due.
    pub(crate) fn next_probe(&self) -> Option<Nanos> {
        (self.state() == BreakerState::Open).then(|| self.open_until.load(Ordering::Acquire))
    }

    pub(crate) fn awaiting_health_check(&self) -> bool {
        self.awaiting_health_check.load(Ordering::Acquire)
    }

    pub(crate) fn probes_in_flight(&self) -> u32 {
        split_slots(self.probe_slots.load(Ordering::Acquire)).1
    }

    pub(crate) fn recent_failures(&self) -> Vec<FailureEntry> {
        self.lock().recent_failures.iter().cloned().collect()
    }

    pub(crate) fn trips(&self) -> u32 {
        self.lock().trips
    }

    pub(crate) fn open_duration(&self) -> Option<Duration> {
        self.lock().open_duration
    }

    pub(crate) fn state_since(&self) -> Nanos {
        self.lock().state_since
    }

    pub(crate) fn last_transition_reason(&self) -> Option<TransitionReason> {
        self.lock().last_reason
    }
}

/// The trip rules, in order: consecutive failures, then (once `min_calls` are in the window) the
/// failure rate, then the slow-call rate.
pub(crate) fn trip_reason(
    config: &BreakerConfig,
    consecutive_failures: u32,
    stats: WindowStats,
) -> Option<TransitionReason> {
    if config.consecutive_failures > 0 && consecutive_failures >= config.consecutive_failures {
        return Some(TransitionReason::ConsecutiveFailures);
    }
    if stats.calls < config.min_calls {
        return None;
    }
    if stats.failures > 0 && stats.failure_rate() >= config.failure_rate_threshold {
        return Some(TransitionReason::FailureRate);
    }
    if config.slow_call_threshold.is_some()
        && stats.slow > 0
        && stats.slow_rate() >= config.slow_call_rate_threshold
    {
        return Some(TransitionReason::SlowCallRate);
    }
    None
}
