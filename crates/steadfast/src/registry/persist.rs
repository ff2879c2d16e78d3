//! Breaker state saved across restarts, so an agent known to be down stays open.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::circuit_breaker::{BreakerHandle, SavedBreaker};

use super::Registry;

/// The version of the [`SavedState`] file format.
pub const STATE_FILE_VERSION: u32 = 1;

/// Every registered breaker's state, as written by [`Registry::save_state`].
///
/// ```json
/// { "version": 1, "saved_at_unix_ms": 1795000000000,
///   "breakers": [ { "agent": "gpt", "state": "open", "trips": 2, "open_remaining_secs": 1.5 } ] }
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SavedState {
    /// File format version ([`STATE_FILE_VERSION`]).
    pub version: u32,
    /// Wall-clock time of the save, in milliseconds since the Unix epoch.
    pub saved_at_unix_ms: u64,
    /// One entry per breaker.
    pub breakers: Vec<SavedBreaker>,
}

/// Saving or restoring breaker state failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// The file could not be read or written.
    #[error("cannot {action} breaker state file `{}`: {source}", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not a breaker state file.
    #[error(
        "breaker state file `{}` is not valid JSON of the expected shape: {source}; delete it \
         to start with every breaker closed",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The file was written by an incompatible version.
    #[error(
        "breaker state file `{}` has version {found}, this build reads version {expected}; \
         delete it to start with every breaker closed",
        path.display()
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

impl Registry {
    /// Every registered breaker's state, for [`restore`](Self::restore) after a restart.
    pub fn saved_state(&self) -> SavedState {
        let breakers = self
            .read()
            .values()
            .filter_map(|scope| scope.breaker().as_ref().map(BreakerHandle::saved_state))
            .collect();
        SavedState {
            version: STATE_FILE_VERSION,
            saved_at_unix_ms: unix_ms(SystemTime::now()),
            breakers,
        }
    }

    /// Restores the breakers of `saved` that are registered here (others are ignored; register
    /// breakers first), deducting the wall-clock time since the save from open times (see
    /// [`BreakerHandle::restore`](crate::circuit_breaker::BreakerHandle::restore)). Returns how
    /// many breakers changed state.
    pub fn restore(&self, saved: &SavedState) -> usize {
        let elapsed = Duration::from_millis(
            unix_ms(SystemTime::now()).saturating_sub(saved.saved_at_unix_ms),
        );
        saved
            .breakers
            .iter()
            .filter(|entry| {
                self.breaker(&entry.agent)
                    .is_some_and(|breaker| breaker.restore(entry, elapsed))
            })
            .count()
    }

    /// Writes [`saved_state`](Self::saved_state) as JSON to `path` (through a temporary file
    /// renamed into place, so a crash never leaves half a file). Call it on shutdown.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<(), StateFileError> {
        let path = path.as_ref();
        let json = serde_json::to_vec_pretty(&self.saved_state())
            .expect("breaker state always serialises");
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let io_error = |source| StateFileError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        };
        std::fs::write(&temporary, json).map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)
    }

    /// Reads a file written by [`save_state`](Self::save_state) and [restores](Self::restore)
    /// it. A missing file is not an error (first start): it restores nothing. Returns how many
    /// breakers changed state.
    pub fn restore_state(&self, path: impl AsRef<Path>) -> Result<usize, StateFileError> {
        let path = path.as_ref();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(StateFileError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let saved: SavedState =
            serde_json::from_slice(&bytes).map_err(|source| StateFileError::Parse {
                path: path.to_owned(),
                source,
            })?;
        if saved.version != STATE_FILE_VERSION {
            return Err(StateFileError::Version {
                path: path.to_owned(),
                found: saved.version,
                expected: STATE_FILE_VERSION,
            });
        }
        Ok(self.restore(&saved))
    }
}
