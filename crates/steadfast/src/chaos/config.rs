//! [`ChaosConfig`]: what to inject, how often, and when, with a validating builder and an
//! environment-variable reader.

use std::time::Duration;

use crate::error::ConfigError;

use tokio::time::Instant;

/// A window during which every call fails with [`ChaosError`](super::ChaosError) (an outage):
/// from `start` for `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// When it starts.
    pub start: Instant,
    /// How long it lasts.
    pub duration: Duration,
}

impl Outage {
    /// An outage from `start` for `duration`.
    pub fn new(start: Instant, duration: Duration) -> Self {
        Outage { start, duration }
    }

    /// An outage starting `delay` from now, for `duration`. A delay past what the clock can
    /// hold (`Duration::MAX`) starts at the last instant it can.
    pub fn after(delay: Duration, duration: Duration) -> Self {
        let now = Instant::now();
        let start = now
            .checked_add(delay)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        Outage::new(start, duration)
    }

    /// How long the outage still lasts at `now` (`None` outside it).
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.covers(now).then(|| {
            self.duration
                .saturating_sub(now.saturating_duration_since(self.start))
        })
    }

    /// Whether `now` falls in the window.
    pub fn covers(&self, now: Instant) -> bool {
        now >= self.start && now.saturating_duration_since(self.start) < self.duration
    }
}

/// The rates (each in `0..=1`, summing to at most 1) at which a call is failed, answered with a
/// fake response, or delayed. One random draw per call picks at most one fault.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Rates {
    /// Calls failed with [`ChaosError`](super::ChaosError) without reaching the agent.
    pub error: f64,
    /// Calls answered by the layer's response closure without reaching the agent.
    pub response: f64,
    /// Calls delayed by the latency before reaching the agent.
    pub latency: f64,
}

impl Rates {
    /// No faults.
    pub const NONE: Rates = Rates {
        error: 0.0,
        response: 0.0,
        latency: 0.0,
    };

    /// Checks that each rate is in `0..=1` and that they sum to at most 1.
    pub fn validate(self) -> Result<Self, ConfigError> {
        for (name, rate) in [
            ("error", self.error),
            ("response", self.response),
            ("latency", self.latency),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::new(
                    "chaos",
                    format!("{name}_rate"),
                    "must be a rate between 0 and 1",
                )
                .with_value(rate));
            }
        }
        let total = self.error + self.response + self.latency;
        if total > 1.0 + 1e-9 {
            return Err(ConfigError::new(
                "chaos",
                "rates",
                "error, response and latency rates add up to over 1: one draw per call picks at most one fault, so lower them",
            )
            .with_value(total));
        }
        Ok(self)
    }
}

/// What a [`ChaosLayer`](super::ChaosLayer) injects. Build with [`ChaosConfig::builder`] or
/// read from the environment with [`ChaosConfig::from_env`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosConfig {
    pub(crate) enabled: bool,
    pub(crate) seed: u64,
    pub(crate) rates: Rates,
    pub(crate) latency: Duration,
    pub(crate) outages: Vec<Outage>,
}

impl Default for ChaosConfig {
    /// Enabled, seed 0, no faults.
    fn default() -> Self {
        ChaosConfig {
            enabled: true,
            seed: 0,
            rates: Rates::NONE,
            latency: Duration::from_secs(1),
            outages: Vec::new(),
        }
    }
}

/// The environment variables [`ChaosConfig::from_env`] reads.
pub mod env {
    /// `on` / `off` (also `1`/`0`, `true`/`false`); off when unset.
    pub const SWITCH: &str = "STEADFAST_CHAOS";
    /// The random seed (`u64`); 0 when unset.
    pub const SEED: &str = "STEADFAST_CHAOS_SEED";
    /// The error rate, `0..=1`.
    pub const FAIL_RATE: &str = "STEADFAST_CHAOS_FAIL_RATE";
    /// The fake-response rate, `0..=1`.
    pub const RESPONSE_RATE: &str = "STEADFAST_CHAOS_RESPONSE_RATE";
    /// The latency rate, `0..=1`.
    pub const LATENCY_RATE: &str = "STEADFAST_CHAOS_LATENCY_RATE";
    /// The injected latency in milliseconds.
    pub const LATENCY_MS: &str = "STEADFAST_CHAOS_LATENCY_MS";
}

impl ChaosConfig {
    /// A builder starting from the defaults (enabled, seed 0, no faults, 1 s latency).
    pub fn builder() -> ChaosConfigBuilder {
        ChaosConfigBuilder {
            config: ChaosConfig::default(),
        }
    }

    /// Whether injection starts switched on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The random seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The fault rates.
    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// The injected latency.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// The outage windows.
    pub fn outages(&self) -> &[Outage] {
        &self.outages
    }

    /// Reads the configuration from the process environment (see [`mod@env`]): off unless
    /// `STEADFAST_CHAOS=on`, so the same binary runs in production with chaos compiled in but
    /// inert.
    pub fn from_env() -> Result<Self, ConfigError> {
        ChaosConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parse<T: std::str::FromStr>(
            lookup: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            expected: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            lookup(name)
                .map(|value| {
                    value.trim().parse().map_err(|_| {
                        ConfigError::new("chaos", name, format!("expected {expected}"))
                            .with_value(format!("{value:?}"))
                    })
                })
                .transpose()
        }
        let enabled = match lookup(env::SWITCH) {
            None => false,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "on" | "1" | "true" | "yes" => true,
                "off" | "0" | "false" | "no" | "" => false,
                _ => {
                    return Err(ConfigError::new("chaos", env::SWITCH, "expected on or off")
                        .with_value(format!("{value:?}")));
                }
            },
        };
        let rate = |name| parse::<f64>(&lookup, name, "a number between 0 and 1");
        let mut builder = ChaosConfig::builder().enabled(enabled);
        if let Some(seed) = parse(&lookup, env::SEED, "an unsigned 64-bit integer")? {
            builder = builder.seed(seed);
        }
        builder = builder
            .error_rate(rate(env::FAIL_RATE)?.unwrap_or(0.0))
            .response_rate(rate(env::RESPONSE_RATE)?.unwrap_or(0.0))
            .latency_rate(rate(env::LATENCY_RATE)?.unwrap_or(0.0));
        if let Some(millis) = parse::<u64>(&lookup, env::LATENCY_MS, "milliseconds")? {
            builder = builder.latency(Duration::from_millis(millis));
        }
        builder.build()
    }
}

/// Builds a [`ChaosConfig`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ChaosConfigBuilder {
    config: ChaosConfig,
}

impl ChaosConfigBuilder {
    /// Whether injection starts switched on (default: on).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// The random seed: the same seed and the same order of calls inject the same faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Fails this fraction of calls with an injected error.
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.config.rates.error = rate;
        self
    }

    /// Answers this fraction of calls with the layer's response closure.
    pub fn response_rate(mut self, rate: f64) -> Self {
        self.config.rates.response = rate;
        self
    }

    /// Delays this fraction of calls by [`latency`](Self::latency).
    pub fn latency_rate(mut self, rate: f64) -> Self {
        self.config.rates.latency = rate;
        self
    }

    /// The delay injected (default 1 s).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.config.latency = latency;
        self
    }

    /// Fails every call during `outage`.
    pub fn outage(mut self, outage: Outage) -> Self {
        self.config.outages.push(outage);
        self
    }

    /// Validates the rates.
    pub fn build(self) -> Result<ChaosConfig, ConfigError> {
        self.config.rates.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn chaos_is_off_when_the_environment_says_nothing() {
        let config = ChaosConfig::from_vars(vars(&[])).unwrap();
        assert!(!config.enabled());
        assert_eq!(config.rates(), Rates::NONE);
    }

    #[test]
    fn the_environment_sets_switch_seed_rates_and_latency() {
        let config = ChaosConfig::from_vars(vars(&[
            ("STEADFAST_CHAOS", "ON"),
            ("STEADFAST_CHAOS_SEED", "42"),
            ("STEADFAST_CHAOS_FAIL_RATE", "0.2"),
            ("STEADFAST_CHAOS_LATENCY_RATE", "0.1"),
            ("STEADFAST_CHAOS_LATENCY_MS", "250"),
        ]))
        .unwrap();
        assert!(config.enabled());
        assert_eq!(config.seed(), 42);
        assert!((config.rates().error - 0.2).abs() < f64::EPSILON);
        assert!((config.rates().latency - 0.1).abs() < f64::EPSILON);
        assert_eq!(config.latency(), Duration::from_millis(250));
    }

    #[test]
    fn a_malformed_variable_names_itself_in_the_error() {
        let error =
            ChaosConfig::from_vars(vars(&[("STEADFAST_CHAOS_FAIL_RATE", "lots")])).unwrap_err();
        assert!(
            error.to_string().contains("STEADFAST_CHAOS_FAIL_RATE"),
            "{error}"
        );
        let error = ChaosConfig::from_vars(vars(&[("STEADFAST_CHAOS", "maybe")])).unwrap_err();
        assert!(error.to_string().contains("on or off"), "{error}");
    }

    #[test]
    fn rates_outside_zero_to_one_or_summing_over_one_are_rejected() {
        let setting =
            |result: Result<ChaosConfig, ConfigError>| result.unwrap_err().setting().to_owned();
        assert_eq!(
            setting(ChaosConfig::builder().error_rate(1.5).build()),
            "error_rate"
        );
        assert_eq!(
            setting(ChaosConfig::builder().latency_rate(f64::NAN).build()),
            "latency_rate"
        );
        assert_eq!(
            setting(
                ChaosConfig::builder()
                    .error_rate(0.6)
                    .response_rate(0.5)
                    .build()
            ),
            "rates"
        );
    }
}
