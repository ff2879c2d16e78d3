//! [`StreamConfig`]: the deadlines of a streamed answer.

use std::time::Duration;

use steadfast::ConfigError;

/// How long a streamed answer may take to start, to pause and to finish, and whether in-band
/// SSE errors are looked for.
///
/// | setting | default | what it bounds |
/// |---|---|---|
/// | `first_byte` | 60 s | from the call to the first data byte (time to first token) |
/// | `idle` | 30 s | the silence between two chunks once the stream has started (a stall) |
/// | `total` | none | from the call to the end of the stream |
/// | `scan_sse` | `true` | look for error events in `text/event-stream` bodies |
///
/// The first-byte deadline is separate from an overall timeout (tower's `Timeout` below the
/// guard bounds the response head only): a reasoning model may think for a minute before its
/// first token, while a stream that then pauses for 30 s is stuck. A stall is declared after
/// at least `idle` of silence and at most `idle` + 2×`idle`/8: the body checks for silence
/// every `idle`/8 instead of reading the clock on every chunk (see [`StreamBody`](super::StreamBody)).
///
/// ```
/// use std::time::Duration;
/// use steadfast_http::stream::StreamConfig;
///
/// let config = StreamConfig::builder()
///     .first_byte(Duration::from_secs(10))
///     .idle(Duration::from_secs(5))
///     .total(Duration::from_secs(120))
///     .build()
///     .unwrap();
/// assert_eq!(config.first_byte(), Some(Duration::from_secs(10)));
///
/// let err = StreamConfig::builder().idle(Duration::ZERO).build().unwrap_err();
/// assert_eq!(err.setting(), "idle");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    pub(crate) first_byte: Option<Duration>,
    pub(crate) idle: Option<Duration>,
    pub(crate) total: Option<Duration>,
    pub(crate) scan_sse: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            first_byte: Some(Duration::from_secs(60)),
            idle: Some(Duration::from_secs(30)),
            total: None,
            scan_sse: true,
        }
    }
}

impl StreamConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> StreamConfigBuilder {
        StreamConfigBuilder {
            config: StreamConfig::default(),
        }
    }

    /// The first-byte deadline, from the call.
    pub fn first_byte(&self) -> Option<Duration> {
        self.first_byte
    }

    /// The stall timeout between chunks.
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// The deadline of the whole stream, from the call.
    pub fn total(&self) -> Option<Duration> {
        self.total
    }

    /// Whether `text/event-stream` bodies are scanned for error events.
    pub fn scan_sse(&self) -> bool {
        self.scan_sse
    }
}

/// Builds a [`StreamConfig`]; [`build`](Self::build) checks it.
#[derive(Clone, Copy, Debug)]
pub struct StreamConfigBuilder {
    config: StreamConfig,
}

impl StreamConfigBuilder {
    /// The first-byte (first-token) deadline, from the call.
    #[must_use]
    pub fn first_byte(mut self, deadline: Duration) -> Self {
        self.config.first_byte = Some(deadline);
        self
    }

    /// No first-byte deadline (the idle timeout, if set, then bounds the wait for the first
    /// byte too).
    #[must_use]
    pub fn no_first_byte(mut self) -> Self {
        self.config.first_byte = None;
        self
    }

    /// The stall timeout: the longest silence between chunks once the stream has started.
    #[must_use]
    pub fn idle(mut self, timeout: Duration) -> Self {
        self.config.idle = Some(timeout);
        self
    }

    /// No stall timeout.
    #[must_use]
    pub fn no_idle(mut self) -> Self {
        self.config.idle = None;
        self
    }

    /// A deadline for the whole stream, from the call.
    #[must_use]
    pub fn total(mut self, deadline: Duration) -> Self {
        self.config.total = Some(deadline);
        self
    }

    /// Whether `text/event-stream` bodies are scanned for in-band error events (default on).
    #[must_use]
    pub fn scan_sse(mut self, scan: bool) -> Self {
        self.config.scan_sse = scan;
        self
    }

    /// The config, or which setting is wrong.
    pub fn build(self) -> Result<StreamConfig, ConfigError> {
        let config = self.config;
        for (setting, value) in [
            ("first_byte", config.first_byte),
            ("idle", config.idle),
            ("total", config.total),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::new(
                    "stream",
                    setting,
                    "must be longer than zero (use `no_first_byte`/`no_idle` or leave `total` unset for no limit)",
                )
                .with_value("0s"));
            }
        }
        if let (Some(first_byte), Some(total)) = (config.first_byte, config.total)
            && first_byte > total
        {
            return Err(ConfigError::new(
                "stream",
                "first_byte",
                "must not be longer than `total`: the stream's deadline would always come first",
            )
            .with_value(format!("{first_byte:?}")));
        }
        Ok(config)
    }
}
