//! [`SqliteOptions`] and [`Synchronous`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{SqliteError, SqliteSink};

/// The default limit on a record's size: 16 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 16 << 20;

/// The highest limit [`SqliteOptions::max_record_bytes`] accepts: 512 MiB. SQLite refuses rows
/// over 1 GB, and the writer holds a whole batch in memory.
pub const MAX_RECORD_BYTES_CEILING: u64 = 512 << 20;

/// The default [`SqliteOptions::busy_timeout`]: 5 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard a commit works to reach the disk (SQLite's `PRAGMA synchronous`, in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Synchronous {
    /// `FULL` (the default): every commit fsyncs the write-ahead log before `append` returns.
    /// A confirmed record survives a crash of the process, of the OS and a power loss.
    /// Concurrent appends share one commit, so they share that fsync.
    #[default]
    Full,
    /// `NORMAL`: commits are written to the write-ahead log but not fsynced; the log is
    /// fsynced when SQLite checkpoints it into the database (about every 1,000 pages). A
    /// confirmed record survives a crash of the process, but a power loss or an OS crash can
    /// lose the records confirmed since the last checkpoint (the file itself stays
    /// consistent: SQLite rolls back to the last synced commit). Several times faster for a
    /// single writer; use it only where losing the last moments of dead letters on a power
    /// cut is acceptable.
    Normal,
}

impl Synchronous {
    /// The `PRAGMA synchronous` value.
    pub const fn as_pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How to open a [`SqliteSink`]: `SqliteSink::options(dir).synchronous(..).open()`.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(crate) dir: PathBuf,
    pub(crate) synchronous: Synchronous,
    pub(crate) max_record_bytes: u64,
    pub(crate) busy_timeout: Duration,
    pub(crate) create: bool,
}

impl SqliteOptions {
    /// Defaults: [`Synchronous::Full`], 16 MiB record limit, 5 s busy timeout, create the
    /// directory and the database if missing.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        SqliteOptions {
            dir: dir.as_ref().to_path_buf(),
            synchronous: Synchronous::Full,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            create: true,
        }
    }

    /// How commits reach the disk (default [`Synchronous::Full`]; see [`Synchronous::Normal`]
    /// for the trade-off).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The largest record `append` accepts, counted as the bytes of the request plus the
    /// error chain (as JSON), agent, reason and trace id. Larger records are refused with
    /// [`SqliteError::RecordTooLarge`] and nothing is stored. Default 16 MiB; 1 byte to
    /// [`MAX_RECORD_BYTES_CEILING`].
    pub fn max_record_bytes(mut self, bytes: u64) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// How long a write waits for another process's write (a CLI purge, another application
    /// instance) to finish before failing with [`SqliteError::Busy`]. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Create the directory and the database file if missing (default true; the CLI opens
    /// with false, so a mistyped path is an error rather than a new empty store).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens the store (blocking: creates files, runs SQLite's recovery of a crashed writer's
    /// log, checks the schema). See [`SqliteSink::open`].
    pub fn open(self) -> Result<SqliteSink, SqliteError> {
        SqliteSink::open_with(self)
    }

    pub(crate) fn validate(&self) -> Result<(), SqliteError> {
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_BYTES_CEILING {
            return Err(SqliteError::InvalidOption {
                option: "max_record_bytes",
                reason: format!(
                    "{} is outside 1 to {MAX_RECORD_BYTES_CEILING} bytes (SQLite refuses rows over 1 GB)",
                    self.max_record_bytes
                ),
            });
        }
        if self.busy_timeout > Duration::from_secs(i32::MAX as u64 / 1000) {
            return Err(SqliteError::InvalidOption {
                option: "busy_timeout",
                reason: format!("{:?} is longer than SQLite can wait", self.busy_timeout),
            });
        }
        Ok(())
    }
}
