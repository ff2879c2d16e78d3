//! [`BreakerConfig`]: thresholds, open times and probes, validated once at construction.

use std::time::Duration;

use crate::error::ConfigError;

/// The longest a breaker may stay open before it tries the agent again. Recovery must always be
/// attempted within two minutes of an agent coming back, so the cap of the growing open time is
/// refused above this.
pub const MAX_OPEN_DURATION_LIMIT: Duration = Duration::from_secs(120);

/// The largest count-based window accepted (its ring is allocated up front).
pub const MAX_COUNT_WINDOW: u32 = 10_000;

/// The largest `open_duration_multiplier` accepted: at 10 the open time reaches the 120 s cap
/// from 1 ms in five trips, so a larger factor only makes the growth a step function.
pub const MAX_OPEN_DURATION_MULTIPLIER: f64 = 10.0;

fn invalid(
    setting: &'static str,
    problem: impl Into<std::borrow::Cow<'static, str>>,
) -> ConfigError {
    ConfigError::new("breaker", setting, problem)
}

/// How the failure rate is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `duration`, counted in ten buckets.
    Time(#[cfg_attr(feature = "serde", serde(with = "humantime_serde"))] Duration),
}

/// Configuration of a circuit breaker. Build one with [`BreakerConfig::builder`]; every value a
/// `BreakerConfig` holds has been validated.
///
/// | setting | default | why |
/// |---|---|---|
/// | `consecutive_failures` | 5 | trips a dead agent fast, whatever its traffic |
/// | `failure_rate_threshold` | 0.5 | half the calls failing is an outage, not noise |
/// | `window` | last 50 calls | enough to smooth noise, short enough to react in seconds |
/// | `min_calls` | 10 | no rate verdict on three calls |
/// | `slow_call_threshold` | off | LLM latencies vary widely: opt in with your own figure |
/// | `slow_call_rate_threshold` | 0.8 | when on, mostly-slow is unhealthy |
/// | `initial_open_duration` | 1 s | a blip costs a second |
/// | `open_duration_multiplier` | 1.5 | a persistent outage is probed less and less often... |
/// | `max_open_duration` | 60 s | ...but at least every minute (never over 120 s) |
/// | `half_open_probes` | 3 | a few concurrent probes, not a thundering herd |
/// | `success_threshold` | = probes | every probe must succeed to close |
/// | `health_check_interval` | 10 s | with a health check: recovery seen within cap + 10 s |
/// | `health_check_timeout` | 5 s | a hanging check is a failing check |
/// | `recent_failures` | 16 | failure reasons kept for the handle and status pages |
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "BreakerConfigBuilder", into = "BreakerConfigBuilder")
)]
pub struct BreakerConfig {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_rate_threshold: f64,
    pub(crate) window: SlidingWindow,
    pub(crate) min_calls: u32,
    pub(crate) slow_call_threshold: Option<Duration>,
    pub(crate) slow_call_rate_threshold: f64,
    pub(crate) initial_open_duration: Duration,
    pub(crate) open_duration_multiplier: f64,
    pub(crate) max_open_duration: Duration,
    pub(crate) half_open_probes: u32,
    pub(crate) success_threshold: u32,
    pub(crate) health_check_interval: Duration,
    pub(crate) health_check_timeout: Duration,
    pub(crate) recent_failures: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfigBuilder::default()
            .build()
            .expect("the default breaker configuration is valid")
    }
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// Consecutive failures that trip the breaker (0: this rule is off).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
    /// Failure rate over the window (0..=1) that trips the breaker.
    pub fn failure_rate_threshold(&self) -> f64 {
        self.failure_rate_threshold
    }
    /// The sliding window the rates are measured over.
    pub fn window(&self) -> SlidingWindow {
        self.window
    }
    /// Calls the window must hold before a rate can trip the breaker.
    pub fn min_calls(&self) -> u32 {
        self.min_calls
    }
    /// A call slower than this is slow (`None`: slow calls are not tracked).
    pub fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_call_threshold
    }
    /// Slow-call rate over the window (0..=1) that trips the breaker.
    pub fn slow_call_rate_threshold(&self) -> f64 {
        self.slow_call_rate_threshold
    }
    /// Open time after the first trip.
    pub fn initial_open_duration(&self) -> Duration {
        self.initial_open_duration
    }
    /// Growth of the open time on each trip that follows a failed recovery (1.0 to
    /// [`MAX_OPEN_DURATION_MULTIPLIER`]).
    pub fn open_duration_multiplier(&self) -> f64 {
        self.open_duration_multiplier
    }
    /// Cap of the open time (at most [`MAX_OPEN_DURATION_LIMIT`]).
    pub fn max_open_duration(&self) -> Duration {
        self.max_open_duration
    }
    /// Concurrent probe calls admitted while half-open.
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }
    /// Successful probes that close the breaker.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }
    /// Pause between failing health checks while open.
    pub fn health_check_interval(&self) -> Duration {
        self.health_check_interval
    }
    /// Time after which a health check counts as failed.
    pub fn health_check_timeout(&self) -> Duration {
        self.health_check_timeout
    }
    /// Failure reasons kept for [`BreakerHandle::recent_failures`](super::BreakerHandle::recent_failures).
    pub fn recent_failures(&self) -> usize {
        self.recent_failures
    }

    /// The open time after `trips` consecutive trips (the first trip is 1):
    /// `initial x multiplier^(trips-1)`, capped by `max_open_duration`.
    pub fn open_duration_for_trip(&self, trips: u32) -> Duration {
        crate::backoff::Exponential::new(
            self.initial_open_duration,
            self.open_duration_multiplier,
            self.max_open_duration,
        )
        .delay(trips)
    }
}

/// Builds a [`BreakerConfig`]; [`build`](Self::build) validates every value.
///
/// ```
/// use std::time::Duration;
/// use steadfast::circuit_breaker::{BreakerConfig, SlidingWindow};
///
/// let config = BreakerConfig::builder()
///     .consecutive_failures(3)
///     .window(SlidingWindow::Time(Duration::from_secs(30)))
///     .slow_call_threshold(Duration::from_secs(20))
///     .max_open_duration(Duration::from_secs(90))
///     .build()?;
/// assert_eq!(config.open_duration_for_trip(1), Duration::from_secs(1));
///
/// let too_long = BreakerConfig::builder().max_open_duration(Duration::from_secs(300)).build();
/// assert!(too_long.unwrap_err().to_string().contains("120"));
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct BreakerConfigBuilder {
    consecutive_failures: u32,
    failure_rate_threshold: f64,
    window: SlidingWindow,
    min_calls: u32,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    slow_call_threshold: Option<Duration>,
    slow_call_rate_threshold: f64,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    initial_open_duration: Duration,
    open_duration_multiplier: f64,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_open_duration: Duration,
    half_open_probes: u32,
    success_threshold: Option<u32>,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    health_check_interval: Duration,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    health_check_timeout: Duration,
    recent_failures: usize,
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        BreakerConfigBuilder {
            consecutive_failures: 5,
            failure_rate_threshold: 0.5,
            window: SlidingWindow::Count(50),
            min_calls: 10,
            slow_call_threshold: None,
            slow_call_rate_threshold: 0.8,
            initial_open_duration: Duration::from_secs(1),
            open_duration_multiplier: 1.5,
            max_open_duration: Duration::from_secs(60),
            half_open_probes: 3,
            success_threshold: None,
            health_check_interval: Duration::from_secs(10),
            health_check_timeout: Duration::from_secs(5),
            recent_failures: 16,
        }
    }
}

impl BreakerConfigBuilder {
    setter!(
        /// Consecutive failures that trip the breaker; 0 turns this rule off.
        consecutive_failures: u32
    );
    setter!(
        /// Failure rate over the window that trips the breaker, in `(0, 1]`.
        failure_rate_threshold: f64
    );
    setter!(
        /// The sliding window rates are measured over.
        window: SlidingWindow
    );
    setter!(
        /// Calls the window must hold before a rate can trip; at least 1.
        min_calls: u32
    );
    setter!(
        /// Slow-call rate over the window that trips the breaker, in `(0, 1]`.
        slow_call_rate_threshold: f64
    );
    setter!(
        /// Open time after the first trip; at least 1 ms.
        initial_open_duration: Duration
    );
    setter!(
        /// Growth of the open time per consecutive trip; 1.0 to [`MAX_OPEN_DURATION_MULTIPLIER`].
        open_duration_multiplier: f64
    );
    setter!(
        /// Cap of the open time; between `initial_open_duration` and 120 s.
        max_open_duration: Duration
    );
    setter!(
        /// Concurrent probes admitted while half-open; at least 1.
        half_open_probes: u32
    );
    setter!(
        /// Pause between failing health checks while open; at least 10 ms.
        health_check_interval: Duration
    );
    setter!(
        /// Time after which a health check counts as failed; at least 1 ms.
        health_check_timeout: Duration
    );
    setter!(
        /// Failure reasons kept for the handle (0 keeps none).
        recent_failures: usize
    );

    /// Calls slower than this count as slow (off by default).
    #[must_use]
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.slow_call_threshold = Some(threshold);
        self
    }

    /// Successful probes that close the breaker (default: `half_open_probes`).
    #[must_use]
    pub fn success_threshold(mut self, successes: u32) -> Self {
        self.success_threshold = Some(successes);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        fn rate(setting: &'static str, value: f64) -> Result<f64, ConfigError> {
            if value.is_finite() && value > 0.0 && value <= 1.0 {
                Ok(value)
            } else {
                Err(invalid(
                    setting,
                    "must be a rate in (0, 1], e.g. 0.5 for half the calls",
                )
                .with_value(value))
            }
        }
        fn at_least(
            setting: &'static str,
            value: Duration,
            min: Duration,
        ) -> Result<(), ConfigError> {
            if value < min {
                return Err(invalid(setting, format!("must be at least {min:?}"))
                    .with_value(format!("{value:?}")));
            }
            Ok(())
        }
        let failure_rate_threshold = rate("failure_rate_threshold", self.failure_rate_threshold)?;
        let slow_call_rate_threshold =
            rate("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        validate_window(self.window, self.min_calls)?;
        if self.min_calls == 0 {
            return Err(invalid("min_calls", "must be at least 1").with_value(0));
        }
        if self.half_open_probes == 0 {
            return Err(invalid("half_open_probes", "must be at least 1").with_value(0));
        }
        let success_threshold = self.success_threshold.unwrap_or(self.half_open_probes);
        if success_threshold == 0 {
            return Err(invalid("success_threshold", "must be at least 1").with_value(0));
        }
        if self.slow_call_threshold == Some(Duration::ZERO) {
            return Err(invalid(
                "slow_call_threshold",
                "must be greater than zero (leave it unset to not track slow calls)",
            )
            .with_value("0s"));
        }
        at_least(
            "initial_open_duration",
            self.initial_open_duration,
            Duration::from_millis(1),
        )?;
        if !(self.open_duration_multiplier.is_finite()
            && (1.0..=MAX_OPEN_DURATION_MULTIPLIER).contains(&self.open_duration_multiplier))
        {
            return Err(invalid(
                "open_duration_multiplier",
                format!("must be a number from 1.0 (constant open time) to {MAX_OPEN_DURATION_MULTIPLIER}"),
            )
            .with_value(self.open_duration_multiplier));
        }
        if self.max_open_duration > MAX_OPEN_DURATION_LIMIT {
            return Err(invalid(
                "max_open_duration",
                "must be at most 120 s, so recovery is attempted within two minutes",
            )
            .with_value(format!("{:?}", self.max_open_duration)));
        }
        if self.max_open_duration < self.initial_open_duration {
            return Err(invalid(
                "max_open_duration",
                format!(
                    "is below initial_open_duration ({:?})",
                    self.initial_open_duration
                ),
            )
            .with_value(format!("{:?}", self.max_open_duration)));
        }
        at_least(
            "health_check_interval",
            self.health_check_interval,
            Duration::from_millis(10),
        )?;
        at_least(
            "health_check_timeout",
            self.health_check_timeout,
            Duration::from_millis(1),
        )?;
        Ok(BreakerConfig {
            consecutive_failures: self.consecutive_failures,
            failure_rate_threshold,
            window: self.window,
            min_calls: self.min_calls,
            slow_call_threshold: self.slow_call_threshold,
            slow_call_rate_threshold,
            initial_open_duration: self.initial_open_duration,
            open_duration_multiplier: self.open_duration_multiplier,
            max_open_duration: self.max_open_duration,
            half_open_probes: self.half_open_probes,
            success_threshold,
            health_check_interval: self.health_check_interval,
            health_check_timeout: self.health_check_timeout,
            recent_failures: self.recent_failures,
        })
    }
}

/// A window that can hold calls, and a `min_calls` it can reach.
fn validate_window(window: SlidingWindow, min_calls: u32) -> Result<(), ConfigError> {
    match window {
        SlidingWindow::Count(size) if size == 0 || size > MAX_COUNT_WINDOW => {
            return Err(invalid(
                "window",
                format!("a count window must hold 1 to {MAX_COUNT_WINDOW} calls"),
            )
            .with_value(format!("{size} calls")));
        }
        SlidingWindow::Count(size) if min_calls > size => {
            return Err(invalid(
                "min_calls",
                format!(
                    "exceeds the window of {size} calls, so the failure-rate rule could never trip"
                ),
            )
            .with_value(min_calls));
        }
        SlidingWindow::Time(span)
            if span < Duration::from_secs(1) || span > Duration::from_secs(3600) =>
        {
            return Err(invalid("window", "a time window must span 1 s to 1 h")
                .with_value(format!("{span:?}")));
        }
        _ => {}
    }
    Ok(())
}

impl TryFrom<BreakerConfigBuilder> for BreakerConfig {
    type Error = ConfigError;
    fn try_from(builder: BreakerConfigBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
}

impl From<BreakerConfig> for BreakerConfigBuilder {
    fn from(config: BreakerConfig) -> Self {
        BreakerConfigBuilder {
            consecutive_failures: config.consecutive_failures,
            failure_rate_threshold: config.failure_rate_threshold,
            window: config.window,
            min_calls: config.min_calls,
            slow_call_threshold: config.slow_call_threshold,
            slow_call_rate_threshold: config.slow_call_rate_threshold,
            initial_open_duration: config.initial_open_duration,
            open_duration_multiplier: config.open_duration_multiplier,
            max_open_duration: config.max_open_duration,
            half_open_probes: config.half_open_probes,
            success_threshold: Some(config.success_threshold),
            health_check_interval: config.health_check_interval,
            health_check_timeout: config.health_check_timeout,
            recent_failures: config.recent_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let config = BreakerConfig::default();
        assert_eq!(config.consecutive_failures(), 5);
        assert_eq!(config.window(), SlidingWindow::Count(50));
        assert_eq!(config.half_open_probes(), 3);
        assert_eq!(config.success_threshold(), 3);
        assert_eq!(config.initial_open_duration(), Duration::from_secs(1));
        assert_eq!(config.max_open_duration(), Duration::from_secs(60));
        assert!(
            config.max_open_duration() + config.health_check_interval() <= MAX_OPEN_DURATION_LIMIT
        );
    }

    #[test]
    fn open_duration_grows_by_half_up_to_the_cap() {
        let config = BreakerConfig::default();
        assert_eq!(config.open_duration_for_trip(1), Duration::from_secs(1));
        assert_eq!(
            config.open_duration_for_trip(2),
            Duration::from_millis(1500)
        );
        assert_eq!(
            config.open_duration_for_trip(3),
            Duration::from_millis(2250)
        );
        assert_eq!(
            config.open_duration_for_trip(11),
            Duration::from_secs(57) + Duration::from_nanos(665_039_062)
        );
        assert_eq!(config.open_duration_for_trip(12), Duration::from_secs(60));
        assert_eq!(
            config.open_duration_for_trip(u32::MAX),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn refuses_an_open_cap_over_two_minutes() {
        let err = BreakerConfig::builder()
            .max_open_duration(Duration::from_secs(121))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "max_open_duration");
        assert!(err.to_string().contains("within two minutes"));
    }

    #[test]
    fn refuses_each_invalid_setting_with_its_name() {
        let cases: Vec<(BreakerConfigBuilder, &str)> = vec![
            (
                BreakerConfig::builder().failure_rate_threshold(0.0),
                "failure_rate_threshold",
            ),
            (
                BreakerConfig::builder().failure_rate_threshold(f64::NAN),
                "failure_rate_threshold",
            ),
            (
                BreakerConfig::builder().slow_call_rate_threshold(1.5),
                "slow_call_rate_threshold",
            ),
            (
                BreakerConfig::builder().window(SlidingWindow::Count(0)),
                "window",
            ),
            (
                BreakerConfig::builder().window(SlidingWindow::Count(5)),
                "min_calls",
            ),
            (
                BreakerConfig::builder().window(SlidingWindow::Time(Duration::from_millis(10))),
                "window",
            ),
            (
                BreakerConfig::builder().open_duration_multiplier(4.08e17),
                "open_duration_multiplier",
            ),
            (BreakerConfig::builder().min_calls(0), "min_calls"),
            (
                BreakerConfig::builder().half_open_probes(0),
                "half_open_probes",
            ),
            (
                BreakerConfig::builder().success_threshold(0),
                "success_threshold",
            ),
            (
                BreakerConfig::builder().slow_call_threshold(Duration::ZERO),
                "slow_call_threshold",
            ),
            (
                BreakerConfig::builder().initial_open_duration(Duration::ZERO),
                "initial_open_duration",
            ),
            (
                BreakerConfig::builder().open_duration_multiplier(0.5),
                "open_duration_multiplier",
            ),
            (
                BreakerConfig::builder()
                    .initial_open_duration(Duration::from_secs(30))
                    .max_open_duration(Duration::from_secs(10)),
                "max_open_duration",
            ),
            (
                BreakerConfig::builder().health_check_interval(Duration::ZERO),
                "health_check_interval",
            ),
            (
                BreakerConfig::builder().health_check_timeout(Duration::ZERO),
                "health_check_timeout",
            ),
        ];
        for (builder, name) in cases {
            let err = builder.build().expect_err(name);
            assert_eq!(err.component(), "breaker");
            assert_eq!(err.setting(), name, "`{err}` should name `{name}`");
            assert!(err.value().is_some(), "`{err}` should give the value");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserialises_with_humane_durations_and_validates() {
        let config: BreakerConfig = serde_json::from_str(
            r#"{"consecutive_failures": 3, "max_open_duration": "1m30s", "slow_call_threshold": "1s 500ms",
                "window": {"time": "30s"}}"#,
        )
        .unwrap();
        assert_eq!(config.consecutive_failures(), 3);
        assert_eq!(config.max_open_duration(), Duration::from_secs(90));
        assert_eq!(
            config.slow_call_threshold(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            config.window(),
            SlidingWindow::Time(Duration::from_secs(30))
        );

        let err = serde_json::from_str::<BreakerConfig>(r#"{"max_open_duration": "10m"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("120 s"), "{err}");
        let err = serde_json::from_str::<BreakerConfig>(r#"{"max_open_duration": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon") || err.contains("expected"), "{err}");
        let back: BreakerConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
    }
}
