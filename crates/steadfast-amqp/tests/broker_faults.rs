//! Broker faults against the real RabbitMQ at `STEADFAST_AMQP_URL` (default
//! amqp://guest:guest@127.0.0.1:5672/%2f), injected by a TCP proxy on 127.0.0.1: a slow broker
//! and connections reset while publisher confirms are in flight. Nothing may be lost;
//! duplicates are allowed only as at-least-once delivery (a record whose confirm was lost).
//! These tests FAIL when the broker is unreachable: CI must start it.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use steadfast::dead_letter::DeadLetterSink;
use steadfast_amqp::AmqpSink;
use support::proxy::{Proxy, broker_addr};
use support::{broker_url, config, direct_channel, drain_queue, record, settled_depth, unique};
use tokio::time::Instant;

/// Every test must finish well within this.
const BUDGET: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_still_confirms_every_append_in_order_without_spilling() {
    let started = Instant::now();
    let url = broker_url();
    let proxy = Proxy::start(broker_addr(&url)).await;
    // Every chunk, both ways, waits 50 to 200 ms: a round trip costs 100 to 400 ms.
    proxy.delay_chunks(Duration::from_millis(50), Duration::from_millis(200));
    let spill = tempfile::tempdir().unwrap();
    let name = unique("slow");
    let sink = AmqpSink::connect(
        config(&proxy.url(&url), &name, spill.path())
            .connect_timeout(Duration::from_secs(15))
            .confirm_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let connected = started.elapsed();

    let written: Vec<_> = (0..10).map(record).collect();
    let mut slowest = Duration::ZERO;
    let appends = Instant::now();
    for r in &written {
        let append = Instant::now();
        sink.append(r.clone()).await.unwrap();
        slowest = slowest.max(append.elapsed());
    }
    let appends = appends.elapsed();
    assert_eq!(
        sink.spilled().await.unwrap(),
        0,
        "every append was confirmed by the broker, none spilled"
    );

    let (connection, channel) = direct_channel().await;
    let queued = drain_queue(&channel, &format!("{name}.q")).await;
    let records: Vec<_> = queued.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(records, written, "every record, once, in order");
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    eprintln!(
        "slow broker: connect {connected:?}, {} appends in {appends:?} (slowest {slowest:?}), total {:?}",
        written.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reset_while_confirms_are_in_flight_lose_nothing() {
    const RECORDS: usize = 30;
    const CUT_BEFORE: [usize; 5] = [3, 8, 13, 19, 25];
    let started = Instant::now();
    let url = broker_url();
    let proxy = Proxy::start(broker_addr(&url)).await;
    let spill = tempfile::tempdir().unwrap();
    let name = unique("reset");
    let sink = AmqpSink::connect(
        config(&proxy.url(&url), &name, spill.path()).confirm_timeout(Duration::from_secs(2)),
    )
    .await
    .unwrap();

    let written: Vec<_> = (0..RECORDS).map(record).collect();
    for (n, r) in written.iter().enumerate() {
        if CUT_BEFORE.contains(&n) {
            // Reconnected with an empty spill, so this append's own publish is the one cut:
            // the message reaches the broker, its confirm never comes back.
            sink.drain().await.unwrap();
            let cuts = proxy.publish_cuts();
            proxy.cut_after_next_publish();
            sink.append(r.clone()).await.unwrap(); // Ok = spilled, durable
            assert_eq!(
                proxy.publish_cuts(),
                cuts + 1,
                "record {n}: no reset happened"
            );
            assert!(
                sink.spilled().await.unwrap() >= 1,
                "record {n}: an unconfirmed publish must be spilled"
            );
        } else {
            sink.append(r.clone()).await.unwrap();
        }
    }
    for _ in 0..10 {
        if sink.spilled().await.unwrap() == 0 {
            break;
        }
        let _ = sink.drain().await;
    }
    assert_eq!(sink.spilled().await.unwrap(), 0, "the spill drained");

    let (connection, channel) = direct_channel().await;
    let queued = drain_queue(&channel, &format!("{name}.q")).await;
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut first_seen = Vec::new();
    for (r, properties) in &queued {
        let message_id = properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .expect("every message carries its record id");
        assert_eq!(message_id, r.id.to_string());
        let count = copies.entry(message_id).or_default();
        if *count == 0 {
            first_seen.push(r.clone());
        }
        *count += 1;
    }
    assert_eq!(
        first_seen, written,
        "every record is in the queue, first copies in append order"
    );
    let duplicates = queued.len() - RECORDS;
    assert!(
        duplicates <= CUT_BEFORE.len(),
        "{duplicates} duplicates for {} lost confirms: beyond at-least-once",
        CUT_BEFORE.len()
    );
    assert!(copies.values().all(|&c| c <= 2));
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    eprintln!(
        "reset during confirms: {RECORDS} records, {} resets, {} messages queued, {duplicates} duplicates, 0 lost, {:?}",
        proxy.publish_cuts(),
        queued.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}

/// Bad input from the broker: messages that are not dead letters (empty, arbitrary bytes, a
/// damaged record) sit in the queue next to real ones. Peeking skips them with a warning
/// instead of failing or panicking, and leaves every message in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_that_are_not_dead_letters_are_skipped_not_fatal() {
    let started = Instant::now();
    let spill = tempfile::tempdir().unwrap();
    let name = unique("garbage");
    let sink = AmqpSink::connect(config(&broker_url(), &name, spill.path()))
        .await
        .unwrap();
    let (connection, channel) = direct_channel().await;
    let queue = format!("{name}.q");
    let mut damaged = record(99).encode();
    damaged.truncate(damaged.len() / 2);
    let good = record(1);
    for payload in [
        Vec::new(),
        b"{\"not\": \"a dead letter\"}".to_vec(),
        vec![0xff; 64],
        damaged,
    ] {
        channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                &payload,
                lapin::BasicProperties::default(),
            )
            .await
            .unwrap();
    }
    sink.append(good.clone()).await.unwrap();

    assert_eq!(sink.list(10).await.unwrap(), vec![good.clone()]);
    assert_eq!(sink.get(good.id).await.unwrap(), Some(good.clone()));
    assert_eq!(settled_depth(&sink, 5).await, 5, "nothing was consumed");
    assert!(sink.remove(good.id).await.unwrap());
    assert_eq!(
        settled_depth(&sink, 4).await,
        4,
        "only the dead letter was removed"
    );
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}
