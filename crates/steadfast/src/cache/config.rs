//! [`CacheConfig`]: capacity, freshness and staleness of a [`ResponseCache`](super::ResponseCache).

use std::time::Duration;

use crate::error::ConfigError;

/// How much a [`ResponseCache`](super::ResponseCache) holds and for how long.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `max_entries` | 1,000 | beyond this, answers not asked for again are evicted first |
/// | `max_bytes` | none | with a size function, a byte budget (same eviction order) |
/// | `ttl` | 5 min | an entry is fresh this long after it was stored |
/// | `max_stale` | 1 h | after that, it may still be served on error this much longer |
///
/// With the `serde` feature it (de)serialises as
/// `{"max_entries": 1000, "max_bytes": null, "ttl": "5m", "max_stale": "1h"}` (every field
/// optional, durations as a number with a unit), validated on the way in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "CacheConfigBuilder", into = "CacheConfigBuilder")
)]
pub struct CacheConfig {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: Option<usize>,
    pub(crate) ttl: Duration,
    pub(crate) max_stale: Duration,
}

impl CacheConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder::from(CacheConfig::default())
    }

    /// The entry limit.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The byte budget, if any.
    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// How long an entry is fresh.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long past its ttl an entry may still be served on error.
    pub fn max_stale(&self) -> Duration {
        self.max_stale
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 1_000,
            max_bytes: None,
            ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(3_600),
        }
    }
}

/// Builds a validated [`CacheConfig`].
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct CacheConfigBuilder {
    max_entries: usize,
    max_bytes: Option<usize>,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    ttl: Duration,
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    max_stale: Duration,
}

impl Default for CacheConfigBuilder {
    fn default() -> Self {
        CacheConfig::default().into()
    }
}

impl From<CacheConfig> for CacheConfigBuilder {
    fn from(config: CacheConfig) -> Self {
        CacheConfigBuilder {
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            ttl: config.ttl,
            max_stale: config.max_stale,
        }
    }
}

impl TryFrom<CacheConfigBuilder> for CacheConfig {
    type Error = ConfigError;

    fn try_from(builder: CacheConfigBuilder) -> Result<Self, ConfigError> {
        builder.build()
    }
}

impl CacheConfigBuilder {
    /// The most entries kept.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// A byte budget, measured by the cache's size function.
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// How long an entry is fresh.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long past its ttl an entry may still be served when the agents fail (0: never stale).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        let config = CacheConfig {
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            ttl: self.ttl,
            max_stale: self.max_stale,
        };
        let invalid = |setting: &'static str, problem: &'static str| {
            ConfigError::new("cache", setting, problem).with_value(0)
        };
        if config.max_entries == 0 {
            return Err(invalid(
                "max_entries",
                "a cache must hold at least one entry; set it to 1 or more",
            ));
        }
        if config.max_bytes == Some(0) {
            return Err(invalid(
                "max_bytes",
                "set a positive byte budget, or leave it unset for no limit",
            ));
        }
        if config.ttl.is_zero() {
            return Err(ConfigError::new(
                "cache",
                "ttl",
                "entries would never be fresh; use a positive time to live",
            )
            .with_value("0s"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_values_that_cannot_work() {
        let setting =
            |builder: CacheConfigBuilder| builder.build().unwrap_err().setting().to_owned();
        assert_eq!(
            setting(CacheConfig::builder().max_entries(0)),
            "max_entries"
        );
        assert_eq!(setting(CacheConfig::builder().max_bytes(0)), "max_bytes");
        assert_eq!(setting(CacheConfig::builder().ttl(Duration::ZERO)), "ttl");
        assert!(
            CacheConfig::builder()
                .max_stale(Duration::ZERO)
                .build()
                .is_ok()
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_round_trips_and_validates() {
        let config: CacheConfig =
            serde_json::from_str(r#"{"max_entries": 50, "ttl": "1m 30s", "max_stale": "2h"}"#)
                .unwrap();
        assert_eq!(config.max_entries(), 50);
        assert_eq!(config.ttl(), Duration::from_secs(90));
        assert_eq!(config.max_stale(), Duration::from_secs(7_200));
        assert_eq!(config.max_bytes(), None);
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<CacheConfig>(&json).unwrap(), config);

        let zero = serde_json::from_str::<CacheConfig>(r#"{"max_entries": 0}"#).unwrap_err();
        assert!(zero.to_string().contains("max_entries"), "{zero}");
        let typo = serde_json::from_str::<CacheConfig>(r#"{"tll": "5s"}"#).unwrap_err();
        assert!(typo.to_string().contains("tll"), "{typo}");
        let unit = serde_json::from_str::<CacheConfig>(r#"{"ttl": "5 parsecs"}"#).unwrap_err();
        assert!(unit.to_string().contains("parsecs"), "{unit}");
    }
}
