//! Opening a store: what is created and with which permissions, and every way a path or file
//! can be wrong (missing, not a directory, not a database, damaged, another application's, a
//! newer schema, rows edited by hand): a typed error naming the path, never a panic.

mod support;

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use steadfast::dead_letter::{DeadLetterSink, SinkError};
use steadfast_sqlite::{
    APPLICATION_ID, DB_FILE_NAME, MAX_RECORD_BYTES_CEILING, SCHEMA_VERSION, SqliteError, SqliteSink,
};
use support::record;

fn sqlite_error(error: &SinkError) -> &SqliteError {
    match error {
        SinkError::Other(inner) => inner
            .downcast_ref::<SqliteError>()
            .unwrap_or_else(|| panic!("not a SqliteError: {inner:?}")),
        other => panic!("expected SinkError::Other(SqliteError), got {other:?}"),
    }
}

fn pragma(path: &Path, name: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_new_store_is_versioned_marked_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path().join("a/b/dlq")).unwrap();
    assert_eq!(sink.path(), dir.path().join("a/b/dlq").join(DB_FILE_NAME));
    assert_eq!(pragma(sink.path(), "user_version"), SCHEMA_VERSION);
    assert_eq!(pragma(sink.path(), "application_id"), APPLICATION_ID);
    let mode: String = rusqlite::Connection::open(sink.path())
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn missing_paths_are_errors_when_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = SqliteSink::options(&missing)
        .create(false)
        .open()
        .unwrap_err();
    assert!(matches!(&error, SqliteError::Missing { path } if *path == missing));
    assert!(error.to_string().contains("nope"), "{error}");
    assert!(!missing.exists(), "nothing was created");

    // The directory exists but holds no database: also missing, naming the file.
    let error = SqliteSink::options(dir.path())
        .create(false)
        .open()
        .unwrap_err();
    assert!(
        matches!(&error, SqliteError::Missing { path } if *path == dir.path().join(DB_FILE_NAME)),
        "{error:?}"
    );
    assert!(!dir.path().join(DB_FILE_NAME).exists());
}

#[test]
fn a_file_where_the_directory_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let error = SqliteSink::open(&file).unwrap_err();
    assert!(matches!(&error, SqliteError::NotADirectory { path } if *path == file));
}

#[test]
fn options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bytes in [0, MAX_RECORD_BYTES_CEILING + 1] {
        let error = SqliteSink::options(dir.path())
            .max_record_bytes(bytes)
            .open()
            .unwrap_err();
        assert!(
            matches!(
                error,
                SqliteError::InvalidOption {
                    option: "max_record_bytes",
                    ..
                }
            ),
            "{error:?}"
        );
    }
    SqliteSink::options(dir.path())
        .max_record_bytes(MAX_RECORD_BYTES_CEILING)
        .open()
        .unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let garbage = b"this is a text file, not a database\n".repeat(200);
    fs::write(&path, &garbage).unwrap();
    let error = SqliteSink::open(dir.path()).unwrap_err();
    assert!(
        matches!(&error, SqliteError::NotADatabase { path: p } if *p == path),
        "{error:?}"
    );
    assert!(error.to_string().contains(&path.display().to_string()));
    assert_eq!(fs::read(&path).unwrap(), garbage, "the file is unchanged");

    // A directory in the database's place.
    let other = tempfile::tempdir().unwrap();
    fs::create_dir(other.path().join(DB_FILE_NAME)).unwrap();
    assert!(matches!(
        SqliteSink::open(other.path()),
        Err(SqliteError::NotADatabase { .. })
    ));
}

/// SQLite reads a file shorter than a page as an empty database and would write over it; the
/// store refuses it like any other file that is not a database (found by the property test
/// below with the single byte `0`).
#[test]
fn a_short_file_is_not_taken_for_an_empty_database() {
    let magic = b"SQLite format 3\0";
    for garbage in [vec![0_u8], magic[..10].to_vec(), magic.repeat(3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        fs::write(&path, &garbage).unwrap();
        let error = SqliteSink::open(dir.path()).unwrap_err();
        assert!(
            matches!(&error, SqliteError::NotADatabase { path: p } if *p == path),
            "{} bytes: {error:?}",
            garbage.len()
        );
        assert_eq!(fs::read(&path).unwrap(), garbage, "the file is unchanged");
    }
}

#[test]
fn a_newer_schema_is_refused_and_the_file_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = SqliteSink::open(dir.path()).unwrap().path().to_path_buf();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    let error = SqliteSink::open(dir.path()).unwrap_err();
    match &error {
        SqliteError::FutureSchema {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected FutureSchema, got {other:?}"),
    }
    assert!(error.to_string().contains("upgrade steadfast"), "{error}");
    assert_eq!(pragma(&path, "user_version"), SCHEMA_VERSION + 1);
}

#[test]
fn another_applications_database_is_refused() {
    // Tables of its own and no application id.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');")
        .unwrap();
    let error = SqliteSink::open(dir.path()).unwrap_err();
    assert!(
        matches!(&error, SqliteError::ForeignDatabase { path: p, .. } if *p == path),
        "{error:?}"
    );
    let tables: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 1, "nothing was added to it");

    // Another application's id, even with no tables.
    let dir = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(dir.path().join(DB_FILE_NAME))
        .unwrap()
        .execute_batch("PRAGMA application_id = 1234")
        .unwrap();
    assert!(matches!(
        SqliteSink::open(dir.path()),
        Err(SqliteError::ForeignDatabase { .. })
    ));
}

#[tokio::test]
async fn a_row_edited_into_nonsense_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let (good, bad) = (record(0), record(1));
    sink.append(good.clone()).await.unwrap();
    sink.append(bad.clone()).await.unwrap();
    let db = rusqlite::Connection::open(sink.path()).unwrap();
    let id = bad.id.to_string();
    for (edit, complaint) in [
        ("error_chain = 'not json'", "error_chain"),
        ("error_chain = '[1, 2]'", "error_chain"),
        ("agent = x'ff00'", "agent"),
        ("agent = NULL", "agent"),     // NOT NULL refuses it
        ("attempts = -1", "attempts"), // a CHECK refuses this one: the row stays valid
        ("replay_count = 'many'", "replay_count"),
        ("created_at_ms = 1.5", "created_at_ms"),
        ("trace_id = x'00ff'", "trace_id"),
        ("request = NULL", "request"), // NOT NULL refuses it
    ] {
        let saved: Vec<u8> = db
            .query_row(
                "SELECT request FROM dead_letters WHERE id = ?1",
                [&id],
                |row| row.get(0),
            )
            .unwrap();
        let edited = db.execute(
            &format!("UPDATE dead_letters SET {edit} WHERE id = ?1"),
            [&id],
        );
        if edited.is_err() {
            // The schema's constraints refused the edit: still a valid record.
            assert_eq!(sink.get(bad.id).await.unwrap(), Some(bad.clone()), "{edit}");
            continue;
        }
        let error = sink.get(bad.id).await.unwrap_err();
        match sqlite_error(&error) {
            SqliteError::InvalidRow {
                id: row_id, reason, ..
            } => {
                assert_eq!(row_id, &id, "{edit}");
                assert!(reason.contains(complaint), "{edit}: {reason}");
            }
            other => panic!("{edit}: expected InvalidRow, got {other:?}"),
        }
        assert!(sink.list(10).await.is_err(), "{edit}");
        // The other record is still readable on its own.
        assert_eq!(sink.get(good.id).await.unwrap(), Some(good.clone()));
        // Put the row back for the next edit.
        sink.update(bad.clone()).await.unwrap();
        let restored: Vec<u8> = db
            .query_row(
                "SELECT request FROM dead_letters WHERE id = ?1",
                [&id],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(restored, saved);
    }
    // A request stored as text by hand is read as its bytes.
    db.execute(
        "UPDATE dead_letters SET request = 'typed by hand' WHERE id = ?1",
        [&id],
    )
    .unwrap();
    let read = sink.get(bad.id).await.unwrap().unwrap();
    assert_eq!(&read.request[..], b"typed by hand");
}

#[test]
fn the_queries_in_the_docs_run() {
    // The operator queries in docs/dead-letter.md and the crate docs, against a real store.
    let runtime = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    runtime.block_on(async {
        for n in 0..6 {
            let mut r = record(n);
            if n == 5 {
                r.agent = "gpt-primary".into();
            }
            sink.append(r).await.unwrap();
        }
    });
    let db = rusqlite::Connection::open(sink.path()).unwrap();
    let docs = include_str!("../../../docs/dead-letter.md");
    let queries: Vec<String> = docs
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("sqlite3 -readonly var/dlq/dlq.sqlite3 ")
        })
        // As the shell passes them: `\$` inside double quotes is a `$`.
        .map(|query| query.trim().trim_matches('"').replace("\\$", "$"))
        .collect();
    assert!(queries.len() >= 4, "found {} queries", queries.len());
    for query in queries {
        let mut statement = db
            .prepare(&query)
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let mut rows = statement.query([]).unwrap();
        let mut count = 0;
        while rows.next().unwrap().is_some() {
            count += 1;
        }
        assert!(count > 0, "{query} returned nothing");
    }
}

/// Damage anywhere after the header of a store holding records: opening and reading give a
/// store or a typed error, never a panic. (SQLite keeps no checksum of a row's bytes, so damage
/// inside a field that leaves it well-formed reads back as the damaged value; damage to the
/// structure is `Corrupt`.)
#[test]
fn damaged_files_give_a_store_or_a_typed_error_never_a_panic() {
    let runtime = support::runtime();
    let template = tempfile::tempdir().unwrap();
    let written: Vec<_> = (0..40).map(record).collect();
    runtime.block_on(async {
        let sink = SqliteSink::open(template.path()).unwrap();
        for r in &written {
            sink.append(r.clone()).await.unwrap();
        }
    });
    // Closing the last connection checkpointed the log into the database file.
    let bytes = fs::read(template.path().join(DB_FILE_NAME)).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());

    support::check(
        "damaged_files_give_a_store_or_a_typed_error_never_a_panic",
        48,
        (
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
            any::<prop::sample::Index>(),
            any::<bool>(),
        ),
        |(damage, cut, truncate)| {
            let dir = tempfile::tempdir().unwrap();
            let mut damaged = bytes.clone();
            for (at, byte) in &damage {
                // Past the 100-byte file header, so the damage lands in pages.
                let at = 100 + at.index(damaged.len() - 100);
                damaged[at] = *byte;
            }
            if truncate {
                damaged.truncate(cut.index(damaged.len()));
            }
            fs::write(dir.path().join(DB_FILE_NAME), &damaged).unwrap();
            runtime.block_on(async {
                let Ok(sink) = SqliteSink::open(dir.path()) else {
                    return Ok(()); // typed by construction: open returns SqliteError
                };
                let listed = sink.list(usize::MAX).await;
                if let Ok(records) = &listed {
                    prop_assert!(records.len() <= written.len());
                }
                for result in [listed.map(drop), sink.stats().await.map(drop)] {
                    if let Err(error) = result {
                        // Typed, and naming the file.
                        let error = sqlite_error(&error);
                        prop_assert!(error.to_string().contains(DB_FILE_NAME), "{}", error);
                    }
                }
                for r in &written {
                    let _ = sink.get(r.id).await;
                }
                Ok(())
            })
        },
    );
}

/// Arbitrary bytes as the database file: a typed error (or an empty store when SQLite reads
/// them as one), never a panic.
#[test]
fn arbitrary_bytes_as_the_database_are_a_typed_error() {
    let runtime = support::runtime();
    support::check(
        "arbitrary_bytes_as_the_database_are_a_typed_error",
        64,
        (prop::collection::vec(any::<u8>(), 0..4096), any::<bool>()),
        |(mut garbage, with_magic)| {
            if with_magic {
                // Get past the first check: SQLite's magic string, then garbage.
                let magic = b"SQLite format 3\0";
                let len = magic.len().min(garbage.len());
                garbage[..len].copy_from_slice(&magic[..len]);
            }
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(DB_FILE_NAME), &garbage).unwrap();
            match SqliteSink::open(dir.path()) {
                Ok(sink) => runtime.block_on(async {
                    // Only an empty file can be opened as a (new) store.
                    prop_assert!(
                        garbage.is_empty(),
                        "opened {} bytes of garbage",
                        garbage.len()
                    );
                    prop_assert_eq!(sink.stats().await.unwrap().depth, 0);
                    Ok(())
                }),
                Err(error) => {
                    prop_assert!(
                        error
                            .to_string()
                            .contains(&dir.path().display().to_string()),
                        "{}",
                        error
                    );
                    Ok(())
                }
            }
        },
    );
}

#[cfg(unix)]
mod permissions {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use steadfast::dead_letter::DeadLetterSink;
    use steadfast_sqlite::{DB_FILE_NAME, SqliteError, SqliteSink};

    use super::record;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[tokio::test]
    async fn a_new_store_is_private_to_its_owner() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("dlq");
        let sink = SqliteSink::open(&dir).unwrap();
        sink.append(record(1)).await.unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(sink.path()), 0o600);
        let mut files = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
        assert!(files >= 3, "the database, its -wal and -shm: {files}");
    }

    #[test]
    fn a_loose_directory_of_its_own_is_tightened() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("dlq");
        fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        SqliteSink::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // Again with the store's files already in it, themselves too open.
        set_mode(&dir, 0o775);
        set_mode(&dir.join(DB_FILE_NAME), 0o644);
        SqliteSink::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE_NAME)), 0o600);
    }

    #[test]
    fn a_loose_directory_holding_other_files_is_refused_with_the_fix() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("shared");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("notes.txt"), b"someone else's").unwrap();
        set_mode(&dir, 0o755);
        let error = SqliteSink::open(&dir).unwrap_err();
        match &error {
            SqliteError::InsecureDirectory {
                dir: d,
                mode,
                other_file,
            } => {
                assert_eq!((d, *mode), (&dir, 0o755));
                assert_eq!(other_file, &dir.join("notes.txt"));
            }
            other => panic!("expected InsecureDirectory, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&format!("chmod 700 '{}'", dir.display())),
            "{message}"
        );
        assert_eq!(mode(&dir), 0o755, "left as it was");
        assert!(!dir.join(DB_FILE_NAME).exists(), "nothing created");

        set_mode(&dir, 0o700);
        SqliteSink::open(&dir).unwrap();
    }

    #[test]
    fn a_loose_database_file_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = SqliteSink::open(dir.path()).unwrap().path().to_path_buf();
        set_mode(&path, 0o666);
        SqliteSink::open(dir.path()).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
