//! The state one retry layer, its services and their futures share behind one `Arc`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics::Counter;

use crate::classify::Outcome;
use crate::events::Event;
use crate::report::{ReportTo, Reporter};

use super::budget::RetryBudget;
use super::config::RetryConfig;
use super::policy::{self, SplitMix};

/// The `retry_on` override: decides, for transient and rate-limited outcomes, whether to retry.
pub(crate) type RetryOn = Arc<dyn Fn(&Outcome) -> bool + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) config: RetryConfig,
    pub(crate) budget: RetryBudget,
    pub(crate) retry_on: Option<RetryOn>,
    rng: SplitMix,
    budget_exhausted: Counter,
    report_to: ReportTo,
    reporter: Reporter,
}

/// What a layer is made of, so its builder methods can make a fresh `Shared` with one part
/// changed.
pub(crate) struct Parts {
    pub(crate) name: Arc<str>,
    pub(crate) config: RetryConfig,
    pub(crate) budget: RetryBudget,
    pub(crate) retry_on: Option<RetryOn>,
    pub(crate) seed: u64,
    pub(crate) report_to: ReportTo,
}

impl Shared {
    pub(crate) fn new(parts: Parts) -> Arc<Self> {
        let budget_exhausted = metrics::counter!(
            "steadfast_retry_budget_exhausted_total", "agent" => parts.name.to_string()
        );
        let reporter = parts.report_to.resolve(&parts.name);
        Arc::new(Shared {
            name: parts.name,
            config: parts.config,
            budget: parts.budget,
            retry_on: parts.retry_on,
            rng: SplitMix::new(parts.seed),
            budget_exhausted,
            report_to: parts.report_to,
            reporter,
        })
    }

    /// This layer's parts, to rebuild it with one changed (the jitter sequence continues).
    pub(crate) fn parts(&self) -> Parts {
        Parts {
            name: self.name.clone(),
            config: self.config.clone(),
            budget: self.budget.clone(),
            retry_on: self.retry_on.clone(),
            seed: self.rng.next_u64(),
            report_to: self.report_to.clone(),
        }
    }

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
    pub(crate) fn count_retry(&self, outcome: &Outcome, attempt: u32, delay: Duration) {
        let reason = outcome.reason().unwrap_or(outcome.kind().as_str());
        metrics::counter!(
            "steadfast_retries_total", "agent" => self.name.to_string(), "reason" => reason
        )
        .increment(1);
        self.reporter.report(
            || Event::RetryScheduled {
                agent: self.name.clone(),
                attempt,
                delay,
                reason: outcome.reason(),
            },
            crate::registry::AgentCounters::record_retry,
        );
    }

    /// The retries ran out after `attempts` attempts.
    pub(crate) fn count_exhausted(&self, outcome: &Outcome, attempts: u32) {
        self.reporter.report(
            || Event::RetriesExhausted {
                agent: self.name.clone(),
                attempts,
                reason: outcome.reason(),
            },
            crate::registry::AgentCounters::record_retries_exhausted,
        );
    }

    pub(crate) fn count_budget_exhausted(&self) {
        self.budget_exhausted.increment(1);
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("agent", &self.name)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .field("retry_on", &self.retry_on.is_some())
            .field("report_to", &self.report_to)
            .finish_non_exhaustive()
    }
}
