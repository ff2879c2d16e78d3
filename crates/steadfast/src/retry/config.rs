//! [`RetryConfig`]: attempts, backoff, jitter, `Retry-After` cap, deadline and budget, validated
//! once at construction.

use std::time::Duration;

use crate::error::ConfigError;

/// The most retries a configuration may ask for: past this a "retry" is a loop.
pub const MAX_RETRIES_LIMIT: u32 = 100;

/// The largest backoff `multiplier` accepted: at 10 the wait grows a decade per retry, and a
/// larger factor only reaches `max_backoff` sooner.
pub const MAX_MULTIPLIER: f64 = 10.0;

/// How the computed backoff is randomised, so that callers that failed together do not retry
/// together.
///
/// With `exp = min(max_backoff, base x multiplier^(retry-1))`:
///
/// | jitter | wait |
/// |---|---|
/// | `Full` (default) | uniform in `[0, exp]` |
/// | `Equal` | `exp / 2` + uniform in `[0, exp / 2]` |
/// | `Decorrelated` | uniform in `[base, 3 x previous wait]`, capped by `max_backoff` |
/// | `None` | `exp` |
///
/// `Full` is the default: AWS's analysis ("Exponential Backoff And Jitter") shows it spreads a
/// herd of synchronised clients best and does the least total work; a wait the agent asked for
/// (`Retry-After`) is honoured exactly and never jittered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Jitter {
    /// Uniform in `[0, exp]`.
    #[default]
    Full,
    /// Half fixed, half random: uniform in `[exp / 2, exp]`.
    Equal,
    /// AWS "decorrelated jitter": uniform in `[base, 3 x previous wait]`, capped.
    Decorrelated,
    /// The exponential backoff as computed.
    None,
}

fn invalid(
    setting: &'static str,
    problem: impl Into<std::borrow::Cow<'static, str>>,
) -> ConfigError {
    ConfigError::new("retry", setting, problem)
}

/// Configuration of a [`BackoffRetryLayer`](super::BackoffRetryLayer). Build one with
/// [`RetryConfig::builder`]; every value a `RetryConfig` holds has been validated.
///
/// | setting | default | why |
/// |---|---|---|
/// | `max_retries` | 3 | four attempts ride out a blip; more only adds load to an outage |
/// | `base` | 500 ms | the first wait: long enough for a restarted pod, short for a user |
/// | `multiplier` | 2.0 | 0.5 s, 1 s, 2 s, 4 s, ... |
/// | `max_backoff` | 8 s | no computed wait is longer |
/// | `jitter` | [`Jitter::Full`] | spreads synchronised callers (see [`Jitter`]) |
/// | `max_retry_after` | 60 s | an agent asking for a longer wait gets an immediate error |
/// | `deadline` | none | set one: it bounds all attempts and waits together |
/// | `budget_ratio` | 0.2 | retries may add at most 20 % to the load (Finagle, Envoy) |
/// | `budget_min_per_sec` | 10 | low-traffic callers can still retry |
/// | `budget_ttl` | 10 s | the window requests are counted over |
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "RetryConfigBuilder", into = "RetryConfigBuilder")
)]
pub struct RetryConfig {
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max_backoff: Duration,
    pub(crate) jitter: Jitter,
    pub(crate) max_retry_after: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) budget_ratio: f64,
    pub(crate) budget_min_per_sec: u32,
    pub(crate) budget_ttl: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfigBuilder::default()
            .build()
            .expect("the default retry configuration is valid")
    }
}

impl RetryConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RetryConfigBuilder {
        RetryConfigBuilder::default()
    }
    /// Retries after the first attempt (0: never retry).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }
    /// The first computed wait.
    pub fn base(&self) -> Duration {
        self.base
    }
    /// Growth of the computed wait per retry.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }
    /// Cap of a computed wait.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }
    /// How computed waits are randomised.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }
    /// The longest `Retry-After` honoured; a longer one ends retrying at once.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }
    /// The time allowed for all attempts and waits together, if bounded.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }
    /// Retries allowed per first attempt, over the budget's window.
    pub fn budget_ratio(&self) -> f64 {
        self.budget_ratio
    }
    /// Retries allowed each second whatever the traffic.
    pub fn budget_min_per_sec(&self) -> u32 {
        self.budget_min_per_sec
    }
    /// The window first attempts and retries are counted over.
    pub fn budget_ttl(&self) -> Duration {
        self.budget_ttl
    }
}

/// Builds a [`RetryConfig`]; [`build`](Self::build) validates every value.
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::{Jitter, RetryConfig};
///
/// let config = RetryConfig::builder()
///     .max_retries(5)
///     .base(Duration::from_millis(200))
///     .jitter(Jitter::Equal)
///     .deadline(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(config.max_retries(), 5);
///
/// let bad = RetryConfig::builder().multiplier(0.5).build();
/// assert_eq!(bad.unwrap_err().setting(), "multiplier");
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RetryConfigBuilder {
    max_retries: u32,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    base: Duration,
    multiplier: f64,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_backoff: Duration,
    jitter: Jitter,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_retry_after: Duration,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    deadline: Option<Duration>,
    budget_ratio: f64,
    budget_min_per_sec: u32,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    budget_ttl: Duration,
}

impl Default for RetryConfigBuilder {
    fn default() -> Self {
        RetryConfigBuilder {
            max_retries: 3,
            base: Duration::from_millis(500),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(8),
            jitter: Jitter::Full,
            max_retry_after: Duration::from_secs(60),
            deadline: None,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_ttl: Duration::from_secs(10),
        }
    }
}

impl RetryConfigBuilder {
    setter!(
        /// Retries after the first attempt; at most 100.
        max_retries: u32
    );
    setter!(
        /// The first computed wait; greater than zero.
        base: Duration
    );
    setter!(
        /// Growth of the computed wait per retry; 1.0 to [`MAX_MULTIPLIER`].
        multiplier: f64
    );
    setter!(
        /// Cap of a computed wait; at least `base`.
        max_backoff: Duration
    );
    setter!(
        /// How computed waits are randomised.
        jitter: Jitter
    );
    setter!(
        /// The longest `Retry-After` honoured; a longer one ends retrying at once.
        max_retry_after: Duration
    );
    setter!(
        /// Retries allowed per first attempt over the budget window, in `[0, 1000]`.
        budget_ratio: f64
    );
    setter!(
        /// Retries allowed each second whatever the traffic.
        budget_min_per_sec: u32
    );
    setter!(
        /// The window first attempts and retries are counted over; 1 s to 60 s.
        budget_ttl: Duration
    );

    /// Bounds all attempts and waits together (greater than zero; `Duration::MAX` means no
    /// deadline).
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Validates and builds. `deadline(Duration::MAX)` means no deadline.
    pub fn build(self) -> Result<RetryConfig, ConfigError> {
        if self.max_retries > MAX_RETRIES_LIMIT {
            return Err(invalid(
                "max_retries",
                format!("at most {MAX_RETRIES_LIMIT} retries are allowed; use a deadline to bound long retrying"),
            )
            .with_value(self.max_retries));
        }
        if self.base.is_zero() {
            return Err(invalid("base", "must be greater than zero").with_value("0s"));
        }
        if !(self.multiplier.is_finite() && (1.0..=MAX_MULTIPLIER).contains(&self.multiplier)) {
            return Err(invalid(
                "multiplier",
                format!("must be a number from 1.0 (a constant backoff) to {MAX_MULTIPLIER}"),
            )
            .with_value(self.multiplier));
        }
        if self.max_backoff < self.base {
            return Err(invalid(
                "max_backoff",
                format!(
                    "is below base ({:?}): raise max_backoff or lower base",
                    self.base
                ),
            )
            .with_value(format!("{:?}", self.max_backoff)));
        }
        if self.deadline == Some(Duration::ZERO) {
            return Err(invalid(
                "deadline",
                "must be greater than zero (leave it unset, or Duration::MAX, for none)",
            )
            .with_value("0s"));
        }
        validate_budget(self.budget_ratio, self.budget_ttl)?;
        Ok(RetryConfig {
            max_retries: self.max_retries,
            base: self.base,
            multiplier: self.multiplier,
            max_backoff: self.max_backoff,
            jitter: self.jitter,
            max_retry_after: self.max_retry_after,
            deadline: self.deadline.filter(|deadline| *deadline != Duration::MAX),
            budget_ratio: self.budget_ratio,
            budget_min_per_sec: self.budget_min_per_sec,
            budget_ttl: self.budget_ttl,
        })
    }
}

pub(crate) fn validate_budget(ratio: f64, ttl: Duration) -> Result<(), ConfigError> {
    if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
        return Err(invalid(
            "budget_ratio",
            "must be a number from 0.0 to 1000.0 (0.2 allows one retry per five requests)",
        )
        .with_value(ratio));
    }
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(60) {
        return Err(
            invalid("budget_ttl", "must be between 1 s and 60 s").with_value(format!("{ttl:?}"))
        );
    }
    Ok(())
}

impl TryFrom<RetryConfigBuilder> for RetryConfig {
    type Error = ConfigError;
    fn try_from(builder: RetryConfigBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
}

impl From<RetryConfig> for RetryConfigBuilder {
    fn from(config: RetryConfig) -> Self {
        RetryConfigBuilder {
            max_retries: config.max_retries,
            base: config.base,
            multiplier: config.multiplier,
            max_backoff: config.max_backoff,
            jitter: config.jitter,
            max_retry_after: config.max_retry_after,
            deadline: config.deadline,
            budget_ratio: config.budget_ratio,
            budget_min_per_sec: config.budget_min_per_sec,
            budget_ttl: config.budget_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let config = RetryConfig::default();
        assert_eq!(config.max_retries(), 3);
        assert_eq!(config.base(), Duration::from_millis(500));
        assert!((config.multiplier() - 2.0).abs() < f64::EPSILON);
        assert_eq!(config.max_backoff(), Duration::from_secs(8));
        assert_eq!(config.jitter(), Jitter::Full);
        assert_eq!(config.max_retry_after(), Duration::from_secs(60));
        assert_eq!(config.deadline(), None);
        assert!((config.budget_ratio() - 0.2).abs() < f64::EPSILON);
        assert_eq!(config.budget_min_per_sec(), 10);
        assert_eq!(config.budget_ttl(), Duration::from_secs(10));
    }

    #[test]
    fn invalid_values_are_refused_with_a_reason() {
        let cases = [
            (
                RetryConfig::builder().max_retries(101),
                "max_retries",
                "101",
            ),
            (RetryConfig::builder().base(Duration::ZERO), "base", "0s"),
            (
                RetryConfig::builder().multiplier(f64::NAN),
                "multiplier",
                "NaN",
            ),
            (RetryConfig::builder().multiplier(11.0), "multiplier", "11"),
            (
                RetryConfig::builder().max_backoff(Duration::from_millis(100)),
                "max_backoff",
                "100ms",
            ),
            (
                RetryConfig::builder().deadline(Duration::ZERO),
                "deadline",
                "0s",
            ),
            (
                RetryConfig::builder().budget_ratio(-0.1),
                "budget_ratio",
                "-0.1",
            ),
            (
                RetryConfig::builder().budget_ttl(Duration::from_millis(10)),
                "budget_ttl",
                "10ms",
            ),
        ];
        for (builder, setting, value) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(
                (err.component(), err.setting(), err.value()),
                ("retry", setting, Some(value))
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid retry setting `{setting}` = {value}: ")),
                "{err}"
            );
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn config_round_trips_through_json_and_validates() {
        let config = RetryConfig::builder()
            .deadline(Duration::from_secs(20))
            .jitter(Jitter::Decorrelated)
            .build()
            .unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"500ms\""), "{json}");
        let humane: RetryConfig = serde_json::from_str(r#"{"deadline": "1m30s"}"#).unwrap();
        assert_eq!(humane.deadline(), Some(Duration::from_secs(90)));
        let back: RetryConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        let partial: RetryConfig = serde_json::from_str(r#"{"max_retries": 1}"#).unwrap();
        assert_eq!(partial.max_retries(), 1);
        assert!(serde_json::from_str::<RetryConfig>(r#"{"multiplier": 0.1}"#).is_err());
    }
}
