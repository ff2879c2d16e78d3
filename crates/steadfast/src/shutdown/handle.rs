//! [`Shutdown`]: the drain handle shared by every [`ShutdownLayer`](super::ShutdownLayer).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::CancelledCall;

type Hook = dyn Fn(&CancelledCall) + Send + Sync;

pub(crate) struct ShutdownState {
    closing: AtomicBool,
    pub(crate) cancelled: AtomicBool,
    in_flight: AtomicUsize,
    /// Woken when the last in-flight call ends while closing.
    idle: Notify,
    /// Woken (all waiters) when the drain deadline passes.
    pub(crate) cancel: Arc<Notify>,
    hook: Option<Box<Hook>>,
}

impl ShutdownState {
    /// Admits a call, or refuses it once closing. Counting first and checking second (both
    /// sequentially consistent) means a drain that saw zero calls cannot miss one admitted
    /// concurrently.
    #[inline]
    pub(crate) fn try_enter(&self) -> bool {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.closing.load(Ordering::SeqCst) {
            self.exit();
            false
        } else {
            true
        }
    }

    #[inline]
    pub(crate) fn exit(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 && self.closing.load(Ordering::SeqCst)
        {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn report_cancelled(&self, call: &CancelledCall) {
        tracing::warn!(
            agent = %call.agent(),
            in_flight_secs = call.in_flight_for().as_secs_f64(),
            "call cancelled by shutdown"
        );
        if let Some(hook) = &self.hook {
            hook(call);
        }
    }
}

/// One layer's view of the shutdown: the shared state and the agent's name, behind one `Arc`
/// so an admitted call clones a single pointer.
pub(crate) struct Tracker {
    pub(crate) state: Arc<ShutdownState>,
    pub(crate) agent: Arc<str>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// Graceful shutdown for every call through the [`ShutdownLayer`](super::ShutdownLayer)s built
/// from it: [`drain`](Self::drain) stops admitting calls, waits for those in flight up to a
/// deadline, then cancels the rest and hands each to the hook given to
/// [`with_hook`](Self::with_hook). Cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    pub(crate) state: Arc<ShutdownState>,
}

/// What [`Shutdown::drain`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Calls in flight when the drain started.
    pub in_flight_at_start: usize,
    /// Calls cancelled at the deadline (each went to the hook once its task saw the
    /// cancellation).
    pub cancelled: usize,
    /// Calls still running after the cancellation grace: their futures are not being polled
    /// (an abandoned task), so nothing could cancel them.
    pub still_running: usize,
    /// How long the drain took.
    pub waited: Duration,
}

impl DrainReport {
    /// Whether every call finished on its own.
    pub fn clean(&self) -> bool {
        self.cancelled == 0 && self.still_running == 0
    }
}

/// How long [`Shutdown::drain`] waits for cancelled calls to wind down after the deadline.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_millis(100);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A handle with no hook.
    pub fn new() -> Self {
        Shutdown::build(None)
    }

    /// A handle whose `hook` sees every call cancelled at the drain deadline (from the task
    /// that ran the call; keep it short and non-blocking, e.g. push to a dead-letter queue's
    /// channel).
    pub fn with_hook(hook: impl Fn(&CancelledCall) + Send + Sync + 'static) -> Self {
        Shutdown::build(Some(Box::new(hook)))
    }

    fn build(hook: Option<Box<Hook>>) -> Self {
        Shutdown {
            state: Arc::new(ShutdownState {
                closing: AtomicBool::new(false),
                cancelled: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                cancel: Arc::new(Notify::new()),
                hook,
            }),
        }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Whether new calls are refused.
    pub fn is_closing(&self) -> bool {
        self.state.closing.load(Ordering::SeqCst)
    }

    /// Stops admitting calls (they fail with [`ShuttingDown`](super::ShuttingDown)) without
    /// waiting.
    pub fn close(&self) {
        self.state.closing.store(true, Ordering::SeqCst);
    }

    /// Stops admitting calls, waits up to `timeout` for those in flight, then cancels the rest
    /// (see [`drain_with_grace`](Self::drain_with_grace); the grace is
    /// [`DEFAULT_CANCEL_GRACE`]). `Duration::MAX` waits for as long as calls run. Flushes
    /// nothing: flush your sinks and save breaker state after it returns.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        self.drain_with_grace(timeout, DEFAULT_CANCEL_GRACE).await
    }

    /// Like [`drain`](Self::drain); after the deadline, waits up to `grace` for the cancelled
    /// calls' tasks to observe the cancellation (each then fails with
    /// [`CancelledByShutdown`](super::CancelledByShutdown) and goes to the hook).
    pub async fn drain_with_grace(&self, timeout: Duration, grace: Duration) -> DrainReport {
        let started = Instant::now();
        self.close();
        let in_flight_at_start = self.in_flight();
        let mut cancelled = 0;
        if !self.wait_idle_until(started.checked_add(timeout)).await {
            cancelled = self.in_flight();
            tracing::warn!(
                cancelled,
                timeout_secs = timeout.as_secs_f64(),
                "drain deadline passed; cancelling the calls still in flight"
            );
            self.state.cancelled.store(true, Ordering::SeqCst);
            self.state.cancel.notify_waiters();
            self.wait_idle_until(Instant::now().checked_add(grace))
                .await;
        }
        let still_running = self.in_flight();
        if still_running > 0 {
            tracing::error!(
                still_running,
                "calls still running after shutdown cancellation: their futures are not polled"
            );
        }
        DrainReport {
            in_flight_at_start,
            cancelled: cancelled.saturating_sub(still_running),
            still_running,
            waited: started.elapsed(),
        }
    }

    /// Waits until no call is in flight or `deadline` passes (`None`: a deadline past what the
    /// clock can hold, such as `Duration::MAX` from now, which is none); returns whether idle.
    async fn wait_idle_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            let idle = self.state.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, idle).await.is_err() {
                        return self.in_flight() == 0;
                    }
                }
                None => idle.await,
            }
        }
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("closing", &self.is_closing())
            .field("in_flight", &self.in_flight())
            .field("hook", &self.state.hook.is_some())
            .finish()
    }
}
