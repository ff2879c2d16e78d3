//! What the fleet tests share: the Redis URL, unique key prefixes, replicas (a registry, a
//! breaker, a fleet and an agent behind them), and private Redis servers for fault tests.
#![allow(dead_code, unreachable_pub)] // each test file uses its own part

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{BreakerConfig, BreakerHandle, BreakerState, CircuitBreakerLayer};
use steadfast::{Agent, Registry};
use steadfast_redis::{Fleet, FleetConfig, FleetConfigBuilder};
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt, service_fn};

/// The shared Redis: `STEADFAST_REDIS_URL`, or redis://127.0.0.1:6379. Tests FAIL when it is
/// unreachable (CI must start it); they never skip.
pub fn redis_url() -> String {
    steadfast_redis::url_from_env()
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "sftest:{test}:{}:{nanos}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fleet timings for tests: a short lease, a fast reconnect.
pub fn fleet_config(url: &str, prefix: &str, replica: &str) -> FleetConfigBuilder {
    FleetConfig::builder(url, prefix)
        .replica(replica)
        .probe_lease(Duration::from_secs(1))
        .lease_lead(Duration::from_millis(100))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .ping_interval(Duration::from_millis(200))
}

/// The agent every replica calls: up, or dead (an error after 2 ms); counts what it receives.
#[derive(Clone, Default)]
pub struct SharedAgent {
    pub calls: Arc<AtomicU64>,
    pub dead: Arc<AtomicBool>,
}

impl SharedAgent {
    pub fn service(&self) -> BoxCloneService<(), &'static str, BoxError> {
        let agent = self.clone();
        BoxCloneService::new(service_fn(move |()| {
            agent.calls.fetch_add(1, Ordering::SeqCst);
            let dead = agent.dead.load(Ordering::SeqCst);
            async move {
                if dead {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Err::<&'static str, BoxError>("agent is down".into())
                } else {
                    Ok("ok")
                }
            }
        }))
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

/// One replica: its own registry, breaker and (optionally) fleet, in front of `agent`.
pub struct Replica {
    pub registry: Registry,
    pub breaker: BreakerHandle,
    pub service: BoxCloneService<(), &'static str, BoxError>,
    pub fleet: Option<Fleet>,
}

impl Replica {
    pub fn new(
        agent_name: &str,
        config: BreakerConfig,
        agent: BoxCloneService<(), &'static str, BoxError>,
        fleet: Option<FleetConfig>,
    ) -> Replica {
        let registry = Registry::new();
        let scope: Agent = registry.agent(agent_name);
        let layer = CircuitBreakerLayer::new(&scope, config);
        let breaker = layer.handle();
        let service = BoxCloneService::new(layer.layer(agent));
        let fleet = fleet.map(|config| {
            let fleet = Fleet::start(config, registry.events());
            fleet.sync(&breaker);
            fleet
        });
        Replica {
            registry,
            breaker,
            service,
            fleet,
        }
    }

    pub async fn call(&mut self) -> Result<&'static str, BoxError> {
        self.service.ready().await?.call(()).await
    }

    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }
}

/// Polls `condition` every millisecond for at most `timeout`; returns whether it held.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A private `redis-server` on a free port (no persistence), killed when dropped. Fault tests
/// kill and restart it; the shared Redis is never touched.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed on this machine");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy on 127.0.0.1 in front of a Redis that can stall: while stalled it accepts
/// connections and reads what either side sends, but forwards nothing (a partition, or a Redis
/// too slow to answer), until released.
pub struct StallProxy {
    pub port: u16,
    stalled: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    pub async fn start(upstream: u16) -> StallProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let accept = {
            let stalled = stalled.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, stalled.clone()));
                    tokio::spawn(pump(server_read, client_write, stalled.clone()));
                }
            })
        };
        StallProxy {
            port,
            stalled,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
