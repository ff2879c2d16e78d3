//! The frame codec: every entry of a segment file is
//!
//! ```text
//! magic "SFDQ" (4) | version (1) | kind (1) | payload length u32 LE (4) | CRC32 u32 LE (4) | payload
//! ```
//!
//! The CRC covers version, kind, length and payload, so a torn or flipped header is caught too.

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 14;
const MAGIC: [u8; 4] = *b"SFDQ";
/// The frame format version this code writes and reads.
pub(crate) const FRAME_VERSION: u8 = 1;
/// A payload larger than this is treated as corruption (a record is far smaller).
pub(crate) const MAX_PAYLOAD: u32 = 64 << 20;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// An encoded [`DeadLetterRecord`](crate::dead_letter::DeadLetterRecord); a later record with the same
    /// id replaces it.
    Record = 1,
    /// A 16-byte id whose record was removed (acknowledged).
    Tombstone = 2,
}

/// Why the bytes at an offset are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The file ends inside the frame.
    Incomplete,
    /// Magic, version, kind or length are wrong, or the CRC does not match.
    Invalid(&'static str),
}

/// Appends one frame to `out`.
pub(crate) fn encode(kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[FRAME_VERSION, kind as u8]);
    crc.update(&len);
    crc.update(payload);
    out.extend_from_slice(&MAGIC);
    out.push(FRAME_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Parses the frame at the start of `bytes`: its kind, payload and total length.
pub(crate) fn decode(bytes: &[u8]) -> Result<(FrameKind, &[u8], usize), FrameError> {
    if bytes.len() < HEADER_LEN {
        // A torn header still has to look like one: garbage is not "incomplete".
        let prefix = bytes.len().min(4);
        if bytes[..prefix] != MAGIC[..prefix] {
            return Err(FrameError::Invalid("bad magic"));
        }
        return Err(FrameError::Incomplete);
    }
    if bytes[..4] != MAGIC {
        return Err(FrameError::Invalid("bad magic"));
    }
    if bytes[4] != FRAME_VERSION {
        return Err(FrameError::Invalid("unknown frame version"));
    }
    let kind = match bytes[5] {
        1 => FrameKind::Record,
        2 => FrameKind::Tombstone,
        _ => return Err(FrameError::Invalid("unknown frame kind")),
    };
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    if len > MAX_PAYLOAD {
        return Err(FrameError::Invalid("length too large"));
    }
    let total = HEADER_LEN + len as usize;
    if bytes.len() < total {
        return Err(FrameError::Incomplete);
    }
    let stored = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[4..10]);
    crc.update(&bytes[HEADER_LEN..total]);
    if crc.finalize() != stored {
        return Err(FrameError::Invalid("CRC mismatch"));
    }
    Ok((kind, &bytes[HEADER_LEN..total], total))
}

/// The offset of the next valid frame at or after `from`, if any.
pub(crate) fn next_valid(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&at| bytes[at..].starts_with(&MAGIC) && decode(&bytes[at..]).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_round_trips() {
        let mut out = Vec::new();
        encode(FrameKind::Tombstone, b"0123456789abcdef", &mut out);
        let (kind, payload, len) = decode(&out).unwrap();
        assert_eq!(
            (kind, payload, len),
            (FrameKind::Tombstone, &b"0123456789abcdef"[..], out.len())
        );
    }

    proptest! {
        #[test]
        fn a_truncated_frame_is_incomplete(payload in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..300) {
            let mut out = Vec::new();
            encode(FrameKind::Record, &payload, &mut out);
            let cut = cut % out.len();
            prop_assert_eq!(decode(&out[..cut]), Err(FrameError::Incomplete));
        }

        #[test]
        fn a_flipped_bit_is_never_accepted(payload in proptest::collection::vec(any::<u8>(), 1..200), bit in 0usize..10_000) {
            let mut out = Vec::new();
            encode(FrameKind::Record, &payload, &mut out);
            let bit = bit % (out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&out).is_err());
        }

        /// Bad input: whatever the bytes, a typed answer, never a panic; an accepted frame is
        /// exactly what `encode` writes for its payload.
        #[test]
        fn arbitrary_bytes_decode_to_a_typed_error_or_a_consistent_frame(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
            magic in any::<bool>(),
        ) {
            if magic && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&MAGIC); // get past the first check
            }
            if let Ok((kind, payload, len)) = decode(&bytes) {
                let mut again = Vec::new();
                encode(kind, payload, &mut again);
                prop_assert_eq!(&bytes[..len], &again[..]);
            }
            if let Some(at) = next_valid(&bytes, 0) {
                prop_assert!(decode(&bytes[at..]).is_ok());
            }
        }

        /// Random overwrites anywhere in a valid frame (header included) are refused with a
        /// typed error unless they left the bytes unchanged.
        #[test]
        fn a_damaged_frame_is_refused(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            damage in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut out = Vec::new();
            encode(FrameKind::Record, &payload, &mut out);
            let original = out.clone();
            for (at, byte) in &damage {
                let at = at.index(out.len());
                out[at] = *byte;
            }
            match decode(&out) {
                Ok(_) => prop_assert_eq!(out, original),
                Err(FrameError::Incomplete | FrameError::Invalid(_)) => {}
            }
        }

        /// A valid frame followed by garbage: the frame still decodes whole, and what follows
        /// is refused, never read as a frame.
        #[test]
        fn garbage_after_a_valid_frame_is_not_a_frame(
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            garbage in proptest::collection::vec(any::<u8>(), 1..100),
        ) {
            let mut out = Vec::new();
            encode(FrameKind::Record, &payload, &mut out);
            let frame_len = out.len();
            out.extend_from_slice(&garbage);
            let (_, decoded, len) = decode(&out).unwrap();
            prop_assert_eq!((decoded, len), (&payload[..], frame_len));
            prop_assert!(decode(&out[len..]).is_err());
            prop_assert_eq!(next_valid(&out, 1), None);
        }
    }
}
