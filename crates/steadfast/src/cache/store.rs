//! The bounded map behind [`ResponseCache`](super::ResponseCache): insertion-ordered eviction
//! (oldest write first), entry and byte budgets, ttl and staleness. Pure: time comes in as an
//! argument, so it is tested without a clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use super::config::CacheConfig;

struct Entry<V> {
    value: V,
    stored_at: Instant,
    bytes: usize,
    generation: u64,
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hit<V> {
    pub(crate) value: V,
    pub(crate) age: Duration,
}

pub(crate) struct Store<K, V> {
    entries: HashMap<K, Entry<V>>,
    // Keys in write order, with the generation of the write; an older generation of a key that
    // was rewritten is skipped on eviction (lazy deletion keeps writes O(1)).
    order: VecDeque<(K, u64)>,
    generation: u64,
    bytes: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Store<K, V> {
    pub(crate) fn new() -> Self {
        Store {
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores `value`, evicting the oldest writes until both budgets hold. A value larger than
    /// the whole byte budget is not stored.
    pub(crate) fn insert(
        &mut self,
        config: &CacheConfig,
        key: K,
        value: V,
        bytes: usize,
        now: Instant,
    ) {
        if config.max_bytes.is_some_and(|max| bytes > max) {
            self.remove(&key);
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        self.order.push_back((key.clone(), generation));
        if let Some(old) = self.entries.insert(
            key,
            Entry {
                value,
                stored_at: now,
                bytes,
                generation,
            },
        ) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        while self.entries.len() > config.max_entries
            || config.max_bytes.is_some_and(|max| self.bytes > max)
        {
            if !self.evict_oldest() {
                break;
            }
        }
        // Rewrites of hot keys leave dead slots in `order`; compact before it grows unbounded.
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }

    /// The entry for `key` if it is no older than ttl + max_stale; older entries are dropped.
    pub(crate) fn get(&mut self, config: &CacheConfig, key: &K, now: Instant) -> Option<Hit<V>> {
        let entry = self.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored_at);
        if age > config.ttl.saturating_add(config.max_stale) {
            self.remove(key);
            return None;
        }
        Some(Hit {
            value: entry.value.clone(),
            age,
        })
    }

    fn remove(&mut self, key: &K) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.bytes;
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .entries
                .get(&key)
                .is_some_and(|entry| entry.generation == generation)
            {
                self.remove(&key);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(max_entries: usize, max_bytes: Option<usize>) -> CacheConfig {
        let mut builder = CacheConfig::builder()
            .max_entries(max_entries)
            .ttl(Duration::from_secs(10))
            .max_stale(Duration::from_secs(20));
        if let Some(max) = max_bytes {
            builder = builder.max_bytes(max);
        }
        builder.build().unwrap()
    }

    #[test]
    fn evicts_oldest_write_beyond_entry_limit() {
        let config = config(2, None);
        let now = Instant::now();
        let mut store = Store::new();
        store.insert(&config, "a", 1, 0, now);
        store.insert(&config, "b", 2, 0, now);
        store.insert(&config, "a", 3, 0, now); // rewrite: "a" is now the newest
        store.insert(&config, "c", 4, 0, now);
        assert_eq!(store.get(&config, &"b", now), None);
        assert_eq!(store.get(&config, &"a", now).unwrap().value, 3);
        assert_eq!(store.get(&config, &"c", now).unwrap().value, 4);
    }

    #[test]
    fn evicts_until_byte_budget_holds_and_refuses_oversized_values() {
        let config = config(100, Some(10));
        let now = Instant::now();
        let mut store = Store::new();
        store.insert(&config, "a", 1, 4, now);
        store.insert(&config, "b", 2, 4, now);
        store.insert(&config, "c", 3, 4, now);
        assert_eq!(store.bytes(), 8);
        assert_eq!(store.get(&config, &"a", now), None);
        store.insert(&config, "huge", 4, 11, now);
        assert_eq!(store.get(&config, &"huge", now), None);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn serves_until_ttl_plus_max_stale_then_forgets() {
        let config = config(10, None);
        let start = Instant::now();
        let mut store = Store::new();
        store.insert(&config, "a", 1, 0, start);
        let hit = store
            .get(&config, &"a", start + Duration::from_secs(30))
            .unwrap();
        assert_eq!(hit.age, Duration::from_secs(30));
        assert_eq!(
            store.get(&config, &"a", start + Duration::from_secs(31)),
            None
        );
        assert_eq!(store.len(), 0);
    }

    proptest! {
        #[test]
        fn budgets_always_hold(ops in proptest::collection::vec((0u8..20, 0usize..8), 1..200)) {
            let config = config(5, Some(16));
            let now = Instant::now();
            let mut store = Store::new();
            for (key, bytes) in ops {
                store.insert(&config, key, u32::from(key), bytes, now);
                prop_assert!(store.len() <= 5);
                prop_assert!(store.bytes() <= 16);
                let live: usize = store.entries.values().map(|e| e.bytes).sum();
                prop_assert_eq!(live, store.bytes());
                prop_assert!(store.order.len() <= 2 * store.len() + 17);
            }
        }
    }
}
