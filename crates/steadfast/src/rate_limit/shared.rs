//! The state every service of one [`RateLimitLayer`](super::RateLimitLayer) shares.

use std::fmt;
use std::sync::Arc;

use crate::agent::Reporter;
use crate::clock::{Nanos, Origin};
use crate::error::BoxError;
use crate::events::Event;
use crate::sync::Listing;

use super::config::RateLimitConfig;
use super::error::RateLimited;
use super::state::{Limit, Limits};

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) reporter: Arc<Reporter>,
    pub(crate) origin: Origin,
    pub(crate) limits: Limits,
    pub(crate) max_wait: Nanos,
    pub(crate) max_pause: Nanos,
    pub(crate) config: RateLimitConfig,
    /// Where a call that holds no counted reference finds the limiter again (a rate-limited
    /// answer pausing the agent).
    pub(crate) listing: Listing<Shared>,
}

impl Shared {
    /// The agent answered rate-limited and asked for `wait` (capped by `max_pause`): no call
    /// goes to it before `now + wait`, and the quotas refill from nothing after.
    pub(crate) fn pause(&self, now: Nanos, wait: Nanos) {
        let wait = wait.min(self.max_pause);
        if wait == 0 {
            return;
        }
        tracing::debug!(agent = %self.name, pause_secs = wait as f64 / 1e9, "agent answered rate-limited: pausing calls to it");
        self.limits.pause_until(now.saturating_add(wait));
        self.reporter.emit(Event::AgentPaused {
            agent: self.name.clone(),
            pause: std::time::Duration::from_nanos(wait),
        });
    }

    /// A call is refused by `limit`; admitting it would have taken `wait` (`None`: never).
    pub(crate) fn refused(&self, limit: Limit, wait: Option<Nanos>) -> BoxError {
        self.reporter.emit(Event::RateLimited {
            agent: self.name.clone(),
            limit: limit.as_str(),
        });
        RateLimited::new(
            self.name.clone(),
            limit,
            wait.map(std::time::Duration::from_nanos),
        )
        .into()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("agent", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
