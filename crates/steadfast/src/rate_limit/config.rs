//! [`RateLimitConfig`]: requests and tokens per minute, burst, the longest wait and the longest
//! pause, validated once at construction.

use std::time::Duration;

use crate::error::ConfigError;

/// The longest a call may be made to wait for quota, and the longest pause a `Retry-After`
/// may impose: past an hour, waiting is an outage and the caller should hear about it.
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// The window quotas are counted over: LLM providers count per minute.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

fn invalid(
    setting: &'static str,
    problem: impl Into<std::borrow::Cow<'static, str>>,
) -> ConfigError {
    ConfigError::new("rate_limit", setting, problem)
}

/// Configuration of a [`RateLimitLayer`](super::RateLimitLayer). Build one with
/// [`RateLimitConfig::builder`]; every value a `RateLimitConfig` holds has been validated.
///
/// | setting | default | why |
/// |---|---|---|
/// | `requests_per_minute` | none | the provider's RPM quota for this key and model |
/// | `tokens_per_minute` | none | the provider's TPM quota; costs come from the layer's cost function |
/// | `burst` | 1.0 | the share of a minute's quota that may go at once (providers refill continuously) |
/// | `max_wait` | 10 s | a call waits this long for quota at most, then is refused |
/// | `max_pause` | 60 s | a `Retry-After` longer than this pauses the agent for this long only |
///
/// At least one of the two quotas must be set.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "RateLimitConfigBuilder", into = "RateLimitConfigBuilder")
)]
pub struct RateLimitConfig {
    pub(crate) requests_per_minute: Option<u32>,
    pub(crate) tokens_per_minute: Option<u64>,
    pub(crate) burst: f64,
    pub(crate) max_wait: Duration,
    pub(crate) max_pause: Duration,
}

impl RateLimitConfig {
    /// A builder with no quota set and the other defaults.
    pub fn builder() -> RateLimitConfigBuilder {
        RateLimitConfigBuilder::default()
    }
    /// Requests admitted per minute, if limited.
    pub fn requests_per_minute(&self) -> Option<u32> {
        self.requests_per_minute
    }
    /// Tokens admitted per minute, if limited.
    pub fn tokens_per_minute(&self) -> Option<u64> {
        self.tokens_per_minute
    }
    /// The share of a minute's quota that may be spent at once.
    pub fn burst(&self) -> f64 {
        self.burst
    }
    /// The longest a call waits for quota before it is refused.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }
    /// The longest pause a rate-limited answer can impose.
    pub fn max_pause(&self) -> Duration {
        self.max_pause
    }
}

/// Builds a [`RateLimitConfig`]; [`build`](Self::build) validates every value.
///
/// ```
/// use std::time::Duration;
/// use steadfast::rate_limit::RateLimitConfig;
///
/// let config = RateLimitConfig::builder()
///     .requests_per_minute(500)
///     .tokens_per_minute(30_000)
///     .max_wait(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(config.tokens_per_minute(), Some(30_000));
///
/// let bad = RateLimitConfig::builder().tokens_per_minute(0).build();
/// assert_eq!(bad.unwrap_err().setting(), "tokens_per_minute");
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RateLimitConfigBuilder {
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    burst: f64,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_wait: Duration,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_pause: Duration,
}

impl Default for RateLimitConfigBuilder {
    fn default() -> Self {
        RateLimitConfigBuilder {
            requests_per_minute: None,
            tokens_per_minute: None,
            burst: 1.0,
            max_wait: Duration::from_secs(10),
            max_pause: Duration::from_secs(60),
        }
    }
}

impl RateLimitConfigBuilder {
    /// Requests admitted per minute; at least 1.
    #[must_use]
    pub fn requests_per_minute(mut self, requests: u32) -> Self {
        self.requests_per_minute = Some(requests);
        self
    }

    /// Tokens admitted per minute, as the layer's cost function counts them; at least 1.
    #[must_use]
    pub fn tokens_per_minute(mut self, tokens: u64) -> Self {
        self.tokens_per_minute = Some(tokens);
        self
    }

    setter!(
        /// The share of a minute's quota that may be spent at once, in `(0, 1]`: 1.0 lets a
        /// whole minute's quota go in a burst, 0.1 spreads it so at most six seconds' worth goes
        /// at once. A single call costing more than the burst is refused.
        burst: f64
    );
    setter!(
        /// The longest a call waits for quota (0: refuse at once); at most an hour.
        max_wait: Duration
    );
    setter!(
        /// The longest pause a rate-limited answer's `Retry-After` imposes on the agent (0: never
        /// pause); at most an hour.
        max_pause: Duration
    );

    /// Validates and builds.
    pub fn build(self) -> Result<RateLimitConfig, ConfigError> {
        if self.requests_per_minute.is_none() && self.tokens_per_minute.is_none() {
            return Err(invalid(
                "requests_per_minute",
                "set requests_per_minute, tokens_per_minute or both: a limiter with no quota limits nothing",
            ));
        }
        if self.requests_per_minute == Some(0) {
            return Err(invalid(
                "requests_per_minute",
                "must be at least 1 (to stop calling an agent, use the breaker's force_open)",
            )
            .with_value(0));
        }
        if self.tokens_per_minute == Some(0) {
            return Err(invalid(
                "tokens_per_minute",
                "must be at least 1 (to stop calling an agent, use the breaker's force_open)",
            )
            .with_value(0));
        }
        if !(self.burst.is_finite() && self.burst > 0.0 && self.burst <= 1.0) {
            return Err(invalid(
                "burst",
                "must be a share of a minute's quota greater than 0.0 and at most 1.0",
            )
            .with_value(self.burst));
        }
        // Each burst must hold at least one request and one token, or nothing is ever admitted.
        let too_small = |quota: u64| (quota as f64 * self.burst) < 1.0;
        if self
            .requests_per_minute
            .is_some_and(|rpm| too_small(u64::from(rpm)))
            || self.tokens_per_minute.is_some_and(too_small)
        {
            return Err(invalid(
                "burst",
                "leaves less than one request or token per burst: raise burst or the quota",
            )
            .with_value(self.burst));
        }
        for (setting, value) in [("max_wait", self.max_wait), ("max_pause", self.max_pause)] {
            if value > MAX_WAIT_LIMIT {
                return Err(
                    invalid(setting, "must be at most one hour").with_value(format!("{value:?}"))
                );
            }
        }
        Ok(RateLimitConfig {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            burst: self.burst,
            max_wait: self.max_wait,
            max_pause: self.max_pause,
        })
    }
}

impl TryFrom<RateLimitConfigBuilder> for RateLimitConfig {
    type Error = ConfigError;
    fn try_from(builder: RateLimitConfigBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
}

impl From<RateLimitConfig> for RateLimitConfigBuilder {
    fn from(config: RateLimitConfig) -> Self {
        RateLimitConfigBuilder {
            requests_per_minute: config.requests_per_minute,
            tokens_per_minute: config.tokens_per_minute,
            burst: config.burst,
            max_wait: config.max_wait,
            max_pause: config.max_pause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_nan_and_endless_values_with_the_setting_named() {
        let rpm = || RateLimitConfig::builder().requests_per_minute(60);
        let cases = [
            (RateLimitConfig::builder().build(), "requests_per_minute"),
            (
                RateLimitConfig::builder().requests_per_minute(0).build(),
                "requests_per_minute",
            ),
            (
                RateLimitConfig::builder().tokens_per_minute(0).build(),
                "tokens_per_minute",
            ),
            (rpm().burst(f64::NAN).build(), "burst"),
            (rpm().burst(0.0).build(), "burst"),
            (rpm().burst(1.5).build(), "burst"),
            (rpm().burst(f64::INFINITY).build(), "burst"),
            (rpm().burst(0.001).build(), "burst"),
            (rpm().max_wait(Duration::MAX).build(), "max_wait"),
            (rpm().max_pause(Duration::MAX).build(), "max_pause"),
        ];
        for (result, setting) in cases {
            let error = result.unwrap_err();
            assert_eq!(error.component(), "rate_limit");
            assert_eq!(error.setting(), setting, "{error}");
        }
    }

    #[test]
    fn zero_waits_are_valid_and_mean_refuse_at_once_and_never_pause() {
        let config = RateLimitConfig::builder()
            .tokens_per_minute(u64::MAX)
            .max_wait(Duration::ZERO)
            .max_pause(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(config.max_wait(), Duration::ZERO);
        assert_eq!(config.tokens_per_minute(), Some(u64::MAX));
    }
}
