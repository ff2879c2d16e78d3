//! [`BulkheadFull`]: the refusal of a full bulkhead.

use crate::classify::{ClassifyError, Outcome};

/// A call refused without reaching the agent: every permit of the agent's bulkhead was taken
/// and no queue place was free, or the call waited in the queue for `max_wait` without a
/// permit coming free.
///
/// It classifies itself as an agent fault refused **locally** ([`Outcome::local`]): an
/// alternative may answer (fallback layers try one), a retry layer does not hammer the same
/// full bulkhead, and a circuit breaker never counts it (a full bulkhead says the caller sends
/// too much, not that the agent is unwell).
///
/// It is zero-sized, so refusing allocates nothing even boxed (as tower's `Overloaded`); the
/// agent it refused is in the `steadfast_bulkhead_rejected_total{agent}` metric, the agent's
/// counters and whatever layer outside reports the failure.
///
/// ```
/// use steadfast::bulkhead::BulkheadFull;
/// # fn check(err: steadfast::BoxError) {
/// if steadfast::error::find::<BulkheadFull>(err.as_ref()).is_some() {
///     // send it to a smaller model, or answer "busy, try again"
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error(
    "bulkhead full: the agent's concurrency limit is reached and no queue place or wait is \
     left; retry later, send the call to an alternative agent, or raise max_concurrent/max_queue"
)]
pub struct BulkheadFull {
    _private: (),
}

impl BulkheadFull {
    pub(crate) const fn new() -> Self {
        BulkheadFull { _private: () }
    }
}

/// Refused on this side before the call left: an agent fault (an alternative may answer, no
/// retry against this agent), never held against the agent's health.
impl ClassifyError for BulkheadFull {
    fn outcome(&self) -> Outcome {
        Outcome::agent_fault("bulkhead full").local()
    }
}
