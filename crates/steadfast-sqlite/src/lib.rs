//! # steadfast-sqlite
//!
//! [`SqliteSink`]: the embedded, durable dead-letter store of steadfast, on SQLite. It
//! implements [`DeadLetterSink`], so a
//! [`DeadLetterLayer`](steadfast::dead_letter::DeadLetterLayer) reports
//! [`DeadLettered`](steadfast::dead_letter::DeadLettered) only once the record is committed.
//!
//! ```
//! use steadfast::classify::OutcomeKind;
//! use steadfast::dead_letter::{Bytes, DeadLetterRecord, DeadLetterSink};
//! use steadfast_sqlite::SqliteSink;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path().join("dlq");
//! let store = SqliteSink::open(&dir)?; // creates dir/dlq.sqlite3 (0700 directory, 0600 file)
//! let record = DeadLetterRecord::new("gpt", Bytes::from_static(b"prompt"), OutcomeKind::Transient);
//! store.append(record.clone()).await?; // committed and fsynced once this returns
//! assert_eq!(store.get(record.id).await?, Some(record.clone()));
//! drop(store);
//!
//! // Another process (the `steadfast dlq` command) may open the same directory at any time.
//! let reopened = SqliteSink::open(&dir)?;
//! assert_eq!(reopened.stats().await?.depth, 1);
//! assert!(reopened.remove(record.id).await?);
//! # Ok(()) }
//! ```
//!
//! The same directory can also hold workflow checkpoints: [`SqliteCheckpointStore`] (file
//! `checkpoints.sqlite3`, for `steadfast::checkpoint::CheckpointLayer` and `Checkpoints`; its
//! schema is in its own docs).
//!
//! ## Guarantees
//!
//! * **Durable before `Ok`.** `append` returns once SQLite committed the record; with
//!   [`Synchronous::Full`] (the default) the write-ahead log was fsynced, so the record
//!   survives a crash of the process or the machine. [`Synchronous::Normal`] trades the
//!   machine-crash half of that for speed (see its docs).
//! * **Group commit.** All file I/O runs on two threads per store (one writer, one reader), so
//!   no async task blocks on the disk. Appends (and updates, removals) that arrive while a
//!   commit is running are applied together in the next transaction and share its fsync.
//! * **A size limit, refused at append.** A record whose request, error chain (as JSON),
//!   agent, reason and trace id add up to more than
//!   [`max_record_bytes`](SqliteOptions::max_record_bytes) (default 16 MiB) is refused with
//!   [`SqliteError::RecordTooLarge`] (inside [`SinkError::Other`](steadfast::dead_letter::SinkError::Other))
//!   and nothing is written: the layer then returns `DeadLetterFailed`, never `DeadLettered`.
//! * **Several processes.** The file is in WAL mode: the application appends while an
//!   operator's `steadfast dlq` (or `sqlite3`) lists, shows, replays and purges. Writers take
//!   turns; one that finds the lock held waits up to
//!   [`busy_timeout`](SqliteOptions::busy_timeout) (default 5 s). [`stats`](DeadLetterSink::stats)
//!   counts the table, so it sees every process's appends.
//! * **Private files.** The directory is created `0700` and the database `0600` (SQLite gives
//!   its `-wal` and `-shm` files the same mode). An existing directory that others can read is
//!   tightened to `0700` if it holds nothing but the store's files, and refused with
//!   [`SqliteError::InsecureDirectory`] (saying what to run) if it holds anything else: it may
//!   be shared, and narrowing a shared directory would break its other users.
//! * **Typed errors, no panics.** A file that is not a database, a corrupt one, another
//!   application's database, or one written by a newer schema is refused with an error naming
//!   the path ([`SqliteError::NotADatabase`], [`SqliteError::Corrupt`],
//!   [`SqliteError::ForeignDatabase`], [`SqliteError::FutureSchema`]); a row edited into
//!   something that is not a dead letter is [`SqliteError::InvalidRow`].
//!
//! Cancelling an `append` future after it was sent does not cancel the write: the record may
//! still be stored, and the caller gets no answer.
//!
//! ## Schema (version 1)
//!
//! One table, `dead_letters`, one row per record, in plain columns an operator can query with
//! the `sqlite3` shell. `PRAGMA user_version` is the schema version ([`SCHEMA_VERSION`]); a file
//! with a higher one is refused, never rewritten. `PRAGMA application_id` is `0x53464451`
//! ("SFDQ", [`APPLICATION_ID`]).
//!
//! | column | type | holds |
//! |---|---|---|
//! | `id` | TEXT, primary key | the [`DeadLetterId`](steadfast::dead_letter::DeadLetterId) as its 26-character ULID; ids sort by creation time |
//! | `agent` | TEXT | the agent (layer name) that failed |
//! | `created_at_ms` | INTEGER | when it failed, Unix milliseconds |
//! | `created_at` | TEXT | the same instant as ISO 8601 UTC (`2026-11-24T09:30:00.123Z`), for people |
//! | `outcome` | TEXT | `success`, `transient`, `rate_limited`, `agent_fault` or `caller_fault` |
//! | `reason` | TEXT | the classifier's reason (may be empty) |
//! | `attempts` | INTEGER | attempts made, retries included |
//! | `error_chain` | TEXT | JSON array of strings: the final error and its sources, outermost first |
//! | `request` | BLOB | the request, exactly as the layer's encoder wrote it |
//! | `trace_id` | TEXT, nullable | the trace id current when it failed |
//! | `replay_count` | INTEGER | how many replays failed again |
//! | `last_replayed_at_ms` | INTEGER, nullable | when a replay last failed (Unix ms) |
//! | `stored_at_ms` | INTEGER | when this store first accepted it (Unix ms) |
//!
//! Indexes: `agent`, `created_at_ms`, `stored_at_ms`. Records are listed in `id` order.
//!
//! ```text
//! sqlite3 -readonly var/dlq/dlq.sqlite3 \
//!   "SELECT agent, outcome, count(*) FROM dead_letters GROUP BY 1, 2 ORDER BY 3 DESC"
//! ```
#![forbid(unsafe_code)]

mod checkpoint;
mod error;
mod files;
mod options;
mod row;
mod schema;
mod sink;

pub use checkpoint::{CHECKPOINT_APPLICATION_ID, CHECKPOINT_SCHEMA_VERSION, SqliteCheckpointStore};
pub use error::SqliteError;
pub use files::{CHECKPOINT_FILE_NAME, DB_FILE_NAME};
pub use options::{
    DEFAULT_BUSY_TIMEOUT, DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES_CEILING, SqliteOptions,
    Synchronous,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use sink::SqliteSink;

#[doc(no_inline)]
pub use steadfast::dead_letter::DeadLetterSink;
