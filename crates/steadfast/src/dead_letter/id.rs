//! [`DeadLetterId`]: a 128-bit, time-ordered, ULID-compatible record id.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The id of a dead letter: 48 bits of Unix milliseconds, then 80 bits that are random per
/// millisecond and increase within it, so ids sort by creation time (within one process, strictly).
///
/// Printed as a 26-character [ULID](https://github.com/ulid/spec) (Crockford base32), and parsed
/// back with [`str::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadLetterId(u128);

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_MASK: u128 = (1 << 80) - 1;

/// The last id handed out, so ids made in the same millisecond still increase.
static LAST: Mutex<u128> = Mutex::new(0);

impl DeadLetterId {
    /// A new id for now. Only called on the failure path (it takes a lock).
    pub fn generate() -> Self {
        let millis = unix_millis(SystemTime::now());
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let candidate = (u128::from(millis) << 80) | (random80() & (RANDOM_MASK >> 1));
        // Monotonic: never go back, even if the wall clock does.
        let id = if candidate > *last {
            candidate
        } else {
            *last + 1
        };
        *last = id;
        DeadLetterId(id)
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

/// 80 random-enough bits without a rand dependency: std's randomly keyed SipHash over a counter.
fn random80() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = state.hash_one(n);
    let low = state.hash_one(n ^ 0x9E37_79B9_7F4A_7C15);
    (u128::from(high) << 64 | u128::from(low)) & RANDOM_MASK
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *slot = ALPHABET[((self.0 >> shift) & 0x1F) as usize];
        }
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
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
        let bad = || ParseIdError(text.chars().take(64).collect());
        if text.len() != 26 {
            return Err(bad());
        }
        let mut value: u128 = 0;
        for (i, byte) in text.bytes().enumerate() {
            let digit = match byte.to_ascii_uppercase() {
                b'O' => 0,
                b'I' | b'L' => 1,
                c => ALPHABET.iter().position(|&a| a == c).ok_or_else(bad)? as u128,
            };
            // The first character carries only 3 bits (128 = 3 + 25 * 5).
            if i == 0 && digit > 7 {
                return Err(bad());
            }
            value = (value << 5) | digit;
        }
        Ok(DeadLetterId(value))
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
