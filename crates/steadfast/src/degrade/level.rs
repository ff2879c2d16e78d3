//! [`DegradationLevel`]: how degraded the application runs, shared by everything that reads it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::watch;

/// How much the application is degraded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Level {
    /// Everything healthy: full answers.
    #[default]
    Normal,
    /// Some agents unwell: skip the optional extras.
    Reduced,
    /// Many agents unwell: essentials only.
    Minimal,
    /// Most or all agents down: templates and "try again later".
    Emergency,
}

impl Level {
    /// Every level, from healthiest to worst.
    pub const ALL: [Level; 4] = [
        Level::Normal,
        Level::Reduced,
        Level::Minimal,
        Level::Emergency,
    ];

    /// The stable lower-case name used in metrics, logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Reduced => "reduced",
            Level::Minimal => "minimal",
            Level::Emergency => "emergency",
        }
    }

    /// The level for a share of unhealthy agents (`0.0..=1.0`): none unhealthy is `Normal`,
    /// under a third `Reduced`, under two thirds `Minimal`, the rest `Emergency`. `NaN` (no
    /// agents) is `Normal`.
    pub fn from_unhealthy_fraction(fraction: f64) -> Level {
        if fraction.is_nan() || fraction <= 0.0 {
            Level::Normal
        } else if fraction < 1.0 / 3.0 {
            Level::Reduced
        } else if fraction < 2.0 / 3.0 {
            Level::Minimal
        } else {
            Level::Emergency
        }
    }

    const fn to_u8(self) -> u8 {
        match self {
            Level::Normal => 0,
            Level::Reduced => 1,
            Level::Minimal => 2,
            Level::Emergency => 3,
        }
    }

    const fn from_u8(value: u8) -> Level {
        match value {
            0 => Level::Normal,
            1 => Level::Reduced,
            2 => Level::Minimal,
            _ => Level::Emergency,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared, watchable [`Level`]: set it by hand (an operator switch, a feature flag) or derive
/// it from the registry's breakers; read it from degrade functions, fan-outs and handlers.
/// Clones share the cell. Reading is one atomic load; [`subscribe`](Self::subscribe) gives a
/// `tokio::sync::watch` receiver that wakes on every change.
///
/// ```
/// use steadfast::degrade::{DegradationLevel, Level};
///
/// let level = DegradationLevel::new();
/// let mut changes = level.subscribe();
/// level.set(Level::Minimal);
/// assert_eq!(level.get(), Level::Minimal);
/// assert!(changes.has_changed().unwrap());
/// ```
#[derive(Clone)]
pub struct DegradationLevel {
    cell: Arc<Cell>,
}

struct Cell {
    current: AtomicU8,
    changes: watch::Sender<Level>,
}

impl DegradationLevel {
    /// A cell at [`Level::Normal`].
    pub fn new() -> Self {
        DegradationLevel {
            cell: Arc::new(Cell {
                current: AtomicU8::new(Level::Normal.to_u8()),
                changes: watch::Sender::new(Level::Normal),
            }),
        }
    }

    /// The current level.
    #[inline]
    pub fn get(&self) -> Level {
        Level::from_u8(self.cell.current.load(Ordering::Acquire))
    }

    /// Sets the level; returns the previous one. Subscribers are woken only on a change.
    pub fn set(&self, level: Level) -> Level {
        // Under the watch channel's lock, so concurrent sets leave the atomic and the channel
        // agreeing on the last one.
        let mut previous = level;
        self.cell.changes.send_if_modified(|current| {
            previous = *current;
            self.cell.current.store(level.to_u8(), Ordering::Release);
            *current = level;
            previous != level
        });
        if previous != level {
            tracing::info!(from = %previous, to = %level, "degradation level changed");
        }
        previous
    }

    /// A receiver that sees the current level and every change.
    pub fn subscribe(&self) -> watch::Receiver<Level> {
        self.cell.changes.subscribe()
    }

    /// Sets the level from the share of `registry`'s breakers that are not admitting calls
    /// normally (open, forced open or half-open), with [`Level::from_unhealthy_fraction`];
    /// returns the new level. A registry without breakers gives `Normal`.
    #[cfg(feature = "circuit-breaker")]
    pub fn update_from_registry(&self, registry: &crate::Registry) -> Level {
        use crate::circuit_breaker::BreakerState;
        let (mut total, mut unhealthy) = (0_u32, 0_u32);
        for agent in registry.agents() {
            if let Some(breaker) = registry.breaker(&agent) {
                total += 1;
                if !matches!(
                    breaker.state(),
                    BreakerState::Closed | BreakerState::Disabled
                ) {
                    unhealthy += 1;
                }
            }
        }
        let level = if total == 0 {
            Level::Normal
        } else {
            Level::from_unhealthy_fraction(f64::from(unhealthy) / f64::from(total))
        };
        self.set(level);
        level
    }

    /// Spawns a task that calls [`update_from_registry`](Self::update_from_registry) every
    /// `every` (on the current tokio runtime). The task stops when every other clone of this
    /// cell is dropped, or when the returned handle is aborted.
    #[cfg(feature = "circuit-breaker")]
    pub fn follow_registry(
        &self,
        registry: crate::Registry,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.cell);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(cell) = weak.upgrade() else { return };
                DegradationLevel { cell }.update_from_registry(&registry);
            }
        })
    }
}

impl Default for DegradationLevel {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DegradationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DegradationLevel")
            .field(&self.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fraction_thresholds() {
        assert_eq!(Level::from_unhealthy_fraction(f64::NAN), Level::Normal);
        assert_eq!(Level::from_unhealthy_fraction(0.0), Level::Normal);
        assert_eq!(Level::from_unhealthy_fraction(0.2), Level::Reduced);
        assert_eq!(Level::from_unhealthy_fraction(0.5), Level::Minimal);
        assert_eq!(Level::from_unhealthy_fraction(1.0), Level::Emergency);
    }

    proptest! {
        #[test]
        fn more_unhealthy_never_means_a_better_level(a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(Level::from_unhealthy_fraction(low) <= Level::from_unhealthy_fraction(high));
        }

        #[test]
        fn level_round_trips_through_the_atomic(index in 0usize..4) {
            let level = Level::ALL[index];
            prop_assert_eq!(Level::from_u8(level.to_u8()), level);
        }
    }
}
