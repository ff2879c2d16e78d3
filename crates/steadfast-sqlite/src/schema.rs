//! The schema, its version, and opening a connection with the store's settings.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{SqliteError, Synchronous};

/// The schema version this build writes and reads (`PRAGMA user_version`). A file with a
/// higher version is refused with [`SqliteError::FutureSchema`].
pub const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of a steadfast store: "SFDQ" in ASCII. It tells a dead-letter store
/// from another application's SQLite file (`file(1)` shows it too).
pub const APPLICATION_ID: i64 = 0x5346_4451;

/// Version 1. Plain columns (no STRICT table, no generated column) so sqlite3 shells as old as
/// 3.24 can read it. `CHECK`s keep hand edits honest.
const SCHEMA_V1: &str = "
CREATE TABLE dead_letters (
    id                  TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 26),
    agent               TEXT    NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    outcome             TEXT    NOT NULL CHECK (outcome IN
                            ('success', 'transient', 'rate_limited', 'agent_fault', 'caller_fault')),
    reason              TEXT    NOT NULL,
    attempts            INTEGER NOT NULL CHECK (attempts >= 0),
    error_chain         TEXT    NOT NULL,
    request             BLOB    NOT NULL,
    trace_id            TEXT,
    replay_count        INTEGER NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    last_replayed_at_ms INTEGER,
    stored_at_ms        INTEGER NOT NULL
);
CREATE INDEX dead_letters_by_agent ON dead_letters (agent);
CREATE INDEX dead_letters_by_created_at ON dead_letters (created_at_ms);
CREATE INDEX dead_letters_by_stored_at ON dead_letters (stored_at_ms);
";

/// Which connection is being opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

/// Opens a connection to the existing file `path`, in WAL mode with the store's settings.
pub(crate) fn connect(
    path: &Path,
    role: Role,
    synchronous: Synchronous,
    busy_timeout: Duration,
) -> Result<Connection, SqliteError> {
    let sql = |action| move |error| SqliteError::sql(path, action, busy_timeout, error);
    // No CREATE flag: the file was made (0600) before; SQLite must not make a new one if it
    // vanished. No shared cache, no URI parsing of the path.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(sql("opening"))?;
    connection
        .busy_timeout(busy_timeout)
        .map_err(sql("setting the busy timeout"))?;
    // WAL lets readers (the CLI, other processes) read while one writer commits, and is what
    // makes a commit a single fsync of the log. The mode is stored in the file: after the
    // first open this is a no-op.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql("switching to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NotWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    let pragmas = format!(
        "PRAGMA synchronous = {};
         PRAGMA journal_size_limit = {};",
        synchronous.as_pragma(),
        // After a burst, checkpoints cut the log back to 64 MiB instead of keeping its peak size.
        64 << 20,
    );
    connection
        .execute_batch(&pragmas)
        .map_err(sql("setting pragmas"))?;
    if role == Role::Reader {
        // The reader never writes: a bug that tried would fail rather than race the writer.
        connection
            .execute_batch("PRAGMA query_only = 1")
            .map_err(sql("setting pragmas"))?;
    }
    Ok(connection)
}

/// What the file's header says it is.
#[derive(Debug, Clone, Copy)]
struct Header {
    application_id: i64,
    user_version: i64,
    objects: i64,
}

fn header(connection: &Connection) -> rusqlite::Result<Header> {
    Ok(Header {
        application_id: connection.query_row("PRAGMA application_id", [], |row| row.get(0))?,
        user_version: connection.query_row("PRAGMA user_version", [], |row| row.get(0))?,
        objects: connection
            .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?,
    })
}

/// What to do with a file, given its header.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Ready,
    Create,
}

fn plan(path: &Path, header: Header) -> Result<Plan, SqliteError> {
    let foreign = |reason: String| SqliteError::ForeignDatabase {
        path: path.to_path_buf(),
        reason,
    };
    match header.application_id {
        APPLICATION_ID => match header.user_version {
            SCHEMA_VERSION => Ok(Plan::Ready),
            found if found > SCHEMA_VERSION => Err(SqliteError::FutureSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            }),
            found => Err(foreign(format!(
                "it has steadfast's application id but schema version {found}, which no steadfast wrote"
            ))),
        },
        0 if header.objects == 0 && header.user_version == 0 => Ok(Plan::Create),
        0 => Err(foreign(format!(
            "it holds {} tables or indexes (user_version {}) and no steadfast application id",
            header.objects, header.user_version
        ))),
        other => Err(foreign(format!("its application id is {other:#x}"))),
    }
}

/// Checks the file's schema version and creates the schema in a new file. Several processes
/// may open a new file at once: the creation runs under the write lock and checks again.
pub(crate) fn migrate(
    connection: &mut Connection,
    path: &Path,
    busy_timeout: Duration,
) -> Result<(), SqliteError> {
    let sql = |action| move |error| SqliteError::sql(path, action, busy_timeout, error);
    let found = header(connection).map_err(sql("reading the schema version"))?;
    if plan(path, found)? == Plan::Ready {
        return Ok(());
    }
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("creating the schema"))?;
    let found = header(&transaction).map_err(sql("reading the schema version"))?;
    if plan(path, found)? == Plan::Create {
        transaction
            .execute_batch(SCHEMA_V1)
            .map_err(sql("creating the schema"))?;
        // Pragmas take no parameters; both values are our constants.
        transaction
            .execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(sql("creating the schema"))?;
    }
    transaction.commit().map_err(sql("creating the schema"))
}
