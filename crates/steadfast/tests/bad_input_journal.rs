//! Bad input: dead-letter bytes from disk and from the broker. `DeadLetterRecord::decode` (what the
//! journal and `steadfast-amqp` run on every stored or delivered message) and journal segments
//! holding garbage: a typed error or a recovered journal, never a panic.
//!
//! cargo-fuzz needs a nightly toolchain; this is the stable route: proptest over arbitrary
//! bytes and random damage to valid input, a modest number of cases per run. The frame codec's
//! own properties are unit tests next to it (`dead_letter::journal::frame`).
#![cfg(feature = "dead-letter")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proptest::prelude::*;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{
    DeadLetterRecord, DeadLetterSink, FsyncPolicy, JournalError, JournalSink,
};

fn record(n: usize) -> DeadLetterRecord {
    let mut record = DeadLetterRecord::new(
        "gpt",
        Bytes::from(format!("request {n}")),
        OutcomeKind::RateLimited,
    );
    record.error_chain = vec![format!("error {n}"), "cause".into()];
    record
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dlq"))
        .collect();
    files.sort();
    files
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Decodes `bytes`; an accepted record must survive its own round trip.
fn decode_checked(bytes: &[u8]) {
    match DeadLetterRecord::decode(bytes) {
        Ok(record) => assert_eq!(DeadLetterRecord::decode(&record.encode()).unwrap(), record),
        Err(error) => assert!(error.to_string().starts_with("dead-letter record")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_a_typed_decode_error_or_a_record(
        mut bytes in prop::collection::vec(any::<u8>(), 0..256),
        current_version in any::<bool>(),
    ) {
        if current_version && !bytes.is_empty() {
            bytes[0] = steadfast::dead_letter::RECORD_VERSION; // get past the version check
        }
        decode_checked(&bytes);
    }

    #[test]
    fn a_damaged_record_is_a_typed_decode_error_or_a_record(
        n in 0usize..1000,
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = record(n).encode();
        for (at, byte) in &damage {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        decode_checked(&bytes);
        decode_checked(&bytes[..cut.index(bytes.len())]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Valid records, then garbage (a crash in the middle of an append, or a stray write): the
    /// reopen cuts exactly the garbage as a torn tail and keeps every record.
    #[test]
    fn garbage_after_valid_records_is_cut_as_a_torn_tail(
        count in 1usize..6,
        garbage in prop::collection::vec(any::<u8>(), 1..200),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let written: Vec<_> = (0..count).map(record).collect();
            {
                let journal = JournalSink::options(dir.path()).fsync(FsyncPolicy::Never).open().unwrap();
                for r in &written {
                    journal.append(r.clone()).await.unwrap();
                }
            }
            let file = segments(dir.path()).pop().unwrap();
            let good_len = fs::metadata(&file).unwrap().len();
            fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(&garbage).unwrap();

            let journal = JournalSink::open(dir.path()).unwrap();
            let torn = journal.open_report().torn_tail.clone().expect("a torn tail");
            assert_eq!(
                (torn.file.as_path(), torn.offset, torn.dropped_bytes),
                (file.as_path(), good_len, garbage.len() as u64)
            );
            assert_eq!(journal.list(usize::MAX).await.unwrap(), written);
            assert_eq!(fs::metadata(&file).unwrap().len(), good_len);
        });
    }

    /// A last segment that is nothing but arbitrary bytes opens (nothing in it is a record, so
    /// it is all torn tail); an earlier one is refused as corrupt naming the file, or with
    /// `skip_corrupt` quarantined while the later segment's records survive.
    #[test]
    fn a_segment_of_arbitrary_bytes_is_recovered_or_refused_never_a_panic(
        garbage in prop::collection::vec(any::<u8>(), 1..512),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            // 1.5 KB records in 4 KiB segments: about two records per segment.
            let written: Vec<_> = (0..8)
                .map(|n| {
                    let mut r = record(n);
                    r.request = Bytes::from(vec![b'x'; 1500]);
                    r
                })
                .collect();
            {
                let journal = JournalSink::options(dir.path())
                    .max_segment_bytes(4096)
                    .fsync(FsyncPolicy::Never)
                    .open()
                    .unwrap();
                for r in &written {
                    journal.append(r.clone()).await.unwrap();
                }
            }
            let files = segments(dir.path());
            assert!(files.len() >= 2, "{} segments", files.len());

            // The last segment: all garbage is a torn tail.
            let last = files.last().unwrap();
            let last_len = fs::metadata(last).unwrap().len();
            let saved = fs::read(last).unwrap();
            fs::write(last, &garbage).unwrap();
            {
                let journal = JournalSink::open(dir.path()).unwrap();
                let torn = journal.open_report().torn_tail.clone().expect("a torn tail");
                assert_eq!((torn.offset, torn.dropped_bytes), (0, garbage.len() as u64));
                let left = journal.list(usize::MAX).await.unwrap();
                assert!(left.len() < written.len() && written.starts_with(&left));
            }
            fs::write(last, &saved).unwrap();
            assert_eq!(fs::metadata(last).unwrap().len(), last_len);

            // The first segment: corruption in the middle of the journal.
            let first = &files[0];
            fs::write(first, &garbage).unwrap();
            match JournalSink::open(dir.path()) {
                Err(JournalError::Corrupt { file, offset, .. }) => {
                    assert_eq!((&file, offset), (first, 0));
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            let journal = JournalSink::options(dir.path()).skip_corrupt(true).open().unwrap();
            let report = journal.open_report().clone();
            assert_eq!(report.quarantined.len(), 1);
            assert_eq!(report.quarantined[0].len, garbage.len() as u64);
            let left = journal.list(usize::MAX).await.unwrap();
            assert!(!left.is_empty() && left.iter().all(|r| written.contains(r)));
            assert_eq!(left.last(), written.last());
        });
    }
}
