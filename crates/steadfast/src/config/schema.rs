//! The schema of a stack file: what serde reads ([`RawStack`]), and the validated
//! [`StackConfig`] the builder uses.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::bulkhead::{BulkheadConfig, Readiness};
use crate::cache::{CacheConfig, CacheConfigBuilder};
use crate::circuit_breaker::{BreakerConfig, BreakerConfigBuilder};
use crate::classify::OutcomeKind;
use crate::dead_letter::DeadLetterPolicy;
use crate::hedge::HedgeConfig;
use crate::rate_limit::{RateLimitConfig, RateLimitConfigBuilder};
use crate::retry::{RetryConfig, RetryConfigBuilder};

use super::locate::Format;

/// The longest `timeout` an agent may have. A call that may wait longer holds a connection
/// and a caller past any user's patience; long jobs belong on a queue.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// The classifier kind of an agent that names none.
pub const DEFAULT_CLASSIFIER: &str = "default";

/// The records a `memory` dead-letter store keeps when `capacity` is not given.
pub const DEFAULT_MEMORY_CAPACITY: usize = 1_000;

/// What serde reads: the file as written, each layer's table as its config's builder (so the
/// layer's own validation, with the setting's name, runs in [`super::load`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStack {
    #[serde(default)]
    pub(crate) agents: RawAgents,
}

/// `[agents.NAME]` tables, in the order read; a name given twice is refused (TOML refuses it
/// itself; JSON objects would otherwise keep the last silently).
#[derive(Default)]
pub(crate) struct RawAgents(pub(crate) Vec<(String, RawAgent)>);

impl<'de> Deserialize<'de> for RawAgents {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AgentsVisitor;
        impl<'de> Visitor<'de> for AgentsVisitor {
            type Value = RawAgents;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of agents, each named by its key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAgents, A::Error> {
                let mut agents: Vec<(String, RawAgent)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if agents.iter().any(|(seen, _)| *seen == name) {
                        return Err(serde::de::Error::custom(format!(
                            "agent `{name}` is defined twice"
                        )));
                    }
                    let agent = map.next_value::<RawAgent>()?;
                    agents.push((name, agent));
                }
                Ok(RawAgents(agents))
            }
        }
        deserializer.deserialize_map(AgentsVisitor)
    }
}

/// One `[agents.NAME]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub(crate) endpoint: Option<String>,
    pub(crate) health_check: Option<String>,
    pub(crate) classifier: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) timeout: Option<Duration>,
    pub(crate) breaker: Option<BreakerConfigBuilder>,
    pub(crate) retry: Option<RetryConfigBuilder>,
    pub(crate) rate_limit: Option<RateLimitConfigBuilder>,
    pub(crate) bulkhead: Option<RawBulkhead>,
    pub(crate) hedge: Option<RawHedge>,
    #[serde(default)]
    pub(crate) fallback: Vec<String>,
    pub(crate) cache: Option<CacheConfigBuilder>,
    pub(crate) dead_letter: Option<RawDeadLetter>,
}

/// `[agents.NAME.bulkhead]` as written: every key optional, left at `BulkheadConfig`'s
/// default when absent. Read here rather than from the layer's builder because an
/// `AdaptiveConfig` may hold an overload rule (code), which a file cannot describe; the
/// settings go through `BulkheadConfigBuilder::build` all the same ([`super::load`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBulkhead {
    pub(crate) max_concurrent: Option<u32>,
    pub(crate) max_queue: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) max_wait: Option<Duration>,
    pub(crate) readiness: Option<Readiness>,
    pub(crate) adaptive: Option<RawAdaptive>,
}

/// `[agents.NAME.hedge]` as written: `delay = "2s"` or `percentile = 95.0` (one of them; the
/// builder's default, p95, when neither), the other settings of `HedgeConfigBuilder`, and
/// `to`: the agents hedges go to instead of this one. Validated by `HedgeConfigBuilder::build`
/// ([`super::load`]).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHedge {
    #[serde(default, with = "humantime_serde")]
    pub(crate) delay: Option<Duration>,
    pub(crate) percentile: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) min_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) max_delay: Option<Duration>,
    pub(crate) min_samples: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) window: Option<Duration>,
    pub(crate) max_hedges: Option<u32>,
    pub(crate) budget_ratio: Option<f64>,
    pub(crate) budget_min_per_sec: Option<u32>,
    #[serde(default)]
    pub(crate) to: Vec<String>,
}

/// `[agents.NAME.bulkhead.adaptive]` as written (the default overload rule; a custom one is
/// code).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdaptive {
    pub(crate) initial_limit: Option<u32>,
    pub(crate) min_limit: Option<u32>,
    pub(crate) backoff: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) latency_threshold: Option<Duration>,
}

/// The kinds of dead-letter store a file can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreKind {
    Memory,
    Sqlite,
    Amqp,
}

/// `[agents.NAME.dead_letter]` as written: the store's kind and the settings of every kind;
/// [`super::load`] checks that only the chosen kind's settings are given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeadLetter {
    pub(crate) store: StoreKind,
    pub(crate) capacity: Option<usize>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) url_env: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) exchange: Option<String>,
    pub(crate) failures: Option<Vec<OutcomeKind>>,
}

/// A validated stack: its agents, each with the configs of its layers. Read one with
/// [`StackConfig::load`], [`StackConfig::from_toml`] or [`StackConfig::from_json`]; build it
/// with [`StackConfig::builder`].
#[derive(Clone)]
pub struct StackConfig {
    pub(crate) agents: Vec<AgentConfig>,
    pub(crate) source: Arc<Source>,
}

/// Where a stack was read from: kept so that errors found while building still name the line.
pub(crate) struct Source {
    pub(crate) origin: String,
    pub(crate) text: String,
    pub(crate) format: Format,
}

impl StackConfig {
    /// The agents, in the order read.
    pub fn agents(&self) -> &[AgentConfig] {
        &self.agents
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    /// The file the stack was read from (`<toml>` / `<json>` for text given directly).
    pub fn origin(&self) -> &str {
        &self.source.origin
    }
}

impl fmt::Debug for StackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackConfig")
            .field("origin", &self.source.origin)
            .field("agents", &self.agents)
            .finish()
    }
}

/// One agent of a stack, validated. A layer is in the agent's stack when its table is in the
/// file (`[agents.NAME.breaker]` with no keys: a breaker with the defaults).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub(crate) name: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) health_check: Option<String>,
    pub(crate) classifier: String,
    pub(crate) timeout: Option<Duration>,
    pub(crate) breaker: Option<BreakerConfig>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) rate_limit: Option<RateLimitConfig>,
    pub(crate) bulkhead: Option<BulkheadConfig>,
    pub(crate) hedge: Option<HedgeConfig>,
    pub(crate) hedge_to: Vec<String>,
    pub(crate) fallback: Vec<String>,
    pub(crate) cache: Option<CacheConfig>,
    pub(crate) dead_letter: Option<DeadLetterConfig>,
}

impl AgentConfig {
    /// The agent's name (its key under `[agents]`): its metrics label, breaker and events.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Where the agent is, as the application understands it (a URL, a host, a model name).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }
    /// What the application checks while the agent's breaker is open (a URL path such as
    /// `/health` for an HTTP agent), handed to
    /// [`StackBuilder::health_checks`](super::StackBuilder::health_checks).
    pub fn health_check(&self) -> Option<&str> {
        self.health_check.as_deref()
    }
    /// The classifier kind (default [`DEFAULT_CLASSIFIER`]), mapped to a classifier by the
    /// application ([`StackBuilder::classifiers`](super::StackBuilder::classifiers)).
    pub fn classifier(&self) -> &str {
        &self.classifier
    }
    /// The time one attempt may take, if bounded.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The circuit breaker's config, if the agent has one.
    pub fn breaker(&self) -> Option<&BreakerConfig> {
        self.breaker.as_ref()
    }
    /// The retry layer's config, if the agent retries.
    pub fn retry(&self) -> Option<&RetryConfig> {
        self.retry.as_ref()
    }
    /// The rate limiter's quotas, if the agent has them.
    pub fn rate_limit(&self) -> Option<&RateLimitConfig> {
        self.rate_limit.as_ref()
    }
    /// The bulkhead's config, if the agent has one.
    pub fn bulkhead(&self) -> Option<&BulkheadConfig> {
        self.bulkhead.as_ref()
    }
    /// The hedge layer's config, if the agent hedges.
    pub fn hedge(&self) -> Option<&HedgeConfig> {
        self.hedge.as_ref()
    }
    /// The agents hedges go to, in order (`hedge.to`); empty: hedges go to this agent.
    pub fn hedge_to(&self) -> &[String] {
        &self.hedge_to
    }
    /// The agents tried, in this order, when this one fails.
    pub fn fallback(&self) -> &[String] {
        &self.fallback
    }
    /// The response cache served after every alternative failed, if any.
    pub fn cache(&self) -> Option<&CacheConfig> {
        self.cache.as_ref()
    }
    /// Where this agent's final failures are kept, if anywhere.
    pub fn dead_letter(&self) -> Option<&DeadLetterConfig> {
        self.dead_letter.as_ref()
    }
}

/// `[agents.NAME.dead_letter]`: the store and which failures go to it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterConfig {
    pub(crate) store: DeadLetterStore,
    pub(crate) policy: DeadLetterPolicy,
}

impl DeadLetterConfig {
    /// The store.
    pub fn store(&self) -> &DeadLetterStore {
        &self.store
    }
    /// Which failures are dead-lettered (`failures`; default: all four kinds).
    pub fn policy(&self) -> DeadLetterPolicy {
        self.policy
    }
}

/// A dead-letter store, as a file describes it. `memory` is built by steadfast; the others are
/// opened by the application ([`StackBuilder::dead_letter_stores`](super::StackBuilder::dead_letter_stores)),
/// with `steadfast-sqlite` and `steadfast-amqp`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadLetterStore {
    /// A bounded in-memory sink (tests, demos): `capacity` records.
    Memory {
        /// Records kept (default [`DEFAULT_MEMORY_CAPACITY`]).
        capacity: usize,
    },
    /// The embedded SQLite store in directory `path` (`None`: the application's default).
    Sqlite {
        /// The store's directory.
        path: Option<PathBuf>,
    },
    /// RabbitMQ. The broker URL carries a password, so the file names the environment
    /// variable that holds it, never the URL.
    Amqp {
        /// The environment variable holding the broker URL.
        url_env: String,
        /// The queue (`None`: the application's default).
        queue: Option<String>,
        /// The exchange (`None`: the application's default).
        exchange: Option<String>,
    },
}

impl DeadLetterStore {
    /// `memory`, `sqlite` or `amqp`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeadLetterStore::Memory { .. } => "memory",
            DeadLetterStore::Sqlite { .. } => "sqlite",
            DeadLetterStore::Amqp { .. } => "amqp",
        }
    }
}
