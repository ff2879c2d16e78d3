//! [`FleetConfig`]: where Redis is, which application the keys belong to, and the timings of
//! sync, validated once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast::ConfigError;

/// The environment variable [`FleetConfig::from_env`] reads the Redis URL from.
pub const REDIS_URL_ENV: &str = "STEADFAST_REDIS_URL";

/// The URL used when [`REDIS_URL_ENV`] is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The longest key prefix accepted.
pub const MAX_PREFIX_LEN: usize = 64;

fn invalid(
    setting: &'static str,
    problem: impl Into<std::borrow::Cow<'static, str>>,
) -> ConfigError {
    ConfigError::new("fleet", setting, problem)
}

/// How a replica joins its fleet: the Redis URL, the application's key prefix (replicas with the
/// same prefix share state; other applications on the same Redis never see it), and timings.
///
/// | setting | default | why |
/// |---|---|---|
/// | `probe_lease` | 10 s | how long one replica holds the fleet's half-open (its probes, or its health check) before another may take over |
/// | `lease_lead` | 200 ms | the lease is asked for this long before the open time ends, so a replica that lost it never probes |
/// | `io_timeout` | 500 ms | a Redis command slower than this counts as Redis down |
/// | `reconnect_min` / `reconnect_max` | 50 ms / 500 ms | backoff between reconnection attempts: a returning Redis is seen within `reconnect_max` |
/// | `ping_interval` | 1 s | how often a quiet connection is checked (a partition shows no disconnect) |
/// | `streak_window` | 10 s | a replica's share of the fleet's failure streak expires after this |
///
/// ```
/// use std::time::Duration;
/// use steadfast_redis::FleetConfig;
///
/// let config = FleetConfig::builder("redis://127.0.0.1:6379", "billing-api")
///     .probe_lease(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(config.prefix(), "billing-api");
///
/// let bad = FleetConfig::builder("http://127.0.0.1", "billing-api").build().unwrap_err();
/// assert_eq!(bad.setting(), "url");
/// let bad = FleetConfig::builder("redis://127.0.0.1", "billing api").build().unwrap_err();
/// assert_eq!(bad.setting(), "prefix");
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct FleetConfig {
    pub(crate) client: redis::Client,
    pub(crate) redacted_url: String,
    pub(crate) prefix: Arc<str>,
    pub(crate) replica: Option<String>,
    pub(crate) probe_lease: Duration,
    pub(crate) lease_lead: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) streak_window: Duration,
}

impl FleetConfig {
    /// A builder for the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and the
    /// application `prefix`.
    pub fn builder(url: impl Into<String>, prefix: impl Into<String>) -> FleetConfigBuilder {
        FleetConfigBuilder {
            url: url.into(),
            prefix: prefix.into(),
            replica: None,
            probe_lease: Duration::from_secs(10),
            lease_lead: Duration::from_millis(200),
            io_timeout: Duration::from_millis(500),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(500),
            ping_interval: Duration::from_secs(1),
            streak_window: Duration::from_secs(10),
        }
    }

    /// The defaults for `prefix`, with the URL from `STEADFAST_REDIS_URL` (or
    /// `redis://127.0.0.1:6379` when it is not set).
    pub fn from_env(prefix: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(url_from_env(), prefix).build()
    }

    /// The application's key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL, with any password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// How long one replica holds the fleet's half-open period.
    pub fn probe_lease(&self) -> Duration {
        self.probe_lease
    }

    /// How long before the open time ends the lease is asked for.
    pub fn lease_lead(&self) -> Duration {
        self.lease_lead
    }

    /// A Redis command slower than this counts as Redis down.
    pub fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// The shortest and longest wait between reconnection attempts.
    pub fn reconnect_backoff(&self) -> (Duration, Duration) {
        (self.reconnect_min, self.reconnect_max)
    }
}

/// `STEADFAST_REDIS_URL`, or the default URL when it is not set.
pub fn url_from_env() -> String {
    std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &self.redacted_url)
            .field("prefix", &self.prefix)
            .field("replica", &self.replica)
            .field("probe_lease", &self.probe_lease)
            .field("lease_lead", &self.lease_lead)
            .field("io_timeout", &self.io_timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("ping_interval", &self.ping_interval)
            .field("streak_window", &self.streak_window)
            .finish_non_exhaustive()
    }
}

/// Builds a [`FleetConfig`]; [`build`](Self::build) validates every value.
#[derive(Clone)]
pub struct FleetConfigBuilder {
    url: String,
    prefix: String,
    replica: Option<String>,
    probe_lease: Duration,
    lease_lead: Duration,
    io_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    ping_interval: Duration,
    streak_window: Duration,
}

impl fmt::Debug for FleetConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfigBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FleetConfigBuilder {
    /// This replica's name in the fleet (logs, leases, messages); a random one by default. No
    /// spaces, and unique in the fleet: a replica ignores messages signed with its own name.
    #[must_use]
    pub fn replica(mut self, name: impl Into<String>) -> Self {
        self.replica = Some(name.into());
        self
    }

    /// How long one replica holds the fleet's half-open period (10 ms to 10 min).
    #[must_use]
    pub fn probe_lease(mut self, lease: Duration) -> Self {
        self.probe_lease = lease;
        self
    }

    /// How long before the open time ends the lease is asked for (less than `probe_lease`).
    #[must_use]
    pub fn lease_lead(mut self, lead: Duration) -> Self {
        self.lease_lead = lead;
        self
    }

    /// A Redis command slower than this counts as Redis down (1 ms to 60 s).
    #[must_use]
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// The shortest and longest wait between reconnection attempts (1 ms to 60 s, `min <= max`).
    #[must_use]
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// How often a quiet connection is checked with a `PING` (10 ms to 60 s).
    #[must_use]
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long a replica's share of the fleet's failure streak lasts without news (10 ms to
    /// 10 min).
    #[must_use]
    pub fn streak_window(mut self, window: Duration) -> Self {
        self.streak_window = window;
        self
    }

    /// Validates every value.
    pub fn build(self) -> Result<FleetConfig, ConfigError> {
        let redacted_url = redact(&self.url);
        if !(self.url.starts_with("redis://") || self.url.starts_with("redis+unix://")) {
            return Err(invalid(
                "url",
                "a Redis URL starts with redis:// (redis://host:port[/db]); TLS (rediss://) is not built in",
            )
            .with_value(redacted_url));
        }
        let client = redis::Client::open(self.url.as_str()).map_err(|error| {
            // The message never carries the password: the whole URL, should it appear, is
            // replaced by its redacted form.
            let why = error.to_string().replace(self.url.as_str(), &redacted_url);
            invalid("url", format!("not a Redis URL ({why})")).with_value(redacted_url.clone())
        })?;
        check_name("prefix", &self.prefix)?;
        if let Some(replica) = &self.replica {
            check_name("replica", replica)?;
        }
        let within = |setting: &'static str, value: Duration, min: Duration, max: Duration| {
            if value < min || value > max {
                Err(
                    invalid(setting, format!("must be between {min:?} and {max:?}"))
                        .with_value(format!("{value:?}")),
                )
            } else {
                Ok(())
            }
        };
        let ms = Duration::from_millis;
        within("probe_lease", self.probe_lease, ms(10), ms(600_000))?;
        within("io_timeout", self.io_timeout, ms(1), ms(60_000))?;
        within("reconnect_min", self.reconnect_min, ms(1), ms(60_000))?;
        within(
            "reconnect_max",
            self.reconnect_max,
            self.reconnect_min,
            ms(60_000),
        )?;
        within("ping_interval", self.ping_interval, ms(10), ms(60_000))?;
        within("streak_window", self.streak_window, ms(10), ms(600_000))?;
        if self.lease_lead >= self.probe_lease {
            return Err(invalid("lease_lead", "must be shorter than probe_lease")
                .with_value(format!("{:?}", self.lease_lead)));
        }
        Ok(FleetConfig {
            client,
            redacted_url,
            prefix: Arc::from(self.prefix),
            replica: self.replica,
            probe_lease: self.probe_lease,
            lease_lead: self.lease_lead,
            io_timeout: self.io_timeout,
            reconnect_min: self.reconnect_min,
            reconnect_max: self.reconnect_max,
            ping_interval: self.ping_interval,
            streak_window: self.streak_window,
        })
    }
}

/// Prefixes and replica names go into keys and messages: short, printable, no spaces.
fn check_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > MAX_PREFIX_LEN {
        return Err(
            invalid(setting, format!("must be 1 to {MAX_PREFIX_LEN} characters")).with_value(name),
        );
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(invalid(
            setting,
            format!("{bad:?} is not allowed: use letters, digits, `-`, `_`, `.` and `:`"),
        )
        .with_value(name.escape_debug()));
    }
    Ok(())
}

/// The URL with the password (the user-info part) replaced, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_errors_or_debug() {
        assert_eq!(
            redact("redis://:s3cret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://user:s3cret@host"), "redis://***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        let config = FleetConfig::builder("redis://:s3cret@127.0.0.1:6379", "app")
            .build()
            .unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        let error = FleetConfig::builder("rediss://:s3cret@127.0.0.1", "app")
            .build()
            .unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = || FleetConfig::builder("redis://127.0.0.1", "app");
        let cases = [
            (base().probe_lease(Duration::ZERO).build(), "probe_lease"),
            (base().io_timeout(Duration::ZERO).build(), "io_timeout"),
            (
                base()
                    .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1))
                    .build(),
                "reconnect_max",
            ),
            (
                base().lease_lead(Duration::from_secs(20)).build(),
                "lease_lead",
            ),
            (base().replica("a b").build(), "replica"),
            (
                FleetConfig::builder("redis://127.0.0.1", "").build(),
                "prefix",
            ),
            (
                FleetConfig::builder("redis://127.0.0.1", "x".repeat(65)).build(),
                "prefix",
            ),
            (FleetConfig::builder("not a url", "app").build(), "url"),
        ];
        for (result, setting) in cases {
            let error = result.unwrap_err();
            assert_eq!(error.component(), "fleet");
            assert_eq!(error.setting(), setting, "{error}");
        }
    }
}
