//! [`SqliteError`]: what can go wrong opening, reading or writing the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::ErrorCode;
use steadfast::dead_letter::{DeadLetterId, SinkError};

/// The SQLite dead-letter store could not do what was asked.
///
/// Through the [`DeadLetterSink`](steadfast::dead_letter::DeadLetterSink) trait it arrives as
/// [`SinkError::Other`]; downcast it to act on the variant:
///
/// ```
/// use steadfast::dead_letter::SinkError;
/// use steadfast_sqlite::SqliteError;
///
/// fn too_large(error: &SinkError) -> bool {
///     matches!(
///         error,
///         SinkError::Other(inner)
///             if matches!(inner.downcast_ref::<SqliteError>(), Some(SqliteError::RecordTooLarge { .. }))
///     )
/// }
/// ```
///
/// It is `Clone` (sources are shared) because one failed group commit fails every append of
/// the batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// The record is larger than the store's limit; nothing was stored.
    #[error(
        "dead letter {id} is {size} bytes (request, error chain, agent, reason and trace id), over the store's limit of {limit} bytes: it was NOT stored; raise `max_record_bytes` or store less of the request"
    )]
    RecordTooLarge {
        /// The record's id.
        id: DeadLetterId,
        /// Its size, as counted against the limit.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A field cannot be stored as it is (a time beyond what a 64-bit millisecond count holds).
    #[error("dead letter {id} cannot be stored: {reason}")]
    Unrepresentable {
        /// The record's id.
        id: DeadLetterId,
        /// What is wrong.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid SQLite dead-letter store option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// The directory or database file is missing and the options say not to create it.
    #[error(
        "no dead-letter store at `{}`: check the path (a directory holding `dlq.sqlite3`), or open with `create(true)`",
        path.display()
    )]
    Missing {
        /// The missing path.
        path: PathBuf,
    },
    /// The store's directory path exists but is not a directory.
    #[error(
        "`{}` is not a directory: the SQLite dead-letter store is a directory holding `dlq.sqlite3`",
        path.display()
    )]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory is readable by other users and holds files that are not the store's, so
    /// it was not tightened.
    #[error(
        "dead-letter directory `{dir}` has mode {mode:04o}, so other users can read the requests stored in it, and it holds other files (e.g. `{other}`), so steadfast will not change its mode: run `chmod 700 '{dir}'`, or use a directory of its own",
        dir = dir.display(),
        other = other_file.display()
    )]
    InsecureDirectory {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// One of the files in it that is not the store's.
        other_file: PathBuf,
    },
    /// The file is not an SQLite database (or is encrypted, or its header is destroyed).
    #[error(
        "`{}` is not an SQLite database (wrong or damaged header): move it away (keep it for inspection) and reopen to start an empty store",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// SQLite found the database damaged.
    #[error(
        "the dead-letter store `{}` is corrupt ({detail}): stop the writers, copy the file, and try `sqlite3 '{}' .recover`",
        path.display(), path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// The file is an SQLite database of something else.
    #[error(
        "`{}` is an SQLite database but not a steadfast dead-letter store ({reason}): point the store at a directory of its own",
        path.display()
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The store was written by a newer steadfast.
    #[error(
        "the dead-letter store `{}` has schema version {found}; this steadfast knows versions up to {supported}: upgrade steadfast (the file was left unchanged)",
        path.display()
    )]
    FutureSchema {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// SQLite would not switch the file to write-ahead logging (e.g. on a network file system
    /// without shared memory), which the store needs for several processes to share it.
    #[error(
        "the dead-letter store `{}` could not use WAL mode (journal mode is `{mode}`): put it on a local file system",
        path.display()
    )]
    NotWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// Another connection (another process, or the CLI) held the write lock longer than the
    /// busy timeout.
    #[error(
        "the dead-letter store `{}` stayed locked by another writer for {timeout:?} while {action}: a long purge or replay may be running; retry, or raise `busy_timeout`",
        path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The busy timeout that ran out.
        timeout: Duration,
    },
    /// The disk (or the file system quota) is full.
    #[error(
        "the dead-letter store `{}` cannot grow: the disk is full while {action}; free space (replay or purge dead letters)",
        path.display()
    )]
    DiskFull {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
    },
    /// A stored row does not hold a valid dead letter (edited by hand?).
    #[error(
        "the dead-letter store `{}` has an invalid row `{id}`: {reason}; fix or delete it with sqlite3",
        path.display()
    )]
    InvalidRow {
        /// The file.
        path: PathBuf,
        /// The row's `id` column, as text.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other SQLite failure.
    #[error("the dead-letter store `{}` failed while {action}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// rusqlite's error.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// A file-system operation failed.
    #[error("dead-letter store I/O failed while {action} `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store's threads are gone (the process is shutting down).
    #[error("the dead-letter store `{}` has stopped", path.display())]
    Closed {
        /// The file.
        path: PathBuf,
    },
}

impl SqliteError {
    /// Maps a rusqlite error to the variant an operator can act on.
    pub(crate) fn sql(
        path: &std::path::Path,
        action: &'static str,
        busy_timeout: Duration,
        error: rusqlite::Error,
    ) -> Self {
        let path = path.to_path_buf();
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => SqliteError::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => SqliteError::Corrupt {
                path,
                detail: error.to_string(),
            },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => SqliteError::Busy {
                path,
                action,
                timeout: busy_timeout,
            },
            Some(ErrorCode::DiskFull) => SqliteError::DiskFull { path, action },
            _ => SqliteError::Sqlite {
                path,
                action,
                source: Arc::new(error),
            },
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        SqliteError::Io {
            path: path.into(),
            action,
            source: Arc::new(source),
        }
    }
}

impl From<SqliteError> for SinkError {
    fn from(error: SqliteError) -> Self {
        SinkError::Other(Box::new(error))
    }
}
