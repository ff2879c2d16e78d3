//! [`BreakerHandle`]: what operators and other layers see of a breaker, and its manual controls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::classify::OutcomeKind;

use super::config::BreakerConfig;
use super::shared::Shared;
use super::state::{BreakerState, TransitionReason};

/// A cheap, cloneable view of one breaker: state, counters, recent failures, next probe, and the
/// manual controls. Get one from [`CircuitBreakerLayer::handle`](super::CircuitBreakerLayer::handle),
/// [`CircuitBreaker::handle`](super::CircuitBreaker::handle) or a
/// [`Registry`](crate::Registry).
#[derive(Clone)]
pub struct BreakerHandle {
    pub(crate) shared: Arc<Shared>,
}

/// Lifetime counters of a breaker (calls that completed, by outcome, and rejections).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BreakerCounts {
    /// Admitted calls that completed.
    pub calls: u64,
    /// Of which succeeded.
    pub successes: u64,
    /// Of which failed (transient, rate-limited, agent fault).
    pub failures: u64,
    /// Of which were the caller's fault (never held against the agent).
    pub caller_faults: u64,
    /// Of which were slower than the slow-call threshold.
    pub slow_calls: u64,
    /// Calls refused without reaching the agent.
    pub rejected: u64,
}

/// A failure kept for operators (the last `recent_failures` of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentFailure {
    /// When it completed.
    pub at: Instant,
    /// How it was classified.
    pub kind: OutcomeKind,
    /// The classifier's reason, if any.
    pub reason: Option<&'static str>,
    /// Whether it was also slow.
    pub slow: bool,
}

impl BreakerHandle {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state. An open breaker whose open time has elapsed reports `Open` until the
    /// next call (or health check) moves it to `HalfOpen`; see [`next_probe_at`](Self::next_probe_at).
    pub fn state(&self) -> BreakerState {
        self.shared.core.state()
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        self.shared.core.config()
    }

    /// Lifetime counters.
    pub fn counts(&self) -> BreakerCounts {
        let counts = self.shared.core.counts();
        BreakerCounts {
            calls: counts.completed,
            successes: counts
                .completed
                .saturating_sub(counts.failures + counts.caller_faults),
            failures: counts.failures,
            caller_faults: counts.caller_faults,
            slow_calls: counts.slow,
            rejected: counts.rejected,
        }
    }

    /// Failures in a row while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.shared.core.consecutive_failures()
    }

    /// Completes once this breaker records a failure: at the next one, or at once if one was
    /// recorded since the last wait completed (one stored wake-up, as
    /// [`Notify::notify_one`](tokio::sync::Notify::notify_one)). For one background task that
    /// shares failures beyond this process (fleet sync): several tasks waiting at once share
    /// the wake-ups. A success never signals, so the closed success path pays nothing for it;
    /// read [`consecutive_failures`](Self::consecutive_failures) and
    /// [`counts`](Self::counts) after waking.
    pub async fn failure_recorded(&self) {
        self.shared.core.failure_signal().notified().await;
    }

    /// Calls in the sliding window.
    pub fn window_calls(&self) -> u32 {
        self.shared.core.window_stats(self.shared.now()).calls
    }

    /// The failure rate over the sliding window (0..=1); `None` until it holds `min_calls`.
    pub fn failure_rate(&self) -> Option<f64> {
        let stats = self.shared.core.window_stats(self.shared.now());
        (stats.calls >= self.config().min_calls()).then(|| stats.failure_rate())
    }

    /// The slow-call rate over the sliding window (0..=1); `None` until it holds `min_calls`.
    pub fn slow_call_rate(&self) -> Option<f64> {
        let stats = self.shared.core.window_stats(self.shared.now());
        (stats.calls >= self.config().min_calls()).then(|| stats.slow_rate())
    }

    /// When the last failure completed.
    pub fn last_failure_at(&self) -> Option<Instant> {
        self.shared
            .core
            .last_failure()
            .map(|at| self.shared.instant_at(at))
    }

    /// When a call last succeeded. A long run of successes refreshes it every 64 calls (so the
    /// hot path rarely reads the clock); the first success after a failure sets it exactly.
    pub fn last_success_at(&self) -> Option<Instant> {
        self.shared
            .core
            .last_success()
            .map(|at| self.shared.instant_at(at))
    }

    /// The last failures, oldest first.
    pub fn recent_failures(&self) -> Vec<RecentFailure> {
        self.shared
            .core
            .recent_failures()
            .into_iter()
            .map(|entry| RecentFailure {
                at: self.shared.instant_at(entry.at),
                kind: entry.kind,
                reason: entry.reason,
                slow: entry.slow,
            })
            .collect()
    }

    /// While open: when probes are admitted (or, with a health check, when the next check runs).
    pub fn next_probe_at(&self) -> Option<Instant> {
        self.shared.next_probe_instant()
    }

    /// While open: how long this open period lasts.
    pub fn open_duration(&self) -> Option<Duration> {
        match self.state() {
            BreakerState::Open => self.shared.core.open_duration(),
            _ => None,
        }
    }

    /// Trips since the last clean close (drives the growing open time).
    pub fn trips(&self) -> u32 {
        self.shared.core.trips()
    }

    /// When the breaker entered its current state.
    pub fn state_since(&self) -> Instant {
        self.shared.instant_at(self.shared.core.state_since())
    }

    /// Why the breaker last changed state.
    pub fn last_transition_reason(&self) -> Option<TransitionReason> {
        self.shared.core.last_transition_reason()
    }

    /// Whether an open breaker waits for its health check before admitting probes.
    pub fn awaiting_health_check(&self) -> bool {
        self.state() == BreakerState::Open && self.shared.core.awaiting_health_check()
    }

    /// Half-open probes running now.
    pub fn probes_in_flight(&self) -> u32 {
        self.shared.core.probes_in_flight()
    }

    /// A receiver that sees every state change (the latest state; intermediate ones may be
    /// skipped by a slow reader).
    pub fn watch(&self) -> watch::Receiver<BreakerState> {
        self.shared.subscribe()
    }

    /// Opens the circuit until [`force_closed`](Self::force_closed) or [`reset`](Self::reset):
    /// for maintenance, or an agent known to be bad.
    pub fn force_open(&self) {
        self.force(BreakerState::ForcedOpen, TransitionReason::ForcedOpen);
    }

    /// Closes the circuit now, whatever its state, clearing the window.
    pub fn force_closed(&self) {
        self.force(BreakerState::Closed, TransitionReason::ForcedClosed);
    }

    /// Back to a fresh closed breaker: window, consecutive failures and open-time growth
    /// cleared (lifetime counters are kept: they feed monotonic metrics).
    pub fn reset(&self) {
        self.force(BreakerState::Closed, TransitionReason::Reset);
    }

    /// Lets every call through and watches nothing, until `force_closed` or `reset`.
    pub fn disable(&self) {
        self.force(BreakerState::Disabled, TransitionReason::Disabled);
    }

    /// What [`restore`](Self::restore) needs to bring this breaker back after a restart.
    pub fn saved_state(&self) -> SavedBreaker {
        let state = self.state();
        SavedBreaker {
            agent: self.name().to_owned(),
            state,
            trips: self.trips(),
            open_remaining_secs: match state {
                BreakerState::Open => Some(self.next_probe_at().map_or(0.0, |at| {
                    at.saturating_duration_since(Instant::now()).as_secs_f64()
                })),
                _ => None,
            },
        }
    }

    /// Brings back a state saved by [`saved_state`](Self::saved_state) (usually before a
    /// restart), so an agent known to be down is not hammered by a fresh process:
    ///
    /// - `open`: opens for what was left of the open time, minus `elapsed` (the time between
    ///   saving and restoring; probes are admitted at once if it has run out), keeping the trip
    ///   count so a failed probe opens for the next, longer period;
    /// - `half_open`: opens with nothing left to wait, so the next call is a probe;
    /// - `forced_open` / `disabled`: as an operator left it;
    /// - `closed`: nothing changes.
    ///
    /// Returns whether the state changed. The transition is announced as usual (reason
    /// `restored`).
    pub fn restore(&self, saved: &SavedBreaker, elapsed: Duration) -> bool {
        let open_for = |secs: Option<f64>| {
            let remaining = Duration::try_from_secs_f64(secs.unwrap_or(0.0)).unwrap_or_default();
            remaining.saturating_sub(elapsed)
        };
        let transition = match saved.state {
            BreakerState::Closed => None,
            BreakerState::Open | BreakerState::HalfOpen => {
                let remaining = match saved.state {
                    BreakerState::Open => open_for(saved.open_remaining_secs),
                    _ => Duration::ZERO,
                };
                Some(
                    self.shared
                        .core
                        .restore_open(saved.trips, remaining, self.shared.now()),
                )
            }
            BreakerState::ForcedOpen | BreakerState::Disabled => {
                self.shared
                    .core
                    .force(saved.state, TransitionReason::Restored, self.shared.now())
            }
        };
        if let Some(transition) = &transition {
            self.shared.announce(transition);
        }
        transition.is_some()
    }

    /// Opens the circuit until `until` on the word of another replica (fleet sync, e.g.
    /// `steadfast-redis`), without waiting for this replica's own calls to fail:
    ///
    /// - `closed` / `half_open`: opens (reason [`TransitionReason::Remote`]; the transition is
    ///   announced and counted as a trip, so a probe that fails here later opens for longer);
    /// - `open`: only the probe time moves to `until`, earlier or later (nothing announced):
    ///   a replica that lost the fleet's probe lease waits this way for the one that won;
    /// - `forced_open` / `disabled`: an operator decided, nothing changes.
    ///
    /// At `until` the breaker goes on by itself, as after any open period: the next call is a
    /// probe (or, with a health check, the check runs), so a replica that hears nothing more
    /// never stays open for longer than it was told. Calls are never slowed: this takes the
    /// breaker's transition lock, which the closed success path never takes. Returns whether
    /// anything changed.
    pub fn open_until(&self, until: Instant) -> bool {
        let until = self.shared.origin.nanos_at(until);
        let now = self.shared.now();
        if until <= now && self.state() != BreakerState::Open {
            return false;
        }
        let before = self.next_probe_at();
        let transition = self.shared.core.open_until(until, now);
        if let Some(transition) = &transition {
            self.shared.announce(transition);
        }
        transition.is_some() || before != self.next_probe_at()
    }

    /// Closes an open or half-open circuit because another replica's probes succeeded (fleet
    /// sync): reason [`TransitionReason::Remote`], window and open-time growth cleared as on
    /// any close. A closed, forced-open or disabled breaker is left alone. Returns whether the
    /// state changed.
    pub fn close_remote(&self) -> bool {
        let transition = self.shared.core.close_remote(self.shared.now());
        if let Some(transition) = &transition {
            self.shared.announce(transition);
        }
        transition.is_some()
    }

    fn force(&self, to: BreakerState, reason: TransitionReason) {
        if let Some(transition) = self.shared.core.force(to, reason, self.shared.now()) {
            self.shared.announce(&transition);
        }
    }

    /// Whether `other` is a handle to the same breaker.
    pub fn same_breaker(&self, other: &BreakerHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A point-in-time view, ready to serialise for a status page.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let ago = |at: Instant| now.saturating_duration_since(at).as_secs_f64();
        let stats = self.shared.core.window_stats(self.shared.now());
        let min_calls = self.config().min_calls();
        BreakerSnapshot {
            agent: self.name().to_owned(),
            state: self.state(),
            state_for_secs: ago(self.state_since()),
            last_transition_reason: self.last_transition_reason(),
            counts: self.counts(),
            consecutive_failures: self.consecutive_failures(),
            window_calls: stats.calls,
            failure_rate: (stats.calls >= min_calls).then(|| stats.failure_rate()),
            slow_call_rate: (stats.calls >= min_calls).then(|| stats.slow_rate()),
            trips: self.trips(),
            open_duration_secs: self.open_duration().map(|d| d.as_secs_f64()),
            next_probe_in_secs: self
                .next_probe_at()
                .map(|at| at.saturating_duration_since(now).as_secs_f64()),
            awaiting_health_check: self.awaiting_health_check(),
            last_success_secs_ago: self.last_success_at().map(ago),
            last_failure_secs_ago: self.last_failure_at().map(ago),
            recent_failures: self
                .recent_failures()
                .into_iter()
                .map(|failure| RecentFailureSnapshot {
                    secs_ago: ago(failure.at),
                    kind: failure.kind,
                    reason: failure.reason,
                    slow: failure.slow,
                })
                .collect(),
        }
    }
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("agent", &self.shared.name)
            .field("state", &self.state())
            .finish()
    }
}

/// A breaker's state as saved across restarts; see [`BreakerHandle::saved_state`] and
/// [`BreakerHandle::restore`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SavedBreaker {
    /// The agent's name.
    pub agent: String,
    /// The state when saved.
    pub state: BreakerState,
    /// Trips since the last clean close (drives the growing open time).
    #[cfg_attr(feature = "serde", serde(default))]
    pub trips: u32,
    /// While open: seconds of open time left when saved.
    #[cfg_attr(feature = "serde", serde(default))]
    pub open_remaining_secs: Option<f64>,
}

impl SavedBreaker {
    /// A saved state for `agent` (for tests and hand-written state files).
    pub fn new(agent: impl Into<String>, state: BreakerState) -> Self {
        SavedBreaker {
            agent: agent.into(),
            state,
            trips: u32::from(matches!(state, BreakerState::Open | BreakerState::HalfOpen)),
            open_remaining_secs: None,
        }
    }

    /// With `remaining` open time left.
    #[must_use]
    pub fn open_remaining(mut self, remaining: Duration) -> Self {
        self.open_remaining_secs = Some(remaining.as_secs_f64());
        self
    }
}

/// A breaker at one moment; times are relative to the moment it was taken.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The agent's name.
    pub agent: String,
    /// The state.
    pub state: BreakerState,
    /// Seconds in this state.
    pub state_for_secs: f64,
    /// Why it entered this state.
    pub last_transition_reason: Option<TransitionReason>,
    /// Lifetime counters.
    pub counts: BreakerCounts,
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// Calls in the sliding window.
    pub window_calls: u32,
    /// Failure rate over the window, once it holds `min_calls`.
    pub failure_rate: Option<f64>,
    /// Slow-call rate over the window, once it holds `min_calls`.
    pub slow_call_rate: Option<f64>,
    /// Trips since the last clean close.
    pub trips: u32,
    /// While open: length of this open period.
    pub open_duration_secs: Option<f64>,
    /// While open: seconds until probes (or the next health check).
    pub next_probe_in_secs: Option<f64>,
    /// Whether the breaker waits for a health check to pass.
    pub awaiting_health_check: bool,
    /// Seconds since the last success.
    pub last_success_secs_ago: Option<f64>,
    /// Seconds since the last failure.
    pub last_failure_secs_ago: Option<f64>,
    /// The last failures, oldest first.
    pub recent_failures: Vec<RecentFailureSnapshot>,
}

/// One of [`BreakerSnapshot::recent_failures`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RecentFailureSnapshot {
    /// Seconds ago.
    pub secs_ago: f64,
    /// How it was classified.
    pub kind: OutcomeKind,
    /// The classifier's reason.
    pub reason: Option<&'static str>,
    /// Whether it was also slow.
    pub slow: bool,
}
