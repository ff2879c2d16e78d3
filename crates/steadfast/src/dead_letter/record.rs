//! [`DeadLetterRecord`]: what is kept about a request no agent could answer, and its compact,
//! versioned binary encoding (used by the AMQP sink; no serde needed).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::classify::OutcomeKind;

use super::id::{DeadLetterId, unix_millis};

/// One dead-lettered request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DeadLetterRecord {
    /// Time-ordered id; also the AMQP `message_id`, so consumers can de-duplicate.
    pub id: DeadLetterId,
    /// The agent (layer name) that failed.
    pub agent: String,
    /// When it was dead-lettered (millisecond precision once stored).
    #[cfg_attr(feature = "serde", serde(with = "unix_millis_serde"))]
    pub time: SystemTime,
    /// The request, as the layer's encoder wrote it.
    #[cfg_attr(feature = "serde", serde(with = "bytes_serde"))]
    pub request: Bytes,
    /// The class of the final failure.
    pub outcome: OutcomeKind,
    /// The classifier's reason, if any.
    pub reason: String,
    /// The final error and its `source()` chain, outermost first.
    pub error_chain: Vec<String>,
    /// Attempts made (retries included) before giving up.
    pub attempts: u32,
    /// The tracing span or trace id current when it failed, if any.
    pub trace_id: Option<String>,
    /// How many times a replay tried this record and failed again.
    pub replay_count: u32,
}

impl DeadLetterRecord {
    /// A record for `request` that failed at `agent` now, with a fresh id.
    pub fn new(agent: impl Into<String>, request: Bytes, outcome: OutcomeKind) -> Self {
        DeadLetterRecord {
            id: DeadLetterId::generate(),
            agent: agent.into(),
            // Millisecond precision, as stored, so a record equals itself read back.
            time: UNIX_EPOCH + Duration::from_millis(unix_millis(SystemTime::now())),
            request,
            outcome,
            reason: String::new(),
            error_chain: Vec::new(),
            attempts: 1,
            trace_id: None,
            replay_count: 0,
        }
    }

    /// How long ago it was dead-lettered (zero if the clock went back).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.time)
            .unwrap_or(Duration::ZERO)
    }

    /// Encodes the record (format version [`RECORD_VERSION`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.agent.len() + self.request.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.id.as_u128().to_le_bytes());
        out.extend_from_slice(&unix_millis(self.time).to_le_bytes());
        out.push(outcome_code(self.outcome));
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.replay_count.to_le_bytes());
        put_bytes(&mut out, self.agent.as_bytes());
        put_bytes(&mut out, self.reason.as_bytes());
        match &self.trace_id {
            Some(trace) => {
                out.push(1);
                put_bytes(&mut out, trace.as_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&(self.error_chain.len() as u32).to_le_bytes());
        for line in &self.error_chain {
            put_bytes(&mut out, line.as_bytes());
        }
        put_bytes(&mut out, &self.request);
        out
    }

    /// Decodes a record written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let id = DeadLetterId::from_u128(u128::from_le_bytes(reader.array()?));
        let millis = u64::from_le_bytes(reader.array()?);
        let outcome = outcome_from_code(reader.u8()?)?;
        let attempts = u32::from_le_bytes(reader.array()?);
        let replay_count = u32::from_le_bytes(reader.array()?);
        let agent = reader.string()?;
        let reason = reader.string()?;
        let trace_id = match reader.u8()? {
            0 => None,
            1 => Some(reader.string()?),
            other => return Err(DecodeError::Invalid(format!("trace flag {other}"))),
        };
        let lines = u32::from_le_bytes(reader.array()?) as usize;
        // Each line takes at least 4 bytes: a bad count cannot make us allocate wildly.
        if lines > reader.remaining() / 4 {
            return Err(DecodeError::Truncated);
        }
        let mut error_chain = Vec::with_capacity(lines);
        for _ in 0..lines {
            error_chain.push(reader.string()?);
        }
        let request = Bytes::copy_from_slice(reader.bytes()?);
        if reader.remaining() != 0 {
            return Err(DecodeError::Invalid(format!(
                "{} trailing bytes",
                reader.remaining()
            )));
        }
        Ok(DeadLetterRecord {
            id,
            agent,
            time: UNIX_EPOCH + Duration::from_millis(millis),
            request,
            outcome,
            reason,
            error_chain,
            attempts,
            trace_id,
            replay_count,
        })
    }
}

/// The version byte [`DeadLetterRecord::encode`] writes first.
pub const RECORD_VERSION: u8 = 1;

/// A byte string is not a record this version can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// It ends early.
    #[error("dead-letter record is truncated")]
    Truncated,
    /// Written by a newer format.
    #[error(
        "dead-letter record has format version {0}; this steadfast reads version 1: upgrade it"
    )]
    UnknownVersion(u8),
    /// A field holds an impossible value.
    #[error("dead-letter record is invalid: {0}")]
    Invalid(String),
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn outcome_code(kind: OutcomeKind) -> u8 {
    match kind {
        OutcomeKind::Success => 0,
        OutcomeKind::Transient => 1,
        OutcomeKind::RateLimited => 2,
        OutcomeKind::AgentFault => 3,
        OutcomeKind::CallerFault => 4,
    }
}

fn outcome_from_code(code: u8) -> Result<OutcomeKind, DecodeError> {
    Ok(match code {
        0 => OutcomeKind::Success,
        1 => OutcomeKind::Transient,
        2 => OutcomeKind::RateLimited,
        3 => OutcomeKind::AgentFault,
        4 => OutcomeKind::CallerFault,
        other => return Err(DecodeError::Invalid(format!("outcome code {other}"))),
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| DecodeError::Invalid("string is not UTF-8".into()))
    }
}

#[cfg(feature = "serde")]
mod unix_millis_serde {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    pub(super) fn serialize<S: serde::Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::unix_millis(*time))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let millis = <u64 as serde::Deserialize>::deserialize(deserializer)?;
        Ok(UNIX_EPOCH + Duration::from_millis(millis))
    }
}

#[cfg(feature = "serde")]
mod bytes_serde {
    use bytes::Bytes;

    pub(super) fn serialize<S: serde::Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        let bytes = <Vec<u8> as serde::Deserialize>::deserialize(deserializer)?;
        Ok(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeadLetterRecord {
        let mut record = DeadLetterRecord::new(
            "gpt",
            Bytes::from_static(b"{\"prompt\":1}"),
            OutcomeKind::Transient,
        );
        record.time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        record.reason = "timeout".into();
        record.error_chain = vec!["outer".into(), "inner".into()];
        record.attempts = 3;
        record.trace_id = Some("42".into());
        record
    }

    #[test]
    fn a_record_round_trips() {
        let record = sample();
        assert_eq!(DeadLetterRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                DeadLetterRecord::decode(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn an_unknown_version_is_named() {
        let mut bytes = sample().encode();
        bytes[0] = 9;
        assert_eq!(
            DeadLetterRecord::decode(&bytes),
            Err(DecodeError::UnknownVersion(9))
        );
    }
}
