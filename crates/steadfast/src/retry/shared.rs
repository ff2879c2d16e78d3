//! The state one retry service and its clones and futures share behind one `Arc`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::agent::{CallMetrics, Reporter};
use crate::classify::{Outcome, OutcomeKind};
use crate::clock::Nanos;
use crate::events::Event;
use crate::rng::SplitMix;

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::policy;

/// The `retry_on` override: decides, for transient and rate-limited outcomes, whether to retry.
pub(crate) type RetryOn = Arc<dyn Fn(&Outcome) -> bool + Send + Sync>;

pub(crate) struct Shared<S> {
    pub(crate) name: Arc<str>,
    pub(crate) reporter: Arc<Reporter>,
    pub(crate) config: RetryConfig,
    pub(crate) budget: RetryBudget,
    pub(crate) retry_on: Option<RetryOn>,
    pub(crate) rng: SplitMix,
    /// `steadfast_call_duration_seconds` and `steadfast_call_attempts`, per call.
    pub(crate) calls: CallMetrics,
    /// A clone of the wrapped service, made when the layer wrapped it: a call that is retried
    /// sends its later attempts through a clone of this one. Keeping it here instead of cloning
    /// the inner service on every call (as tower's `Retry` does) leaves the success path
    /// without that clone, which for an inner layer holding shared state (a breaker) was a
    /// reference count taken and dropped on a line every thread writes.
    prototype: Mutex<S>,
}

impl<S> Shared<S> {
    pub(crate) fn new(
        reporter: Arc<Reporter>,
        config: RetryConfig,
        budget: RetryBudget,
        retry_on: Option<RetryOn>,
        rng: SplitMix,
        service: S,
    ) -> Self {
        Shared {
            name: reporter.name.clone(),
            calls: reporter.call_metrics(),
            reporter,
            config,
            budget,
            retry_on,
            rng,
            prototype: Mutex::new(service),
        }
    }
}

impl<S: Clone> Shared<S> {
    /// A service to send a retry through.
    pub(crate) fn service(&self) -> S {
        self.prototype
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S> Shared<S> {
    /// The computed (jittered) wait before retry number `retry`.
    pub(crate) fn backoff(&self, retry: u32, previous: Duration) -> Duration {
        policy::backoff(&self.config, retry, previous, self.rng.next_unit())
    }

    pub(crate) fn retryable(&self, outcome: &Outcome) -> bool {
        match &self.retry_on {
            Some(retry_on) => retry_on(outcome),
            None => outcome.is_retryable(),
        }
    }

    /// A retry was decided: attempt `attempt` follows after `delay`.
    pub(crate) fn report_retry(&self, outcome: &Outcome, attempt: u32, delay: Duration) {
        self.reporter.emit(Event::RetryScheduled {
            agent: self.name.clone(),
            attempt,
            delay,
            reason: outcome.reason(),
        });
    }

    /// The retries ran out after `attempts` attempts.
    pub(crate) fn report_exhausted(&self, outcome: &Outcome, attempts: u32) {
        self.reporter.emit(Event::RetriesExhausted {
            agent: self.name.clone(),
            attempts,
            reason: outcome.reason(),
        });
    }

    pub(crate) fn report_budget_exhausted(&self, attempts: u32) {
        self.reporter.emit(Event::RetryBudgetExhausted {
            agent: self.name.clone(),
            attempts,
        });
    }

    /// An attempt that started at `started` ended at `now` (the budget's clock) with `kind`.
    #[inline]
    pub(crate) fn report_attempt(&self, kind: OutcomeKind, started: Nanos, now: Nanos) {
        self.calls
            .attempt(kind, seconds(now.saturating_sub(started)));
    }

    /// A call that started at `started` ended at `now` (`ok`: successfully) after `attempts`
    /// attempts.
    #[inline]
    pub(crate) fn report_call(&self, ok: bool, started: Nanos, now: Nanos, attempts: u32) {
        self.calls
            .finished(ok, seconds(now.saturating_sub(started)), attempts);
    }

    pub(crate) fn report_deadline_exceeded(&self, attempts: u32) {
        self.reporter.emit(Event::DeadlineExceeded {
            agent: self.name.clone(),
            attempts,
        });
    }
}

fn seconds(nanos: Nanos) -> f64 {
    nanos as f64 / 1e9
}

impl<S> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("agent", &self.name)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .field("retry_on", &self.retry_on.is_some())
            .finish_non_exhaustive()
    }
}
