//! [`HedgeConfig`]: when to hedge (a fixed delay or a latency percentile), how many hedges a
//! request may send, and the budget they draw from; validated once at construction.

use std::time::Duration;

use crate::error::ConfigError;

/// The most hedges one request may send: past a few, hedging is a fan-out (use
/// `steadfast::fanout`) and multiplies the load.
pub const MAX_HEDGES_LIMIT: u32 = 4;

/// The longest delay accepted: a hedge after more than a minute rescues nothing a retry
/// would not.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

fn invalid(
    setting: &'static str,
    problem: impl Into<std::borrow::Cow<'static, str>>,
) -> ConfigError {
    ConfigError::new("hedge", setting, problem)
}

/// When a hedge is sent.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HedgeDelay {
    /// After this long without an answer.
    Fixed(#[cfg_attr(feature = "serde", serde(with = "humantime_serde"))] Duration),
    /// After the given percentile (0 < p < 100) of the agent's recent latencies, kept between
    /// `min_delay` and `max_delay`; no hedging until `min_samples` calls were seen.
    Percentile(f64),
}

/// Configuration of a [`HedgeLayer`](super::HedgeLayer). Build one with
/// [`HedgeConfig::builder`]; every value a `HedgeConfig` holds has been validated.
///
/// | setting | default | why |
/// |---|---|---|
/// | `delay` | p95 of recent latencies | hedge only the slowest 5 % of calls |
/// | `min_delay` | 10 ms | never hedge what answers in a blink |
/// | `max_delay` | 30 s | a hedge later than this rescues nothing |
/// | `min_samples` | 20 | a percentile of fewer calls is noise: no hedging until then |
/// | `window` | 10 s | latencies are kept for one to two windows |
/// | `max_hedges` | 1 | one extra attempt per request at most |
/// | `budget_ratio` | 0.1 | hedges add at most 10 % to the load (with the budget's own floor) |
/// | `budget_min_per_sec` | 1 | a quiet caller can still hedge now and then |
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "HedgeConfigBuilder", into = "HedgeConfigBuilder")
)]
pub struct HedgeConfig {
    pub(crate) delay: HedgeDelay,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) min_samples: u32,
    pub(crate) window: Duration,
    pub(crate) max_hedges: u32,
    pub(crate) budget_ratio: f64,
    pub(crate) budget_min_per_sec: u32,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfigBuilder::default()
            .build()
            .expect("the default hedge configuration is valid")
    }
}

impl HedgeConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> HedgeConfigBuilder {
        HedgeConfigBuilder::default()
    }
    /// When a hedge is sent.
    pub fn delay(&self) -> HedgeDelay {
        self.delay
    }
    /// The shortest percentile delay.
    pub fn min_delay(&self) -> Duration {
        self.min_delay
    }
    /// The longest percentile delay.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }
    /// Calls seen before a percentile delay is trusted.
    pub fn min_samples(&self) -> u32 {
        self.min_samples
    }
    /// How long latencies are kept (one to two windows).
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Hedges one request may send.
    pub fn max_hedges(&self) -> u32 {
        self.max_hedges
    }
    /// Hedges allowed per request over the budget's window (10 s).
    pub fn budget_ratio(&self) -> f64 {
        self.budget_ratio
    }
    /// Hedges allowed each second whatever the traffic.
    pub fn budget_min_per_sec(&self) -> u32 {
        self.budget_min_per_sec
    }
}

/// Builds a [`HedgeConfig`]; [`build`](Self::build) validates every value.
///
/// ```
/// use std::time::Duration;
/// use steadfast::hedge::{HedgeConfig, HedgeDelay};
///
/// let fixed = HedgeConfig::builder().delay(Duration::from_secs(2)).build()?;
/// assert_eq!(fixed.delay(), HedgeDelay::Fixed(Duration::from_secs(2)));
/// let p90 = HedgeConfig::builder().percentile(90.0).max_hedges(2).build()?;
/// assert_eq!(p90.delay(), HedgeDelay::Percentile(90.0));
///
/// let bad = HedgeConfig::builder().percentile(f64::NAN).build();
/// assert_eq!(bad.unwrap_err().setting(), "percentile");
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct HedgeConfigBuilder {
    delay: HedgeDelay,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    min_delay: Duration,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_delay: Duration,
    min_samples: u32,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    window: Duration,
    max_hedges: u32,
    budget_ratio: f64,
    budget_min_per_sec: u32,
}

impl Default for HedgeConfigBuilder {
    fn default() -> Self {
        HedgeConfigBuilder {
            delay: HedgeDelay::Percentile(95.0),
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(30),
            min_samples: 20,
            window: Duration::from_secs(10),
            max_hedges: 1,
            budget_ratio: 0.1,
            budget_min_per_sec: 1,
        }
    }
}

impl HedgeConfigBuilder {
    /// Hedges after a fixed `delay` without an answer: greater than zero, at most a minute.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = HedgeDelay::Fixed(delay);
        self
    }

    /// Hedges after the `percentile` (0 < p < 100) of the agent's recent latencies.
    #[must_use]
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.delay = HedgeDelay::Percentile(percentile);
        self
    }

    setter!(
        /// The shortest percentile delay; at most `max_delay`.
        min_delay: Duration
    );
    setter!(
        /// The longest percentile delay; greater than zero, at most a minute.
        max_delay: Duration
    );
    setter!(
        /// Calls seen in the window before a percentile delay is trusted; at least 1.
        min_samples: u32
    );
    setter!(
        /// How long latencies are kept: 1 s to 10 minutes.
        window: Duration
    );
    setter!(
        /// Hedges one request may send, 1 to [`MAX_HEDGES_LIMIT`].
        max_hedges: u32
    );
    setter!(
        /// Hedges allowed per request over the budget's 10 s window, in `[0, 1000]`.
        budget_ratio: f64
    );
    setter!(
        /// Hedges allowed each second whatever the traffic.
        budget_min_per_sec: u32
    );

    /// Validates and builds.
    pub fn build(self) -> Result<HedgeConfig, ConfigError> {
        match self.delay {
            HedgeDelay::Fixed(delay) if delay.is_zero() || delay > MAX_DELAY => {
                return Err(invalid(
                    "delay",
                    "must be greater than zero and at most a minute (a zero delay sends every request twice: use steadfast::fanout)",
                )
                .with_value(format!("{delay:?}")));
            }
            HedgeDelay::Percentile(percentile)
                if !(percentile.is_finite() && percentile > 0.0 && percentile < 100.0) =>
            {
                return Err(invalid(
                    "percentile",
                    "must be a number greater than 0 and less than 100 (95.0 hedges the slowest 5 %)",
                )
                .with_value(percentile));
            }
            _ => {}
        }
        if self.max_delay.is_zero() || self.max_delay > MAX_DELAY {
            return Err(invalid(
                "max_delay",
                "must be greater than zero and at most a minute",
            )
            .with_value(format!("{:?}", self.max_delay)));
        }
        if self.min_delay > self.max_delay {
            return Err(invalid(
                "min_delay",
                format!("is above max_delay ({:?})", self.max_delay),
            )
            .with_value(format!("{:?}", self.min_delay)));
        }
        if self.min_samples == 0 {
            return Err(invalid(
                "min_samples",
                "must be at least 1: a percentile of no calls is no delay",
            )
            .with_value(0));
        }
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(600) {
            return Err(invalid("window", "must be between 1 s and 10 minutes")
                .with_value(format!("{:?}", self.window)));
        }
        if self.max_hedges == 0 || self.max_hedges > MAX_HEDGES_LIMIT {
            return Err(invalid(
                "max_hedges",
                format!("must be 1 to {MAX_HEDGES_LIMIT} (to hedge nothing, leave the layer out)"),
            )
            .with_value(self.max_hedges));
        }
        if !(self.budget_ratio.is_finite() && (0.0..=1000.0).contains(&self.budget_ratio)) {
            return Err(invalid(
                "budget_ratio",
                "must be a number from 0.0 to 1000.0 (0.1 allows one hedge per ten requests)",
            )
            .with_value(self.budget_ratio));
        }
        Ok(HedgeConfig {
            delay: self.delay,
            min_delay: self.min_delay,
            max_delay: self.max_delay,
            min_samples: self.min_samples,
            window: self.window,
            max_hedges: self.max_hedges,
            budget_ratio: self.budget_ratio,
            budget_min_per_sec: self.budget_min_per_sec,
        })
    }
}

impl TryFrom<HedgeConfigBuilder> for HedgeConfig {
    type Error = ConfigError;
    fn try_from(builder: HedgeConfigBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
}

impl From<HedgeConfig> for HedgeConfigBuilder {
    fn from(config: HedgeConfig) -> Self {
        HedgeConfigBuilder {
            delay: config.delay,
            min_delay: config.min_delay,
            max_delay: config.max_delay,
            min_samples: config.min_samples,
            window: config.window,
            max_hedges: config.max_hedges,
            budget_ratio: config.budget_ratio,
            budget_min_per_sec: config.budget_min_per_sec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_zero_nan_and_endless_values_with_the_setting_named() {
        let b = HedgeConfig::builder;
        let cases = [
            (b().delay(Duration::ZERO).build(), "delay"),
            (b().delay(Duration::MAX).build(), "delay"),
            (b().percentile(f64::NAN).build(), "percentile"),
            (b().percentile(0.0).build(), "percentile"),
            (b().percentile(100.0).build(), "percentile"),
            (b().percentile(f64::INFINITY).build(), "percentile"),
            (b().max_delay(Duration::ZERO).build(), "max_delay"),
            (b().max_delay(Duration::MAX).build(), "max_delay"),
            (b().min_delay(Duration::MAX).build(), "min_delay"),
            (b().min_samples(0).build(), "min_samples"),
            (b().window(Duration::ZERO).build(), "window"),
            (b().window(Duration::MAX).build(), "window"),
            (b().max_hedges(0).build(), "max_hedges"),
            (b().max_hedges(u32::MAX).build(), "max_hedges"),
            (b().budget_ratio(f64::NAN).build(), "budget_ratio"),
            (b().budget_ratio(-1.0).build(), "budget_ratio"),
        ];
        for (result, setting) in cases {
            let error = result.unwrap_err();
            assert_eq!(error.component(), "hedge");
            assert_eq!(error.setting(), setting, "{error}");
        }
    }
}
