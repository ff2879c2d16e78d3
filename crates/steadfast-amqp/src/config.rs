//! [`AmqpConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use steadfast::ConfigError;

use steadfast_sqlite::Synchronous;

/// Where and how to publish dead letters.
#[derive(Clone, Debug)]
pub struct AmqpConfig {
    pub(crate) uri: String,
    pub(crate) exchange: String,
    pub(crate) queue: String,
    pub(crate) spill_dir: PathBuf,
    pub(crate) spill_synchronous: Synchronous,
    pub(crate) connect_timeout: Duration,
    pub(crate) confirm_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) drain_interval: Duration,
}

impl AmqpConfig {
    /// Publishes to the broker at `uri` (`amqp://user:pass@host:port/vhost`), spilling to an
    /// SQLite store ([`SqliteSink`](steadfast_sqlite::SqliteSink)) in directory `spill_dir`. Defaults: exchange `steadfast.dead-letter`, queue
    /// `steadfast.dead-letters`, 5 s connect and confirm timeouts, reconnect backoff 100 ms
    /// doubling to 30 s, drain check every second.
    pub fn new(uri: impl Into<String>, spill_dir: impl AsRef<Path>) -> Self {
        AmqpConfig {
            uri: uri.into(),
            exchange: "steadfast.dead-letter".into(),
            queue: "steadfast.dead-letters".into(),
            spill_dir: spill_dir.as_ref().to_path_buf(),
            spill_synchronous: Synchronous::Full,
            connect_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            drain_interval: Duration::from_secs(1),
        }
    }

    /// The exchange dead letters are published to (a `<exchange>.rejected` fanout exchange is
    /// the queue's RabbitMQ dead-letter exchange).
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = name.into();
        self
    }

    /// The queue that holds them (and `<queue>.rejected` for rejected replays).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = name.into();
        self
    }

    /// How the spill store commits (default [`Synchronous::Full`]: a spilled record survives a
    /// power loss; see [`Synchronous::Normal`] for the faster trade-off).
    pub fn spill_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.spill_synchronous = synchronous;
        self
    }

    /// How long a connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the broker's publisher confirm before spilling instead.
    pub fn confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = timeout;
        self
    }

    /// Reconnect backoff: first wait and cap (doubling in between).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// How often the background drainer looks for spilled records.
    pub fn drain_interval(mut self, every: Duration) -> Self {
        self.drain_interval = every;
        self
    }

    /// The broker URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The queue name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The exchange name.
    pub fn exchange_name(&self) -> &str {
        &self.exchange
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (what, name) in [("exchange", &self.exchange), ("queue", &self.queue)] {
            // `.rejected` is appended; AMQP names are at most 255 bytes.
            if name.is_empty() || name.len() > 240 {
                return Err(ConfigError::new(
                    "amqp",
                    what,
                    "must be 1 to 240 bytes (`.rejected` is appended; AMQP names are at most 255)",
                )
                .with_value(format!("{name:?}")));
            }
        }
        if self.uri.is_empty() {
            return Err(ConfigError::new(
                "amqp",
                "uri",
                "the broker URI is empty: give amqp://user:pass@host:port/vhost",
            ));
        }
        for (setting, timeout) in [
            ("connect_timeout", self.connect_timeout),
            ("confirm_timeout", self.confirm_timeout),
        ] {
            if timeout.is_zero() {
                return Err(
                    ConfigError::new("amqp", setting, "must be greater than zero").with_value("0s"),
                );
            }
        }
        Ok(())
    }
}
