//! [`AmqpSink`]: publish with confirms, reconnect with backoff, spill and drain.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicRecoverOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use steadfast::BoxError;
use steadfast::backoff::Exponential;
use steadfast::dead_letter::{
    DeadLetterId, DeadLetterRecord, DeadLetterSink, DeadLetterStats, SinkError, SinkFuture,
};
use steadfast_sqlite::{SqliteError, SqliteSink};
use tokio::time::Instant;

use crate::config::AmqpConfig;
use steadfast::ConfigError;

/// The content type of published dead letters (payload: `DeadLetterRecord::encode`).
pub const CONTENT_TYPE: &str = "application/vnd.steadfast.dead-letter.v1";

/// Something went wrong talking to RabbitMQ or the spill store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AmqpError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker could not be reached (or is being backed off from).
    #[error(
        "cannot reach RabbitMQ at `{uri}`: {reason}; check that the broker runs and the URL (host, port, vhost, credentials) is right"
    )]
    Unreachable {
        /// The URI, password hidden.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The broker refused an operation.
    #[error("RabbitMQ refused to {action}: {source}")]
    Broker {
        /// What was being done.
        action: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// No publisher confirm (ack) within the timeout, or a nack.
    #[error("RabbitMQ did not confirm dead letter {id}: {reason}")]
    NotConfirmed {
        /// The record.
        id: DeadLetterId,
        /// Timeout, nack or unroutable.
        reason: &'static str,
    },
    /// The spill store failed.
    #[error("the local spill store failed: {0}")]
    Spill(#[from] SqliteError),
    /// The spill store failed (as a sink error).
    #[error("the local spill store failed: {0}")]
    SpillSink(#[from] SinkError),
}

/// A [`DeadLetterSink`] on RabbitMQ with a local spill store. See the [crate docs](crate).
///
/// Cheap to clone; clones share the connection and the spill.
#[derive(Clone)]
pub struct AmqpSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: AmqpConfig,
    spill: SqliteSink,
    link: tokio::sync::Mutex<Link>,
    drainer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(drainer) = self
            .drainer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            drainer.abort();
        }
    }
}

struct Link {
    connected: Option<(Connection, Channel)>,
    /// Failed attempts in a row: the reconnect delay grows with them (steadfast's one
    /// exponential backoff, from `min_backoff` doubling to `max_backoff`).
    failures: u32,
    retry_at: Option<Instant>,
}

impl Link {
    /// After a failed attempt: wait the next backoff before trying again. A wait past what the
    /// clock can hold (`max_backoff` of `Duration::MAX`) waits a year, and `reconnect_now`
    /// still tries at once.
    fn back_off(&mut self, config: &AmqpConfig) {
        self.failures = self.failures.saturating_add(1);
        let delay =
            Exponential::new(config.min_backoff, 2.0, config.max_backoff).delay(self.failures);
        let now = Instant::now();
        self.retry_at = Some(
            now.checked_add(delay)
                .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400)),
        );
    }
}

impl fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSink")
            .field("uri", &redact(&self.inner.config.uri))
            .field("exchange", &self.inner.config.exchange)
            .field("queue", &self.inner.config.queue)
            .field("spill", &self.inner.spill)
            .finish()
    }
}

/// The URI with its password replaced by `***`, for messages and logs.
pub(crate) fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => uri.to_string(),
        },
        None => uri.to_string(),
    }
}

impl AmqpSink {
    /// Opens the spill store (blocking) and starts the background drainer (when called inside a
    /// tokio runtime). Does not contact the broker: the first append connects, and spills if it
    /// cannot.
    pub fn new(config: AmqpConfig) -> Result<Self, AmqpError> {
        config.validate()?;
        let spill = SqliteSink::options(&config.spill_dir)
            .synchronous(config.spill_synchronous)
            .open()?;
        let inner = Arc::new(Inner {
            link: tokio::sync::Mutex::new(Link {
                connected: None,
                failures: 0,
                retry_at: None,
            }),
            config,
            spill,
            drainer: Mutex::new(None),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let drainer = runtime.spawn(drain_in_background(
                Arc::downgrade(&inner),
                inner.config.drain_interval,
            ));
            *inner.drainer.lock().unwrap_or_else(PoisonError::into_inner) = Some(drainer);
        }
        Ok(AmqpSink { inner })
    }

    /// Like [`new`](Self::new), then connects and declares the topology at once: fails if the
    /// broker cannot be reached.
    pub async fn connect(config: AmqpConfig) -> Result<Self, AmqpError> {
        let sink = Self::new(config)?;
        {
            let mut link = sink.inner.link.lock().await;
            sink.inner.ensure(&mut link, true).await?;
        }
        Ok(sink)
    }

    /// The configuration.
    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    /// The local spill store.
    pub fn spill(&self) -> &SqliteSink {
        &self.inner.spill
    }

    /// Records waiting in the spill store.
    pub async fn spilled(&self) -> Result<u64, AmqpError> {
        Ok(self.inner.spill.stats().await?.depth)
    }

    /// Connects now (ignoring the backoff) and publishes every spilled record, oldest first.
    /// Returns how many were published.
    pub async fn drain(&self) -> Result<usize, AmqpError> {
        let mut link = self.inner.link.lock().await;
        self.inner.drain(&mut link, true).await
    }

    /// Messages in the queue (not counting the spill).
    ///
    /// The messages a [`list`](DeadLetterSink::list), [`get`](DeadLetterSink::get) or
    /// [`remove`](DeadLetterSink::remove) looked at are taken from the queue and put back; the
    /// broker counts them again once it has put them back, which it may finish a moment after
    /// that call returned: a depth read at once can be short by those messages, never by a
    /// message lost.
    pub async fn queue_depth(&self) -> Result<u64, AmqpError> {
        let mut link = self.inner.link.lock().await;
        let channel = self.inner.ensure(&mut link, true).await?;
        let queue = channel
            .queue_declare(
                self.inner.config.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| AmqpError::Broker {
                action: "inspect the queue",
                source,
            })?;
        Ok(u64::from(queue.message_count()))
    }

    /// Deletes every dead letter: the queue's messages and the spill. Returns how many.
    pub async fn purge(&self) -> Result<u64, AmqpError> {
        let mut link = self.inner.link.lock().await;
        let channel = self.inner.ensure(&mut link, true).await?;
        let purged = channel
            .queue_purge(
                self.inner.config.queue.as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await
            .map_err(|source| AmqpError::Broker {
                action: "purge the queue",
                source,
            })?;
        Ok(u64::from(purged) + self.inner.spill.purge().await?)
    }

    /// Deletes the queues and exchanges this sink declared (tests, decommissioning).
    pub async fn delete_topology(&self) -> Result<(), AmqpError> {
        let mut link = self.inner.link.lock().await;
        let channel = self.inner.ensure(&mut link, true).await?;
        let config = &self.inner.config;
        let broker = |action| move |source| AmqpError::Broker { action, source };
        for queue in [config.queue.clone(), format!("{}.rejected", config.queue)] {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(broker("delete a queue"))?;
        }
        for exchange in [
            config.exchange.clone(),
            format!("{}.rejected", config.exchange),
        ] {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(broker("delete an exchange"))?;
        }
        Ok(())
    }

    /// Takes up to `limit` messages without acknowledging them, then closes the channel so the
    /// broker requeues them; `take` names one id to acknowledge (remove) instead.
    async fn peek(
        &self,
        limit: usize,
        take: Option<DeadLetterId>,
    ) -> Result<(Vec<DeadLetterRecord>, bool), AmqpError> {
        let mut link = self.inner.link.lock().await;
        self.inner.ensure(&mut link, true).await?;
        let Some((connection, _)) = &link.connected else {
            return Ok((Vec::new(), false));
        };
        let broker = |action| move |source| AmqpError::Broker { action, source };
        let channel = connection
            .create_channel()
            .await
            .map_err(broker("open a channel"))?;
        let mut records = Vec::new();
        let mut taken = false;
        while records.len() < limit {
            let Some(message) = channel
                .basic_get(
                    self.inner.config.queue.as_str().into(),
                    BasicGetOptions::default(),
                )
                .await
                .map_err(broker("get a message"))?
            else {
                break;
            };
            let delivery = message.delivery;
            let Ok(record) = DeadLetterRecord::decode(&delivery.data) else {
                tracing::warn!(
                    tag = delivery.delivery_tag,
                    "skipping a message that is not a dead letter"
                );
                continue;
            };
            if take == Some(record.id) && !taken {
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
                    .await
                    .map_err(broker("acknowledge a message"))?;
                taken = true;
                break;
            }
            records.push(record);
        }
        // Every unacknowledged message goes back to the queue: asked for explicitly (the broker
        // answers once it has handed them back to the queue), and closing the channel returns
        // them anyway if that failed.
        if let Err(error) = channel
            .basic_recover(BasicRecoverOptions { requeue: true })
            .await
        {
            tracing::debug!(%error, "requeueing peeked messages; closing the channel does it");
        }
        let _ = channel.close(200, "peeked".into()).await;
        Ok((records, taken))
    }
}

impl Inner {
    /// The channel, connecting (and declaring the topology) if needed. Unless `force`, does not
    /// try again before the backoff expires.
    async fn ensure<'a>(&self, link: &'a mut Link, force: bool) -> Result<&'a Channel, AmqpError> {
        let alive = link
            .connected
            .as_ref()
            .is_some_and(|(connection, channel)| {
                connection.status().connected() && channel.status().connected()
            });
        if !alive {
            link.connected = None;
            if !force && link.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(AmqpError::Unreachable {
                    uri: redact(&self.config.uri),
                    reason: "backing off after a failed attempt".into(),
                });
            }
            match self.open().await {
                Ok(pair) => {
                    tracing::info!(uri = %redact(&self.config.uri), "connected to RabbitMQ for dead letters");
                    link.connected = Some(pair);
                    link.failures = 0;
                    link.retry_at = None;
                }
                Err(error) => {
                    link.back_off(&self.config);
                    return Err(error);
                }
            }
        }
        match &link.connected {
            Some((_, channel)) => Ok(channel),
            None => Err(AmqpError::Unreachable {
                uri: redact(&self.config.uri),
                reason: "not connected".into(),
            }),
        }
    }

    async fn open(&self) -> Result<(Connection, Channel), AmqpError> {
        let unreachable = |reason: String| AmqpError::Unreachable {
            uri: redact(&self.config.uri),
            reason,
        };
        let connection = tokio::time::timeout(
            self.config.connect_timeout,
            Connection::connect(&self.config.uri, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "no answer within {:?}",
                self.config.connect_timeout
            ))
        })?
        .map_err(|e| unreachable(e.to_string()))?;
        let setup = async {
            let channel = connection.create_channel().await?;
            declare_topology(&channel, &self.config).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>(channel)
        };
        let channel = tokio::time::timeout(self.config.connect_timeout, setup)
            .await
            .map_err(|_| unreachable("topology declaration timed out".into()))?
            .map_err(|source| AmqpError::Broker {
                action: "declare the dead-letter topology",
                source,
            })?;
        Ok((connection, channel))
    }

    async fn publish(
        &self,
        link: &mut Link,
        record: &DeadLetterRecord,
        force: bool,
    ) -> Result<(), AmqpError> {
        let channel = self.ensure(link, force).await?;
        let result = publish(channel, &self.config, record).await;
        if result.is_err() {
            // The connection may be half dead: start afresh next time.
            if let Some((connection, _)) = link.connected.take() {
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    connection.close(200, "reconnecting".into()),
                )
                .await;
            }
            link.back_off(&self.config);
        }
        result
    }

    async fn drain(&self, link: &mut Link, force: bool) -> Result<usize, AmqpError> {
        let mut published = 0;
        loop {
            let batch = self.spill.list(128).await?;
            if batch.is_empty() {
                break;
            }
            for record in batch {
                self.publish(link, &record, force).await?;
                // Confirmed: now it may leave the spill. (A crash between the two republishes
                // it: at-least-once, de-duplicate by message id.)
                self.spill.remove(record.id).await?;
                published += 1;
            }
        }
        if published > 0 {
            tracing::info!(published, "drained spilled dead letters to RabbitMQ");
        }
        Ok(published)
    }

    async fn append(&self, record: DeadLetterRecord) -> Result<(), SinkError> {
        let mut link = self.link.lock().await;
        // Spilled records go first, so the queue keeps the order they failed in. (One indexed
        // row, not a count: the spill may hold many records while the broker is away.)
        let spilled = !self.spill.list(1).await?.is_empty();
        let drained = !spilled || (self.drain(&mut link, false).await.is_ok());
        if drained {
            match self.publish(&mut link, &record, false).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, id = %record.id, "RabbitMQ unavailable; spilling the dead letter to the local store");
                }
            }
        }
        self.spill.append(record).await
    }
}

async fn declare_topology(channel: &Channel, config: &AmqpConfig) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let rejected_exchange = format!("{}.rejected", config.exchange);
    let rejected_queue = format!("{}.rejected", config.queue);
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            rejected_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            rejected_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            rejected_queue.as_str().into(),
            rejected_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(rejected_exchange.as_str())),
    );
    channel
        .queue_declare(
            config.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            config.queue.as_str().into(),
            config.exchange.as_str().into(),
            config.queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn publish(
    channel: &Channel,
    config: &AmqpConfig,
    record: &DeadLetterRecord,
) -> Result<(), AmqpError> {
    let not_confirmed = |reason| AmqpError::NotConfirmed {
        id: record.id,
        reason,
    };
    let timestamp = record
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let properties = BasicProperties::default()
        .with_delivery_mode(2) // persistent
        .with_message_id(record.id.to_string().into())
        .with_content_type(CONTENT_TYPE.into())
        .with_timestamp(timestamp)
        .with_app_id("steadfast".into());
    let payload = record.encode();
    let confirm = async {
        channel
            .basic_publish(
                config.exchange.as_str().into(),
                config.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties,
            )
            .await?
            .await
    };
    match tokio::time::timeout(config.confirm_timeout, confirm).await {
        Err(_) => Err(not_confirmed("no publisher confirm within the timeout")),
        Ok(Err(source)) => Err(AmqpError::Broker {
            action: "publish a dead letter",
            source,
        }),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(_)))) => {
            Err(not_confirmed("unroutable: the queue binding is missing"))
        }
        Ok(Ok(_)) => Err(not_confirmed("the broker nacked it")),
    }
}

async fn drain_in_background(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else { return };
        let spilled = inner
            .spill
            .list(1)
            .await
            .is_ok_and(|first| !first.is_empty());
        if spilled {
            let mut link = inner.link.lock().await;
            if let Err(error) = inner.drain(&mut link, false).await {
                tracing::debug!(%error, "dead letters stay spilled until RabbitMQ is back");
            }
        }
    }
}

fn to_sink_error(error: AmqpError) -> SinkError {
    match error {
        AmqpError::SpillSink(error) => error,
        AmqpError::Spill(error) => error.into(),
        other => SinkError::Other(Box::new(other) as BoxError),
    }
}

impl DeadLetterSink for AmqpSink {
    fn append(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        Box::pin(self.inner.append(record))
    }

    /// Spilled records and up to `limit` queued ones (peeked, then requeued), oldest first.
    fn list(&self, limit: usize) -> SinkFuture<'_, Vec<DeadLetterRecord>> {
        Box::pin(async move {
            let (mut records, _) = self.peek(limit, None).await.map_err(to_sink_error)?;
            records.extend(self.inner.spill.list(limit).await?);
            records.sort_by_key(|r| r.id);
            records.truncate(limit);
            Ok(records)
        })
    }

    fn get(&self, id: DeadLetterId) -> SinkFuture<'_, Option<DeadLetterRecord>> {
        Box::pin(async move {
            if let Some(record) = self.inner.spill.get(id).await? {
                return Ok(Some(record));
            }
            let (records, _) = self.peek(usize::MAX, None).await.map_err(to_sink_error)?;
            Ok(records.into_iter().find(|r| r.id == id))
        })
    }

    fn remove(&self, id: DeadLetterId) -> SinkFuture<'_, bool> {
        Box::pin(async move {
            if self.inner.spill.remove(id).await? {
                return Ok(true);
            }
            let (_, taken) = self
                .peek(usize::MAX, Some(id))
                .await
                .map_err(to_sink_error)?;
            Ok(taken)
        })
    }

    /// Publishes the new version, then removes the old message.
    fn update(&self, record: DeadLetterRecord) -> SinkFuture<'_, ()> {
        Box::pin(async move {
            let id = record.id;
            if self.inner.spill.get(id).await?.is_some() {
                return self.inner.spill.update(record).await;
            }
            // New copy first (durable), then the old one goes: a failure in between leaves a
            // duplicate, never a loss. The old copy is ahead of the new one in the queue, so
            // the first message with this id is the old one.
            self.inner.append(record).await?;
            self.peek(usize::MAX, Some(id))
                .await
                .map_err(to_sink_error)?;
            Ok(())
        })
    }

    /// Depth of queue plus spill; oldest and per-agent counts from the spill and the first
    /// 1,000 queued messages.
    fn stats(&self) -> SinkFuture<'_, DeadLetterStats> {
        Box::pin(async move {
            let queued = self.queue_depth().await.map_err(to_sink_error)?;
            let spill = self.inner.spill.stats().await?;
            let (peeked, _) = self.peek(1000, None).await.map_err(to_sink_error)?;
            let mut stats = DeadLetterStats {
                depth: queued + spill.depth,
                oldest: spill.oldest,
                appended_last_minute: spill.appended_last_minute,
                by_agent: spill.by_agent,
            };
            for record in peeked {
                stats.oldest = Some(stats.oldest.map_or(record.time, |t| t.min(record.time)));
                *stats.by_agent.entry(record.agent).or_default() += 1;
            }
            Ok(stats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(
            redact("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
    }
}
