//! What every service and call of one bulkhead shares: the permits, the waiters, the
//! adaptive limit and the agent's reporter.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use crate::agent::Reporter;
use crate::classify::Outcome;
use crate::clock::{Nanos, Origin};
use crate::events::Event;
use crate::sync::Local;

use super::config::{AdaptiveConfig, BulkheadConfig};
use super::state::{Aimd, Bounds, Permits, Signal};

pub(crate) struct Shared {
    pub(crate) permits: Permits,
    /// Calls (or services, in readiness mode) waiting for a permit.
    waiters: AtomicU32,
    notify: Arc<Notify>,
    pub(crate) config: BulkheadConfig,
    adaptive: Option<Adaptive>,
    pub(crate) reporter: Arc<Reporter>,
}

struct Adaptive {
    aimd: Aimd,
    bounds: Bounds,
    config: AdaptiveConfig,
    /// Set when successes are timed (a latency threshold): the clock's origin and the
    /// threshold in nanoseconds.
    timing: Option<(Origin, Nanos)>,
}

impl Shared {
    pub(crate) fn new(reporter: Arc<Reporter>, config: BulkheadConfig) -> Self {
        let adaptive = config.adaptive.clone().map(|adaptive| Adaptive {
            aimd: Aimd::default(),
            bounds: Bounds {
                min: adaptive.min_limit,
                max: config.max_concurrent,
                backoff: adaptive.backoff,
            },
            timing: adaptive
                .latency_threshold
                .map(|threshold| (Origin::now(), crate::clock::duration_to_nanos(threshold))),
            config: adaptive,
        });
        let limit = config
            .adaptive
            .as_ref()
            .map_or(config.max_concurrent, |adaptive| {
                adaptive.start(config.max_concurrent)
            });
        reporter.bulkhead_created(limit);
        Shared {
            permits: Permits::new(limit),
            waiters: AtomicU32::new(0),
            notify: Arc::new(Notify::new()),
            config,
            adaptive,
            reporter,
        }
    }

    pub(crate) fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(SeqCst)
    }

    /// Gives a permit back and wakes one waiter, if any.
    #[inline]
    pub(crate) fn release(&self) {
        self.permits.release();
        if self.waiters.load(SeqCst) != 0 {
            self.notify.notify_one();
        }
    }

    /// The adaptive limit's generation an admitted call starts in (0 without one).
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        self.adaptive
            .as_ref()
            .map_or(0, |adaptive| adaptive.aimd.generation())
    }

    /// The time now, if calls are timed (an adaptive limit with a latency threshold). A call
    /// reads it only once its answer did not come at the first poll: an answer that came at
    /// once took no time worth a clock read, and most of the calls that end at once (a cache,
    /// a refusal further in) never read the clock at all.
    #[inline]
    pub(crate) fn timed_now(&self) -> Option<Nanos> {
        let (origin, _) = self.adaptive.as_ref()?.timing?;
        Some(origin.elapsed())
    }

    /// Feeds a completed call's outcome to the adaptive limit (a no-op without one).
    /// `started`: when the call was first found pending (`None`: it answered at its first
    /// poll, or calls are not timed).
    pub(crate) fn completed(&self, outcome: &Outcome, generation: u32, started: Option<Nanos>) {
        let Some(adaptive) = &self.adaptive else {
            return;
        };
        let signal = if outcome.is_local() {
            Signal::Neutral
        } else if adaptive.config.is_overload(outcome) {
            Signal::Overload(outcome.reason_or_kind())
        } else if outcome.is_success() {
            match (adaptive.timing, started) {
                (Some((origin, threshold)), Some(started))
                    if origin.elapsed().saturating_sub(started) > threshold =>
                {
                    Signal::Overload("slow")
                }
                _ => Signal::Success,
            }
        } else {
            Signal::Neutral
        };
        let Some((from, to)) =
            adaptive
                .aimd
                .on_signal(&self.permits, adaptive.bounds, signal, generation)
        else {
            return;
        };
        if to > from {
            // A new permit: a waiter may take it.
            if self.waiters.load(SeqCst) != 0 {
                self.notify.notify_one();
            }
            self.reporter.set_concurrency_limit(to);
        } else if let Signal::Overload(reason) = signal {
            self.reporter.emit(Event::ConcurrencyLimitLowered {
                agent: self.reporter.name.clone(),
                from,
                to,
                reason,
            });
        }
    }

    /// Refuses one call: counted, no event.
    #[inline]
    pub(crate) fn refused(&self) {
        self.reporter.count_bulkhead_rejected();
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("agent", &self.reporter.name)
            .field("in_flight", &self.permits.in_flight())
            .field("limit", &self.permits.limit())
            .field("waiters", &self.waiters())
            .finish_non_exhaustive()
    }
}

/// One permit, held by a call (or by a service between `poll_ready` and `call`); dropping it
/// gives the permit back.
pub(crate) struct Slot(pub(crate) Local<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

/// A place among the waiters: counted while it lives, woken when a permit may be free.
pub(crate) struct Waiter {
    shared: Local<Shared>,
    notified: Pin<Box<OwnedNotified>>,
}

impl Waiter {
    /// A place in the bounded queue, if one is free.
    pub(crate) fn queue(shared: Local<Shared>, max_queue: u32) -> Option<Self> {
        shared
            .waiters
            .fetch_update(SeqCst, SeqCst, |waiters| {
                (waiters < max_queue).then_some(waiters + 1)
            })
            .ok()?;
        Some(Waiter::armed(shared))
    }

    /// A place with no bound (readiness mode: the callers parked in `poll_ready` are the
    /// queue).
    pub(crate) fn unbounded(shared: Local<Shared>) -> Self {
        shared.waiters.fetch_add(1, SeqCst);
        Waiter::armed(shared)
    }

    fn armed(shared: Local<Shared>) -> Self {
        let mut notified = Box::pin(shared.notify.clone().notified_owned());
        // Registered before the caller tries for a permit, so a release in between wakes it.
        notified.as_mut().enable();
        Waiter { shared, notified }
    }

    /// The bulkhead waited on.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Tries for a permit; when none is free, registers `cx` to be woken when one may be.
    pub(crate) fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Slot> {
        loop {
            if self.shared.permits.try_acquire() {
                return Poll::Ready(Slot(self.shared.clone()));
            }
            match self.notified.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    // Woken, but another caller may have taken the permit: wait again.
                    self.notified
                        .set(self.shared.notify.clone().notified_owned());
                    self.notified.as_mut().enable();
                }
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.shared.waiters.fetch_sub(1, SeqCst);
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waiter")
    }
}

use std::future::Future as _;
