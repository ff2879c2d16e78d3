//! [`DeadLetterStats`] and [`Monitor`]: depth, oldest age, rate, per-agent counts, gauges and a
//! threshold alert.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::events::Event;
use crate::registry::Registry;

use super::sink::{DeadLetterSink, SinkError};

/// What a dead-letter store holds right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterStats {
    /// Records stored.
    pub depth: u64,
    /// Creation time of the oldest record, if any.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub oldest: Option<SystemTime>,
    /// Records appended in the last minute (by this process, for stores that track it).
    pub appended_last_minute: u64,
    /// Records stored per agent.
    pub by_agent: BTreeMap<String, u64>,
}

impl DeadLetterStats {
    /// Age of the oldest record (zero when empty).
    pub fn oldest_age(&self) -> Duration {
        self.oldest
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// Why a [`Monitor`] raised an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DlqAlert {
    /// More records than [`Monitor::max_depth`] allows.
    DepthOver {
        /// Records stored.
        depth: u64,
        /// The threshold.
        threshold: u64,
    },
    /// The oldest record is older than [`Monitor::max_oldest_age`] allows.
    OldestOver {
        /// Its age.
        age: Duration,
        /// The threshold.
        threshold: Duration,
    },
}

type AlertFn = Arc<dyn Fn(&DlqAlert) + Send + Sync>;

/// Reads a store's stats, publishes the `steadfast_dlq_depth` and `steadfast_dlq_oldest_seconds`
/// gauges (label `dlq`), and calls `on_alert` when a threshold is crossed.
///
/// Call [`check`](Self::check) from your own schedule, or [`spawn`](Self::spawn) a task.
#[derive(Clone)]
pub struct Monitor {
    sink: Arc<dyn DeadLetterSink>,
    name: Arc<str>,
    max_depth: Option<u64>,
    max_oldest_age: Option<Duration>,
    on_alert: Option<AlertFn>,
    registry: Option<Registry>,
    /// Agents whose DLQ depth this monitor set in the registry, to zero those that empty.
    reported_agents: Arc<Mutex<BTreeSet<String>>>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("name", &self.name)
            .field("max_depth", &self.max_depth)
            .field("max_oldest_age", &self.max_oldest_age)
            .field("registry", &self.registry.is_some())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Monitors `sink`; `name` is the `dlq` label of the gauges.
    pub fn new(sink: impl DeadLetterSink, name: impl Into<Arc<str>>) -> Self {
        Monitor {
            sink: Arc::new(sink),
            name: name.into(),
            max_depth: None,
            max_oldest_age: None,
            on_alert: None,
            registry: None,
            reported_agents: Arc::default(),
        }
    }

    /// Reports to `registry`: at each check, sets the DLQ depth of every agent the registry
    /// knows (the `dlq_depth` of its [`CountersSnapshot`](crate::registry::CountersSnapshot),
    /// from the store's per-agent counts; agents it no longer holds go back to 0; agents the
    /// registry does not know are not added), and publishes [`Event::DlqOverThreshold`] on the
    /// registry's bus at each check that finds more records than
    /// [`max_depth`](Self::max_depth). One monitor per store: two monitors of different stores
    /// reporting to one registry would overwrite each other's depths.
    #[must_use]
    pub fn register(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Alert when more than `depth` records are stored.
    pub fn max_depth(mut self, depth: u64) -> Self {
        self.max_depth = Some(depth);
        self
    }

    /// Alert when the oldest record is older than `age`.
    pub fn max_oldest_age(mut self, age: Duration) -> Self {
        self.max_oldest_age = Some(age);
        self
    }

    /// Called (on the checking task; keep it quick) for each threshold crossed at a check.
    pub fn on_alert(mut self, alert: impl Fn(&DlqAlert) + Send + Sync + 'static) -> Self {
        self.on_alert = Some(Arc::new(alert));
        self
    }

    /// Reads the stats once, updates the gauges and raises alerts; returns the stats and the
    /// alerts raised.
    pub async fn check(&self) -> Result<(DeadLetterStats, Vec<DlqAlert>), SinkError> {
        let stats = self.sink.stats().await?;
        let labels = [("dlq", self.name.to_string())];
        metrics::gauge!("steadfast_dlq_depth", &labels).set(stats.depth as f64);
        metrics::gauge!("steadfast_dlq_oldest_seconds", &labels)
            .set(stats.oldest_age().as_secs_f64());
        let mut alerts = Vec::new();
        if let Some(threshold) = self.max_depth.filter(|t| stats.depth > *t) {
            alerts.push(DlqAlert::DepthOver {
                depth: stats.depth,
                threshold,
            });
        }
        let age = stats.oldest_age();
        if let Some(threshold) = self.max_oldest_age.filter(|t| stats.depth > 0 && age > *t) {
            alerts.push(DlqAlert::OldestOver { age, threshold });
        }
        if let Some(on_alert) = &self.on_alert {
            for alert in &alerts {
                on_alert(alert);
            }
        }
        self.report(&stats, &alerts);
        Ok((stats, alerts))
    }

    /// Sets the registry's DLQ depths and publishes the depth alert, if configured.
    fn report(&self, stats: &DeadLetterStats, alerts: &[DlqAlert]) {
        if let Some(registry) = &self.registry {
            let mut reported = self
                .reported_agents
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for agent in reported.iter() {
                if !stats.by_agent.contains_key(agent) {
                    registry.set_dlq_depth(agent, 0);
                }
            }
            reported.clear();
            for (agent, depth) in &stats.by_agent {
                if registry.set_dlq_depth(agent, *depth) {
                    reported.insert(agent.clone());
                }
            }
            for alert in alerts {
                if let DlqAlert::DepthOver { depth, threshold } = *alert {
                    registry.emit(Event::DlqOverThreshold {
                        queue: Arc::clone(&self.name),
                        depth,
                        threshold,
                    });
                }
            }
        }
    }

    /// Checks every `period` on a tokio task until the returned handle is aborted. A failed
    /// check is logged and retried at the next period.
    pub fn spawn(self, period: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(error) = self.check().await {
                    tracing::warn!(dlq = %self.name, %error, "dead-letter monitor check failed");
                }
            }
        })
    }
}
