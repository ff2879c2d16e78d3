//! The store's directory and files: created private (`0700` directory, `0600` files), and
//! tightened when found looser.
//!
//! Dead letters hold whole requests (prompts, personal data), so nobody but the owner should
//! read them. A directory that holds only the store's files (or nothing) is the store's own and
//! is tightened to `0700`. A looser directory holding anything else is refused rather than
//! changed: it may be shared (`/tmp`, `/var/lib`), and narrowing a shared directory would break
//! whatever else uses it.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::SqliteError;

/// The database's file name inside the store's directory.
pub const DB_FILE_NAME: &str = "dlq.sqlite3";

/// The files SQLite keeps beside the database (write-ahead log, shared-memory index, and the
/// rollback journal it uses while switching modes).
const COMPANION_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The checkpoint database's file name (`SqliteCheckpointStore`), beside the dead letters'.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoints.sqlite3";

/// Prepares `dir` and its database file; returns the database path.
pub(crate) fn prepare(dir: &Path, create: bool) -> Result<PathBuf, SqliteError> {
    prepare_named(dir, DB_FILE_NAME, create)
}

/// Prepares `dir` and its database file `file_name`; returns the database path.
pub(crate) fn prepare_named(
    dir: &Path,
    file_name: &str,
    create: bool,
) -> Result<PathBuf, SqliteError> {
    prepare_dir(dir, create)?;
    let path = dir.join(file_name);
    prepare_file(dir, &path, create)?;
    Ok(path)
}

fn prepare_dir(dir: &Path, create: bool) -> Result<(), SqliteError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => tighten_dir(dir, &meta),
        Ok(_) => Err(SqliteError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Err(SqliteError::Missing {
                    path: dir.to_path_buf(),
                });
            }
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(dir)
                .map_err(|e| SqliteError::io(dir, "creating the directory", e))?;
            // The umask may have taken bits the owner needs, or left none to take: set it
            // exactly.
            set_mode(dir, 0o700)
        }
        Err(error) => Err(SqliteError::io(dir, "inspecting", error)),
    }
}

#[cfg(unix)]
#[allow(clippy::verbose_bit_mask)] // "no group or other bits" reads better as a mask
fn tighten_dir(dir: &Path, meta: &fs::Metadata) -> Result<(), SqliteError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| SqliteError::io(dir, "listing", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SqliteError::io(dir, "listing", e))?;
        if !is_store_file(&entry.file_name()) {
            return Err(SqliteError::InsecureDirectory {
                dir: dir.to_path_buf(),
                mode,
                other_file: entry.path(),
            });
        }
    }
    tracing::info!(dir = %dir.display(), mode = format!("{mode:04o}"), "tightening the dead-letter directory to 0700");
    set_mode(dir, 0o700)
}

#[cfg(not(unix))]
fn tighten_dir(_dir: &Path, _meta: &fs::Metadata) -> Result<(), SqliteError> {
    Ok(())
}

fn is_store_file(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    [DB_FILE_NAME, CHECKPOINT_FILE_NAME].iter().any(|db| {
        name == *db
            || COMPANION_SUFFIXES
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(*db))
    })
}

/// Whether a non-empty file starts with a whole SQLite header (100 bytes, the first 16 of them
/// the magic string). Read from the start, without SQLite, so nothing is written to it.
fn has_sqlite_header(path: &Path) -> Result<bool, SqliteError> {
    use std::io::Read as _;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    const HEADER_LEN: usize = 100;
    let mut header = [0_u8; HEADER_LEN];
    let mut file = fs::File::open(path).map_err(|e| SqliteError::io(path, "reading", e))?;
    let mut read = 0;
    while read < HEADER_LEN {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(SqliteError::io(path, "reading", error)),
        }
    }
    Ok(read == HEADER_LEN && header.starts_with(MAGIC))
}

fn prepare_file(dir: &Path, path: &Path, create: bool) -> Result<(), SqliteError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            if meta.len() > 0 && !has_sqlite_header(path)? {
                // SQLite itself would take a file shorter than a page for an empty database and
                // write over it: refuse it instead, as any other file that is not a database.
                return Err(SqliteError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
        }
        Ok(_) => {
            return Err(SqliteError::NotADatabase {
                path: path.to_path_buf(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Err(SqliteError::Missing {
                    path: path.to_path_buf(),
                });
            }
            // Created here rather than by SQLite so it is 0600 from its first moment; SQLite
            // gives the -wal and -shm files it creates the database file's mode.
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(file) => {
                    file.sync_all()
                        .map_err(|e| SqliteError::io(path, "syncing", e))?;
                    // The new name must survive a crash too.
                    sync_dir(dir)?;
                }
                // Another process created it first: fine, it is the same store.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(SqliteError::io(path, "creating", error)),
            }
        }
        Err(error) => return Err(SqliteError::io(path, "inspecting", error)),
    }
    for file in std::iter::once(path.to_path_buf()).chain(companions(path)) {
        tighten_file(&file)?;
    }
    Ok(())
}

/// The paths of the files SQLite keeps beside `path`.
pub(crate) fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    COMPANION_SUFFIXES.iter().map(move |suffix| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    })
}

#[cfg(unix)]
fn tighten_file(path: &Path) -> Result<(), SqliteError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(SqliteError::io(path, "inspecting", error)),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::info!(file = %path.display(), mode = format!("{mode:04o}"), "tightening a dead-letter file to 0600");
        set_mode(path, 0o600)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten_file(_path: &Path) -> Result<(), SqliteError> {
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), SqliteError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| SqliteError::io(path, "setting the permissions of", e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), SqliteError> {
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), SqliteError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| SqliteError::io(dir, "syncing the directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_database_and_its_companions_are_store_files() {
        for name in [
            "dlq.sqlite3",
            "dlq.sqlite3-wal",
            "dlq.sqlite3-shm",
            "dlq.sqlite3-journal",
        ] {
            assert!(is_store_file(name.as_ref()), "{name}");
        }
        for name in ["passwd", "dlq.sqlite3.bak", "x-wal", "dlq.sqlite3-walx", ""] {
            assert!(!is_store_file(name.as_ref()), "{name}");
        }
    }
}
