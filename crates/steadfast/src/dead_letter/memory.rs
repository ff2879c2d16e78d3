//! [`MemorySink`]: a bounded in-memory sink for tests and examples. Not durable across restarts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::id::DeadLetterId;
use super::record::DeadLetterRecord;
use super::sink::{DeadLetterSink, SinkError, SinkFuture};
use super::stats::DeadLetterStats;

/// Keeps up to `capacity` records in memory; a full sink refuses appends
/// ([`SinkError::Full`]) rather than dropping old records. Clones share the records.
#[derive(Clone, Debug)]
pub struct MemorySink {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    records: BTreeMap<DeadLetterId, DeadLetterRecord>,
    recent: VecDeque<SystemTime>,
    fail_next: Option<String>,
}

impl MemorySink {
    /// A sink holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        MemorySink {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                records: BTreeMap::new(),
                recent: VecDeque::new(),
                fail_next: None,
            })),
        }
    }

    /// The records stored, oldest first.
    pub fn records(&self) -> Vec<DeadLetterRecord> {
        self.lock().records.values().cloned().collect()
    }

    /// Records stored.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().records.is_empty()
    }

    /// Makes the next append fail with `message` (to test how callers handle a failing sink).
    pub fn fail_next_append(&self, message: impl Into<String>) {
        self.lock().fail_next = Some(message.into());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeadLetterSink for MemorySink {
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        let result = {
            let mut inner = self.lock();
            if let Some(message) = inner.fail_next.take() {
                Err(SinkError::Other(message.into()))
            } else if inner.records.len() >= inner.capacity {
                Err(SinkError::Full {
                    capacity: inner.capacity,
                })
            } else {
                let now = SystemTime::now();
                inner.recent.push_back(now);
                prune(&mut inner.recent, now);
                inner.records.insert(record.id, record);
                Ok(())
            }
        };
        Box::pin(async move { result })
    }

    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        let records = self.lock().records.values().take(limit).cloned().collect();
        Box::pin(async move { Ok(records) })
    }

    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        let record = self.lock().records.get(&id).cloned();
        Box::pin(async move { Ok(record) })
    }

    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        let removed = self.lock().records.remove(&id).is_some();
        Box::pin(async move { Ok(removed) })
    }

    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        self.lock().records.insert(record.id, record);
        Box::pin(async move { Ok(()) })
    }

    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        let stats = {
            let mut inner = self.lock();
            prune(&mut inner.recent, SystemTime::now());
            let mut stats = DeadLetterStats {
                depth: inner.records.len() as u64,
                oldest: inner.records.values().map(|r| r.time).min(),
                appended_last_minute: inner.recent.len() as u64,
                by_agent: BTreeMap::new(),
            };
            for record in inner.records.values() {
                *stats.by_agent.entry(record.agent.clone()).or_default() += 1;
            }
            stats
        };
        Box::pin(async move { Ok(stats) })
    }
}

/// Drops append times older than a minute.
pub(crate) fn prune(recent: &mut VecDeque<SystemTime>, now: SystemTime) {
    while recent.front().is_some_and(|t| {
        now.duration_since(*t)
            .is_ok_and(|age| age > Duration::from_secs(60))
    }) {
        recent.pop_front();
    }
}
