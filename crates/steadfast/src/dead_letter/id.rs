//! [`DeadLetterId`]: a 128-bit, time-ordered, ULID-compatible record id.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ulid::{Generator, Ulid};

/// The id of a dead letter: a [ULID](https://github.com/ulid/spec) (48 bits of Unix
/// milliseconds, then 80 random bits that increase within a millisecond), so ids sort by
/// creation time (within one process, strictly).
///
/// Printed as 26 Crockford base32 characters, and parsed back with [`str::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadLetterId(u128);

/// One monotonic generator per process, so ids made in the same millisecond still increase.
static GENERATOR: Mutex<Generator> = Mutex::new(Generator::new());

impl DeadLetterId {
    /// A new id for now. Only called on the failure path (it takes a lock).
    pub fn generate() -> Self {
        let mut generator = GENERATOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The generator fails only when 2^80 ids were made in one millisecond; a fresh random
        // id is then still unique, if not ordered.
        let ulid = generator.generate().unwrap_or_else(|_| Ulid::new());
        DeadLetterId(ulid.0)
    }

    /// The id as a raw 128-bit number.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// An id from its raw 128-bit number.
    pub const fn from_u128(raw: u128) -> Self {
        DeadLetterId(raw)
    }

    /// The Unix time in milliseconds encoded in the id.
    pub const fn timestamp_millis(self) -> u64 {
        (self.0 >> 80) as u64
    }
}

/// Milliseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Ulid(self.0).to_string())
    }
}

impl fmt::Debug for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeadLetterId({self})")
    }
}

/// The text was not a 26-character ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a dead-letter id: expected 26 Crockford base32 characters (a ULID)")]
pub struct ParseIdError(String);

impl FromStr for DeadLetterId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // 26 characters carry 130 bits: a first character past `7` would overflow 128 bits,
        // which `ulid` silently wraps.
        if text.as_bytes().first().is_some_and(|first| *first > b'7') {
            return Err(ParseIdError(text.chars().take(64).collect()));
        }
        Ulid::from_string(text)
            .map(|ulid| DeadLetterId(ulid.0))
            .map_err(|_| ParseIdError(text.chars().take(64).collect()))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for DeadLetterId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for DeadLetterId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_round_trip_through_text() {
        let mut previous = DeadLetterId::generate();
        for _ in 0..1000 {
            let id = DeadLetterId::generate();
            assert!(id > previous);
            assert_eq!(id.to_string().parse::<DeadLetterId>().unwrap(), id);
            previous = id;
        }
        assert!(previous.timestamp_millis() > 1_600_000_000_000);
    }

    #[test]
    fn rejects_text_that_is_not_an_id() {
        assert!("short".parse::<DeadLetterId>().is_err());
        assert!(
            "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"
                .parse::<DeadLetterId>()
                .is_err()
        );
        assert!(
            "0000000000000000000000000U"
                .parse::<DeadLetterId>()
                .is_err()
        );
    }
}
