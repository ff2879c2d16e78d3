//! [`SqliteSink`]: the async face (commands over channels) and the two threads that own the
//! connections.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, Statement, params};
use steadfast::dead_letter::{
    DeadLetterId, DeadLetterRecord, DeadLetterSink, DeadLetterStats, SinkFuture,
};
use tokio::sync::oneshot;

use crate::files;
use crate::options::SqliteOptions;
use crate::row::{self, NewRow};
use crate::schema::{self, Role};
use crate::{SqliteError, Synchronous};

/// Most writes one group commit takes. Bounds the memory a batch holds and how long its first
/// caller waits behind the others.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, SqliteError>>;

/// What the writer thread does, and where its answer goes.
enum Write {
    Append(Box<NewRow>, Reply<()>),
    Update(Box<NewRow>, Reply<()>),
    Remove(DeadLetterId, Reply<bool>),
    Purge(Reply<u64>),
}

impl Write {
    /// Sends the result of this write (rows changed, or why it failed) to its caller.
    fn answer(self, result: Result<usize, SqliteError>) {
        // The caller may have gone (cancelled); the write stands either way.
        match self {
            Write::Append(_, reply) | Write::Update(_, reply) => {
                let _ = reply.send(result.map(drop));
            }
            Write::Remove(_, reply) => {
                let _ = reply.send(result.map(|changed| changed > 0));
            }
            Write::Purge(reply) => {
                let _ = reply.send(result.map(|changed| changed as u64));
            }
        }
    }
}

/// What the reader thread does.
enum Read {
    Get(DeadLetterId, Reply<Option<DeadLetterRecord>>),
    List(usize, Reply<Vec<DeadLetterRecord>>),
    Stats(Reply<DeadLetterStats>),
}

/// The embedded SQLite dead-letter store. See the [crate docs](crate).
///
/// Cheap to clone: clones share one writer thread, one reader thread and their connections,
/// which close when the last clone is dropped, after finishing the operations already asked
/// for. That drop waits for them (usually a commit or less; a purge of a large store takes
/// longer), so drop the last clone at shutdown rather than on a busy runtime thread.
#[derive(Clone)]
pub struct SqliteSink {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    dir: PathBuf,
    synchronous: Synchronous,
    max_record_bytes: u64,
    busy_timeout: Duration,
    writes: Option<mpsc::Sender<Write>>,
    reads: Option<mpsc::Sender<Read>>,
    threads: Mutex<Threads>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing a channel ends its thread once it has answered what is queued. One after
        // the other, so the last connection to close sees it is the last and checkpoints the
        // log into the database and deletes it (closed at the same moment, each may see the
        // other still open and leave the log behind: safe, but untidy). Joining closes the
        // connections before the drop returns, so the file can be reopened (or deleted) at
        // once.
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        self.reads.take();
        if let Some(reader) = threads.reader.take() {
            let _ = reader.join();
        }
        self.writes.take();
        if let Some(writer) = threads.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The store's threads, joined on drop.
#[derive(Default)]
struct Threads {
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
}

impl fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSink")
            .field("path", &self.inner.path)
            .field("synchronous", &self.inner.synchronous)
            .field("max_record_bytes", &self.inner.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl SqliteSink {
    /// Opens (creating if needed) the store in directory `dir` (the database is
    /// `dir/dlq.sqlite3`) with the default options: [`Synchronous::Full`], 16 MiB record limit,
    /// 5 s busy timeout.
    ///
    /// Blocking (file creation, SQLite's recovery after a crash, the schema check): call it at
    /// startup or in `spawn_blocking`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SqliteError> {
        SqliteOptions::new(dir).open()
    }

    /// Options to open a store with: `SqliteSink::options(dir).synchronous(..).open()`.
    pub fn options(dir: impl AsRef<Path>) -> SqliteOptions {
        SqliteOptions::new(dir)
    }

    pub(crate) fn open_with(options: SqliteOptions) -> Result<Self, SqliteError> {
        options.validate()?;
        let path = files::prepare(&options.dir, options.create)?;
        let mut writer = schema::connect(
            &path,
            Role::Writer,
            options.synchronous,
            options.busy_timeout,
        )?;
        schema::migrate(&mut writer, &path, options.busy_timeout)?;
        // SQLite made the -wal and -shm files just now with the database's mode; a store
        // created by an older build or by hand may have looser ones.
        files::prepare(&options.dir, false)?;
        let reader = schema::connect(
            &path,
            Role::Reader,
            options.synchronous,
            options.busy_timeout,
        )?;

        let (writes, write_queue) = mpsc::channel();
        let (reads, read_queue) = mpsc::channel();
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| SqliteError::io(&path, "starting a thread for", e))
        };
        let store = Store {
            path: path.clone(),
            busy_timeout: options.busy_timeout,
        };
        let writer_thread = spawn(
            "steadfast-dlq-sqlite-writer",
            Box::new({
                let store = store.clone();
                move || store.write_loop(&writer, &write_queue)
            }),
        )?;
        let reader_thread = spawn(
            "steadfast-dlq-sqlite-reader",
            Box::new(move || store.read_loop(&reader, &read_queue)),
        )?;
        Ok(SqliteSink {
            inner: Arc::new(Inner {
                path,
                dir: options.dir,
                synchronous: options.synchronous,
                max_record_bytes: options.max_record_bytes,
                busy_timeout: options.busy_timeout,
                writes: Some(writes),
                reads: Some(reads),
                threads: Mutex::new(Threads {
                    writer: Some(writer_thread),
                    reader: Some(reader_thread),
                }),
            }),
        })
    }

    /// The database file (`<dir>/dlq.sqlite3`).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The commit mode it was opened with.
    pub fn synchronous(&self) -> Synchronous {
        self.inner.synchronous
    }

    /// The largest record [`append`](DeadLetterSink::append) accepts, in bytes.
    pub fn max_record_bytes(&self) -> u64 {
        self.inner.max_record_bytes
    }

    /// The busy timeout it was opened with.
    pub fn busy_timeout(&self) -> Duration {
        self.inner.busy_timeout
    }

    /// Deletes every record in one transaction (by whichever process wrote it); returns how
    /// many. Records appended after it committed are kept.
    pub async fn purge(&self) -> Result<u64, SqliteError> {
        self.write(Write::Purge).await
    }

    /// Stores `record` and returns once it is committed, with the store's own error type
    /// (what [`DeadLetterSink::append`] does).
    pub async fn append_record(&self, record: DeadLetterRecord) -> Result<(), SqliteError> {
        let row = NewRow::new(record, self.inner.max_record_bytes)?;
        self.write(|reply| Write::Append(Box::new(row), reply))
            .await
    }

    fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(Reply<T>) -> Write,
    ) -> impl Future<Output = Result<T, SqliteError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .inner
            .writes
            .as_ref()
            .is_some_and(|writes| writes.send(write(reply)).is_ok());
        let path = self.inner.path.clone();
        async move {
            if !sent {
                return Err(SqliteError::Closed { path });
            }
            answer.await.map_err(|_| SqliteError::Closed { path })?
        }
    }

    fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(Reply<T>) -> Read,
    ) -> SinkFuture<'static, T> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .inner
            .reads
            .as_ref()
            .is_some_and(|reads| reads.send(read(reply)).is_ok());
        let path = self.inner.path.clone();
        Box::pin(async move {
            if !sent {
                return Err(SqliteError::Closed { path }.into());
            }
            Ok(answer.await.map_err(|_| SqliteError::Closed { path })??)
        })
    }
}

impl DeadLetterSink for SqliteSink {
    /// Stores `record` and returns once it is committed ([`Synchronous::Full`]: fsynced).
    /// Concurrent appends share one commit. A record over
    /// [`max_record_bytes`](SqliteOptions::max_record_bytes) is refused with
    /// [`SqliteError::RecordTooLarge`] before anything is written. A record whose id is
    /// already stored replaces it.
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        let appended = NewRow::new(record, self.inner.max_record_bytes)
            .map(|row| self.write(|reply| Write::Append(Box::new(row), reply)));
        Box::pin(async move { Ok(appended?.await?) })
    }

    /// Up to `limit` records, in id order (the ids are time-ordered: oldest first).
    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        self.read(|reply| Read::List(limit, reply))
    }

    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        self.read(|reply| Read::Get(id, reply))
    }

    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        let removed = self.write(|reply| Write::Remove(id, reply));
        Box::pin(async move { Ok(removed.await?) })
    }

    /// Stores `record` in place of the one with its id (stored anew if a concurrent replay
    /// removed it: a record is never lost to a race, at worst replayed twice). A raised
    /// `replay_count` sets the row's `last_replayed_at_ms`.
    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        let updated = NewRow::new(record, self.inner.max_record_bytes)
            .map(|row| self.write(|reply| Write::Update(Box::new(row), reply)));
        Box::pin(async move { Ok(updated?.await?) })
    }

    /// Counted from the table, so appends by every process sharing the file show:
    /// `appended_last_minute` counts the records stored in the last minute that are still
    /// there.
    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        self.read(Read::Stats)
    }
}

/// What both threads know about the file.
#[derive(Clone)]
struct Store {
    path: PathBuf,
    busy_timeout: Duration,
}

impl Store {
    fn sql(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> SqliteError + '_ {
        move |error| SqliteError::sql(&self.path, action, self.busy_timeout, error)
    }

    /// Group commit: takes every write queued (up to [`MAX_BATCH`]), applies them in one
    /// transaction, commits once (one fsync), then answers them all. No write is answered
    /// `Ok` before its commit returned.
    fn write_loop(&self, connection: &Connection, queue: &mpsc::Receiver<Write>) {
        // Prepared once: parsing the upsert on every write cost more than the fsync it shares.
        let mut statements = match Statements::prepare(connection) {
            Ok(statements) => statements,
            Err(error) => {
                let error = self.sql("preparing statements")(error);
                tracing::error!(%error, "the dead-letter store cannot write");
                while let Ok(write) = queue.recv() {
                    write.answer(Err(error.clone()));
                }
                return;
            }
        };
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let results = self.commit(connection, &mut statements, &batch);
            for (write, result) in batch.into_iter().zip(results) {
                write.answer(result);
            }
        }
    }

    /// Applies `writes` in one transaction; one result (rows changed) per write. Each write
    /// runs in a savepoint, so one that fails does not undo the others; if the commit fails,
    /// none is durable and every write gets the error.
    fn commit(
        &self,
        connection: &Connection,
        statements: &mut Statements<'_>,
        writes: &[Write],
    ) -> Vec<Result<usize, SqliteError>> {
        let fail_all = |error: SqliteError| writes.iter().map(|_| Err(error.clone())).collect();
        let now_ms = row::to_millis(SystemTime::now()).unwrap_or(0);
        // IMMEDIATE takes the write lock now, waiting up to the busy timeout for another
        // process; a deferred transaction could fail at its first write without waiting.
        if let Err(error) = statements.begin.execute([]) {
            return fail_all(self.sql("starting a transaction")(error));
        }
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let result = statements
                .savepoint
                .execute([])
                .map_err(self.sql("starting a savepoint"))
                .and_then(|_| self.apply(statements, write, now_ms))
                .and_then(|changed| {
                    statements
                        .release
                        .execute([])
                        .map(|_| changed)
                        .map_err(self.sql("releasing a savepoint"))
                });
            if result.is_err() && !connection.is_autocommit() {
                // Undo this write only; the savepoint stays on the stack until released.
                let _ = statements.rollback_to.execute([]);
                let _ = statements.release.execute([]);
            }
            let failed = result.as_ref().err().cloned();
            results.push(result);
            // Some errors (I/O, out of memory) make SQLite roll the whole transaction back:
            // nothing before is pending any more, so nothing may be reported stored.
            if connection.is_autocommit() {
                return fail_all(failed.unwrap_or_else(|| SqliteError::Closed {
                    path: self.path.clone(),
                }));
            }
        }
        match statements.commit.execute([]) {
            Ok(_) => results,
            Err(error) => {
                if !connection.is_autocommit() {
                    let _ = statements.rollback.execute([]);
                }
                fail_all(self.sql("committing")(error))
            }
        }
    }

    fn apply(
        &self,
        statements: &mut Statements<'_>,
        write: &Write,
        now_ms: i64,
    ) -> Result<usize, SqliteError> {
        match write {
            Write::Append(row, _) => {
                upsert(&mut statements.append, row, now_ms).map_err(self.sql("appending"))
            }
            Write::Update(row, _) => {
                upsert(&mut statements.update, row, now_ms).map_err(self.sql("updating"))
            }
            Write::Remove(id, _) => statements
                .remove
                .execute([id.to_string()])
                .map_err(self.sql("removing")),
            Write::Purge(_) => statements.purge.execute([]).map_err(self.sql("purging")),
        }
    }

    /// Answers reads one after another on the reader's own connection, so a read never waits
    /// for a group commit's fsync and a commit never waits for a long list.
    fn read_loop(&self, connection: &Connection, queue: &mpsc::Receiver<Read>) {
        while let Ok(read) = queue.recv() {
            match read {
                Read::Get(id, reply) => {
                    let _ = reply.send(self.get(connection, id));
                }
                Read::List(limit, reply) => {
                    let _ = reply.send(self.list(connection, limit));
                }
                Read::Stats(reply) => {
                    let _ = reply.send(self.stats(connection));
                }
            }
        }
    }

    fn get(
        &self,
        connection: &Connection,
        id: DeadLetterId,
    ) -> Result<Option<DeadLetterRecord>, SqliteError> {
        let mut statement = connection
            .prepare(&format!(
                "SELECT {} FROM dead_letters WHERE id = ?1",
                row::COLUMNS
            ))
            .map_err(self.sql("reading"))?;
        let mut rows = statement
            .query([id.to_string()])
            .map_err(self.sql("reading"))?;
        match rows.next().map_err(self.sql("reading"))? {
            Some(found) => row::read(found, &self.path).map(Some),
            None => Ok(None),
        }
    }

    fn list(
        &self,
        connection: &Connection,
        limit: usize,
    ) -> Result<Vec<DeadLetterRecord>, SqliteError> {
        let mut statement = connection
            .prepare(&format!(
                "SELECT {} FROM dead_letters ORDER BY id LIMIT ?1",
                row::COLUMNS
            ))
            .map_err(self.sql("listing"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = statement.query([limit]).map_err(self.sql("listing"))?;
        let mut records = Vec::new();
        while let Some(found) = rows.next().map_err(self.sql("listing"))? {
            records.push(row::read(found, &self.path)?);
        }
        Ok(records)
    }

    fn stats(&self, connection: &Connection) -> Result<DeadLetterStats, SqliteError> {
        let sql = self.sql("reading stats");
        // One read transaction: every figure comes from the same snapshot.
        let transaction = connection.unchecked_transaction().map_err(&sql)?;
        let minute_ago = row::to_millis(SystemTime::now()).unwrap_or(0) - 60_000;
        let (depth, oldest_ms, recent): (i64, Option<i64>, i64) = transaction
            .query_row(
                "SELECT count(*), min(created_at_ms),
                        (SELECT count(*) FROM dead_letters WHERE stored_at_ms > ?1)
                 FROM dead_letters",
                [minute_ago],
                |found| Ok((found.get(0)?, found.get(1)?, found.get(2)?)),
            )
            .map_err(&sql)?;
        let mut by_agent = BTreeMap::new();
        let mut statement = transaction
            .prepare("SELECT agent, count(*) FROM dead_letters GROUP BY agent")
            .map_err(&sql)?;
        let mut rows = statement.query([]).map_err(&sql)?;
        while let Some(found) = rows.next().map_err(&sql)? {
            let agent: String = found.get(0).map_err(&sql)?;
            let count: i64 = found.get(1).map_err(&sql)?;
            by_agent.insert(agent, count as u64);
        }
        drop(rows);
        drop(statement);
        transaction.finish().map_err(&sql)?;
        Ok(DeadLetterStats {
            depth: depth as u64,
            oldest: oldest_ms.and_then(row::from_millis),
            appended_last_minute: recent as u64,
            by_agent,
        })
    }
}

/// An append stores the record; one whose id is already stored is replaced (as the other
/// sinks do), keeping its place in the table.
const UPSERT_APPEND: &str = "
INSERT INTO dead_letters (
    id, agent, created_at_ms, created_at, outcome, reason, attempts, error_chain, request,
    trace_id, replay_count, last_replayed_at_ms, stored_at_ms
) VALUES (
    ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, CASE WHEN ?11 > 0 THEN ?12 END, ?12
)
ON CONFLICT (id) DO UPDATE SET
    agent = excluded.agent, created_at_ms = excluded.created_at_ms,
    created_at = excluded.created_at, outcome = excluded.outcome, reason = excluded.reason,
    attempts = excluded.attempts, error_chain = excluded.error_chain,
    request = excluded.request, trace_id = excluded.trace_id,
    replay_count = excluded.replay_count, last_replayed_at_ms = excluded.last_replayed_at_ms,
    stored_at_ms = excluded.stored_at_ms";

/// An update replaces the stored record but keeps when it was first stored; a raised
/// `replay_count` stamps `last_replayed_at_ms`. A record that is gone (a concurrent replay
/// removed it) is stored again: a race may replay it twice, never lose it.
const UPSERT_UPDATE: &str = "
INSERT INTO dead_letters (
    id, agent, created_at_ms, created_at, outcome, reason, attempts, error_chain, request,
    trace_id, replay_count, last_replayed_at_ms, stored_at_ms
) VALUES (
    ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, CASE WHEN ?11 > 0 THEN ?12 END, ?12
)
ON CONFLICT (id) DO UPDATE SET
    agent = excluded.agent, created_at_ms = excluded.created_at_ms,
    created_at = excluded.created_at, outcome = excluded.outcome, reason = excluded.reason,
    attempts = excluded.attempts, error_chain = excluded.error_chain,
    request = excluded.request, trace_id = excluded.trace_id,
    last_replayed_at_ms = CASE WHEN excluded.replay_count > dead_letters.replay_count
                               THEN ?12 ELSE dead_letters.last_replayed_at_ms END,
    replay_count = excluded.replay_count";

/// The writer's statements, prepared once per connection.
struct Statements<'c> {
    begin: Statement<'c>,
    commit: Statement<'c>,
    rollback: Statement<'c>,
    savepoint: Statement<'c>,
    release: Statement<'c>,
    rollback_to: Statement<'c>,
    append: Statement<'c>,
    update: Statement<'c>,
    remove: Statement<'c>,
    purge: Statement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(connection: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Statements {
            begin: connection.prepare("BEGIN IMMEDIATE")?,
            commit: connection.prepare("COMMIT")?,
            rollback: connection.prepare("ROLLBACK")?,
            savepoint: connection.prepare("SAVEPOINT steadfast_write")?,
            release: connection.prepare("RELEASE steadfast_write")?,
            rollback_to: connection.prepare("ROLLBACK TO steadfast_write")?,
            append: connection.prepare(UPSERT_APPEND)?,
            update: connection.prepare(UPSERT_UPDATE)?,
            remove: connection.prepare("DELETE FROM dead_letters WHERE id = ?1")?,
            purge: connection.prepare("DELETE FROM dead_letters")?,
        })
    }
}

fn upsert(statement: &mut Statement<'_>, row: &NewRow, now_ms: i64) -> rusqlite::Result<usize> {
    statement.execute(params![
        row.id,
        row.agent,
        row.created_at_ms,
        row.created_at,
        row.outcome,
        row.reason,
        row.attempts,
        row.error_chain,
        &row.request[..],
        row.trace_id,
        row.replay_count,
        now_ms,
    ])
}
