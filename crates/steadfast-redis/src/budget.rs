//! [`FleetBudget`]: a budget of the whole fleet (retries, or any other amplification), leased
//! to each replica in chunks so that spending a token is one local atomic operation.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use steadfast::ConfigError;
use tokio::sync::Notify;

use crate::fleet::Fleet;
use crate::protocol;

static BUDGET: LazyLock<Script> = LazyLock::new(|| Script::new(protocol::BUDGET));

/// A fleet-wide budget: at most `per_period` tokens per `period` across every replica of the
/// fleet (for example 50 retries a second to one agent, whatever the number of replicas).
///
/// Each replica holds a local stock, taken from Redis `chunk` tokens at a time by a background
/// task when the stock runs low, so [`try_acquire`](Self::try_acquire) is one atomic
/// compare-and-swap and never waits on Redis. Periods follow the Redis server's clock. Tokens
/// leased but unspent at the end of a period are lost to the fleet for that period (the price
/// of not asking per call: at most `chunk` per replica). While Redis is unreachable, a replica
/// grants itself `offline_per_period` tokens per period, so a lost Redis neither stops retries
/// nor unbounds them.
///
/// As a [`RetryAllowance`](steadfast::retry::RetryAllowance), it bounds the retries of
/// `BackoffRetryLayer`s on every replica together:
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use steadfast::prelude::*;
/// use steadfast_redis::{Fleet, FleetBudget, FleetConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let registry = Registry::new();
/// let gpt = registry.agent("gpt-4o");
/// let fleet = Fleet::start(FleetConfig::from_env("billing-api")?, registry.events());
/// // 50 retries a second to gpt-4o for the whole fleet, leased 5 at a time.
/// let retries = FleetBudget::new(&fleet, "gpt-4o-retries", 50, Duration::from_secs(1), 5)?;
/// let retry = BackoffRetryLayer::new(&gpt, RetryConfig::default());
/// retry.retry_budget().also_limit_by(Arc::new(retries));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FleetBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    name: String,
    stock: AtomicU64,
    low: Notify,
    per_period: u32,
    period: Duration,
    chunk: u32,
    offline_per_period: u32,
    leased: AtomicU64,
}

impl FleetBudget {
    /// A budget named `name` (unique in the fleet) of `per_period` tokens per `period`, leased
    /// `chunk` at a time (1 to `per_period`). Offline, each replica grants itself `chunk`
    /// tokens per period; see [`with_offline_allowance`](Self::with_offline_allowance).
    pub fn new(
        fleet: &Fleet,
        name: &str,
        per_period: u32,
        period: Duration,
        chunk: u32,
    ) -> Result<Self, ConfigError> {
        Self::with_offline_allowance(fleet, name, per_period, period, chunk, chunk)
    }

    /// [`new`](Self::new) with `offline_per_period` tokens per period while Redis is down.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the refill task is spawned on the current one).
    pub fn with_offline_allowance(
        fleet: &Fleet,
        name: &str,
        per_period: u32,
        period: Duration,
        chunk: u32,
        offline_per_period: u32,
    ) -> Result<Self, ConfigError> {
        let invalid = |setting: &'static str, problem: &'static str| {
            ConfigError::new("fleet_budget", setting, problem)
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(invalid("name", "must be non-empty, without spaces").with_value(name));
        }
        if per_period == 0 {
            return Err(invalid("per_period", "must be at least 1").with_value(per_period));
        }
        if chunk == 0 || chunk > per_period {
            return Err(invalid("chunk", "must be between 1 and per_period").with_value(chunk));
        }
        if period < Duration::from_millis(10) || period > Duration::from_secs(3600) {
            return Err(invalid("period", "must be between 10 ms and 1 h")
                .with_value(format!("{period:?}")));
        }
        let inner = Arc::new(BudgetInner {
            name: name.to_owned(),
            stock: AtomicU64::new(0),
            low: Notify::new(),
            per_period,
            period,
            chunk,
            offline_per_period,
            leased: AtomicU64::new(0),
        });
        tokio::spawn(refill(
            Arc::downgrade(&inner),
            fleet.clone(),
            format!("{}:budget:{name}", fleet.prefix()),
        ));
        inner.low.notify_one();
        Ok(FleetBudget { inner })
    }

    /// Takes one token if this replica holds one: one atomic operation, never a wait.
    pub fn try_acquire(&self) -> bool {
        let taken = self
            .inner
            .stock
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |stock| {
                stock.checked_sub(1)
            });
        if let Ok(before) = taken {
            if before <= u64::from(self.inner.chunk).div_ceil(2) {
                self.inner.low.notify_one();
            }
            true
        } else {
            self.inner.low.notify_one();
            false
        }
    }

    /// Tokens this replica holds now.
    pub fn available(&self) -> u64 {
        self.inner.stock.load(Ordering::Acquire)
    }

    /// Tokens leased from the fleet (or granted offline) so far.
    pub fn leased(&self) -> u64 {
        self.inner.leased.load(Ordering::Relaxed)
    }
}

/// A fleet budget bounds a retry layer's retries across the fleet:
/// `retry_layer.retry_budget().also_limit_by(Arc::new(fleet_budget))`.
impl steadfast::retry::RetryAllowance for FleetBudget {
    fn try_acquire(&self) -> bool {
        FleetBudget::try_acquire(self)
    }
}

impl fmt::Debug for FleetBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBudget")
            .field("name", &self.inner.name)
            .field("per_period", &self.inner.per_period)
            .field("period", &self.inner.period)
            .field("chunk", &self.inner.chunk)
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

/// Tops the stock up when it runs low: from Redis while it answers, from the offline allowance
/// while it does not. A period's budget spent, it waits for the next period.
async fn refill(budget: std::sync::Weak<BudgetInner>, fleet: Fleet, key: String) {
    let mut offline_granted_at: Option<tokio::time::Instant> = None;
    loop {
        let Some(inner) = budget.upgrade() else {
            return;
        };
        // Wakes when a taker found the stock low, and once a period in any case (a period's
        // budget refused earlier may be open again). Holding the budget meanwhile only delays
        // the end of this task by one period after the last handle is dropped.
        let _ = tokio::time::timeout(inner.period, inner.low.notified()).await;
        if inner.stock.load(Ordering::Acquire) > u64::from(inner.chunk).div_ceil(2) {
            continue;
        }
        let granted = match fleet.connection() {
            Some(mut connection) => {
                let mut invocation = BUDGET.prepare_invoke();
                invocation
                    .key(key.as_str())
                    .arg(inner.per_period)
                    .arg(inner.chunk)
                    .arg(u64::try_from(inner.period.as_millis()).unwrap_or(u64::MAX));
                match tokio::time::timeout(
                    fleet.io_timeout(),
                    invocation.invoke_async::<i64>(&mut connection),
                )
                .await
                {
                    Ok(Ok(granted)) => Some(granted.unsigned_abs()),
                    _ => None,
                }
            }
            None => None,
        };
        let granted = granted.unwrap_or_else(|| {
            let now = tokio::time::Instant::now();
            match offline_granted_at {
                Some(at) if now.duration_since(at) < inner.period => 0,
                _ => {
                    offline_granted_at = Some(now);
                    u64::from(inner.offline_per_period)
                }
            }
        });
        if granted > 0 {
            inner.stock.fetch_add(granted, Ordering::AcqRel);
            inner.leased.fetch_add(granted, Ordering::Relaxed);
        } else {
            // Spent for this period: look again in a tenth of one.
            let pause = inner.period / 10;
            drop(inner);
            tokio::time::sleep(pause).await;
        }
    }
}
