//! Active health checks: while open, probe the agent in the background and admit traffic again
//! only once it answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use crate::clock::Nanos;
use crate::error::BoxError;

use super::shared::Shared;

/// A boxed health-check future.
pub type HealthFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// Checks whether an agent is fit to serve again (a cheap `GET /health`, a tiny prompt, a ping).
///
/// While a breaker with a health check is open, a background task runs the check once the open
/// time has elapsed and then every `health_check_interval` until it passes; only then does the
/// breaker go half-open and admit probe calls. A check that errs or outlives
/// `health_check_timeout` fails.
///
/// Closures returning a future implement it:
///
/// ```
/// use steadfast::Agent;
/// use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
///
/// let gpt = Agent::new("gpt-primary");
/// let layer = CircuitBreakerLayer::new(&gpt, BreakerConfig::default())
///     .health_check(|| async {
///         // e.g. reqwest::get("http://127.0.0.1:8080/health").await?.error_for_status()?;
///         Ok(())
///     });
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs one check.
    fn check(&self) -> HealthFuture;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn check(&self) -> HealthFuture {
        Box::pin(self())
    }
}

/// The background task of one open period (`generation`). It holds only a weak reference, so a
/// dropped breaker ends it, and it ends as soon as the breaker leaves that open period.
pub(crate) async fn run(shared: Weak<Shared>, generation: u64) {
    let Some(mut wake_at) = shared.upgrade().and_then(|s| s.next_probe_instant()) else {
        return;
    };
    loop {
        tokio::time::sleep_until(wake_at).await;
        let Some(breaker) = shared.upgrade() else {
            return;
        };
        if breaker.core.generation() != generation {
            return;
        }
        // The probe time moved later while this task slept (fleet sync: another replica holds
        // the fleet's check for this interval): wait for it instead of checking now.
        if let Some(later) = breaker.next_probe_instant().filter(|at| *at > wake_at) {
            wake_at = later;
            continue;
        }
        let Some(check) = breaker.health_check() else {
            return;
        };
        let config = breaker.core.config();
        let (timeout, interval) = (
            config.health_check_timeout(),
            config.health_check_interval(),
        );
        let passed = matches!(
            tokio::time::timeout(timeout, check.check()).await,
            Ok(Ok(()))
        );
        let now = breaker.now();
        if passed {
            tracing::info!(agent = %breaker.name, "health check passed; admitting probes");
            if let Some(transition) = breaker.core.health_check_passed(generation, now) {
                breaker.announce(&transition);
            }
            return;
        }
        tracing::debug!(agent = %breaker.name, next_in_secs = interval.as_secs_f64(), "health check failed; circuit stays open");
        // Checks keep their cadence from the scheduled time, unless a check itself ran late. An
        // interval past what the clock can hold (the config bounds it only from below) puts
        // the next check as far as the breaker's clock reaches, instead of panicking here.
        let next = wake_at
            .checked_add(interval)
            .map_or(Nanos::MAX, |at| breaker.origin.nanos_at(at))
            .max(now);
        wake_at = breaker.instant_at(next);
        breaker.core.health_check_failed(generation, next);
    }
}
