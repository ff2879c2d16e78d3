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
//! It is a small insertion-ordered map behind a `Mutex`: the lock is taken once per successful
//! primary call (to store the answer) and once per cache lookup on the failure path. Caching is
//! opt-in for that reason: a fallback layer without a cache never clones responses or locks.
//!
//! ```
//! use std::time::Duration;
//! use steadfast::cache::{CacheConfig, ResponseCache};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), steadfast::cache::ConfigError> {
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
mod store;

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub use self::config::{CacheConfig, CacheConfigBuilder, ConfigError};
use self::store::Store;

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
    store: Mutex<Store<K, Res>>,
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
        ResponseCache {
            shared: Arc::new(Shared {
                config,
                key: Box::new(key),
                size: None,
                store: Mutex::new(Store::new()),
            }),
        }
    }

    /// A cache that measures each answer with `size` for the `max_bytes` budget (without a
    /// size function every answer counts 0 bytes and only `max_entries` bounds the cache).
    pub fn with_size<F, S>(config: CacheConfig, key: F, size: S) -> Self
    where
        F: Fn(&Req) -> Option<K> + Send + Sync + 'static,
        S: Fn(&Res) -> usize + Send + Sync + 'static,
    {
        ResponseCache {
            shared: Arc::new(Shared {
                config,
                key: Box::new(key),
                size: Some(Box::new(size)),
                store: Mutex::new(Store::new()),
            }),
        }
    }

    /// Stores `response` as the answer to `request` (if the key function gives it a key).
    pub fn insert(&self, request: &Req, response: Res) {
        let Some(key) = (self.shared.key)(request) else {
            return;
        };
        let bytes = self.shared.size.as_ref().map_or(0, |size| size(&response));
        let now = Instant::now();
        self.lock()
            .insert(&self.shared.config, key, response, bytes, now);
    }

    /// The answer stored for `request`, fresh or stale, if not older than ttl + max_stale.
    pub fn get(&self, request: &Req) -> Option<CacheHit<Res>> {
        let key = (self.shared.key)(request)?;
        let now = Instant::now();
        let hit = self.lock().get(&self.shared.config, &key, now)?;
        Some(CacheHit {
            is_stale: hit.age > self.shared.config.ttl,
            value: hit.value,
            age: hit.age,
        })
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes stored, as measured by the size function.
    pub fn bytes(&self) -> usize {
        self.lock().bytes()
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store<K, Res>> {
        // A panic while holding the lock leaves the map consistent (every mutation completes
        // before anything that could panic), so a poisoned lock is still usable.
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
