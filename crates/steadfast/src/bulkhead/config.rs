//! [`BulkheadConfig`] and [`AdaptiveConfig`]: the limit, the wait queue, the readiness mode
//! and the adaptive limit, validated once at construction.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::classify::{Outcome, OutcomeKind};
use crate::error::ConfigError;

/// The largest `max_concurrent` accepted: past a million calls in flight to one agent, a
/// limit protects nothing.
pub const MAX_CONCURRENT_LIMIT: u32 = 1 << 20;

/// The largest `max_queue` accepted.
pub const MAX_QUEUE_LIMIT: u32 = 1 << 20;

/// The longest `max_wait` accepted: a caller parked for longer than this is better refused
/// (and sent to an alternative) than kept waiting.
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(600);

/// The longest `latency_threshold` accepted.
pub const MAX_LATENCY_THRESHOLD: Duration = Duration::from_secs(600);

fn invalid(setting: &'static str, problem: impl Into<Cow<'static, str>>) -> ConfigError {
    ConfigError::new("bulkhead", setting, problem)
}

/// How a [`Bulkhead`](super::Bulkhead) uses `poll_ready`.
///
/// In a stack file (`steadfast::config`): `readiness = "shed_in_call"` or
/// `"wait_in_poll_ready"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Readiness {
    /// `poll_ready` forwards the inner service's readiness and never waits for a permit; a
    /// call that finds the bulkhead full waits in the queue (if any) or fails in `call` with
    /// [`BulkheadFull`](super::BulkheadFull). Works where services must always be ready
    /// (axum's router). The default.
    #[default]
    ShedInCall,
    /// Classic tower limit (as `tower::limit::ConcurrencyLimit`): `poll_ready` is pending until
    /// a permit is free, and the call holds it. Put a `LoadShed` or a timeout outside to bound
    /// the wait; `max_queue`/`max_wait` do not apply.
    WaitInPollReady,
}

/// Configuration of a [`BulkheadLayer`](super::BulkheadLayer). Build one with
/// [`BulkheadConfig::builder`]; every value a `BulkheadConfig` holds has been validated.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `max_concurrent` | 32 | calls in flight to the agent at once (the ceiling when adaptive) |
/// | `max_queue` | 0 | calls that may wait for a permit; more are refused at once |
/// | `max_wait` | none | how long a queued call waits before it is refused (required with a queue) |
/// | `readiness` | [`Readiness::ShedInCall`] | whether `poll_ready` waits for a permit |
/// | `adaptive` | none | an AIMD limit between `min_limit` and `max_concurrent` ([`AdaptiveConfig`]) |
#[derive(Clone, Debug, PartialEq)]
pub struct BulkheadConfig {
    pub(crate) max_concurrent: u32,
    pub(crate) max_queue: u32,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) readiness: Readiness,
    pub(crate) adaptive: Option<AdaptiveConfig>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 32,
            max_queue: 0,
            max_wait: None,
            readiness: Readiness::ShedInCall,
            adaptive: None,
        }
    }
}

impl BulkheadConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BulkheadConfigBuilder {
        BulkheadConfigBuilder::default()
    }

    /// A bulkhead of `max_concurrent` calls, no queue: `BulkheadConfig::builder()
    /// .max_concurrent(n).build()`.
    pub fn max_concurrent(max_concurrent: u32) -> Result<Self, ConfigError> {
        BulkheadConfig::builder()
            .max_concurrent(max_concurrent)
            .build()
    }

    /// Calls in flight at once (with an adaptive limit: the ceiling).
    pub fn max_concurrent_calls(&self) -> u32 {
        self.max_concurrent
    }

    /// Calls that may wait for a permit.
    pub fn max_queue(&self) -> u32 {
        self.max_queue
    }

    /// How long a queued call waits.
    pub fn max_wait(&self) -> Option<Duration> {
        self.max_wait
    }

    /// The readiness mode.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// The adaptive limit, if any.
    pub fn adaptive(&self) -> Option<&AdaptiveConfig> {
        self.adaptive.as_ref()
    }
}

/// Builds a [`BulkheadConfig`]; [`build`](Self::build) validates.
#[derive(Clone, Debug, Default)]
pub struct BulkheadConfigBuilder {
    config: BulkheadConfig,
}

impl BulkheadConfigBuilder {
    /// Calls in flight at once, 1..=[`MAX_CONCURRENT_LIMIT`].
    #[must_use]
    pub fn max_concurrent(mut self, max_concurrent: u32) -> Self {
        self.config.max_concurrent = max_concurrent;
        self
    }

    /// Calls that may wait for a permit, 0..=[`MAX_QUEUE_LIMIT`]; needs
    /// [`max_wait`](Self::max_wait) when not 0.
    #[must_use]
    pub fn max_queue(mut self, max_queue: u32) -> Self {
        self.config.max_queue = max_queue;
        self
    }

    /// How long a queued call waits for a permit before it is refused, over 0 and at most
    /// [`MAX_WAIT_LIMIT`].
    #[must_use]
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.config.max_wait = Some(max_wait);
        self
    }

    /// The readiness mode (see [`Readiness`]).
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.config.readiness = readiness;
        self
    }

    /// Makes the limit adaptive (AIMD), between the adaptive config's `min_limit` and
    /// `max_concurrent`.
    #[must_use]
    pub fn adaptive(mut self, adaptive: AdaptiveConfig) -> Self {
        self.config.adaptive = Some(adaptive);
        self
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<BulkheadConfig, ConfigError> {
        let config = self.config;
        if config.max_concurrent == 0 {
            return Err(invalid(
                "max_concurrent",
                "must be at least 1 (a bulkhead of 0 refuses every call)",
            )
            .with_value(0));
        }
        if config.max_concurrent > MAX_CONCURRENT_LIMIT {
            return Err(invalid(
                "max_concurrent",
                format!("must be at most {MAX_CONCURRENT_LIMIT}"),
            )
            .with_value(config.max_concurrent));
        }
        if config.max_queue > MAX_QUEUE_LIMIT {
            return Err(
                invalid("max_queue", format!("must be at most {MAX_QUEUE_LIMIT}"))
                    .with_value(config.max_queue),
            );
        }
        if let Some(wait) = config.max_wait {
            if wait.is_zero() {
                return Err(invalid(
                    "max_wait",
                    "must be over 0; for no waiting, leave max_queue at 0 and max_wait unset",
                )
                .with_value("0s"));
            }
            if wait > MAX_WAIT_LIMIT {
                return Err(invalid(
                    "max_wait",
                    format!("must be at most {MAX_WAIT_LIMIT:?}; refuse and fall back instead of parking callers"),
                )
                .with_value(format!("{wait:?}")));
            }
        }
        match (config.readiness, config.max_queue, config.max_wait) {
            (_, 0, None) | (Readiness::ShedInCall, 1.., Some(_)) => {}
            (Readiness::WaitInPollReady, _, _) => {
                return Err(invalid(
                    "readiness",
                    "wait_in_poll_ready parks callers in poll_ready, so max_queue and max_wait do not apply; bound the wait with a timeout or LoadShed outside",
                ));
            }
            (Readiness::ShedInCall, 0, Some(_)) => {
                return Err(invalid(
                    "max_wait",
                    "only applies to queued calls: set max_queue above 0, or leave max_wait unset",
                ));
            }
            (Readiness::ShedInCall, _, None) => {
                return Err(invalid(
                    "max_wait",
                    "a queue needs a maximum wait, so no caller waits forever",
                )
                .with_value("unset"));
            }
        }
        if let Some(adaptive) = &config.adaptive {
            adaptive.validate(config.max_concurrent)?;
        }
        Ok(config)
    }
}

/// Which outcomes say the agent is overloaded (and lower an adaptive limit).
type OverloadFn = dyn Fn(&Outcome) -> bool + Send + Sync;

/// An adaptive (AIMD) concurrency limit: the bulkhead's limit moves between `min_limit` and
/// the bulkhead's `max_concurrent` with what the agent answers.
///
/// - **Additive increase**: once as many calls as the limit succeeded (within the latency
///   threshold, if set) while the bulkhead was at least half used, the limit goes up by one.
/// - **Multiplicative decrease**: an overloaded answer (by default: rate-limited, or a
///   transient `503`/`529`/`overloaded`/`timeout`; see [`overload_when`](Self::overload_when))
///   or a success slower than `latency_threshold` multiplies the limit by `backoff`
///   (rounded down, never under `min_limit`). Only calls started since the last decrease can
///   lower it again, so one burst of 429s from one overload counts once.
/// - Other outcomes (agent faults, caller faults, local refusals) leave the limit alone.
///
/// | setting | default |
/// |---|---|
/// | `initial_limit` | the bulkhead's `max_concurrent` |
/// | `min_limit` | 1 |
/// | `backoff` | 0.9 |
/// | `latency_threshold` | none (only overload answers lower the limit) |
#[derive(Clone)]
pub struct AdaptiveConfig {
    pub(crate) initial_limit: Option<u32>,
    pub(crate) min_limit: u32,
    pub(crate) backoff: f64,
    pub(crate) latency_threshold: Option<Duration>,
    pub(crate) overload: Option<Arc<OverloadFn>>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig::new()
    }
}

impl AdaptiveConfig {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        AdaptiveConfig {
            initial_limit: None,
            min_limit: 1,
            backoff: 0.9,
            latency_threshold: None,
            overload: None,
        }
    }

    /// The limit to start at, `min_limit..=max_concurrent` (default: `max_concurrent`).
    #[must_use]
    pub fn initial_limit(mut self, limit: u32) -> Self {
        self.initial_limit = Some(limit);
        self
    }

    /// The lowest the limit goes, at least 1.
    #[must_use]
    pub fn min_limit(mut self, limit: u32) -> Self {
        self.min_limit = limit;
        self
    }

    /// The factor an overload multiplies the limit by, in `0.1..1` (0.9: a 10 % cut).
    #[must_use]
    pub fn backoff(mut self, factor: f64) -> Self {
        self.backoff = factor;
        self
    }

    /// A success slower than this counts as overload, over 0 and at most
    /// [`MAX_LATENCY_THRESHOLD`]. A call is timed from the moment it is first found pending
    /// (its first poll): one that answers at once reads no clock and is never slow.
    #[must_use]
    pub fn latency_threshold(mut self, threshold: Duration) -> Self {
        self.latency_threshold = Some(threshold);
        self
    }

    /// Replaces the rule that says which classified outcomes are overload.
    #[must_use]
    pub fn overload_when(
        mut self,
        rule: impl Fn(&Outcome) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.overload = Some(Arc::new(rule));
        self
    }

    /// Whether `outcome` says the agent is overloaded, by this config's rule.
    pub fn is_overload(&self, outcome: &Outcome) -> bool {
        match &self.overload {
            Some(rule) => rule(outcome),
            None => default_overload(outcome),
        }
    }

    pub(crate) fn validate(&self, max_concurrent: u32) -> Result<(), ConfigError> {
        if self.min_limit == 0 {
            return Err(invalid(
                "adaptive.min_limit",
                "must be at least 1, or the limit could close the bulkhead for good",
            )
            .with_value(0));
        }
        if self.min_limit > max_concurrent {
            return Err(invalid(
                "adaptive.min_limit",
                format!("must be at most max_concurrent ({max_concurrent})"),
            )
            .with_value(self.min_limit));
        }
        if let Some(initial) = self.initial_limit
            && !(self.min_limit..=max_concurrent).contains(&initial)
        {
            return Err(invalid(
                "adaptive.initial_limit",
                format!(
                    "must be between min_limit ({}) and max_concurrent ({max_concurrent})",
                    self.min_limit
                ),
            )
            .with_value(initial));
        }
        if !(self.backoff.is_finite() && (0.1..1.0).contains(&self.backoff)) {
            return Err(invalid(
                "adaptive.backoff",
                "must be at least 0.1 and below 1 (0.9 cuts the limit by 10 % per overload)",
            )
            .with_value(self.backoff));
        }
        if let Some(threshold) = self.latency_threshold
            && (threshold.is_zero() || threshold > MAX_LATENCY_THRESHOLD)
        {
            return Err(invalid(
                "adaptive.latency_threshold",
                format!("must be over 0 and at most {MAX_LATENCY_THRESHOLD:?}"),
            )
            .with_value(format!("{threshold:?}")));
        }
        Ok(())
    }

    pub(crate) fn start(&self, max_concurrent: u32) -> u32 {
        self.initial_limit.unwrap_or(max_concurrent)
    }
}

/// The default overload rule: rate-limited, or transient with a reason that names overload.
fn default_overload(outcome: &Outcome) -> bool {
    match outcome.kind() {
        OutcomeKind::RateLimited => !outcome.is_local(),
        OutcomeKind::Transient => matches!(
            outcome.reason(),
            Some("503" | "529" | "overloaded" | "timeout")
        ),
        _ => false,
    }
}

impl PartialEq for AdaptiveConfig {
    /// Equal settings; two custom overload rules are equal only if they are the same rule.
    fn eq(&self, other: &Self) -> bool {
        self.initial_limit == other.initial_limit
            && self.min_limit == other.min_limit
            && self.backoff.to_bits() == other.backoff.to_bits()
            && self.latency_threshold == other.latency_threshold
            && match (&self.overload, &other.overload) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl fmt::Debug for AdaptiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveConfig")
            .field("initial_limit", &self.initial_limit)
            .field("min_limit", &self.min_limit)
            .field("backoff", &self.backoff)
            .field("latency_threshold", &self.latency_threshold)
            .field("custom_overload_rule", &self.overload.is_some())
            .finish()
    }
}
