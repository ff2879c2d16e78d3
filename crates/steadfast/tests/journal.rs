//! JournalSink on real files: round trip, rotation, retention, recovery, locking, clones.
#![cfg(feature = "dead-letter")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{
    DeadLetterRecord, DeadLetterSink, FsyncPolicy, JournalError, JournalSink,
};

fn record(n: usize) -> DeadLetterRecord {
    let mut record = DeadLetterRecord::new(
        if n % 2 == 0 { "gpt" } else { "claude" },
        Bytes::from(format!("request {n} {}", "x".repeat(n % 50))),
        OutcomeKind::Transient,
    );
    record.error_chain = vec![format!("error {n}")];
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

#[tokio::test]
async fn records_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<_> = (0..20).map(record).collect();
    {
        let journal = JournalSink::open(dir.path()).unwrap();
        for r in &written {
            journal.append(r.clone()).await.unwrap();
        }
    }
    let journal = JournalSink::open(dir.path()).unwrap();
    assert_eq!(journal.open_report().records, 20);
    assert!(journal.open_report().torn_tail.is_none());
    assert_eq!(journal.list(usize::MAX).await.unwrap(), written);
    assert_eq!(
        journal.get(written[3].id).await.unwrap().as_ref(),
        Some(&written[3])
    );
    let stats = journal.stats().await.unwrap();
    assert_eq!(stats.depth, 20);
    assert_eq!(stats.by_agent["gpt"], 10);
    assert_eq!(stats.oldest, Some(written[0].time));
}

#[tokio::test]
async fn removals_and_updates_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b) = (record(1), record(2));
    {
        let journal = JournalSink::open(dir.path()).unwrap();
        journal.append(a.clone()).await.unwrap();
        journal.append(b.clone()).await.unwrap();
        assert!(journal.remove(a.id).await.unwrap());
        assert!(!journal.remove(a.id).await.unwrap());
        b.replay_count = 3;
        journal.update(b.clone()).await.unwrap();
    }
    let journal = JournalSink::open(dir.path()).unwrap();
    assert_eq!(journal.list(10).await.unwrap(), vec![b]);
    assert_eq!(journal.get(a.id).await.unwrap(), None);
}

#[tokio::test]
async fn segments_rotate_by_size_and_empty_old_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::options(dir.path())
        .max_segment_bytes(4096)
        .open()
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..100 {
        let r = record(n);
        ids.push(r.id);
        journal.append(r).await.unwrap();
    }
    let before = segments(dir.path()).len();
    assert!(before >= 3, "{before} segments");
    for id in &ids[..90] {
        journal.remove(*id).await.unwrap();
    }
    let after = segments(dir.path()).len();
    assert!(after < before, "{after} >= {before}");
    drop(journal);
    let journal = JournalSink::open(dir.path()).unwrap();
    let left: Vec<_> = journal
        .list(usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ids[90..]);
}

#[tokio::test]
async fn retention_by_count_deletes_the_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::options(dir.path())
        .max_segment_bytes(4096)
        .max_segments(2)
        .open()
        .unwrap();
    for n in 0..100 {
        journal.append(record(n)).await.unwrap();
    }
    assert!(segments(dir.path()).len() <= 2);
    let depth = journal.stats().await.unwrap().depth;
    assert!(depth > 0 && depth < 100, "{depth}");
}

#[tokio::test]
async fn retention_by_age_deletes_segments_whose_records_are_old() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::options(dir.path())
        .max_segment_bytes(4096)
        .max_age(Duration::from_secs(3600))
        .open()
        .unwrap();
    for n in 0..60 {
        let mut old = record(n);
        old.time = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        journal.append(old).await.unwrap();
    }
    let fresh = record(1000);
    journal.append(fresh.clone()).await.unwrap();
    // Only the active segment may keep old records.
    assert_eq!(segments(dir.path()).len(), 1);
    assert!(journal.list(usize::MAX).await.unwrap().contains(&fresh));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<_> = (0..5).map(record).collect();
    {
        let journal = JournalSink::open(dir.path()).unwrap();
        for r in &written {
            journal.append(r.clone()).await.unwrap();
        }
    }
    let file = segments(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&file).unwrap().len();
    // A crash in the middle of the next append: a header and half a payload.
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(b"SFDQ\x01\x01\xff\x00\x00\x00\x12\x34")
        .unwrap();
    drop(f);

    let journal = JournalSink::open(dir.path()).unwrap();
    let torn = journal
        .open_report()
        .torn_tail
        .clone()
        .expect("torn tail reported");
    assert_eq!(torn.file, file);
    assert_eq!(torn.offset, good_len);
    assert_eq!(torn.dropped_bytes, 12);
    assert_eq!(fs::metadata(&file).unwrap().len(), good_len);
    assert_eq!(journal.list(10).await.unwrap(), written);
    // Appends after recovery are readable after another reopen.
    let next = record(6);
    journal.append(next.clone()).await.unwrap();
    drop(journal);
    let journal = JournalSink::open(dir.path()).unwrap();
    assert!(journal.open_report().torn_tail.is_none());
    assert_eq!(journal.list(10).await.unwrap().last(), Some(&next));
}

/// Writes 3 records and flips a byte inside the second; returns the file and its offset.
async fn corrupt_middle(dir: &Path) -> (PathBuf, u64, Vec<DeadLetterRecord>) {
    let written: Vec<_> = (0..3).map(record).collect();
    let journal = JournalSink::open(dir).unwrap();
    let mut offsets = Vec::new();
    let file = segments(dir).pop().unwrap();
    for r in &written {
        offsets.push(fs::metadata(&file).unwrap().len());
        journal.append(r.clone()).await.unwrap();
    }
    drop(journal);
    let mut bytes = fs::read(&file).unwrap();
    bytes[offsets[1] as usize + 20] ^= 0xff;
    fs::write(&file, bytes).unwrap();
    (file, offsets[1], written)
}

#[tokio::test]
async fn a_corrupt_middle_record_is_refused_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (file, offset, _) = corrupt_middle(dir.path()).await;
    let err = JournalSink::open(dir.path()).unwrap_err();
    match &err {
        JournalError::Corrupt {
            file: f, offset: o, ..
        } => {
            assert_eq!((f, *o), (&file, offset));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()) && message.contains(&offset.to_string()));
    assert!(message.contains("skip_corrupt"));
}

#[tokio::test]
async fn skip_corrupt_quarantines_the_bad_bytes_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (file, offset, written) = corrupt_middle(dir.path()).await;
    let journal = JournalSink::options(dir.path())
        .skip_corrupt(true)
        .open()
        .unwrap();
    let report = journal.open_report().clone();
    assert_eq!(report.quarantined.len(), 1);
    let q = &report.quarantined[0];
    assert_eq!((&q.file, q.offset), (&file, offset));
    assert!(q.quarantine_file.exists());
    assert_eq!(fs::metadata(&q.quarantine_file).unwrap().len(), q.len);
    assert_eq!(
        journal.list(10).await.unwrap(),
        vec![written[0].clone(), written[2].clone()]
    );
    drop(journal);
    // The segment was rewritten: a normal open now succeeds.
    let journal = JournalSink::open(dir.path()).unwrap();
    assert_eq!(journal.open_report().records, 2);
}

#[tokio::test]
async fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let first = JournalSink::open(dir.path()).unwrap();
    let err = JournalSink::open(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err:?}");
    drop(first);
    JournalSink::open(dir.path()).unwrap();
}

#[tokio::test]
async fn a_missing_directory_is_an_error_when_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = JournalSink::options(&missing)
        .create(false)
        .open()
        .unwrap_err();
    assert!(matches!(err, JournalError::Missing { .. }));
    assert!(err.to_string().contains("nope"));
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::open(dir.path().join("dlq")).unwrap();
    journal.append(record(1)).await.unwrap();
    for file in segments(journal.dir()) {
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let dir_mode = fs::metadata(journal.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_through_clones_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let journal = JournalSink::options(dir.path())
        .max_segment_bytes(8192)
        .open()
        .unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..50 {
                let r = record(task * 100 + n);
                ids.push(r.id);
                journal.append(r).await.unwrap();
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    drop(journal);
    let journal = JournalSink::open(dir.path()).unwrap();
    let mut stored: Vec<_> = journal
        .list(usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    stored.sort();
    assert_eq!(stored, ids);
}

#[tokio::test]
async fn every_fsync_policy_round_trips() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = record(1);
        {
            let journal = JournalSink::options(dir.path())
                .fsync(policy)
                .open()
                .unwrap();
            journal.append(r.clone()).await.unwrap();
        }
        let journal = JournalSink::open(dir.path()).unwrap();
        assert_eq!(journal.list(1).await.unwrap(), vec![r], "{policy:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random appends and removals, then the last segment cut at a random point: every record
    /// wholly before the cut survives exactly, nothing after it appears, and the cut is reported.
    #[test]
    fn any_truncation_keeps_every_whole_record(
        ops in proptest::collection::vec(any::<bool>(), 1..40),
        cut in any::<proptest::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let journal = JournalSink::open(dir.path()).unwrap();
            let file = segments(dir.path()).pop().unwrap();
            // After each frame: the file length and the live records at that point.
            let mut live: Vec<DeadLetterRecord> = Vec::new();
            let mut checkpoints = vec![(0u64, Vec::new())];
            for (n, append) in ops.iter().enumerate() {
                if *append || live.is_empty() {
                    let r = record(n);
                    journal.append(r.clone()).await.unwrap();
                    live.push(r);
                } else {
                    let gone = live.remove(n % live.len());
                    journal.remove(gone.id).await.unwrap();
                }
                checkpoints.push((fs::metadata(&file).unwrap().len(), live.clone()));
            }
            drop(journal);
            let total = checkpoints.last().unwrap().0;
            let cut = cut.index(usize::try_from(total).unwrap() + 1) as u64;
            fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(cut).unwrap();

            let journal = JournalSink::open(dir.path()).unwrap();
            let (len, expected) = checkpoints.iter().rev().find(|(len, _)| *len <= cut).unwrap();
            let report = journal.open_report();
            assert_eq!(report.torn_tail.is_some(), *len != cut);
            assert_eq!(&journal.list(usize::MAX).await.unwrap(), expected);
        });
    }
}

#[tokio::test]
async fn a_read_only_open_inspects_a_locked_journal_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let writer = JournalSink::open(dir.path()).unwrap();
    let r = record(1);
    writer.append(r.clone()).await.unwrap();
    let file = segments(dir.path()).pop().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(b"SFDQ\x01").unwrap(); // a torn tail, as if an append were in flight
    drop(f);
    let len = fs::metadata(&file).unwrap().len();

    let reader = JournalSink::options(dir.path())
        .read_only(true)
        .open()
        .unwrap();
    assert_eq!(reader.list(10).await.unwrap(), vec![r.clone()]);
    assert!(reader.open_report().torn_tail.is_some());
    assert_eq!(
        fs::metadata(&file).unwrap().len(),
        len,
        "read-only must not truncate"
    );
    let err = reader.remove(r.id).await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(reader.append(record(2)).await.is_err());

    let missing = JournalSink::options(dir.path().join("absent"))
        .read_only(true)
        .open();
    assert!(matches!(missing, Err(JournalError::Missing { .. })));
}
