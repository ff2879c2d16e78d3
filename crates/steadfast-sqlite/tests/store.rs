//! SqliteSink on real files: round trips, updates, removals, purge, stats, the size limit,
//! hostile payloads, concurrency within a process, and the layer's view of it.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use rusqlite::types::Value;
use steadfast::BoxError;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{
    Bytes, DeadLetterFailed, DeadLetterId, DeadLetterLayer, DeadLetterRecord, DeadLetterSink,
    DeadLettered, Replay, SinkError,
};
use steadfast_sqlite::{SqliteError, SqliteSink, Synchronous};
use support::record;
use tower::{Layer, ServiceExt, service_fn};

fn sqlite_error(error: &SinkError) -> &SqliteError {
    match error {
        SinkError::Other(inner) => inner
            .downcast_ref::<SqliteError>()
            .unwrap_or_else(|| panic!("not a SqliteError: {inner:?}")),
        other => panic!("expected SinkError::Other(SqliteError), got {other:?}"),
    }
}

/// A second, plain connection to the store's file, as an operator's sqlite3 would have.
fn operator(sink: &SqliteSink) -> rusqlite::Connection {
    rusqlite::Connection::open(sink.path()).unwrap()
}

#[tokio::test]
async fn every_field_round_trips_through_a_reopen_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<_> = (0..20).map(record).collect();
    {
        let sink = SqliteSink::open(dir.path()).unwrap();
        for r in &written {
            sink.append(r.clone()).await.unwrap();
        }
    }
    let sink = SqliteSink::open(dir.path()).unwrap();
    assert_eq!(sink.list(usize::MAX).await.unwrap(), written);
    assert_eq!(sink.list(3).await.unwrap(), written[..3]);
    assert_eq!(
        sink.get(written[3].id).await.unwrap().as_ref(),
        Some(&written[3])
    );
    assert_eq!(sink.get(DeadLetterId::generate()).await.unwrap(), None);
    let stats = sink.stats().await.unwrap();
    assert_eq!(stats.depth, 20);
    assert_eq!(stats.by_agent["gpt"], 10);
    assert_eq!(stats.by_agent["claude"], 10);
    assert_eq!(stats.oldest, Some(written[0].time));
    assert_eq!(stats.appended_last_minute, 20);
}

#[tokio::test]
async fn every_synchronous_mode_round_trips_and_is_reported() {
    for mode in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let r = record(1);
        {
            let sink = SqliteSink::options(dir.path())
                .synchronous(mode)
                .open()
                .unwrap();
            assert_eq!(sink.synchronous(), mode);
            sink.append(r.clone()).await.unwrap();
        }
        let sink = SqliteSink::open(dir.path()).unwrap();
        assert_eq!(sink.list(1).await.unwrap(), vec![r], "{mode:?}");
    }
}

#[tokio::test]
async fn the_columns_hold_what_an_operator_reads() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut r = record(1);
    r.time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    r.error_chain = vec!["outer \"quoted\"".into(), "inner\nline".into()];
    sink.append(r.clone()).await.unwrap();
    let db = operator(&sink);
    let column = |name: &str| -> Value {
        db.query_row(&format!("SELECT {name} FROM dead_letters"), [], |row| {
            row.get(0)
        })
        .unwrap()
    };
    let text = |s: &str| Value::Text(s.to_owned());
    assert_eq!(column("id"), text(&r.id.to_string()));
    assert_eq!(column("agent"), text("claude"));
    assert_eq!(column("created_at_ms"), Value::Integer(1_700_000_000_123));
    assert_eq!(column("created_at"), text("2023-11-14T22:13:20.123Z"));
    assert_eq!(column("outcome"), text("transient"));
    assert_eq!(column("reason"), text("reason 1"));
    assert_eq!(column("attempts"), Value::Integer(2));
    let Value::Text(chain) = column("error_chain") else {
        panic!("error_chain is not text")
    };
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&chain).unwrap(),
        r.error_chain
    );
    assert_eq!(column("request"), Value::Blob(r.request.to_vec()));
    assert_eq!(column("trace_id"), text("trace-1"));
    assert_eq!(column("replay_count"), Value::Integer(1));
    // Appended with replay_count 1: replayed before, at an unknown time, stamped when stored.
    assert_eq!(column("last_replayed_at_ms"), column("stored_at_ms"));
    assert!(matches!(column("stored_at_ms"), Value::Integer(ms) if ms > 1_700_000_000_123));
    let typed: String = db
        .query_row("SELECT typeof(request) FROM dead_letters", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(typed, "blob");
}

#[tokio::test]
async fn removals_updates_and_purges_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (a, mut b, c) = (record(0), record(4), record(8));
    {
        let sink = SqliteSink::open(dir.path()).unwrap();
        for r in [&a, &b, &c] {
            sink.append(r.clone()).await.unwrap();
        }
        assert!(sink.remove(a.id).await.unwrap());
        assert!(!sink.remove(a.id).await.unwrap());
        b.replay_count = 3;
        b.error_chain.push("failed again".into());
        sink.update(b.clone()).await.unwrap();
    }
    let sink = SqliteSink::open(dir.path()).unwrap();
    assert_eq!(sink.list(10).await.unwrap(), vec![b.clone(), c.clone()]);
    assert_eq!(sink.get(a.id).await.unwrap(), None);
    assert_eq!(sink.purge().await.unwrap(), 2);
    assert_eq!(sink.purge().await.unwrap(), 0);
    drop(sink);
    let sink = SqliteSink::open(dir.path()).unwrap();
    assert_eq!(sink.stats().await.unwrap().depth, 0);
}

#[tokio::test]
async fn an_update_stamps_the_replay_time_and_keeps_the_stored_time() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut r = record(0); // replay_count 0
    sink.append(r.clone()).await.unwrap();
    let db = operator(&sink);
    db.execute("UPDATE dead_letters SET stored_at_ms = 42", [])
        .unwrap();
    let stamps = || -> (Option<i64>, i64) {
        db.query_row(
            "SELECT last_replayed_at_ms, stored_at_ms FROM dead_letters",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(stamps(), (None, 42));
    r.reason = "edited, not replayed".into();
    sink.update(r.clone()).await.unwrap();
    assert_eq!(stamps(), (None, 42), "no replay: no stamp");
    r.replay_count = 1;
    sink.update(r.clone()).await.unwrap();
    let (replayed, stored) = stamps();
    assert!(replayed.is_some_and(|at| at > 1_700_000_000_000));
    assert_eq!(stored, 42);
    assert_eq!(sink.get(r.id).await.unwrap(), Some(r));
}

#[tokio::test]
async fn an_update_of_a_removed_record_stores_it_again() {
    // Two replays racing: one succeeded (removed), the other failed (update). Replaying the
    // record twice is better than losing it.
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut r = record(2);
    sink.append(r.clone()).await.unwrap();
    assert!(sink.remove(r.id).await.unwrap());
    r.replay_count += 1;
    sink.update(r.clone()).await.unwrap();
    assert_eq!(sink.list(10).await.unwrap(), vec![r]);
}

#[tokio::test]
async fn appending_an_id_again_replaces_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut r = record(3);
    sink.append(r.clone()).await.unwrap();
    r.request = Bytes::from_static(b"second version");
    sink.append(r.clone()).await.unwrap();
    assert_eq!(sink.list(10).await.unwrap(), vec![r]);
}

#[tokio::test]
async fn stats_count_only_recent_appends_as_recent() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    for n in 0..5 {
        sink.append(record(n)).await.unwrap();
    }
    // Two of them were stored two minutes ago (by this or any other process).
    let two_minutes_ago = i64::try_from(
        (std::time::SystemTime::now() - Duration::from_secs(120))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    operator(&sink)
        .execute(
            "UPDATE dead_letters SET stored_at_ms = ?1 WHERE id IN
               (SELECT id FROM dead_letters ORDER BY id LIMIT 2)",
            [two_minutes_ago],
        )
        .unwrap();
    let stats = sink.stats().await.unwrap();
    assert_eq!(stats.depth, 5);
    assert_eq!(stats.appended_last_minute, 3);
}

#[tokio::test]
async fn an_empty_store_has_empty_stats() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let stats = sink.stats().await.unwrap();
    assert_eq!(stats, steadfast::dead_letter::DeadLetterStats::default());
    assert!(sink.list(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_record_over_the_limit_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 1024;
    let sink = SqliteSink::options(dir.path())
        .max_record_bytes(limit)
        .open()
        .unwrap();
    // Counted: request + error chain as JSON + agent + reason + trace id.
    let mut exact = DeadLetterRecord::new("a", Bytes::new(), OutcomeKind::Transient);
    exact.error_chain = vec!["e".into()]; // `["e"]`: 5 bytes
    exact.reason = "r".into();
    exact.trace_id = Some("t".into());
    exact.request = Bytes::from(vec![b'x'; 1024 - 5 - 3]);
    sink.append(exact.clone()).await.unwrap();

    let mut over = exact.clone();
    over.id = DeadLetterId::generate();
    over.request = Bytes::from(vec![b'x'; 1024 - 5 - 3 + 1]);
    let error = sink.append(over.clone()).await.unwrap_err();
    match sqlite_error(&error) {
        SqliteError::RecordTooLarge {
            id,
            size,
            limit: reported,
        } => assert_eq!((*id, *size, *reported), (over.id, 1025, 1024)),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert!(error.to_string().contains("NOT stored"), "{error}");

    // The error chain counts too, and so does an update.
    let mut long_chain = exact.clone();
    long_chain.id = DeadLetterId::generate();
    long_chain.request = Bytes::new();
    long_chain.error_chain = vec!["e".repeat(2000)];
    assert!(sink.append(long_chain).await.is_err());
    let mut grown = exact.clone();
    grown.request = Bytes::from(vec![b'y'; 4096]);
    assert!(sink.update(grown).await.is_err());

    assert_eq!(sink.list(10).await.unwrap(), vec![exact]);
}

#[tokio::test]
async fn the_default_limit_refuses_a_request_over_16_mib() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let big = DeadLetterRecord::new(
        "gpt",
        Bytes::from(vec![0u8; 16 << 20]),
        OutcomeKind::Transient,
    );
    let error = sink.append(big).await.unwrap_err();
    assert!(matches!(
        sqlite_error(&error),
        SqliteError::RecordTooLarge { limit, .. } if *limit == 16 << 20
    ));
    assert_eq!(sink.stats().await.unwrap().depth, 0);
}

#[tokio::test]
async fn the_layer_reports_an_oversize_record_as_failed_never_as_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::options(dir.path())
        .max_record_bytes(100)
        .open()
        .unwrap();
    let layer = DeadLetterLayer::new(&steadfast::Agent::new("gpt"), sink.clone())
        .encoder(|prompt: &String| Ok::<_, BoxError>(Bytes::from(prompt.clone())));
    let agent = || {
        layer.layer(service_fn(|_prompt: String| async {
            Err::<String, BoxError>("model overloaded".into())
        }))
    };

    let error = agent().oneshot("x".repeat(200)).await.unwrap_err();
    let failed = error
        .downcast_ref::<DeadLetterFailed>()
        .unwrap_or_else(|| panic!("expected DeadLetterFailed, got {error}"));
    assert!(matches!(
        sqlite_error(failed.sink_error()),
        SqliteError::RecordTooLarge { limit: 100, .. }
    ));
    assert!(error.downcast_ref::<DeadLettered>().is_none());
    assert_eq!(sink.stats().await.unwrap().depth, 0);

    let error = agent().oneshot("short".into()).await.unwrap_err();
    let dead = error.downcast_ref::<DeadLettered>().expect("stored");
    let stored = sink
        .get(dead.id())
        .await
        .unwrap()
        .expect("the id it returned");
    assert_eq!(stored.request, Bytes::from("short"));
    assert_eq!(stored.error_chain, vec!["model overloaded"]);
}

#[tokio::test]
async fn hostile_bytes_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let journal_frame = b"SFDQ\x01\x01\xff\xff\xff\x7f\x12\x34\x56\x78".to_vec();
    let payloads: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0],
        vec![0; 4096],
        journal_frame.repeat(50),
        b"\xff\xfe\xfd invalid UTF-8 \xc3\x28 \xed\xa0\x80".to_vec(),
        b"SQLite format 3\0".to_vec(),
        b"'); DROP TABLE dead_letters; --".to_vec(),
        (0..=255u8).cycle().take(70_000).collect(),
    ];
    let mut written = Vec::new();
    for (n, payload) in payloads.into_iter().enumerate() {
        let mut r = record(n);
        r.request = Bytes::from(payload);
        r.agent = format!("agent\0with NUL {n}");
        r.reason = "\u{0}\u{1}\u{7f}\u{feff}'\"\\".into();
        r.error_chain = vec![
            String::new(),
            "]\"}{[".into(),
            "\0".into(),
            "naïve 🦀 \u{10ffff}".into(),
        ];
        r.trace_id = Some("\0".into());
        sink.append(r.clone()).await.unwrap();
        written.push(r);
    }
    drop(sink);
    let sink = SqliteSink::open(dir.path()).unwrap();
    assert_eq!(sink.list(usize::MAX).await.unwrap(), written);
    let stats = sink.stats().await.unwrap();
    assert_eq!(stats.by_agent.len(), written.len(), "{:?}", stats.by_agent);
    assert!(stats.by_agent.contains_key("agent\0with NUL 3"));
}

#[tokio::test]
async fn extreme_field_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut written = Vec::new();
    for (n, millis) in [0i64, -1, -86_400_000_123, i64::MAX]
        .into_iter()
        .enumerate()
    {
        let mut r = record(n);
        r.id = DeadLetterId::from_u128(n as u128); // ids need not be time-ordered
        r.time = if millis >= 0 {
            UNIX_EPOCH + Duration::from_millis(millis as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
        };
        r.attempts = u32::MAX;
        r.replay_count = u32::MAX;
        r.error_chain = Vec::new();
        r.trace_id = None;
        sink.append(r.clone()).await.unwrap();
        written.push(r);
    }
    let mut max_id = record(9);
    max_id.id = DeadLetterId::from_u128(u128::MAX);
    sink.append(max_id.clone()).await.unwrap();
    written.push(max_id);
    assert_eq!(sink.list(usize::MAX).await.unwrap(), written);
}

#[tokio::test]
async fn a_time_beyond_64_bit_milliseconds_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut r = record(0);
    r.time = UNIX_EPOCH + Duration::from_millis(u64::MAX);
    let error = sink.append(r).await.unwrap_err();
    assert!(matches!(
        sqlite_error(&error),
        SqliteError::Unrepresentable { .. }
    ));
    assert_eq!(sink.stats().await.unwrap().depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_appending_200_each_store_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..200 {
                let r = record(task * 1000 + n);
                ids.push(r.id);
                sink.append(r).await.unwrap();
            }
            ids
        }));
    }
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    assert_eq!(ids.len(), 3200);
    drop(sink);
    let sink = SqliteSink::open(dir.path()).unwrap();
    let stored: Vec<_> = sink
        .list(usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored.len(), 3200, "no duplicates, nothing missing");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_on_one_file_write_and_read_each_others_records() {
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteSink::open(dir.path()).unwrap();
    let second = SqliteSink::options(dir.path())
        .synchronous(Synchronous::Normal)
        .open()
        .unwrap();
    let writer = |sink: SqliteSink, base: usize| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..150 {
                let r = record(base + n);
                ids.push(r.id);
                sink.append(r.clone()).await.unwrap();
                // Reads interleave with the other sink's commits and see this record.
                assert_eq!(sink.get(r.id).await.unwrap(), Some(r));
                if n % 50 == 0 {
                    sink.stats().await.unwrap();
                }
            }
            ids
        })
    };
    let (a, b) = (writer(first.clone(), 0), writer(second.clone(), 10_000));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for sink in [&first, &second] {
        let stats = sink.stats().await.unwrap();
        assert_eq!(stats.depth, 300, "each sees the other's appends");
        assert_eq!(stats.appended_last_minute, 300);
    }
    for id in a.iter().chain(&b) {
        assert!(first.get(*id).await.unwrap().is_some());
    }
    // A removal through one is seen by the other.
    assert!(second.remove(a[0]).await.unwrap());
    assert_eq!(first.get(a[0]).await.unwrap(), None);
}

#[tokio::test]
async fn a_writer_waits_for_another_connection_and_gives_up_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::options(dir.path())
        .busy_timeout(Duration::from_millis(50))
        .open()
        .unwrap();
    let mut db = operator(&sink);
    let lock = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let r = record(1);
    let error = sink.append(r.clone()).await.unwrap_err();
    match sqlite_error(&error) {
        SqliteError::Busy { timeout, path, .. } => {
            assert_eq!(*timeout, Duration::from_millis(50));
            assert_eq!(path, sink.path());
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // Readers are not blocked by a writer (WAL).
    assert_eq!(sink.stats().await.unwrap().depth, 0);
    drop(lock);
    sink.append(r.clone()).await.unwrap();
    assert_eq!(sink.list(10).await.unwrap(), vec![r]);
}

#[tokio::test]
async fn a_write_that_fails_in_a_group_commit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut db = operator(&sink);
    // An operator's trigger refuses one agent's records.
    db.execute_batch(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON dead_letters WHEN NEW.agent = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
    )
    .unwrap();
    // Holding the write lock makes the writer wait, so the appends below queue up and are
    // committed together.
    let lock = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let good: Vec<_> = (0..6).map(record).collect();
    let mut poison = record(100);
    poison.agent = "poison".into();
    let mut pending = Vec::new();
    for (n, r) in good.iter().enumerate() {
        pending.push(sink.append(r.clone()));
        if n == 2 {
            pending.push(sink.append(poison.clone()));
        }
    }
    drop(lock);
    let mut results = Vec::new();
    for append in pending {
        results.push(append.await);
    }
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let error = results[3].as_ref().unwrap_err();
    assert!(
        error.to_string().contains("poison refused"),
        "the trigger's message is kept: {error}"
    );
    assert_eq!(sink.list(100).await.unwrap(), good);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_replay_removes_successes_and_stamps_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut records = Vec::new();
    for (n, body) in ["ok one", "bad two", "ok three"].into_iter().enumerate() {
        let mut r = record(n * 4); // replay_count 0
        r.request = Bytes::from(body);
        sink.append(r.clone()).await.unwrap();
        records.push(r);
    }
    let started = tokio::time::Instant::now();
    let agent = service_fn(|body: Bytes| async move {
        if body.starts_with(b"ok") {
            Ok(())
        } else {
            Err::<(), BoxError>("still down".into())
        }
    });
    let report = Replay::new(&sink)
        .rate_per_second(1.0)
        .unwrap()
        .run(agent, |r: &DeadLetterRecord| Ok(r.request.clone()))
        .await
        .unwrap();
    assert_eq!((report.attempted, report.succeeded), (3, 2));
    // Three calls at one per second: the first at once, the last two seconds later.
    assert!(started.elapsed() >= Duration::from_secs(2));
    let left = sink.list(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, records[1].id);
    assert_eq!(left[0].replay_count, 1);
    let replayed: Option<i64> = operator(&sink)
        .query_row("SELECT last_replayed_at_ms FROM dead_letters", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(replayed.is_some());
}

fn any_record() -> impl Strategy<Value = DeadLetterRecord> {
    (
        any::<u128>(),
        ".{0,40}",
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::sample::select(OutcomeKind::ALL.to_vec()),
        ".{0,40}",
        prop::collection::vec(".{0,60}", 0..6),
        any::<u32>(),
        prop::option::of(".{0,40}"),
        any::<u32>(),
    )
        .prop_map(
            |(
                id,
                agent,
                millis,
                request,
                outcome,
                reason,
                error_chain,
                attempts,
                trace_id,
                replay_count,
            )| {
                DeadLetterRecord {
                    id: DeadLetterId::from_u128(id),
                    agent,
                    time: if millis >= 0 {
                        UNIX_EPOCH + Duration::from_millis(millis as u64)
                    } else {
                        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
                    },
                    request: Bytes::from(request),
                    outcome,
                    reason,
                    error_chain,
                    attempts,
                    trace_id,
                    replay_count,
                }
            },
        )
}

/// Any record (any id, any time a 64-bit millisecond count holds, any bytes, any Unicode
/// text, NUL included) is read back equal, by `get` and by `list`, after a reopen.
#[test]
fn any_record_round_trips() {
    let runtime = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    support::check(
        "any_record_round_trips",
        64,
        prop::collection::vec(any_record(), 1..4),
        |records| {
            runtime.block_on(async {
                let sink = SqliteSink::open(dir.path()).unwrap();
                sink.purge().await.unwrap();
                for r in &records {
                    sink.append(r.clone()).await.unwrap();
                }
                drop(sink);
                let sink = SqliteSink::open(dir.path()).unwrap();
                // A repeated id replaces the earlier record.
                let expected: std::collections::BTreeMap<_, _> =
                    records.iter().map(|r| (r.id, r.clone())).collect();
                for r in expected.values() {
                    let got = sink.get(r.id).await.unwrap();
                    prop_assert_eq!(got.as_ref(), Some(r));
                }
                let listed = sink.list(usize::MAX).await.unwrap();
                prop_assert_eq!(listed, expected.into_values().collect::<Vec<_>>());
                Ok(())
            })
        },
    );
}
