//! Replay and monitoring over the sink trait.
#![cfg(feature = "dead-letter")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use steadfast::BoxError;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{
    DeadLetterRecord, DeadLetterSink, DlqAlert, MemorySink, Monitor, Replay,
};
use tower::service_fn;

fn record(agent: &str, body: &'static str) -> DeadLetterRecord {
    DeadLetterRecord::new(
        agent,
        Bytes::from_static(body.as_bytes()),
        OutcomeKind::Transient,
    )
}

fn decode(record: &DeadLetterRecord) -> Result<String, BoxError> {
    Ok(String::from_utf8(record.request.to_vec())?)
}

#[tokio::test]
async fn replay_removes_successes_and_keeps_failures_with_a_higher_replay_count() {
    let sink = MemorySink::new(10);
    for body in ["ok-1", "fail-2", "ok-3"] {
        sink.append(record("gpt", body)).await.unwrap();
    }
    let agent = service_fn(|p: String| async move {
        if p.starts_with("ok") {
            Ok::<_, BoxError>(())
        } else {
            Err("still down".into())
        }
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = seen.clone();
    let report = Replay::new(&sink)
        .on_progress(move |r, result| {
            progress
                .lock()
                .unwrap()
                .push((r.request.clone(), result.is_ok()));
        })
        .run(agent, decode)
        .await
        .unwrap();

    assert_eq!(report.attempted, 3);
    assert_eq!(report.succeeded, 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].1, "still down");
    let left = sink.records();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].request, Bytes::from("fail-2"));
    assert_eq!(left[0].replay_count, 1);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>(),
        ["ok-1", "fail-2", "ok-3"]
    );
}

#[tokio::test]
async fn an_undecodable_record_is_kept() {
    let sink = MemorySink::new(10);
    sink.append(DeadLetterRecord::new(
        "gpt",
        Bytes::from_static(&[0xff, 0xfe]),
        OutcomeKind::Transient,
    ))
    .await
    .unwrap();
    let agent = service_fn(|_: String| async { Ok::<_, BoxError>(()) });
    let report = Replay::new(&sink).run(agent, decode).await.unwrap();
    assert_eq!(report.succeeded, 0);
    assert_eq!(sink.records()[0].replay_count, 1);
}

#[tokio::test(start_paused = true)]
async fn replay_is_rate_limited() {
    let sink = MemorySink::new(10);
    for _ in 0..5 {
        sink.append(record("gpt", "ok")).await.unwrap();
    }
    let agent = service_fn(|_: String| async { Ok::<_, BoxError>(()) });
    let start = tokio::time::Instant::now();
    let report = Replay::new(&sink)
        .rate_per_second(2.0)
        .unwrap()
        .run(agent, decode)
        .await
        .unwrap();
    assert_eq!(report.succeeded, 5);
    // The first call goes at once, then one every 500 ms.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn replay_honours_the_limit() {
    let sink = MemorySink::new(10);
    for _ in 0..5 {
        sink.append(record("gpt", "ok")).await.unwrap();
    }
    let agent = service_fn(|_: String| async { Ok::<_, BoxError>(()) });
    let report = Replay::new(&sink)
        .limit(2)
        .run(agent, decode)
        .await
        .unwrap();
    assert_eq!(report.attempted, 2);
    assert_eq!(sink.len(), 3);
}

#[tokio::test]
async fn stats_count_by_agent_and_the_monitor_alerts_over_the_threshold() {
    let sink = MemorySink::new(10);
    for agent in ["gpt", "gpt", "claude"] {
        sink.append(record(agent, "x")).await.unwrap();
    }
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let raised = alerts.clone();
    let monitor = Monitor::new(sink.clone(), "main")
        .max_depth(2)
        .max_oldest_age(Duration::from_secs(3600))
        .on_alert(move |alert| raised.lock().unwrap().push(alert.clone()));

    let (stats, returned) = monitor.check().await.unwrap();
    assert_eq!(stats.depth, 3);
    assert_eq!(stats.appended_last_minute, 3);
    assert_eq!(stats.by_agent.get("gpt"), Some(&2));
    assert_eq!(stats.by_agent.get("claude"), Some(&1));
    assert!(stats.oldest_age() < Duration::from_secs(60));
    assert_eq!(
        returned,
        vec![DlqAlert::DepthOver {
            depth: 3,
            threshold: 2
        }]
    );
    assert_eq!(*alerts.lock().unwrap(), returned);

    let id = sink.records()[0].id;
    sink.remove(id).await.unwrap();
    let (_, returned) = monitor.check().await.unwrap();
    assert!(returned.is_empty());
}

#[tokio::test(start_paused = true)]
async fn concurrency_keeps_that_many_calls_in_flight_and_no_more() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sink = MemorySink::new(10);
    for body in ["a", "b", "c", "d", "e"] {
        sink.append(record("gpt", body)).await.unwrap();
    }
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (now_in, peak_in) = (now.clone(), peak.clone());
    let agent = service_fn(move |_: String| {
        let (now, peak) = (now_in.clone(), peak_in.clone());
        async move {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, BoxError>(())
        }
    });
    let started = tokio::time::Instant::now();
    let report = Replay::new(&sink)
        .concurrency(2)
        .unwrap()
        .run(agent, decode)
        .await
        .unwrap();
    assert_eq!(report.succeeded, 5);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    // 5 calls of 1 s, two at a time: 3 s, not 5 (one at a time) nor 1 (all at once).
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(sink.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_rate_spaces_starts_while_earlier_calls_keep_running() {
    let sink = MemorySink::new(10);
    for body in ["a", "b", "c"] {
        sink.append(record("gpt", body)).await.unwrap();
    }
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = starts.clone();
    let origin = tokio::time::Instant::now();
    let agent = service_fn(move |_: String| {
        seen.lock().unwrap().push(origin.elapsed());
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>(())
        }
    });
    Replay::new(&sink)
        .rate_per_second(1.0)
        .unwrap()
        .concurrency(3)
        .unwrap()
        .run(agent, decode)
        .await
        .unwrap();
    assert_eq!(
        *starts.lock().unwrap(),
        [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(2)
        ]
    );
    // The last call started at 2 s and took 5 s: all done at 7 s, the calls overlapped.
    assert_eq!(origin.elapsed(), Duration::from_secs(7));
}

#[tokio::test]
async fn a_filter_replays_only_matching_records_and_leaves_the_others_untouched() {
    let sink = MemorySink::new(10);
    for (agent, body) in [
        ("gpt", "g1"),
        ("claude", "c1"),
        ("gpt", "g2"),
        ("gpt", "g3"),
    ] {
        sink.append(record(agent, body)).await.unwrap();
    }
    let agent = service_fn(|_: String| async { Ok::<_, BoxError>(()) });
    let report = Replay::new(&sink)
        .filter(|record| record.agent == "gpt")
        .limit(2)
        .run(agent, decode)
        .await
        .unwrap();
    assert_eq!((report.attempted, report.succeeded), (2, 2));
    let left: Vec<_> = sink.records().iter().map(|r| r.request.clone()).collect();
    assert_eq!(left, [Bytes::from("c1"), Bytes::from("g3")]);
}

#[test]
fn concurrency_zero_and_huge_are_refused_by_name() {
    let sink = MemorySink::new(1);
    for concurrency in [0, steadfast::dead_letter::MAX_CONCURRENCY + 1, usize::MAX] {
        let error = Replay::new(&sink).concurrency(concurrency).unwrap_err();
        assert_eq!(error.setting(), "concurrency");
    }
}
