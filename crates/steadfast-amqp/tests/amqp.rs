//! AmqpSink against the real RabbitMQ at `STEADFAST_AMQP_URL` (default
//! amqp://guest:guest@127.0.0.1:5672/%2f). These tests FAIL when the broker is unreachable:
//! CI must start it.

mod support;

use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicRejectOptions};
use steadfast::dead_letter::{DeadLetterId, DeadLetterRecord, DeadLetterSink};
use steadfast_amqp::{AmqpError, AmqpSink, CONTENT_TYPE};
use support::proxy::{Proxy, broker_addr};
use support::{broker_url, config, direct_channel, drain_queue, record, settled_depth, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_dead_letters_are_persistent_confirmed_and_rejects_go_to_the_dead_letter_exchange()
 {
    let spill = tempfile::tempdir().unwrap();
    let name = unique("roundtrip");
    let sink = AmqpSink::connect(config(&broker_url(), &name, spill.path()))
        .await
        .unwrap();
    let written: Vec<_> = (0..3).map(record).collect();
    for r in &written {
        sink.append(r.clone()).await.unwrap();
    }
    assert_eq!(sink.spilled().await.unwrap(), 0);
    assert_eq!(sink.queue_depth().await.unwrap(), 3);
    let stats = sink.stats().await.unwrap();
    assert_eq!((stats.depth, stats.by_agent.get("gpt")), (3, Some(&3)));
    // Peeking (list) leaves the messages in place.
    assert_eq!(sink.list(10).await.unwrap(), written);
    assert_eq!(settled_depth(&sink, 3).await, 3);

    let (connection, channel) = direct_channel().await;
    let queue = format!("{name}.q");
    let mut got = Vec::new();
    for _ in 0..3 {
        let message = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("a message");
        got.push(message.delivery);
    }
    for (delivery, expected) in got.iter().zip(&written) {
        let properties = &delivery.properties;
        assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            properties.message_id().as_ref().map(ToString::to_string),
            Some(expected.id.to_string())
        );
        assert_eq!(
            properties
                .content_type()
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(CONTENT_TYPE)
        );
        assert_eq!(&DeadLetterRecord::decode(&delivery.data).unwrap(), expected);
    }
    channel
        .basic_ack(got[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    channel
        .basic_ack(got[1].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    channel
        .basic_reject(got[2].delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    // RabbitMQ moves the rejected one through the dead-letter exchange; give it a moment.
    let rejected = format!("{name}.q.rejected");
    let mut moved = Vec::new();
    for _ in 0..50 {
        moved = drain_queue(&channel, &rejected).await;
        if !moved.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].0, written[2]);
    assert_eq!(sink.queue_depth().await.unwrap(), 0);

    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_and_purge_acknowledge_queued_dead_letters() {
    let spill = tempfile::tempdir().unwrap();
    let name = unique("remove");
    let sink = AmqpSink::connect(config(&broker_url(), &name, spill.path()))
        .await
        .unwrap();
    let written: Vec<_> = (0..4).map(record).collect();
    for r in &written {
        sink.append(r.clone()).await.unwrap();
    }
    assert!(sink.remove(written[1].id).await.unwrap());
    assert!(!sink.remove(DeadLetterId::generate()).await.unwrap());
    assert_eq!(
        sink.get(written[2].id).await.unwrap().as_ref(),
        Some(&written[2])
    );
    let mut bumped = written[0].clone();
    bumped.replay_count = 1;
    sink.update(bumped.clone()).await.unwrap();
    let ids: Vec<_> = sink.list(10).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&bumped));
    assert_eq!(sink.purge().await.unwrap(), 3);
    assert_eq!(sink.queue_depth().await.unwrap(), 0);
    sink.delete_topology().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error_without_the_password() {
    let spill = tempfile::tempdir().unwrap();
    let err = AmqpSink::connect(config(
        "amqp://guest:hunter2@127.0.0.1:1/%2f",
        &unique("down"),
        spill.path(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, AmqpError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("127.0.0.1:1") && !message.contains("hunter2"),
        "{message}"
    );
}

#[tokio::test]
async fn with_the_broker_unreachable_appends_spill_durably() {
    let spill = tempfile::tempdir().unwrap();
    let sink = AmqpSink::new(config(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        &unique("spill"),
        spill.path(),
    ))
    .unwrap();
    let r = record(1);
    sink.append(r.clone()).await.unwrap();
    sink.append(record(2)).await.unwrap();
    assert_eq!(sink.spilled().await.unwrap(), 2);
    drop(sink);
    let store = steadfast_sqlite::SqliteSink::open(spill.path()).unwrap();
    assert_eq!(store.list(1).await.unwrap(), vec![r]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_nothing_and_the_spill_drains_in_order() {
    let url = broker_url();
    let proxy = Proxy::start(broker_addr(&url)).await;
    let spill = tempfile::tempdir().unwrap();
    let name = unique("outage");
    let sink = AmqpSink::connect(config(&proxy.url(&url), &name, spill.path()))
        .await
        .unwrap();
    let written: Vec<_> = (0..15).map(record).collect();

    for r in &written[..5] {
        sink.append(r.clone()).await.unwrap();
    }
    assert_eq!(sink.spilled().await.unwrap(), 0);

    proxy.cut();
    for r in &written[5..10] {
        sink.append(r.clone()).await.unwrap(); // Ok = durable in the spill
    }
    assert_eq!(sink.spilled().await.unwrap(), 5);

    proxy.restore();
    assert_eq!(sink.drain().await.unwrap(), 5);
    assert_eq!(sink.spilled().await.unwrap(), 0);
    for r in &written[10..] {
        sink.append(r.clone()).await.unwrap();
    }

    let (connection, channel) = direct_channel().await;
    let queued: Vec<_> = drain_queue(&channel, &format!("{name}.q"))
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(queued, written, "every record, in the order they failed");
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spilled_during_an_outage_go_before_new_ones_when_the_broker_returns() {
    let url = broker_url();
    let proxy = Proxy::start(broker_addr(&url)).await;
    let spill = tempfile::tempdir().unwrap();
    let name = unique("order");
    let sink = AmqpSink::connect(config(&proxy.url(&url), &name, spill.path()))
        .await
        .unwrap();
    proxy.cut();
    let first = record(1);
    sink.append(first.clone()).await.unwrap();
    proxy.restore();
    // Past the backoff, the next append drains the spill first, then publishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = record(2);
    sink.append(second.clone()).await.unwrap();
    assert_eq!(sink.spilled().await.unwrap(), 0);

    let (connection, channel) = direct_channel().await;
    let queued: Vec<_> = drain_queue(&channel, &format!("{name}.q"))
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(queued, vec![first, second]);
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_drainer_empties_the_spill_once_the_broker_is_back() {
    let url = broker_url();
    let proxy = Proxy::start(broker_addr(&url)).await;
    let spill = tempfile::tempdir().unwrap();
    let name = unique("drainer");
    let sink = AmqpSink::connect(
        config(&proxy.url(&url), &name, spill.path()).drain_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    proxy.cut();
    let written: Vec<_> = (0..3).map(record).collect();
    for r in &written {
        sink.append(r.clone()).await.unwrap();
    }
    assert_eq!(sink.spilled().await.unwrap(), 3);
    proxy.restore();
    let mut spilled = 3;
    for _ in 0..100 {
        spilled = sink.spilled().await.unwrap();
        if spilled == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        spilled, 0,
        "the drainer did not publish the spill within 5 s"
    );
    let (connection, channel) = direct_channel().await;
    let queued: Vec<_> = drain_queue(&channel, &format!("{name}.q"))
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(queued, written);
    sink.delete_topology().await.unwrap();
    let _ = connection.close(200, "done".into()).await;
}
