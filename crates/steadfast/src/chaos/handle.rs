//! [`ChaosHandle`]: the runtime switch, shared by a layer, its services and their futures.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Origin, duration_to_nanos};
use crate::rng::SplitMix;

use super::config::{ChaosConfig, Outage, Rates};
use super::policy::{self, Fault};
use crate::error::ConfigError;

/// What the layer does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Pass,
    Outage(Duration),
    Error,
    Response,
    Latency(Duration),
}

pub(crate) struct ChaosShared {
    pub(crate) name: Arc<str>,
    origin: Origin,
    enabled: AtomicBool,
    rng: SplitMix,
    error_rate: AtomicU64,
    response_rate: AtomicU64,
    latency_rate: AtomicU64,
    latency: AtomicU64,
    outages: Box<[Outage]>,
    /// A runtime outage as nanoseconds since `origin`: `[start, end)`; `end == 0` means none.
    outage_start: AtomicU64,
    outage_end: AtomicU64,
    injected: [AtomicU64; 4],
}

impl ChaosShared {
    pub(crate) fn new(name: Arc<str>, config: &ChaosConfig) -> Arc<Self> {
        let shared = ChaosShared {
            name,
            origin: Origin::now(),
            enabled: AtomicBool::new(config.enabled),
            rng: SplitMix::new(config.seed),
            error_rate: AtomicU64::new(0),
            response_rate: AtomicU64::new(0),
            latency_rate: AtomicU64::new(0),
            latency: AtomicU64::new(duration_to_nanos(config.latency)),
            outages: config.outages.clone().into_boxed_slice(),
            outage_start: AtomicU64::new(0),
            outage_end: AtomicU64::new(0),
            injected: Default::default(),
        };
        shared.store_rates(config.rates);
        Arc::new(shared)
    }

    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn store_rates(&self, rates: Rates) {
        self.error_rate
            .store(rates.error.to_bits(), Ordering::Relaxed);
        self.response_rate
            .store(rates.response.to_bits(), Ordering::Relaxed);
        self.latency_rate
            .store(rates.latency.to_bits(), Ordering::Relaxed);
    }

    fn rates(&self) -> Rates {
        Rates {
            error: f64::from_bits(self.error_rate.load(Ordering::Relaxed)),
            response: f64::from_bits(self.response_rate.load(Ordering::Relaxed)),
            latency: f64::from_bits(self.latency_rate.load(Ordering::Relaxed)),
        }
    }

    /// Decides the fate of one call: outages first (no draw), then one draw. The clock is read
    /// only when an outage window exists.
    pub(crate) fn decide(&self) -> Decision {
        if let Some(remaining) = self.outage_remaining() {
            self.count(3);
            return Decision::Outage(remaining);
        }
        match policy::pick(self.rng.next_unit(), self.rates()) {
            Fault::None => Decision::Pass,
            Fault::Error => {
                self.count(0);
                Decision::Error
            }
            Fault::Response => Decision::Response,
            Fault::Latency => {
                self.count(2);
                Decision::Latency(Duration::from_nanos(self.latency.load(Ordering::Relaxed)))
            }
        }
    }

    /// A fake response was actually produced (the closure may decline).
    pub(crate) fn count_response(&self) {
        self.count(1);
    }

    fn count(&self, index: usize) {
        self.injected[index].fetch_add(1, Ordering::Relaxed);
    }

    fn outage_remaining(&self) -> Option<Duration> {
        let end = self.outage_end.load(Ordering::Acquire);
        if end == 0 && self.outages.is_empty() {
            return None;
        }
        let now = Instant::now();
        if end != 0 {
            let at = self.origin.nanos_at(now);
            if at >= self.outage_start.load(Ordering::Acquire) && at < end {
                return Some(Duration::from_nanos(end - at));
            }
        }
        self.outages.iter().find_map(|outage| outage.remaining(now))
    }
}

/// Switches a [`ChaosLayer`](super::ChaosLayer) on and off and changes what it injects, at
/// runtime (a game-day console, an admin endpoint, a test). Cheap to clone.
#[derive(Clone)]
pub struct ChaosHandle {
    pub(crate) shared: Arc<ChaosShared>,
}

/// Faults injected so far by one layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InjectedCounts {
    /// Calls failed with an injected error.
    pub errors: u64,
    /// Calls answered with a fake response.
    pub responses: u64,
    /// Calls delayed.
    pub delays: u64,
    /// Calls failed by an outage window.
    pub outage_failures: u64,
}

impl ChaosHandle {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Starts injecting.
    pub fn enable(&self) {
        self.shared.enabled.store(true, Ordering::Relaxed);
    }

    /// Stops injecting: calls go straight through.
    pub fn disable(&self) {
        self.shared.enabled.store(false, Ordering::Relaxed);
    }

    /// Whether it is injecting.
    pub fn is_enabled(&self) -> bool {
        self.shared.enabled()
    }

    /// The current rates.
    pub fn rates(&self) -> Rates {
        self.shared.rates()
    }

    /// Replaces the rates (validated: each in `0..=1`, summing to at most 1).
    pub fn set_rates(&self, rates: Rates) -> Result<(), ConfigError> {
        self.shared.store_rates(rates.validate()?);
        Ok(())
    }

    /// Changes the error rate only, keeping the others (validated likewise). `1.0` fails
    /// every call: the "fail the primary" switch.
    pub fn set_error_rate(&self, rate: f64) -> Result<(), ConfigError> {
        self.set_rates(Rates {
            error: rate,
            ..self.rates()
        })
    }

    /// Changes the injected latency.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency
            .store(duration_to_nanos(latency), Ordering::Relaxed);
    }

    /// Fails every call from now for `duration` (replacing an earlier runtime outage; the
    /// configured windows stay).
    pub fn start_outage(&self, duration: Duration) {
        let start = self.shared.origin.elapsed();
        self.shared.outage_end.store(0, Ordering::Release);
        self.shared.outage_start.store(start, Ordering::Release);
        self.shared.outage_end.store(
            start.saturating_add(duration_to_nanos(duration)).max(1),
            Ordering::Release,
        );
    }

    /// Ends a runtime outage early.
    pub fn end_outage(&self) {
        self.shared.outage_end.store(0, Ordering::Release);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> InjectedCounts {
        let load = |index: usize| self.shared.injected[index].load(Ordering::Relaxed);
        InjectedCounts {
            errors: load(0),
            responses: load(1),
            delays: load(2),
            outage_failures: load(3),
        }
    }
}

impl fmt::Debug for ChaosHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosHandle")
            .field("agent", &self.shared.name)
            .field("enabled", &self.is_enabled())
            .field("rates", &self.rates())
            .finish_non_exhaustive()
    }
}
