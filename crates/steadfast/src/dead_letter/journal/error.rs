//! [`JournalError`]: what can go wrong opening or writing a journal.

use std::path::PathBuf;

/// A journal could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The directory is missing and the options say not to create it.
    #[error("dead-letter journal directory `{}` does not exist: check the path, or open with `create(true)`", dir.display())]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("`{}` is not a directory: a dead-letter journal is a directory of segment files", dir.display())]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// Another process (or another `JournalSink` in this one) has the directory open for writing.
    #[error("dead-letter journal `{}` is locked by another writer (its pid is in LOCK): only one process may write a journal; stop it or use another directory", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A file operation failed.
    #[error("dead-letter journal I/O failed while {action} `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A record in the middle of the journal is damaged.
    #[error("dead-letter journal is corrupt: `{}` at byte offset {offset}: {reason}; open with `skip_corrupt(true)` to move the damaged bytes to a .corrupt file and go on", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the damaged frame.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A write or fsync failed earlier; the journal no longer accepts operations because the
    /// OS may have dropped unsynced data. Records confirmed before are safe.
    #[error("dead-letter journal `{}` stopped after an I/O failure ({reason}); records confirmed before it are safe: fix the disk and reopen the journal", dir.display())]
    Poisoned {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        reason: String,
    },
    /// The journal was opened read-only.
    #[error("dead-letter journal `{}` is open read-only: writes need the writer lock (stop the process that holds it)", dir.display())]
    ReadOnly {
        /// The directory.
        dir: PathBuf,
    },
    /// The writer thread is gone (the process is shutting down).
    #[error("dead-letter journal writer has stopped")]
    Closed,
}

impl JournalError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        JournalError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
