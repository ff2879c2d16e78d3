//! What a retry layer tells the code it runs: the deadline left (for per-attempt timeouts) and,
//! to a caller that asks, how many attempts a call took.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
    static ATTEMPTS: Cell<Option<u32>>;
}

/// The time left before the overall deadline of the retry layer this code runs under, or
/// `None` outside any retry layer with a deadline.
///
/// Visible while the inner service's `call` runs and while its future is polled, in the same
/// task (a layer that moves the work to another task, such as `tower::buffer`, hides it). Use
/// it to shrink a per-attempt timeout so that the last attempt never outlives the deadline:
///
/// ```
/// use std::time::Duration;
///
/// let per_attempt = Duration::from_secs(30);
/// let timeout = steadfast::retry::remaining().map_or(per_attempt, |left| left.min(per_attempt));
/// # assert_eq!(timeout, per_attempt);
/// ```
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The overall deadline of the retry layer this code runs under (see [`remaining`]).
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `future` and reports how many attempts the outermost retry layer it went through made
/// (`None`: no retry layer completed in this task). Successes report their count this way;
/// errors also carry it (see [`attempts_of`](super::attempts_of)).
///
/// ```
/// use steadfast::prelude::*;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let agent = ServiceBuilder::new()
///     .layer(BackoffRetryLayer::new(&Agent::new("echo"), RetryConfig::default()))
///     .service(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
/// let (reply, attempts) = steadfast::retry::count_attempts(agent.oneshot(7)).await;
/// assert_eq!(reply.unwrap(), 7);
/// assert_eq!(attempts, Some(1));
/// # }
/// ```
pub async fn count_attempts<F: Future>(future: F) -> (F::Output, Option<u32>) {
    ATTEMPTS
        .scope(Cell::new(None), async move {
            let output = future.await;
            (output, ATTEMPTS.with(Cell::get))
        })
        .await
}

/// `own`, or the deadline of an enclosing retry layer if that one is sooner.
#[inline]
pub(crate) fn tighter(own: Instant) -> Instant {
    DEADLINE.try_with(|outer| (*outer).min(own)).unwrap_or(own)
}

/// Runs `f` with `deadline` visible to [`remaining`].
#[inline]
pub(crate) fn with_deadline<R>(deadline: Instant, f: impl FnOnce() -> R) -> R {
    DEADLINE.sync_scope(deadline, f)
}

/// Tells an enclosing [`count_attempts`], if any, how many attempts a call made. Called as
/// each retry layer finishes, so the outermost one has the last word.
#[inline]
pub(crate) fn record_attempts(attempts: u32) {
    let _ = ATTEMPTS.try_with(|cell| cell.set(Some(attempts)));
}
