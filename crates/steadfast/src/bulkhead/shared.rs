//! What every service and call of one bulkhead shares: the permits, the waiters, the
//! adaptive limit and the agent's reporter.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, PoisonError};
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
    pub(crate) gate: &'static Gate,
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
            gate: Gate::take(limit),
            config,
            adaptive,
            reporter,
        }
    }

    pub(crate) fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.gate.waiters.load(SeqCst)
    }

    pub(crate) fn permits(&self) -> &Permits {
        &self.gate.permits
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
                .on_signal(&self.gate.permits, adaptive.bounds, signal, generation)
        else {
            return;
        };
        if to > from {
            // A new permit: a waiter may take it.
            if self.gate.waiters.load(SeqCst) != 0 {
                self.gate.notify.notify_one();
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
            .field("in_flight", &self.gate.permits.in_flight())
            .field("limit", &self.gate.permits.limit())
            .field("waiters", &self.waiters())
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.gate.permits.retire() {
            Gate::give_back(self.gate);
        }
    }
}

/// The permits, the waiter count and the wake-up of one bulkhead, in memory that lives as
/// long as the program and goes from a bulkhead that is gone to the next one made.
///
/// A call's permit points here, so an admitted call holds no counted reference to the
/// bulkhead: a counted reference costs two atomic read-modify-writes per call (taken with the
/// permit, dropped with it), which were half of the call's own cost (tower's
/// `ConcurrencyLimit` holds one as well). The permit count itself says when a gate is free
/// again: the bulkhead marks it retired when it goes ([`Permits::retire`]), and whichever of
/// that and the last permit's release comes second gives it back. So there are never more
/// gates than bulkheads alive at once (a gate is 256 bytes).
pub(crate) struct Gate {
    pub(crate) permits: Permits,
    /// Calls (or services, in readiness mode) waiting for a permit.
    waiters: AtomicU32,
    notify: Arc<Notify>,
}

/// Gates no bulkhead uses, for the next one made.
static SPARE_GATES: Mutex<Vec<&'static Gate>> = Mutex::new(Vec::new());

fn spare_gates() -> std::sync::MutexGuard<'static, Vec<&'static Gate>> {
    // A push or a pop cannot leave the list half-changed.
    SPARE_GATES.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    /// A gate for a new bulkhead: a spare one, or a new one.
    fn take(limit: u32) -> &'static Gate {
        let spare = spare_gates().pop();
        match spare {
            Some(gate) => {
                gate.permits.reset(limit);
                gate.waiters.store(0, SeqCst);
                gate
            }
            None => Box::leak(Box::new(Gate {
                permits: Permits::new(limit),
                waiters: AtomicU32::new(0),
                notify: Arc::new(Notify::new()),
            })),
        }
    }

    fn give_back(gate: &'static Gate) {
        spare_gates().push(gate);
    }

    /// Gives a permit back and wakes one waiter, if any.
    ///
    /// Between the release and the read of the waiter count, the bulkhead may go and its gate
    /// go to a new one (when this was its last permit out, unretired at the release): the
    /// new bulkhead then gets a spurious wake-up, which its waiters treat as any other (they
    /// try for a permit and wait again).
    #[inline]
    pub(crate) fn release(&'static self) {
        if self.permits.release() {
            Gate::give_back(self);
        } else if self.waiters.load(SeqCst) != 0 {
            self.notify.notify_one();
        }
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("in_flight", &self.permits.in_flight())
            .field("limit", &self.permits.limit())
            .finish_non_exhaustive()
    }
}

/// One permit, held by a call (or by a service between `poll_ready` and `call`); dropping it
/// gives the permit back.
pub(crate) struct Slot {
    gate: &'static Gate,
    /// The bulkhead, for an adaptive limit only (each answer moves the limit).
    adaptive: Option<Local<Shared>>,
}

impl Slot {
    /// The permit just taken from `gate`, with a counted reference to the bulkhead if its
    /// limit is adaptive.
    #[inline]
    pub(crate) fn taken(gate: &'static Gate, adaptive: Option<Local<Shared>>) -> Self {
        Slot { gate, adaptive }
    }

    /// The bulkhead, if its limit is adaptive.
    #[inline]
    pub(crate) fn adaptive(&self) -> Option<&Shared> {
        self.adaptive.as_deref()
    }
}

impl Drop for Slot {
    #[inline]
    fn drop(&mut self) {
        self.gate.release();
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
            .gate
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
        shared.gate.waiters.fetch_add(1, SeqCst);
        Waiter::armed(shared)
    }

    fn armed(shared: Local<Shared>) -> Self {
        let mut notified = Box::pin(shared.gate.notify.clone().notified_owned());
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
            if self.shared.gate.permits.try_acquire() {
                let adaptive = self.shared.is_adaptive().then(|| self.shared.clone());
                return Poll::Ready(Slot::taken(self.shared.gate, adaptive));
            }
            match self.notified.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    // Woken, but another caller may have taken the permit: wait again.
                    self.notified
                        .set(self.shared.gate.notify.clone().notified_owned());
                    self.notified.as_mut().enable();
                }
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.shared.gate.waiters.fetch_sub(1, SeqCst);
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waiter")
    }
}

use std::future::Future as _;
