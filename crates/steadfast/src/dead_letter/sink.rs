//! [`DeadLetterSink`]: where dead letters go. Implement it to add Kafka, Postgres, S3...

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::error::BoxError;

use super::id::DeadLetterId;
use super::record::DeadLetterRecord;
use super::stats::DeadLetterStats;

/// The boxed future a sink returns. Sinks sit on the failure path, so one allocation per call
/// buys an object-safe trait any backend can implement.
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SinkError>> + Send + 'a>>;

/// A durable home for dead letters.
///
/// Only [`append`](Self::append) is required; a sink that also implements the other methods can
/// be monitored ([`stats`](Self::stats)), inspected, replayed and purged (by the
/// [`Replay`](super::Replay) helper and the `steadfast dlq` command).
pub trait DeadLetterSink: fmt::Debug + Send + Sync + 'static {
    /// Stores `record`. `Ok` means durable: the record survives a crash of this process (and,
    /// for remote sinks, the broker confirmed it). Only then does the layer report
    /// [`DeadLettered`](super::DeadLettered).
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()>;

    /// Up to `limit` records, oldest first.
    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        let _ = limit;
        unsupported("list")
    }

    /// The record with this id, if stored.
    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        let _ = id;
        unsupported("get")
    }

    /// Removes (acknowledges) a record; `false` if it was not there.
    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        let _ = id;
        unsupported("remove")
    }

    /// Replaces the stored record with the same id (a replay bumped `replay_count`).
    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        let _ = record;
        unsupported("update")
    }

    /// Depth, oldest age, rate and per-agent counts.
    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        unsupported("stats")
    }
}

fn unsupported<T: Send + 'static>(operation: &'static str) -> SinkFuture<'static, T> {
    Box::pin(async move { Err(SinkError::Unsupported(operation)) })
}

impl<S: DeadLetterSink + ?Sized> DeadLetterSink for std::sync::Arc<S> {
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        (**self).append(record)
    }
    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        (**self).list(limit)
    }
    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        (**self).get(id)
    }
    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        (**self).remove(id)
    }
    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        (**self).update(record)
    }
    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        (**self).stats()
    }
}

/// A sink could not do what was asked. On [`append`](DeadLetterSink::append) this means the
/// record is NOT durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A bounded sink is full.
    #[error(
        "dead-letter sink is full ({capacity} records): replay or purge it, or raise its capacity"
    )]
    Full {
        /// Its capacity.
        capacity: usize,
    },
    /// The sink does not implement this operation.
    #[error("this dead-letter sink does not support `{0}`")]
    Unsupported(&'static str),
    /// The request could not be encoded, so there is nothing to store.
    #[error("could not encode the request for the dead-letter record: {0}")]
    Encode(#[source] BoxError),
    /// The backend failed (broker unreachable, not confirmed, the store refused the record,
    /// ...): downcast the source for the backend's own typed error (`steadfast_sqlite`'s
    /// `SqliteError::RecordTooLarge`, say).
    #[error("dead-letter sink failed: {0}")]
    Other(#[source] BoxError),
}
