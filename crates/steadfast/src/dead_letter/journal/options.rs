//! [`JournalOptions`] and [`FsyncPolicy`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{JournalError, JournalSink};

/// When appends reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before confirming each batch of appends (the default): a confirmed record survives
    /// a crash of the process and of the machine. Concurrent appends share one fsync.
    #[default]
    Always,
    /// fsync at most this often: a confirmed record survives a process crash, but a power loss
    /// can lose the last interval.
    Interval(Duration),
    /// Leave it to the OS: survives a process crash only.
    Never,
}

/// How to open a [`JournalSink`]: `JournalSink::options(dir)....open()`.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) max_segment_bytes: u64,
    pub(crate) max_segments: Option<usize>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) skip_corrupt: bool,
    pub(crate) create: bool,
    pub(crate) read_only: bool,
}

impl JournalOptions {
    /// Defaults: fsync `Always`, 64 MiB segments, no retention limit, refuse corruption, create
    /// the directory.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        JournalOptions {
            dir: dir.as_ref().to_path_buf(),
            fsync: FsyncPolicy::Always,
            max_segment_bytes: 64 << 20,
            max_segments: None,
            max_age: None,
            skip_corrupt: false,
            create: true,
            read_only: false,
        }
    }

    /// When appends are fsynced.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Start a new segment file once the current one would grow past this (at least one record
    /// per segment; minimum 4 KiB).
    pub fn max_segment_bytes(mut self, bytes: u64) -> Self {
        self.max_segment_bytes = bytes.max(4096);
        self
    }

    /// Retention: keep at most this many segment files, deleting the oldest (and the records
    /// in them). Off by default: nothing is deleted unless removed.
    pub fn max_segments(mut self, count: usize) -> Self {
        self.max_segments = Some(count.max(1));
        self
    }

    /// Retention: delete segment files whose newest record is older than this. Off by default.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// On open, move a damaged frame in the middle of the journal to a `.corrupt` file beside it
    /// and go on, instead of refusing with [`JournalError::Corrupt`].
    pub fn skip_corrupt(mut self, skip: bool) -> Self {
        self.skip_corrupt = skip;
        self
    }

    /// Create the directory if missing (default true; the CLI opens with false).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Open without the writer lock, to inspect a journal a running process is writing:
    /// nothing on disk changes (a torn tail is skipped in memory and reported; a corrupt frame
    /// is always an error, `skip_corrupt` needs the writer), writes fail with [`JournalError::ReadOnly`], and the
    /// view is the journal as it was when opened. Never creates the directory.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens the journal (blocking: scans every segment). See [`JournalSink::open`].
    pub fn open(self) -> Result<JournalSink, JournalError> {
        JournalSink::open_with(self)
    }
}
