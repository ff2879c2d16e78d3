//! The state every service of one [`HedgeLayer`](super::HedgeLayer) shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::agent::Scope;
use crate::clock::{Nanos, Origin, duration_to_nanos};
use crate::retry::RetryBudget;

use super::config::{HedgeConfig, HedgeDelay};
use super::state::Latencies;

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) scope: Arc<Scope>,
    pub(crate) config: HedgeConfig,
    pub(crate) budget: RetryBudget,
    /// Whether requests deposit into the budget here (not when a retry layer owns it).
    pub(crate) deposits: bool,
    pub(crate) origin: Origin,
    /// Kept only for percentile delays.
    pub(crate) latencies: Option<Latencies>,
}

impl Shared {
    /// How long after `start` the first hedge goes, or `None` for no hedge (a percentile with
    /// too few calls seen yet).
    pub(crate) fn delay(&self, start: Instant) -> Option<Duration> {
        match self.config.delay {
            HedgeDelay::Fixed(delay) => Some(delay),
            HedgeDelay::Percentile(percentile) => {
                let latencies = self.latencies.as_ref()?;
                let nanos = latencies.percentile(
                    self.origin.nanos_at(start),
                    percentile,
                    self.config.min_samples,
                )?;
                Some(
                    Duration::from_nanos(nanos).clamp(self.config.min_delay, self.config.max_delay),
                )
            }
        }
    }

    /// Counts a finished call's latency (percentile delays only).
    pub(crate) fn record(&self, start: Option<Instant>) {
        let Some(latencies) = &self.latencies else {
            return;
        };
        match start {
            None => latencies.record_immediate(),
            Some(start) => {
                let now = Instant::now();
                let latency: Nanos = duration_to_nanos(now.saturating_duration_since(start));
                latencies.record(self.origin.nanos_at(now), latency);
            }
        }
    }

    /// Takes a hedge to the agent named `to` from the budget, if it has one left.
    pub(crate) fn withdraw(&self, to: &str, now: Instant) -> bool {
        if self
            .budget
            .try_withdraw_at(self.budget.origin().nanos_at(now))
        {
            return true;
        }
        tracing::debug!(agent = %self.name, to, "no hedge: the budget is spent");
        false
    }
}

/// Whether the breaker of the agent of `scope` (if it has one) is closed or disabled. Open, a
/// hedge would be refused; half-open, it would take one of the few probes the breaker admits,
/// and a probe must be a real request, not a duplicate.
#[cfg_attr(not(feature = "circuit-breaker"), allow(unused_variables))]
pub(crate) fn circuit_closed(scope: &Scope) -> bool {
    #[cfg(feature = "circuit-breaker")]
    if let Some(breaker) = scope.breaker() {
        use crate::circuit_breaker::BreakerState;
        return matches!(
            breaker.state(),
            BreakerState::Closed | BreakerState::Disabled
        );
    }
    true
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("agent", &self.name)
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}
