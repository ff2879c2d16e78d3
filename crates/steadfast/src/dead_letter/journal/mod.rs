//! [`JournalSink`]: the embedded, durable default sink: append-only segment files in a
//! directory.
//!
//! ```text
//! var/dlq/
//!   LOCK            flock-ed by the one writer (holds its pid)
//!   00000001.dlq    segment files, frames appended in order
//!   00000002.dlq    the active segment is the highest number
//! ```
//!
//! Each frame is `magic "SFDQ" | version | kind | length | CRC32 | payload`; a payload is a
//! record ([`DeadLetterRecord::encode`]) or a tombstone (the 16-byte id of a removed record). A
//! record written again with the same id (a replay that failed again) replaces the older copy.
//! Segments are deleted oldest first once none of their records is live.
//!
//! All file I/O runs on one writer thread per journal: the async methods send it a command and
//! await its reply, so no runtime thread blocks. Appends that arrive together share one fsync
//! (group commit).
//!
//! ```
//! use bytes::Bytes;
//! use steadfast::classify::OutcomeKind;
//! use steadfast::dead_letter::{DeadLetterRecord, DeadLetterSink, JournalSink};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("steadfast-doc-{}", std::process::id()));
//! let journal = JournalSink::open(&dir)?;
//! let record = DeadLetterRecord::new("gpt", Bytes::from_static(b"prompt"), OutcomeKind::Transient);
//! journal.append(record.clone()).await?; // durable (fsynced) once this returns
//! assert_eq!(journal.get(record.id).await?, Some(record));
//! drop(journal);
//!
//! let reopened = JournalSink::open(&dir)?;
//! assert_eq!(reopened.stats().await?.depth, 1);
//! # drop(reopened); std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

mod error;
mod frame;
mod options;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use tokio::sync::oneshot;

pub use error::JournalError;
pub use options::{FsyncPolicy, JournalOptions};

use self::store::Store;
use super::id::DeadLetterId;
use super::record::DeadLetterRecord;
use super::sink::{DeadLetterSink, SinkError, SinkFuture};
use super::stats::DeadLetterStats;

/// What opening a journal found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The directory.
    pub dir: PathBuf,
    /// Segment files after opening.
    pub segments: usize,
    /// Live records.
    pub records: usize,
    /// A torn tail (an append interrupted by a crash, never confirmed) that was cut off.
    pub torn_tail: Option<TornTail>,
    /// Damaged frames moved to `.corrupt` files (only with `skip_corrupt`).
    pub quarantined: Vec<Quarantined>,
}

/// A cut-off incomplete last frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment.
    pub file: PathBuf,
    /// Where the torn frame started (the file's new length).
    pub offset: u64,
    /// Bytes cut.
    pub dropped_bytes: u64,
}

/// A damaged range moved out of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The segment it was in.
    pub file: PathBuf,
    /// Its offset there.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Where its bytes are now.
    pub quarantine_file: PathBuf,
    /// What was wrong.
    pub reason: String,
}

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

enum Command {
    Append(DeadLetterRecord, Reply<()>),
    Update(DeadLetterRecord, Reply<()>),
    Remove(DeadLetterId, Reply<bool>),
    Get(DeadLetterId, Reply<Option<DeadLetterRecord>>),
    List(usize, Reply<Vec<DeadLetterRecord>>),
    Stats(Reply<DeadLetterStats>),
    Shutdown,
}

/// The embedded journal sink. Cheap to clone; clones share one writer thread and the
/// directory lock, which are released when the last clone is dropped.
#[derive(Clone)]
pub struct JournalSink {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    report: OpenReport,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        // Joining releases the lock before the drop returns, so the directory can be reopened
        // at once (tests, restarts).
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for JournalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalSink")
            .field("dir", &self.inner.report.dir)
            .finish_non_exhaustive()
    }
}

impl JournalSink {
    /// Opens (creating if needed) the journal in `dir` with the default options: fsync
    /// `Always`, 64 MiB segments, no retention, refuse corruption.
    ///
    /// Blocking: it takes the lock and scans every segment. Check
    /// [`open_report`](Self::open_report) for what recovery did.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        JournalOptions::new(dir).open()
    }

    /// Options to open a journal with: `JournalSink::options(dir).fsync(..).open()`.
    pub fn options(dir: impl AsRef<Path>) -> JournalOptions {
        JournalOptions::new(dir)
    }

    pub(crate) fn open_with(options: JournalOptions) -> Result<Self, JournalError> {
        let (store, report) = Store::open(options)?;
        let (commands, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("steadfast-dlq-journal".into())
            .spawn(move || writer(store, &receiver))
            .map_err(|e| JournalError::io(&report.dir, "starting the writer thread for", e))?;
        Ok(JournalSink {
            inner: Arc::new(Inner {
                commands,
                report,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// What opening found: segments, records, a torn tail cut, corrupt frames quarantined.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.report.dir
    }

    fn request<T: Send + 'static>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> SinkFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        let sent = self.inner.commands.send(command(reply)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(SinkError::Journal(JournalError::Closed));
            }
            Ok(answer.await.map_err(|_| JournalError::Closed)??)
        })
    }
}

impl DeadLetterSink for JournalSink {
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        self.request(|reply| Command::Append(record, reply))
    }

    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        self.request(|reply| Command::List(limit, reply))
    }

    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        self.request(|reply| Command::Get(id, reply))
    }

    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        self.request(|reply| Command::Remove(id, reply))
    }

    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        self.request(|reply| Command::Update(record, reply))
    }

    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        self.request(Command::Stats)
    }
}

/// An answer held back until the batch's writes are synced.
type Pending = Box<dyn FnOnce(Option<&JournalError>) + Send>;

fn hold<T: Send + 'static>(
    dir: &Path,
    reply: Reply<T>,
    result: Result<T, JournalError>,
) -> Pending {
    let dir = dir.to_path_buf();
    Box::new(move |sync_error: Option<&JournalError>| {
        let result = match (result, sync_error) {
            // Written but not durable: the caller must not count it as stored.
            (Ok(_), Some(error)) => Err(JournalError::Poisoned {
                dir,
                reason: error.to_string(),
            }),
            (result, _) => result,
        };
        let _ = reply.send(result);
    })
}

/// Most commands handled per group commit.
const MAX_BATCH: usize = 1024;

/// The writer thread: takes a batch of commands, applies them in order, syncs once as the
/// policy says, then answers. Never replies `Ok` to a write before it is as durable as the
/// policy promises.
#[allow(clippy::disallowed_types)] // a plain thread, not a tokio task: std's clock is right here
fn writer(mut store: Store, commands: &mpsc::Receiver<Command>) {
    use std::time::Instant;
    let mut last_sync = Instant::now();
    let mut pending: Vec<Pending> = Vec::new();
    let dir = store.dir().to_path_buf();
    loop {
        let first = match (store.fsync_policy(), store.unsynced) {
            (FsyncPolicy::Interval(every), true) => {
                let wait = every.saturating_sub(last_sync.elapsed());
                match commands.recv_timeout(wait) {
                    Ok(command) => Some(command),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Command::Shutdown),
                }
            }
            _ => Some(commands.recv().unwrap_or(Command::Shutdown)),
        };
        let mut shutdown = false;
        let mut next = first;
        let mut handled = 0;
        while let Some(command) = next.take() {
            handled += 1;
            match command {
                Command::Append(record, reply) => {
                    pending.push(hold(&dir, reply, store.append(&record)));
                }
                Command::Update(record, reply) => {
                    pending.push(hold(&dir, reply, store.update(&record)));
                }
                Command::Remove(id, reply) => pending.push(hold(&dir, reply, store.remove(id))),
                Command::Get(id, reply) => pending.push(hold(&dir, reply, store.get(id))),
                Command::List(limit, reply) => pending.push(hold(&dir, reply, store.list(limit))),
                Command::Stats(reply) => pending.push(hold(&dir, reply, Ok(store.stats()))),
                Command::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if handled < MAX_BATCH {
                next = commands.try_recv().ok();
            }
        }
        let must_sync = match store.fsync_policy() {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => shutdown || last_sync.elapsed() >= every,
            FsyncPolicy::Never => shutdown,
        };
        let sync_error = if must_sync && store.unsynced {
            let result = store.sync();
            last_sync = Instant::now();
            result.err()
        } else {
            None
        };
        if sync_error.is_none() {
            if let Err(error) = store.compact_and_retain(SystemTime::now()) {
                tracing::warn!(%error, "dead-letter journal could not delete old segments; will retry");
            }
        }
        for answer in pending.drain(..) {
            answer(sync_error.as_ref());
        }
        if shutdown {
            return;
        }
    }
}
