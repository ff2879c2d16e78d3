//! [`SqliteCheckpointStore`]: workflow checkpoints in `<dir>/checkpoints.sqlite3`.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use steadfast::checkpoint::{
    CheckpointStore, Claim, Retention, StepKey, StepRecord, StepStatus, StoreError, StoreFuture,
    StoredAnswer, WorkflowState, WorkflowStatus, WorkflowSummary, check_workflow,
};

use crate::SqliteError;
#[cfg(doc)]
use crate::Synchronous;
use crate::files::{self, CHECKPOINT_FILE_NAME};
use crate::options::SqliteOptions;
use crate::schema::{self, Role};

/// `PRAGMA application_id` of a checkpoint store: "SFCP" in ASCII.
pub const CHECKPOINT_APPLICATION_ID: i64 = 0x5346_4350;
/// The checkpoint schema version this build writes and reads.
pub const CHECKPOINT_SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE workflows (
    workflow      TEXT    NOT NULL PRIMARY KEY,
    status        TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finished')),
    phase         TEXT,
    state         BLOB,
    interrupted   TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX workflows_by_updated_at ON workflows (updated_at_ms);
CREATE TABLE steps (
    workflow        TEXT    NOT NULL,
    step            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('running', 'done')),
    owner           TEXT,
    lease_until_ms  INTEGER,
    response        BLOB,
    started_at_ms   INTEGER NOT NULL,
    completed_at_ms INTEGER,
    PRIMARY KEY (workflow, step)
);
";

/// Durable workflow checkpoints on SQLite: the file `checkpoints.sqlite3`. Cheap to clone.
///
/// Its own file beside the dead letters (`dlq.sqlite3`), with its own application id
/// (`0x53464350`, "SFCP", [`CHECKPOINT_APPLICATION_ID`]) and schema version
/// ([`CHECKPOINT_SCHEMA_VERSION`]), so either can be deleted or copied alone. WAL mode, the
/// same private files and typed errors as the dead-letter store; every write commits (with
/// [`Synchronous::Full`], fsyncs) before its future resolves.
///
/// ## Schema (version 1)
///
/// | table | column | holds |
/// |---|---|---|
/// | `workflows` | `workflow` TEXT, primary key | the workflow id |
/// | | `status` TEXT | `open` or `finished` |
/// | | `phase`, `state` | the phase (TEXT) and state (BLOB) last saved, or NULL |
/// | | `interrupted` TEXT | why an emergency shutdown interrupted it, or NULL |
/// | | `created_at_ms`, `updated_at_ms` | Unix milliseconds |
/// | `steps` | `workflow`, `step` TEXT, primary key together | the step key |
/// | | `status` TEXT | `running` (claimed) or `done` |
/// | | `owner`, `lease_until_ms` | who holds a running step, until when (NULL once done) |
/// | | `response` BLOB | the answer as the layer's codec wrote it (NULL while running) |
/// | | `started_at_ms`, `completed_at_ms` | Unix milliseconds |
///
/// A claim runs in one `BEGIN IMMEDIATE` transaction, so two processes sharing the file never
/// both claim a step; leases are read from the wall clock of the processes, which share the
/// machine.
///
/// ```
/// use steadfast::checkpoint::Checkpoints;
/// use steadfast_sqlite::SqliteCheckpointStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let store = SqliteCheckpointStore::open(tmp.path().join("state"))?;
/// let checkpoints = Checkpoints::new(store);
/// checkpoints.save("wf-1", "planned", b"{\"milestone\":2}".to_vec()).await?;
/// assert_eq!(checkpoints.resume("wf-1").await?.summary.phase.as_deref(), Some("planned"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteCheckpointStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteCheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpointStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteOptions {
    /// Opens (creating if allowed) the checkpoint store `<dir>/checkpoints.sqlite3` with these
    /// options (the record limit does not apply). Blocking.
    pub fn open_checkpoints(self) -> Result<SqliteCheckpointStore, SqliteError> {
        SqliteCheckpointStore::open_with(&self)
    }
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

impl SqliteCheckpointStore {
    /// Opens (creating if needed) the store in `dir` with the default options. Blocking: call
    /// it at startup or in `spawn_blocking`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SqliteError> {
        SqliteOptions::new(dir).open_checkpoints()
    }

    fn open_with(options: &SqliteOptions) -> Result<Self, SqliteError> {
        options.validate()?;
        let path = files::prepare_named(&options.dir, CHECKPOINT_FILE_NAME, options.create)?;
        let mut connection = schema::connect(
            &path,
            Role::Writer,
            options.synchronous,
            options.busy_timeout,
        )?;
        migrate(&mut connection, &path, options.busy_timeout)?;
        files::prepare_named(&options.dir, CHECKPOINT_FILE_NAME, false)?;
        Ok(SqliteCheckpointStore {
            inner: Arc::new(Inner {
                path,
                busy_timeout: options.busy_timeout,
                connection: Mutex::new(connection),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the connection on a blocking thread.
    fn run<'a, T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Connection, i64) -> Result<T, Failure> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let path = inner.path.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let mut connection = inner
                    .connection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let now = millis(SystemTime::now());
                work(&mut connection, now).map_err(|failure| match failure {
                    Failure::Sql(error) => StoreError::backend(SqliteError::sql(
                        &inner.path,
                        action,
                        inner.busy_timeout,
                        error,
                    )),
                    Failure::Store(error) => error,
                })
            })
            .await;
            match joined {
                Ok(result) => result,
                Err(error) => Err(StoreError::backend(SqliteError::io(
                    path,
                    "running a checkpoint query on",
                    std::io::Error::other(error.to_string()),
                ))),
            }
        })
    }
}

/// `status, owner, lease_until_ms, response, completed_at_ms` of a step.
type StepRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<i64>,
);

/// What a query can fail with before it is mapped to a [`StoreError`].
enum Failure {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sql(error)
    }
}

fn not_found(workflow: &str) -> Failure {
    Failure::Store(StoreError::NotFound {
        workflow: workflow.to_owned(),
    })
}

fn touch(connection: &Connection, workflow: &str, now: i64) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO workflows (workflow, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?2)
         ON CONFLICT (workflow) DO UPDATE SET updated_at_ms = excluded.updated_at_ms",
        params![workflow, now],
    )?;
    Ok(())
}

fn summaries(
    connection: &Connection,
    only: Option<&str>,
) -> rusqlite::Result<Vec<WorkflowSummary>> {
    let mut statement = connection.prepare(
        "SELECT w.workflow, w.status, w.phase, w.interrupted, w.created_at_ms, w.updated_at_ms,
                (SELECT count(*) FROM steps s WHERE s.workflow = w.workflow AND s.status = 'done'),
                (SELECT count(*) FROM steps s WHERE s.workflow = w.workflow AND s.status = 'running')
         FROM workflows w WHERE (?1 IS NULL OR w.workflow = ?1)
         ORDER BY w.updated_at_ms DESC, w.workflow",
    )?;
    let rows = statement.query_map(params![only], |row| {
        let status: String = row.get(1)?;
        Ok(WorkflowSummary {
            workflow: row.get(0)?,
            status: if status == "finished" {
                WorkflowStatus::Finished
            } else {
                WorkflowStatus::Open
            },
            phase: row.get(2)?,
            interrupted: row.get(3)?,
            created_at: time(row.get(4)?),
            updated_at: time(row.get(5)?),
            steps_done: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
            steps_running: row.get::<_, i64>(7)?.try_into().unwrap_or(0),
        })
    })?;
    rows.collect()
}

fn done_answer(connection: &Connection, key: &StepKey) -> rusqlite::Result<Option<StoredAnswer>> {
    connection
        .query_row(
            "SELECT response, completed_at_ms FROM steps
             WHERE workflow = ?1 AND step = ?2 AND status = 'done'",
            params![key.workflow(), key.step()],
            |row| {
                Ok(StoredAnswer {
                    response: row.get::<_, Option<Vec<u8>>>(0)?.unwrap_or_default(),
                    completed_at: time(row.get::<_, Option<i64>>(1)?.unwrap_or(0)),
                })
            },
        )
        .optional()
}

fn delete_workflows(connection: &Connection, ids: &[String]) -> rusqlite::Result<u64> {
    let mut removed = 0;
    for id in ids {
        connection.execute("DELETE FROM steps WHERE workflow = ?1", params![id])?;
        removed +=
            connection.execute("DELETE FROM workflows WHERE workflow = ?1", params![id])? as u64;
    }
    Ok(removed)
}

impl CheckpointStore for SqliteCheckpointStore {
    fn claim<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.run("claiming a step in", move |connection, now| {
            // A completed step is answered by a read alone: no write lock, no commit, no fsync.
            if let Some(answer) = done_answer(connection, &key)? {
                return Ok(Claim::Done(answer));
            }
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            touch(&tx, key.workflow(), now)?;
            let found: Option<StepRow> = tx
                .query_row(
                    "SELECT status, owner, lease_until_ms, response, completed_at_ms FROM steps
                     WHERE workflow = ?1 AND step = ?2",
                    params![key.workflow(), key.step()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .optional()?;
            let until = now.saturating_add(lease_ms(lease));
            let claim = match found {
                Some((status, _, _, response, completed)) if status == "done" => {
                    Claim::Done(StoredAnswer {
                        response: response.unwrap_or_default(),
                        completed_at: time(completed.unwrap_or(now)),
                    })
                }
                Some((_, Some(_), Some(lease_until), _, _)) if lease_until > now => Claim::Busy {
                    lease_remaining: Duration::from_millis(
                        u64::try_from(lease_until - now).unwrap_or(0),
                    ),
                },
                Some(_) => {
                    tx.execute(
                        "UPDATE steps SET owner = ?3, lease_until_ms = ?4
                         WHERE workflow = ?1 AND step = ?2",
                        params![key.workflow(), key.step(), owner, until],
                    )?;
                    Claim::Claimed
                }
                None => {
                    tx.execute(
                        "INSERT INTO steps (workflow, step, status, owner, lease_until_ms, started_at_ms)
                         VALUES (?1, ?2, 'running', ?3, ?4, ?5)",
                        params![key.workflow(), key.step(), owner, until, now],
                    )?;
                    Claim::Claimed
                }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    fn renew<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, ()> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.run("renewing a lease in", move |connection, now| {
            let changed = connection.execute(
                "UPDATE steps SET lease_until_ms = ?4
                 WHERE workflow = ?1 AND step = ?2 AND owner = ?3 AND status = 'running'",
                params![
                    key.workflow(),
                    key.step(),
                    owner,
                    now.saturating_add(lease_ms(lease))
                ],
            )?;
            if changed == 0 {
                return Err(Failure::Store(StoreError::LeaseLost { key }));
            }
            Ok(())
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a StepKey,
        owner: &'a str,
        response: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.run("storing a step's answer in", move |connection, now| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE steps SET status = 'done', response = ?4, completed_at_ms = ?5,
                                  owner = NULL, lease_until_ms = NULL
                 WHERE workflow = ?1 AND step = ?2 AND owner = ?3 AND status = 'running'",
                params![key.workflow(), key.step(), owner, response, now],
            )?;
            if changed == 0 {
                return Err(Failure::Store(StoreError::LeaseLost { key }));
            }
            touch(&tx, key.workflow(), now)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn release<'a>(&'a self, key: &'a StepKey, owner: &'a str) -> StoreFuture<'a, ()> {
        let (key, owner) = (key.clone(), owner.to_owned());
        self.run("releasing a step in", move |connection, _| {
            connection.execute(
                "DELETE FROM steps WHERE workflow = ?1 AND step = ?2 AND owner = ?3 AND status = 'running'",
                params![key.workflow(), key.step(), owner],
            )?;
            Ok(())
        })
    }

    fn save<'a>(
        &'a self,
        workflow: &'a str,
        phase: &'a str,
        state: Vec<u8>,
    ) -> StoreFuture<'a, ()> {
        if let Err(error) = check_workflow(workflow) {
            return Box::pin(std::future::ready(Err(error.into())));
        }
        let (workflow, phase) = (workflow.to_owned(), phase.to_owned());
        self.run("saving workflow state in", move |connection, now| {
            connection.execute(
                "INSERT INTO workflows (workflow, phase, state, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (workflow) DO UPDATE SET phase = excluded.phase,
                     state = excluded.state, updated_at_ms = excluded.updated_at_ms",
                params![workflow, phase, state, now],
            )?;
            Ok(())
        })
    }

    fn resume<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, WorkflowState> {
        let workflow = workflow.to_owned();
        self.run("reading a workflow from", move |connection, _| {
            let tx = connection.transaction()?;
            let Some(summary) = summaries(&tx, Some(&workflow))?.into_iter().next() else {
                return Err(not_found(&workflow));
            };
            let state: Option<Vec<u8>> = tx.query_row(
                "SELECT state FROM workflows WHERE workflow = ?1",
                params![workflow],
                |row| row.get(0),
            )?;
            let mut statement = tx.prepare(
                "SELECT step, status, length(response), started_at_ms, completed_at_ms FROM steps
                 WHERE workflow = ?1 ORDER BY started_at_ms, rowid",
            )?;
            let steps = statement
                .query_map(params![workflow], |row| {
                    let status: String = row.get(1)?;
                    Ok(StepRecord {
                        step: row.get(0)?,
                        status: if status == "done" {
                            StepStatus::Done
                        } else {
                            StepStatus::Running
                        },
                        response_len: row
                            .get::<_, Option<i64>>(2)?
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                        started_at: time(row.get(3)?),
                        completed_at: row.get::<_, Option<i64>>(4)?.map(time),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(WorkflowState {
                summary,
                state,
                steps,
            })
        })
    }

    fn answer<'a>(&'a self, key: &'a StepKey) -> StoreFuture<'a, Option<StoredAnswer>> {
        let key = key.clone();
        self.run("reading a step's answer from", move |connection, _| {
            Ok(done_answer(connection, &key)?)
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<WorkflowSummary>> {
        self.run("listing workflows in", |connection, _| {
            Ok(summaries(connection, None)?)
        })
    }

    fn finish<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        let workflow = workflow.to_owned();
        self.run("finishing a workflow in", move |connection, now| {
            let changed = connection.execute(
                "UPDATE workflows SET status = 'finished', updated_at_ms = ?2 WHERE workflow = ?1",
                params![workflow, now],
            )?;
            if changed == 0 {
                return Err(not_found(&workflow));
            }
            Ok(())
        })
    }

    fn interrupt<'a>(&'a self, workflow: &'a str, reason: &'a str) -> StoreFuture<'a, ()> {
        let (workflow, reason) = (workflow.to_owned(), reason.to_owned());
        self.run(
            "marking a workflow interrupted in",
            move |connection, now| {
                let changed = connection.execute(
                    "UPDATE workflows SET interrupted = ?2, updated_at_ms = ?3 WHERE workflow = ?1",
                    params![workflow, reason, now],
                )?;
                if changed == 0 {
                    return Err(not_found(&workflow));
                }
                Ok(())
            },
        )
    }

    fn forget<'a>(&'a self, workflow: &'a str) -> StoreFuture<'a, ()> {
        let workflow = workflow.to_owned();
        self.run("forgetting a workflow in", move |connection, _| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if delete_workflows(&tx, std::slice::from_ref(&workflow))? == 0 {
                return Err(not_found(&workflow));
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn prune(&self, retention: Retention) -> StoreFuture<'_, u64> {
        self.run("pruning workflows in", move |connection, now| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let all = summaries(&tx, None)?; // newest first
            let cutoff = retention
                .max_age
                .map(|age| now.saturating_sub(lease_ms(age)));
            let keep = retention.max_workflows.unwrap_or(usize::MAX);
            let doomed: Vec<String> = all
                .into_iter()
                .enumerate()
                .filter(|(rank, w)| {
                    *rank >= keep || cutoff.is_some_and(|cutoff| millis(w.updated_at) < cutoff)
                })
                .map(|(_, w)| w.workflow)
                .collect();
            let removed = delete_workflows(&tx, &doomed)?;
            tx.commit()?;
            Ok(removed)
        })
    }
}

/// Checks the file's application id and version; creates the schema in a new file.
fn migrate(
    connection: &mut Connection,
    path: &Path,
    busy_timeout: Duration,
) -> Result<(), SqliteError> {
    let sql = |action| move |error| SqliteError::sql(path, action, busy_timeout, error);
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("creating the checkpoint schema"))?;
    let read = |tx: &rusqlite::Transaction<'_>, pragma: &str| -> rusqlite::Result<i64> {
        tx.query_row(pragma, [], |row| row.get(0))
    };
    let application_id =
        read(&tx, "PRAGMA application_id").map_err(sql("reading the schema version"))?;
    let version = read(&tx, "PRAGMA user_version").map_err(sql("reading the schema version"))?;
    let objects = read(&tx, "SELECT count(*) FROM sqlite_master")
        .map_err(sql("reading the schema version"))?;
    let foreign = |reason: String| SqliteError::ForeignDatabase {
        path: path.to_path_buf(),
        reason,
    };
    match (application_id, version) {
        (CHECKPOINT_APPLICATION_ID, CHECKPOINT_SCHEMA_VERSION) => return Ok(()),
        (CHECKPOINT_APPLICATION_ID, found) if found > CHECKPOINT_SCHEMA_VERSION => {
            return Err(SqliteError::FutureSchema {
                path: path.to_path_buf(),
                found,
                supported: CHECKPOINT_SCHEMA_VERSION,
            });
        }
        (0, 0) if objects == 0 => {}
        (0, _) => {
            return Err(foreign(format!(
                "it holds {objects} tables or indexes and no steadfast checkpoint application id"
            )));
        }
        (other, found) => {
            return Err(foreign(format!(
                "its application id is {other:#x} (schema version {found}), not a steadfast checkpoint store"
            )));
        }
    }
    tx.execute_batch(SCHEMA_V1)
        .map_err(sql("creating the checkpoint schema"))?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {CHECKPOINT_APPLICATION_ID}; PRAGMA user_version = {CHECKPOINT_SCHEMA_VERSION};"
    ))
    .map_err(sql("creating the checkpoint schema"))?;
    tx.commit().map_err(sql("creating the checkpoint schema"))
}
