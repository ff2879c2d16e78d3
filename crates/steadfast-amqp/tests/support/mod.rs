//! Helpers shared by the integration tests: the broker under test, unique names, records.

pub(crate) mod proxy;

use std::time::Duration;

use bytes::Bytes;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::DeadLetterRecord;
use steadfast_amqp::AmqpConfig;

pub(crate) fn broker_url() -> String {
    std::env::var("STEADFAST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Exchange and queue names no other run uses.
pub(crate) fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("steadfast-test.{test}.{}.{nanos}", std::process::id())
}

pub(crate) fn config(url: &str, name: &str, spill: &std::path::Path) -> AmqpConfig {
    AmqpConfig::new(url, spill)
        .exchange(format!("{name}.x"))
        .queue(format!("{name}.q"))
        .connect_timeout(Duration::from_secs(3))
        .confirm_timeout(Duration::from_secs(3))
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .drain_interval(Duration::from_secs(3600))
}

pub(crate) fn record(n: usize) -> DeadLetterRecord {
    DeadLetterRecord::new(
        "gpt",
        Bytes::from(format!("prompt {n}")),
        OutcomeKind::Transient,
    )
}

pub(crate) async fn direct_channel() -> (Connection, Channel) {
    let connection = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&broker_url(), ConnectionProperties::default()),
    )
    .await
    .expect("RabbitMQ answers within 5 s")
    .unwrap_or_else(|e| panic!("RabbitMQ must run at {} for these tests: {e}", broker_url()));
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// Takes every message of `queue` (acking it), in order.
pub(crate) async fn drain_queue(
    channel: &Channel,
    queue: &str,
) -> Vec<(DeadLetterRecord, lapin::BasicProperties)> {
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        out.push((
            DeadLetterRecord::decode(&delivery.data).unwrap(),
            delivery.properties,
        ));
    }
    out
}

/// The sink's queue depth once the broker has put back what a peek took (`queue_depth`'s doc):
/// read until it is `expected`, for at most five seconds; the last reading otherwise.
pub(crate) async fn settled_depth(sink: &steadfast_amqp::AmqpSink, expected: u64) -> u64 {
    let mut depth = sink.queue_depth().await.unwrap();
    for _ in 0..100 {
        if depth == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        depth = sink.queue_depth().await.unwrap();
    }
    depth
}
