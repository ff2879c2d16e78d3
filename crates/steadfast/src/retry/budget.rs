//! [`RetryBudget`]: retries may add at most a fixed share to the load an agent sees.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::clock::{Nanos, Origin, duration_to_nanos};
use crate::sync::CachePadded;
use thread_local::ThreadLocal;

use super::config::{RetryConfig, validate_budget};
use crate::error::ConfigError;

const BUCKETS: usize = 10;
const FLOOR_COUNT_BITS: u32 = 24;
const FLOOR_COUNT_MASK: u64 = (1 << FLOOR_COUNT_BITS) - 1;
/// A first attempt reads the clock only every this many of its thread's deposits into a bucket
/// (and whenever its bucket went stale): a clock read costs more than the rest of the success
/// path.
const CLOCK_SAMPLE: u64 = 32;
/// A thread's deposit slot holds `tag << TAG_SHIFT | count`, the tag being the bucket's epoch
/// plus one. 36 bits of tag are 218 years of the shortest bucket (100 ms); 28 bits of count
/// are 268 million first attempts by one thread in one bucket (saturating there).
const TAG_SHIFT: u32 = 28;
const COUNT_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// A retry budget in the style of Finagle and Envoy: over the last `ttl`, retries may number at
/// most `ratio` x first attempts, plus `min_per_sec` retries in any one second so that a caller
/// with little traffic can still retry.
///
/// With the defaults (20 %, 10/s, 10 s) an outage turns 1,000 requests into at most about
/// 1,200 attempts instead of 4,000: retries never multiply the load on an agent that is down.
/// (Finagle banks `min_per_sec x ttl` tokens up front; this budget grants the floor second by
/// second instead, so a burst cannot spend ten seconds of floor at once.)
///
/// Clones share the budget. Every [`BackoffRetryLayer`](super::BackoffRetryLayer) gets its own
/// budget from its config; pass one budget to several layers with
/// [`budget`](super::BackoffRetryLayer::budget) to bound their retries together (for example
/// every route that calls the same agent).
///
/// Counting is lock-free: ten buckets of `ttl / 10` each, atomics only. A first attempt counts
/// into its own thread's buckets with a plain load and store (no locked instruction, which
/// would cost more than the rest of the success path); a retry sums every thread's. Under
/// heavy concurrency the count of retries is approximate by a few calls (two callers may both
/// take the last retry). A first attempt reads the clock only once every 32 deposits, or when
/// its bucket is stale; in between it counts into the bucket last seen. The error this allows
/// only matters for traffic under about 32 requests per bucket, where `ratio` x requests is
/// below the per-second floor anyway, so the floor decides.
///
/// ```
/// use std::time::Duration;
/// use steadfast::retry::RetryBudget;
///
/// let budget = RetryBudget::new(0.1, 0, Duration::from_secs(10))?;
/// for _ in 0..20 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw()); // 10 % of 20 requests: two retries
/// # Ok::<_, steadfast::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

/// A limit beyond one process that a [`RetryBudget`] also asks before granting a retry: for
/// example a fleet-wide budget shared by every replica (`steadfast_redis::FleetBudget`).
///
/// Asked only on the retry path, after the local budget granted the retry (so a retry the local
/// budget refuses never spends a shared token); it must answer at once, never wait.
pub trait RetryAllowance: Send + Sync + 'static {
    /// Takes one retry from the shared allowance; `false` when it is spent.
    fn try_acquire(&self) -> bool;
}

struct Inner {
    /// Set once by [`RetryBudget::also_limit_by`].
    allowance: OnceLock<Arc<dyn RetryAllowance>>,
    origin: Origin,
    ratio: f64,
    min_per_sec: u32,
    ttl: Duration,
    bucket_nanos: Nanos,
    buckets: [Bucket; BUCKETS],
    /// First attempts, per thread and bucket: each thread writes only its own slots.
    deposits: ThreadLocal<CachePadded<[AtomicU64; BUCKETS]>>,
    /// `second << 24 | retries granted by the floor in that second`.
    floor: AtomicU64,
    /// The newest bucket epoch seen, where [`RetryBudget::deposit`] counts without a clock.
    cached_epoch: AtomicU64,
}

#[derive(Default)]
struct Bucket {
    /// The bucket's epoch plus one (0: never used).
    epoch: AtomicU64,
    withdrawals: AtomicU64,
}

impl Default for RetryBudget {
    /// 20 % of requests, 10 retries per second, over 10 s.
    fn default() -> Self {
        RetryBudget::from_config(&RetryConfig::default())
    }
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per first attempt over the last `ttl` (1 s..=60 s),
    /// plus `min_per_sec` retries in any second.
    pub fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Result<Self, ConfigError> {
        validate_budget(ratio, ttl)?;
        Ok(Self::build(ratio, min_per_sec, ttl))
    }

    pub(crate) fn from_config(config: &RetryConfig) -> Self {
        Self::build(
            config.budget_ratio,
            config.budget_min_per_sec,
            config.budget_ttl,
        )
    }

    fn build(ratio: f64, min_per_sec: u32, ttl: Duration) -> Self {
        RetryBudget {
            inner: Arc::new(Inner {
                allowance: OnceLock::new(),
                origin: Origin::now(),
                ratio,
                min_per_sec,
                ttl,
                bucket_nanos: (duration_to_nanos(ttl) / BUCKETS as u64).max(1),
                buckets: Default::default(),
                deposits: ThreadLocal::new(),
                floor: AtomicU64::new(0),
                cached_epoch: AtomicU64::new(0),
            }),
        }
    }

    /// Retries allowed per first attempt.
    pub fn ratio(&self) -> f64 {
        self.inner.ratio
    }

    /// Retries allowed in any second, whatever the traffic.
    pub fn min_per_sec(&self) -> u32 {
        self.inner.min_per_sec
    }

    /// The window counted over.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Records a first attempt (each one earns `ratio` of a retry).
    #[inline]
    pub fn deposit(&self) {
        let inner = &*self.inner;
        let epoch = inner.cached_epoch.load(Ordering::Relaxed);
        let bucket = &inner.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch.load(Ordering::Acquire) != epoch + 1 {
            return self.deposit_now();
        }
        // This thread's count: each thread looks at the clock every `CLOCK_SAMPLE` of its own
        // deposits. The clock and the stale bucket are out of line, so the common deposit
        // saves no registers and calls nothing but the thread's slot lookup.
        let before = inner.count_deposit(epoch);
        if before % CLOCK_SAMPLE == CLOCK_SAMPLE - 1 {
            inner.sample_clock();
        }
    }

    /// A deposit whose bucket went stale: counted where the clock says.
    #[cold]
    #[inline(never)]
    fn deposit_now(&self) {
        self.deposit_at(self.inner.origin.elapsed());
    }

    /// Takes one retry from the budget; `false` when it is spent (or when the
    /// [`RetryAllowance`] set by [`also_limit_by`](Self::also_limit_by) refuses it).
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(self.inner.origin.elapsed())
    }

    /// Makes every retry this budget (and each of its clones) grants also need `allowance`,
    /// a limit beyond this process such as a fleet-wide budget. Set once: returns `false` (and
    /// changes nothing) if an allowance was already set. A retry the local budget grants and
    /// the allowance refuses stays counted locally, so the local budget errs on the side of
    /// fewer retries.
    pub fn also_limit_by(&self, allowance: Arc<dyn RetryAllowance>) -> bool {
        self.inner.allowance.set(allowance).is_ok()
    }

    /// First attempts and retries counted in the current window.
    pub fn counts(&self) -> (u64, u64) {
        self.inner.window(self.inner.origin.elapsed())
    }

    pub(crate) fn origin(&self) -> Origin {
        self.inner.origin
    }

    #[inline]
    pub(crate) fn deposit_at(&self, now: Nanos) {
        let epoch = now / self.inner.bucket_nanos;
        self.inner.see_epoch(epoch);
        self.inner.current(now);
        self.inner.count_deposit(epoch);
    }

    pub(crate) fn try_withdraw_at(&self, now: Nanos) -> bool {
        self.try_withdraw_locally(now)
            && self
                .inner
                .allowance
                .get()
                .is_none_or(|allowance| allowance.try_acquire())
    }

    fn try_withdraw_locally(&self, now: Nanos) -> bool {
        let inner = &self.inner;
        inner.see_epoch(now / inner.bucket_nanos);
        let (deposits, withdrawals) = inner.window(now);
        let allowed = (deposits as f64 * inner.ratio) as u64;
        if withdrawals < allowed {
            inner
                .current(now)
                .withdrawals
                .fetch_add(1, Ordering::Relaxed);
            return true;
        }
        inner.take_from_floor(now)
    }
}

impl Inner {
    /// Counts a first attempt into this thread's slot for `epoch`; returns the slot's count
    /// before it. The slot is this thread's alone, so a load and a store are exact; a slot
    /// still holding an older epoch starts over.
    #[inline]
    fn count_deposit(&self, epoch: u64) -> u64 {
        let slot = &crate::sync::this_thread(&self.deposits)[(epoch % BUCKETS as u64) as usize];
        let tag = epoch + 1;
        let word = slot.load(Ordering::Relaxed);
        let before = if word >> TAG_SHIFT == tag {
            word & COUNT_MASK
        } else {
            0
        };
        if before < COUNT_MASK {
            slot.store(tag << TAG_SHIFT | (before + 1), Ordering::Relaxed);
        }
        before
    }

    /// Counted; now looks at the clock so later deposits move on to the right bucket.
    #[cold]
    #[inline(never)]
    fn sample_clock(&self) {
        self.see_epoch(self.origin.elapsed() / self.bucket_nanos);
    }

    /// Moves the bucket plain deposits count into forward to `epoch`.
    #[inline]
    fn see_epoch(&self, epoch: u64) {
        if self.cached_epoch.load(Ordering::Relaxed) < epoch {
            self.cached_epoch.fetch_max(epoch, Ordering::Relaxed);
        }
    }

    /// The bucket for `now`, emptied first if it still holds an older epoch.
    #[inline]
    fn current(&self, now: Nanos) -> &Bucket {
        let epoch = now / self.bucket_nanos;
        let bucket = &self.buckets[(epoch % BUCKETS as u64) as usize];
        let tag = epoch + 1;
        let seen = bucket.epoch.load(Ordering::Acquire);
        if seen != tag
            && seen < tag
            && bucket
                .epoch
                .compare_exchange(seen, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // A retry counted into this bucket between the exchange and this store is lost; the
            // budget is an estimate, and a lock here would cost every retry. (Deposits are
            // tagged with their epoch per thread, so nothing needs emptying for them.)
            bucket.withdrawals.store(0, Ordering::Relaxed);
        }
        bucket
    }

    /// Deposits and withdrawals of the buckets inside the window ending at `now`.
    fn window(&self, now: Nanos) -> (u64, u64) {
        let epoch = now / self.bucket_nanos;
        let oldest = (epoch + 1).saturating_sub(BUCKETS as u64 - 1);
        let inside = |tag: u64| tag >= oldest.max(1) && tag <= epoch + 1;
        let mut totals = (0, 0);
        for bucket in &self.buckets {
            if inside(bucket.epoch.load(Ordering::Acquire)) {
                totals.1 += bucket.withdrawals.load(Ordering::Relaxed);
            }
        }
        for slots in &self.deposits {
            for slot in &slots.0 {
                let word = slot.load(Ordering::Relaxed);
                if inside(word >> TAG_SHIFT) {
                    totals.0 += word & COUNT_MASK;
                }
            }
        }
        totals
    }

    fn take_from_floor(&self, now: Nanos) -> bool {
        if self.min_per_sec == 0 {
            return false;
        }
        let second = now / 1_000_000_000;
        let mut current = self.floor.load(Ordering::Acquire);
        loop {
            let (seen_second, used) = (current >> FLOOR_COUNT_BITS, current & FLOOR_COUNT_MASK);
            let next = if seen_second == second {
                if used >= u64::from(self.min_per_sec).min(FLOOR_COUNT_MASK) {
                    return false;
                }
                current + 1
            } else {
                (second << FLOOR_COUNT_BITS) | 1
            };
            match self.floor.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (requests, retries) = self.counts();
        f.debug_struct("RetryBudget")
            .field("ratio", &self.inner.ratio)
            .field("min_per_sec", &self.inner.min_per_sec)
            .field("ttl", &self.inner.ttl)
            .field("requests", &requests)
            .field("retries", &retries)
            .field(
                "limited_beyond_process",
                &self.inner.allowance.get().is_some(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Nanos = 1_000_000_000;

    #[test]
    fn an_allowance_beyond_the_process_is_asked_only_after_the_local_budget_granted() {
        use std::sync::atomic::AtomicU32;
        struct Tokens(AtomicU32, AtomicU32);
        impl RetryAllowance for Tokens {
            fn try_acquire(&self) -> bool {
                self.1.fetch_add(1, Ordering::Relaxed);
                self.0
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        left.checked_sub(1)
                    })
                    .is_ok()
            }
        }
        let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10)).unwrap();
        let tokens = Arc::new(Tokens(AtomicU32::new(2), AtomicU32::new(0)));
        assert!(budget.also_limit_by(tokens.clone()));
        assert!(!budget.also_limit_by(tokens.clone()), "set once");
        for _ in 0..5 {
            budget.deposit_at(0);
        }
        let granted = (0..10).filter(|_| budget.try_withdraw_at(0)).count();
        assert_eq!(
            granted, 2,
            "the allowance's two tokens, though the local budget had five"
        );
        assert_eq!(
            tokens.1.load(Ordering::Relaxed),
            5,
            "asked only for the five retries the local budget granted"
        );
    }

    #[test]
    fn ratio_limits_retries_to_a_share_of_requests() {
        let budget = RetryBudget::new(0.2, 0, Duration::from_secs(10)).unwrap();
        for _ in 0..100 {
            budget.deposit_at(0);
        }
        let granted = (0..100).filter(|_| budget.try_withdraw_at(0)).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_floor_grants_min_per_sec_each_second_without_traffic() {
        let budget = RetryBudget::new(0.2, 10, Duration::from_secs(10)).unwrap();
        assert_eq!((0..50).filter(|_| budget.try_withdraw_at(0)).count(), 10);
        assert_eq!(
            (0..50).filter(|_| budget.try_withdraw_at(SECOND)).count(),
            10
        );
    }

    #[test]
    fn requests_older_than_the_ttl_no_longer_earn_retries() {
        let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
        for _ in 0..10 {
            budget.deposit_at(0);
        }
        assert!(budget.try_withdraw_at(9 * SECOND));
        assert!(!budget.try_withdraw_at(11 * SECOND));
        assert_eq!(
            budget.inner.window(11 * SECOND),
            (0, 1),
            "only the retry at 9 s is left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sampled_deposits_follow_the_clock_within_a_sample() {
        let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10)).unwrap();
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.counts(), (100, 0));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(budget.counts(), (0, 0), "the old deposits left the window");
        for _ in 0..100 {
            budget.deposit();
        }
        // At most one sample's worth was counted into the stale bucket before the clock was read.
        let (deposits, _) = budget.counts();
        assert!(deposits >= 100 - CLOCK_SAMPLE, "{deposits}");
    }

    #[test]
    fn deposits_from_every_thread_are_counted_exactly() {
        let budget = RetryBudget::new(0.5, 0, Duration::from_secs(10)).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1_000 {
                        budget.deposit_at(3 * SECOND);
                    }
                });
            }
        });
        budget.deposit_at(3 * SECOND);
        assert_eq!(budget.inner.window(3 * SECOND), (8_001, 0));
        let granted = (0..10_000)
            .filter(|_| budget.try_withdraw_at(3 * SECOND))
            .count();
        assert_eq!(granted, 4_000, "half of 8,001 first attempts");
        assert_eq!(
            budget.inner.window(13 * SECOND),
            (0, 0),
            "every thread's deposits left the window together"
        );
    }

    #[test]
    fn a_reused_bucket_forgets_its_old_epoch() {
        let budget = RetryBudget::new(1.0, 0, Duration::from_secs(10)).unwrap();
        budget.deposit_at(0);
        budget.deposit_at(10 * SECOND); // same bucket index, next lap
        assert_eq!(budget.inner.window(10 * SECOND), (1, 0));
    }
}
