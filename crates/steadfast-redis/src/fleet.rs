//! [`Fleet`]: one replica's membership of its fleet: the Redis connections (one for commands,
//! one for the channel), reconnection with backoff, and the breakers it keeps in sync.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use steadfast::circuit_breaker::BreakerHandle;
use steadfast::events::{Event, EventBus};
use tokio::sync::{mpsc, watch};

use crate::breaker;
use crate::config::FleetConfig;
use crate::protocol::{self, Message};

/// What the connection task tells a breaker's sync task.
#[derive(Debug)]
pub(crate) enum Remote {
    /// Another replica's message about this agent.
    Message(Message),
    /// Redis is (back) up: read the shared state and publish what was learned alone.
    Resync,
}

pub(crate) struct Inner {
    pub(crate) config: FleetConfig,
    pub(crate) replica: Arc<str>,
    pub(crate) channel: String,
    /// The command connection while Redis answers; `None` while it does not.
    connection: watch::Sender<Option<MultiplexedConnection>>,
    breakers: Mutex<HashMap<String, mpsc::UnboundedSender<Remote>>>,
    events: EventBus,
    /// Messages from other replicas applied, and outages seen (for status and tests).
    received: AtomicU64,
    outages: AtomicU64,
}

impl Inner {
    /// The command connection, if Redis is up: a clone of the multiplexed one (cheap).
    pub(crate) fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection.borrow().clone()
    }

    fn dispatch(&self, message: Message) {
        let (agent, replica) = match &message {
            Message::Open { agent, replica, .. } | Message::Close { agent, replica } => {
                (agent, replica)
            }
        };
        if **replica == *self.replica {
            return;
        }
        let breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = breakers.get(agent.as_str()) {
            self.received.fetch_add(1, Ordering::Relaxed);
            let _ = sender.send(Remote::Message(message));
        }
    }

    fn resync_all(&self) {
        let breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for sender in breakers.values() {
            let _ = sender.send(Remote::Resync);
        }
    }
}

/// This replica's membership of a fleet: share breaker state with every replica that uses the
/// same Redis and key prefix.
///
/// [`Fleet::start`] returns at once and never waits on Redis: a background task connects,
/// subscribes to the fleet's channel, and reconnects with backoff whenever Redis goes away
/// (logged, and one [`Event::FleetSyncLost`] per outage). [`Fleet::sync`] then keeps one
/// breaker in step with the fleet, through its [`BreakerHandle`] only: calls through the
/// breaker never touch Redis. Dropping the last clone of a `Fleet` stops its tasks.
///
/// ```no_run
/// use steadfast::prelude::*;
/// use steadfast_redis::{Fleet, FleetConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), steadfast::ConfigError> {
/// let registry = Registry::new();
/// let gpt = registry.agent("gpt-4o");
/// let breaker = CircuitBreakerLayer::new(&gpt, BreakerConfig::default());
/// let fleet = Fleet::start(FleetConfig::from_env("billing-api")?, registry.events());
/// fleet.sync(&breaker.handle());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
    /// Dropped with the last clone: its receivers (every task) see the channel close and end.
    _alive: Arc<watch::Sender<()>>,
    alive: watch::Receiver<()>,
    connected: watch::Receiver<bool>,
}

impl Fleet {
    /// Joins the fleet described by `config`, reporting outages of Redis on `events` (usually
    /// `registry.events()`). Returns at once.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (its connection task is spawned on the current one).
    pub fn start(config: FleetConfig, events: &EventBus) -> Fleet {
        let replica: Arc<str> = match &config.replica {
            Some(name) => Arc::from(name.as_str()),
            None => Arc::from(random_replica_name()),
        };
        let inner = Arc::new(Inner {
            channel: protocol::channel(&config.prefix),
            replica,
            config,
            connection: watch::Sender::new(None),
            breakers: Mutex::new(HashMap::new()),
            events: events.clone(),
            received: AtomicU64::new(0),
            outages: AtomicU64::new(0),
        });
        let (alive_tx, alive) = watch::channel(());
        let (connected_tx, connected) = watch::channel(false);
        tokio::spawn(supervise(inner.clone(), connected_tx, alive.clone()));
        Fleet {
            inner,
            _alive: Arc::new(alive_tx),
            alive,
            connected,
        }
    }

    /// Keeps `breaker` in step with the same agent's breakers on every replica: its trips are
    /// published (and applied elsewhere as an open period), its failures count towards the
    /// fleet's streak, its half-open period takes the fleet's probe lease, and its recovery
    /// closes the fleet. A second call for the same agent replaces the first.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the breaker's sync task is spawned on the current one).
    pub fn sync(&self, breaker: &BreakerHandle) {
        let (sender, receiver) = mpsc::unbounded_channel();
        // Registered before looking at the connection: a connection made in between resyncs
        // it too (twice is harmless; never is not).
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(breaker.name().to_owned(), sender.clone());
        if self.connected() {
            let _ = sender.send(Remote::Resync);
        }
        tokio::spawn(breaker::run(
            self.inner.clone(),
            breaker.clone(),
            receiver,
            self.alive.clone(),
        ));
    }

    /// The command connection, if Redis answers now.
    pub(crate) fn connection(&self) -> Option<MultiplexedConnection> {
        self.inner.connection()
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        self.inner.config.io_timeout
    }

    /// Whether Redis answers now.
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until Redis answers, at most `timeout`; returns whether it does.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut connected = self.connected.clone();
        tokio::time::timeout(timeout, connected.wait_for(|up| *up))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// A receiver that sees Redis come and go.
    pub fn watch_connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// This replica's name in the fleet.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// The application's key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// Messages from other replicas applied to this replica's breakers so far.
    pub fn messages_received(&self) -> u64 {
        self.inner.received.load(Ordering::Relaxed)
    }

    /// Outages of Redis seen so far (each one logged and reported once).
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("prefix", &self.inner.config.prefix)
            .field("replica", &self.inner.replica)
            .field("url", &self.inner.config.redacted_url)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

fn random_replica_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{}-{:x}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Why a connected period ended (or never began).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lost {
    Connect,
    Dropped,
    Timeout,
}

impl Lost {
    const fn as_str(self) -> &'static str {
        match self {
            Lost::Connect => "connect",
            Lost::Dropped => "connection_lost",
            Lost::Timeout => "timeout",
        }
    }
}

/// The connection task: connect, subscribe, serve the channel until the connection fails,
/// then back off and start again, until the fleet is dropped.
async fn supervise(
    inner: Arc<Inner>,
    connected: watch::Sender<bool>,
    mut alive: watch::Receiver<()>,
) {
    let (min, max) = (inner.config.reconnect_min, inner.config.reconnect_max);
    let mut backoff = min;
    let mut reported_down = false;
    loop {
        let lost = tokio::select! {
            lost = serve(&inner, &connected, &mut reported_down) => lost,
            _ = alive.changed() => return,
        };
        let was_up = *connected.borrow();
        inner.connection.send_replace(None);
        connected.send_replace(false);
        if was_up {
            backoff = min;
        }
        if !reported_down {
            reported_down = true;
            inner.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                fleet = %inner.config.prefix,
                url = %inner.config.redacted_url,
                reason = lost.as_str(),
                "fleet sync: Redis unavailable; breakers go on with local state, reconnecting"
            );
            inner.events.emit(Event::FleetSyncLost {
                fleet: inner.config.prefix.clone(),
                reason: lost.as_str(),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = alive.changed() => return,
        }
        backoff = (backoff * 2).min(max);
    }
}

/// One connected period: returns why it ended.
async fn serve(
    inner: &Arc<Inner>,
    connected: &watch::Sender<bool>,
    reported_down: &mut bool,
) -> Lost {
    let io_timeout = inner.config.io_timeout;
    let connect = async {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(io_timeout))
            .set_response_timeout(Some(io_timeout));
        let commands = inner
            .config
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut pubsub = inner.config.client.get_async_pubsub().await?;
        pubsub.subscribe(&inner.channel).await?;
        Ok::<_, redis::RedisError>((commands, pubsub))
    };
    let (mut commands, pubsub) = match tokio::time::timeout(io_timeout * 2, connect).await {
        Ok(Ok(connections)) => connections,
        Ok(Err(error)) => {
            tracing::debug!(fleet = %inner.config.prefix, %error, "fleet sync: cannot connect");
            return Lost::Connect;
        }
        Err(_) => return Lost::Timeout,
    };
    inner.connection.send_replace(Some(commands.clone()));
    connected.send_replace(true);
    if std::mem::take(reported_down) {
        tracing::info!(fleet = %inner.config.prefix, "fleet sync: Redis is back; resynchronising");
        inner.events.emit(Event::FleetSyncRestored {
            fleet: inner.config.prefix.clone(),
        });
    }
    inner.resync_all();
    let mut messages = pubsub.into_on_message();
    let mut ping = tokio::time::interval(inner.config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Lost::Dropped };
                let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else { continue };
                if let Some(message) = Message::decode(text) {
                    inner.dispatch(message);
                } else {
                    tracing::debug!(fleet = %inner.config.prefix, text, "fleet sync: ignored a message");
                }
            }
            _ = ping.tick() => {
                let ping = redis::cmd("PING");
                let pong = tokio::time::timeout(io_timeout, ping.query_async::<String>(&mut commands));
                match pong.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) if error.is_timeout() => return Lost::Timeout,
                    Ok(Err(_)) => return Lost::Dropped,
                    Err(_) => return Lost::Timeout,
                }
            }
        }
    }
}
