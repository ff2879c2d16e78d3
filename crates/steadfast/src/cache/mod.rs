//! [`ResponseCache`]: the last answer an agent gave to a request, served when every live agent
//! fails (stale-if-error).
//!
//! A `ResponseCache` is keyed by a function of the request you choose (return `None` for
//! requests that must never be cached), bounded in entries and optionally in bytes (through a
//! size function), and keeps each answer fresh for `ttl`, then stale-but-servable for
//! `max_stale` more. Hand it to [`FallbackLayer::then_cache`](crate::fallback::FallbackLayer::then_cache):
//! the layer feeds it every successful answer of the primary and asks it, as its last
//! alternative, when the primary and the other alternatives failed. The answer then carries
//! [`Served::Cache { age }`](crate::provenance::Served::Cache).
//!
//! It is a [`quick_cache`](https://docs.rs/quick_cache) cache (S3-FIFO eviction: answers asked
//! for again outlive one-off ones; sharded, except with a byte budget, which one shard must
//! hold), with each answer's store time kept beside it on tokio's clock, so freshness follows
//! paused-clock tests. A shard lock is taken once per successful primary call (to store the
//! answer) and once per cache lookup on the failure path. Caching is opt-in for that reason: a
//! fallback layer without a cache never clones responses or locks.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::cache::{CacheConfig, ResponseCache};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::ConfigError> {
//! let config = CacheConfig::builder()
//!     .max_entries(10_000)
//!     .ttl(Duration::from_secs(60))
//!     .max_stale(Duration::from_secs(3_600))
//!     .build()?;
//! let cache = ResponseCache::new(config, |prompt: &String| Some(prompt.clone()));
//! cache.insert(&"capital of France?".to_string(), "Paris".to_string());
//!
//! tokio::time::advance(Duration::from_secs(90)).await;
//! let hit = cache.get(&"capital of France?".to_string()).unwrap();
//! assert_eq!(hit.value, "Paris");
//! assert!(hit.is_stale);
//! assert_eq!(hit.age, Duration::from_secs(90));
//! # Ok(()) }
//! ```

mod config;

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use self::config::{CacheConfig, CacheConfigBuilder};

/// No cached answer for this request (never stored, evicted, or older than ttl + max
/// staleness).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no cached answer for this request (never cached, evicted, or older than the cache's ttl plus max staleness)"
)]
pub struct CacheMiss;

/// A cached answer and how old it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheHit<Res> {
    /// The answer.
    pub value: Res,
    /// Time since it was stored.
    pub age: Duration,
    /// Whether it is past its ttl (served only because the agents failed).
    pub is_stale: bool,
}

type KeyFn<Req, K> = dyn Fn(&Req) -> Option<K> + Send + Sync;
type SizeFn<Res> = dyn Fn(&Res) -> usize + Send + Sync;

/// A bounded, time-limited store of agent answers, keyed by a function of the request. Cheap
/// to clone: clones share the store. See the [module docs](self).
pub struct ResponseCache<Req, Res, K> {
    shared: Arc<Shared<Req, Res, K>>,
}

struct Shared<Req, Res, K> {
    config: CacheConfig,
    key: Box<KeyFn<Req, K>>,
    size: Option<Box<SizeFn<Res>>>,
    store: quick_cache::sync::Cache<K, Entry<Res>, Budget>,
}

#[derive(Clone)]
struct Entry<Res> {
    value: Res,
    stored_at: Instant,
    bytes: usize,
}

/// Weighs entries so that one weight capacity enforces both budgets: with `n` entries and `b`
/// bytes allowed, an entry of `x` bytes weighs `max(x * n, b)` of a capacity of `n * b`. A full
/// cache of small answers is then bound by `n`, one of large answers by `b`.
#[derive(Clone, Copy, Debug)]
struct Budget {
    max_entries: u64,
    max_bytes: Option<u64>,
}

impl Budget {
    fn new(config: &CacheConfig) -> Self {
        Budget {
            max_entries: config.max_entries as u64,
            max_bytes: config.max_bytes.map(|bytes| bytes as u64),
        }
    }

    fn capacity(self) -> u64 {
        match self.max_bytes {
            None => self.max_entries,
            Some(bytes) => self.max_entries.saturating_mul(bytes),
        }
    }

    fn weight_of(self, bytes: usize) -> u64 {
        match self.max_bytes {
            None => 1,
            Some(max_bytes) => (bytes as u64)
                .saturating_mul(self.max_entries)
                .max(max_bytes),
        }
    }
}

impl<K, Res> quick_cache::Weighter<K, Entry<Res>> for Budget {
    fn weight(&self, _key: &K, entry: &Entry<Res>) -> u64 {
        self.weight_of(entry.bytes)
    }
}

impl<Req, Res, K> ResponseCache<Req, Res, K>
where
    K: Hash + Eq + Clone,
    Res: Clone,
{
    /// A cache with `config`, keyed by `key` (`None`: do not cache this request).
    pub fn new<F>(config: CacheConfig, key: F) -> Self
    where
        F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
    {
        Self::build(config, Box::new(key), None)
    }

    /// A cache that measures each answer with `size` for the `max_bytes` budget (without a
    /// size function every answer counts 0 bytes and only `max_entries` bounds the cache).
    pub fn with_size<F, S>(config: CacheConfig, key: F, size: S) -> Self
    where
        F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
        S: Fn(&Res) -> usize + Send + Sync + 'static,
    {
        Self::build(config, Box::new(key), Some(Box::new(size)))
    }

    fn build(config: CacheConfig, key: Box<KeyFn<Req, K>>, size: Option<Box<SizeFn<Res>>>) -> Self {
        let budget = Budget::new(&config);
        let mut options = quick_cache::OptionsBuilder::new();
        options
            // An estimate sizes the shards' tables up front: never let a huge limit allocate.
            .estimated_items_capacity(config.max_entries.min(1 << 16))
            .weight_capacity(budget.capacity());
        // The byte budget holds through weights summed per shard: split over `s` shards, an
        // answer over `max_bytes / s` fits in none and is silently never cached. One shard
        // keeps both budgets whole; an entry limit alone spreads over shards as quick_cache likes.
        if config.max_bytes.is_some() {
            options.shards(1);
        }
        let options = options.build().expect("both capacities are set");
        let store = quick_cache::sync::Cache::with_options(
            options,
            budget,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        ResponseCache {
            shared: Arc::new(Shared {
                config,
                key,
                size,
                store,
            }),
        }
    }

    /// Stores `response` as the answer to `request` (if the key function gives it a key). An
    /// answer larger than the whole byte budget is not stored (and replaces no older answer).
    pub fn insert(&self, request: &Req, response: Res) {
        let Some(key) = (self.shared.key)(request) else {
            return;
        };
        let bytes = self.shared.size.as_ref().map_or(0, |size| size(&response));
        if self.shared.config.max_bytes.is_some_and(|max| bytes > max) {
            self.shared.store.remove(&key);
            return;
        }
        self.shared.store.insert(
            key,
            Entry {
                value: response,
                stored_at: Instant::now(),
                bytes,
            },
        );
    }

    /// The answer stored for `request`, fresh or stale, if not older than ttl + max_stale.
    pub fn get(&self, request: &Req) -> Option<CacheHit<Res>> {
        let key = (self.shared.key)(request)?;
        let entry = self.shared.store.get(&key)?;
        let age = entry.stored_at.elapsed();
        let config = &self.shared.config;
        if age > config.ttl.saturating_add(config.max_stale) {
            // Too old to serve even on error: forget it rather than let it take room.
            self.shared.store.remove(&key);
            return None;
        }
        Some(CacheHit {
            is_stale: age > config.ttl,
            value: entry.value,
            age,
        })
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.shared.store.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes stored, as measured by the size function.
    pub fn bytes(&self) -> usize {
        self.shared.store.iter().map(|(_, entry)| entry.bytes).sum()
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }
}

impl<Req, Res, K> Clone for ResponseCache<Req, Res, K> {
    fn clone(&self) -> Self {
        ResponseCache {
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Res, K> fmt::Debug for ResponseCache<Req, Res, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// The type-erased face of a cache, as the fallback layer sees it.
#[cfg_attr(not(feature = "fallback"), allow(dead_code))]
pub(crate) trait CacheTier<Req, Res>: Send + Sync {
    fn feed(&self, request: &Req, response: &Res);
    fn lookup(&self, request: &Req) -> Option<(Res, Duration)>;
}

impl<Req, Res, K> CacheTier<Req, Res> for ResponseCache<Req, Res, K>
where
    K: Hash + Eq + Clone + Send + Sync,
    Res: Clone + Send + Sync,
    Req: Send + Sync,
{
    fn feed(&self, request: &Req, response: &Res) {
        self.insert(request, response.clone());
    }

    fn lookup(&self, request: &Req) -> Option<(Res, Duration)> {
        self.get(request).map(|hit| (hit.value, hit.age))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn config(max_entries: usize, max_bytes: Option<usize>) -> CacheConfig {
        let builder = CacheConfig::builder()
            .max_entries(max_entries)
            .ttl(Duration::from_secs(10))
            .max_stale(Duration::from_secs(20));
        match max_bytes {
            Some(bytes) => builder.max_bytes(bytes),
            None => builder,
        }
        .build()
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn serves_fresh_then_stale_until_ttl_plus_max_stale_then_forgets() {
        let cache = ResponseCache::new(config(10, None), |n: &u32| Some(*n));
        cache.insert(&1, "one");
        assert!(!cache.get(&1).unwrap().is_stale);
        tokio::time::advance(Duration::from_secs(11)).await;
        let hit = cache.get(&1).unwrap();
        assert!(hit.is_stale);
        assert_eq!(hit.age, Duration::from_secs(11));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(cache.get(&1), None);
        assert!(cache.is_empty(), "an answer past its staleness is dropped");
    }

    #[test]
    fn an_answer_over_the_whole_byte_budget_is_not_stored_and_removes_the_older_one() {
        let cache = ResponseCache::with_size(
            config(10, Some(100)),
            |n: &u32| Some(*n),
            |s: &String| s.len(),
        );
        cache.insert(&1, "small".to_string());
        cache.insert(&1, "x".repeat(101));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn requests_without_a_key_are_never_cached() {
        let cache = ResponseCache::new(config(10, None), |n: &u32| {
            (*n).is_multiple_of(2).then_some(*n)
        });
        cache.insert(&1, "odd");
        cache.insert(&2, "even");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&1), None);
    }

    proptest! {
        #[test]
        fn both_budgets_always_hold(ops in proptest::collection::vec((0u32..50, 0usize..40), 1..300)) {
            let cache = ResponseCache::with_size(config(8, Some(100)), |n: &u32| Some(*n), |s: &String| s.len());
            for (key, size) in ops {
                cache.insert(&key, "x".repeat(size));
                prop_assert!(cache.len() <= 8, "{} entries", cache.len());
                prop_assert!(cache.bytes() <= 100, "{} bytes", cache.bytes());
            }
        }
    }
}
