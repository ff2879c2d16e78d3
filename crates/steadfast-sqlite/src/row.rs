//! A [`DeadLetterRecord`] as a row of the `dead_letters` table, and back.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{Bytes, DeadLetterId, DeadLetterRecord};

use crate::SqliteError;

/// A record ready to be written: every conversion that can fail is done, on the caller's
/// task, before it reaches the writer thread.
#[derive(Debug)]
pub(crate) struct NewRow {
    pub(crate) id: String,
    pub(crate) agent: String,
    pub(crate) created_at_ms: i64,
    pub(crate) created_at: String,
    pub(crate) outcome: &'static str,
    pub(crate) reason: String,
    pub(crate) attempts: i64,
    pub(crate) error_chain: String,
    pub(crate) request: Bytes,
    pub(crate) trace_id: Option<String>,
    pub(crate) replay_count: i64,
}

impl NewRow {
    /// Converts `record`, refusing it if its variable-length fields add up to more than
    /// `limit` bytes.
    pub(crate) fn new(record: DeadLetterRecord, limit: u64) -> Result<Self, SqliteError> {
        let error_chain =
            serde_json::to_string(&record.error_chain).unwrap_or_else(|_| "[]".to_owned());
        let size = [
            record.request.len(),
            error_chain.len(),
            record.agent.len(),
            record.reason.len(),
            record.trace_id.as_ref().map_or(0, String::len),
        ]
        .iter()
        .map(|len| *len as u64)
        .sum::<u64>();
        if size > limit {
            return Err(SqliteError::RecordTooLarge {
                id: record.id,
                size,
                limit,
            });
        }
        let created_at_ms = to_millis(record.time).ok_or_else(|| SqliteError::Unrepresentable {
            id: record.id,
            reason: format!(
                "its time {:?} is more than 2^63 milliseconds away from 1970",
                record.time
            ),
        })?;
        Ok(NewRow {
            id: record.id.to_string(),
            agent: record.agent,
            created_at_ms,
            created_at: iso8601(created_at_ms),
            outcome: record.outcome.as_str(),
            reason: record.reason,
            attempts: i64::from(record.attempts),
            error_chain,
            request: record.request,
            trace_id: record.trace_id,
            replay_count: i64::from(record.replay_count),
        })
    }
}

/// The columns [`read`] expects, in order.
pub(crate) const COLUMNS: &str = "id, agent, created_at_ms, outcome, reason, attempts, error_chain, request, trace_id, replay_count";

/// Reads a row selected with [`COLUMNS`].
pub(crate) fn read(row: &rusqlite::Row<'_>, path: &Path) -> Result<DeadLetterRecord, SqliteError> {
    let raw_id = match row.get_ref(0) {
        Ok(ValueRef::Text(text)) => String::from_utf8_lossy(text).into_owned(),
        _ => "(unreadable id)".to_owned(),
    };
    let invalid = |reason: String| SqliteError::InvalidRow {
        path: path.to_path_buf(),
        id: raw_id.clone(),
        reason,
    };
    let id: DeadLetterId = raw_id
        .parse()
        .map_err(|error| invalid(format!("column `id`: {error}")))?;
    let text = |index: usize, column: &str| -> Result<String, SqliteError> {
        match row.get_ref(index) {
            Ok(ValueRef::Text(bytes)) => String::from_utf8(bytes.to_vec())
                .map_err(|_| invalid(format!("column `{column}` is not valid UTF-8"))),
            Ok(other) => Err(invalid(format!(
                "column `{column}` holds {}, not text",
                other.data_type()
            ))),
            Err(error) => Err(invalid(format!("column `{column}`: {error}"))),
        }
    };
    let integer = |index: usize, column: &str| -> Result<i64, SqliteError> {
        match row.get_ref(index) {
            Ok(ValueRef::Integer(value)) => Ok(value),
            Ok(other) => Err(invalid(format!(
                "column `{column}` holds {}, not an integer",
                other.data_type()
            ))),
            Err(error) => Err(invalid(format!("column `{column}`: {error}"))),
        }
    };
    let count = |index: usize, column: &str| -> Result<u32, SqliteError> {
        let value = integer(index, column)?;
        u32::try_from(value)
            .map_err(|_| invalid(format!("column `{column}` is {value}, outside 0 to 2^32-1")))
    };

    let agent = text(1, "agent")?;
    let created_at_ms = integer(2, "created_at_ms")?;
    let time = from_millis(created_at_ms)
        .ok_or_else(|| invalid(format!("column `created_at_ms` is {created_at_ms}")))?;
    let outcome_text = text(3, "outcome")?;
    let outcome = OutcomeKind::ALL
        .into_iter()
        .find(|kind| kind.as_str() == outcome_text)
        .ok_or_else(|| invalid(format!("column `outcome` is `{outcome_text}`")))?;
    let reason = text(4, "reason")?;
    let attempts = count(5, "attempts")?;
    let chain_text = text(6, "error_chain")?;
    let error_chain: Vec<String> = serde_json::from_str(&chain_text).map_err(|error| {
        invalid(format!(
            "column `error_chain` is not a JSON array of strings: {error}"
        ))
    })?;
    let request = match row.get_ref(7) {
        // An operator's `UPDATE ... SET request = '...'` stores text; its bytes are the request.
        Ok(ValueRef::Blob(bytes) | ValueRef::Text(bytes)) => Bytes::copy_from_slice(bytes),
        Ok(other) => {
            return Err(invalid(format!(
                "column `request` holds {}, not a blob",
                other.data_type()
            )));
        }
        Err(error) => return Err(invalid(format!("column `request`: {error}"))),
    };
    let trace_id = match row.get_ref(8) {
        Ok(ValueRef::Null) => None,
        _ => Some(text(8, "trace_id")?),
    };
    let replay_count = count(9, "replay_count")?;
    Ok(DeadLetterRecord {
        id,
        agent,
        time,
        request,
        outcome,
        reason,
        error_chain,
        attempts,
        trace_id,
        replay_count,
    })
}

/// Milliseconds since the Unix epoch (negative before it), truncated toward zero; `None` past
/// what an `i64` holds.
pub(crate) fn to_millis(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).ok(),
        Err(before) => i64::try_from(before.duration().as_millis())
            .ok()
            .map(|ms| -ms),
    }
}

/// The time `ms` milliseconds from the Unix epoch, if the platform's clock type can hold it.
pub(crate) fn from_millis(ms: i64) -> Option<SystemTime> {
    let span = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(span)
    } else {
        UNIX_EPOCH.checked_sub(span)
    }
}

/// `ms` as ISO 8601 UTC text with milliseconds (`2026-11-24T09:30:00.123Z`), for the
/// `created_at` column people read. Years outside 0000-9999 get a sign.
pub(crate) fn iso8601(ms: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS);
    let (hours, minutes) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (seconds, millis) = (in_day / 1000 % 60, in_day % 1000);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    format!("{year}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}

/// (year, month, day) of the proleptic Gregorian calendar for `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`), so the crate needs no date library for one column.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_format_as_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso8601(253_402_300_800_000), "+10000-01-01T00:00:00.000Z");
        // The extremes format without overflow.
        assert!(iso8601(i64::MAX).starts_with('+'));
        assert!(iso8601(i64::MIN).starts_with('-'));
    }

    #[test]
    fn millis_round_trip_across_the_epoch() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_001, i64::MAX] {
            let time = from_millis(ms).unwrap();
            assert_eq!(to_millis(time), Some(ms), "{ms}");
        }
    }

    /// SQLite's own date functions agree with ours for every year they cover (0000-9999), on
    /// hand-picked edges and 20,000 instants from a fixed-seed generator.
    #[test]
    fn iso8601_agrees_with_sqlite_strftime() {
        const MIN: i64 = -62_167_219_200_000; // 0000-01-01
        const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let mut statement = connection
            .prepare(
                "SELECT strftime('%Y-%m-%dT%H:%M:%S', ?1 / 1000 - (?1 % 1000 < 0), 'unixepoch') \
                 || printf('.%03dZ', (?1 % 1000 + 1000) % 1000)",
            )
            .unwrap();
        let mut state: u64 = 0x5EED_1234_ABCD_0001;
        let edges = [MIN, MAX, 0, -1, 951_782_400_000, 4_107_542_400_000];
        let random = std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            MIN + (state % (MAX - MIN + 1) as u64) as i64
        });
        for ms in edges.into_iter().chain(random.take(20_000)) {
            let sqlite: String = statement.query_row([ms], |row| row.get(0)).unwrap();
            assert_eq!(iso8601(ms), sqlite, "{ms}");
        }
    }
}
