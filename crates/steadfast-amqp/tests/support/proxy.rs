//! A TCP proxy on 127.0.0.1 in front of RabbitMQ that injects broker faults: cut every
//! connection and refuse new ones, delay every chunk (a slow broker), or reset the connection
//! right after a publish reached the broker and before its confirm comes back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// AMQP frame types (AMQP 0-9-1 section 4.2.3).
const FRAME_CONTENT_BODY: u8 = 3;
/// Frame header: type (1), channel (2), size (4); then payload and the 0xCE frame end.
const FRAME_HEADER: usize = 7;
/// The client opens with `AMQP\0\0\x09\x01`, which is not a frame.
const PROTOCOL_HEADER: usize = 8;

/// Faults shared by every connection of a proxy.
#[derive(Default)]
struct Faults {
    /// Refuse new connections (reset at once).
    down: AtomicBool,
    /// Per-chunk delay range in milliseconds (`min << 32 | max`); 0 = none.
    delay_ms: AtomicU64,
    /// State of the deterministic generator for delays.
    seed: AtomicU64,
    /// Reset the connection after the next publish reached the broker, before its confirm.
    cut_after_publish: AtomicBool,
    /// Resets done by `cut_after_publish`.
    publish_cuts: AtomicU32,
}

impl Faults {
    /// A delay for the next chunk, if delays are on (xorshift: deterministic per proxy).
    fn next_delay(&self) -> Option<Duration> {
        let range = self.delay_ms.load(Ordering::SeqCst);
        if range == 0 {
            return None;
        }
        let (min, max) = (range >> 32, range & 0xffff_ffff);
        let mut x = self.seed.load(Ordering::SeqCst) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::SeqCst);
        Some(Duration::from_millis(min + x % (max - min + 1)))
    }
}

/// See the module docs. Dropping it cuts every connection.
pub(crate) struct Proxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults {
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            ..Faults::default()
        });
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (accept_faults, accept_connections) = (faults.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if accept_faults.down.load(Ordering::SeqCst) {
                    drop(client); // the broker is "down": connection reset at once
                    continue;
                }
                let (target, faults) = (target.clone(), accept_faults.clone());
                accept_connections
                    .lock()
                    .unwrap()
                    .push(tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(target).await {
                            pump(client, server, &faults).await;
                        }
                    }));
            }
        });
        Proxy {
            addr,
            faults,
            connections,
            accept,
        }
    }

    /// Cuts every open connection and refuses new ones until [`restore`](Self::restore).
    pub(crate) fn cut(&self) {
        self.faults.down.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    #[allow(dead_code)]
    pub(crate) fn restore(&self) {
        self.faults.down.store(false, Ordering::SeqCst);
    }

    /// Delays every chunk, both ways, by `min..=max` (deterministic sequence).
    #[allow(dead_code)] // not every test binary uses every fault
    pub(crate) fn delay_chunks(&self, min: Duration, max: Duration) {
        let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
        assert!(min > 0 && min <= max && max < 1 << 32);
        self.faults
            .delay_ms
            .store(min << 32 | max, Ordering::SeqCst);
    }

    /// Resets the connection carrying the next published message once the message reached the
    /// broker, dropping everything the broker sends back from then on (the confirm included).
    #[allow(dead_code)]
    pub(crate) fn cut_after_next_publish(&self) {
        self.faults.cut_after_publish.store(true, Ordering::SeqCst);
    }

    /// How many connections [`cut_after_next_publish`](Self::cut_after_next_publish) reset.
    #[allow(dead_code)]
    pub(crate) fn publish_cuts(&self) -> u32 {
        self.faults.publish_cuts.load(Ordering::SeqCst)
    }

    /// `url` with its host and port replaced by the proxy's.
    pub(crate) fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (userinfo, hostpath) = match rest.split_once('@') {
            Some((user, hostpath)) => (format!("{user}@"), hostpath),
            None => (String::new(), rest),
        };
        let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `host:port` of the broker in an AMQP URL.
pub(crate) fn broker_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, hostpath)| hostpath);
    let host = hostpath.split('/').next().unwrap();
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5672")
    }
}

/// Forwards both ways until either side closes or a fault resets the connection; returning
/// drops both sockets.
async fn pump(client: TcpStream, server: TcpStream, faults: &Faults) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let silenced = AtomicBool::new(false);
    tokio::select! {
        () = upstream(client_read, server_write, faults, &silenced) => {}
        () = downstream(server_read, client_write, faults, &silenced) => {}
    }
}

/// Client to broker: watches the frames for a content body (the end of a publish).
async fn upstream(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: &Faults,
    silenced: &AtomicBool,
) {
    let mut scanner = FrameScanner::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(delay) = faults.next_delay() {
            tokio::time::sleep(delay).await;
        }
        let published = scanner.feed(&buf[..n]);
        let cut = published && faults.cut_after_publish.swap(false, Ordering::SeqCst);
        if cut {
            // Nothing more reaches the client: the confirm is lost.
            silenced.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if cut {
            let _ = to.flush().await;
            // Let the broker route the message before the reset.
            tokio::time::sleep(Duration::from_millis(50)).await;
            faults.publish_cuts.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
}

/// Broker to client.
async fn downstream(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: &Faults,
    silenced: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(delay) = faults.next_delay() {
            tokio::time::sleep(delay).await;
        }
        if silenced.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Follows AMQP frame boundaries in a byte stream split at arbitrary points.
#[derive(Default)]
struct FrameScanner {
    /// Bytes of the protocol header still to skip.
    skipped: usize,
    /// The current frame's header bytes seen so far.
    header: Vec<u8>,
    /// Bytes of the current frame after its header (payload + frame end) still to come.
    remaining: usize,
    /// The current frame is a content body.
    in_body: bool,
}

impl FrameScanner {
    /// Feeds a chunk; true if a content body frame ended in it.
    fn feed(&mut self, mut chunk: &[u8]) -> bool {
        let mut body = false;
        if self.skipped < PROTOCOL_HEADER {
            let skip = (PROTOCOL_HEADER - self.skipped).min(chunk.len());
            self.skipped += skip;
            chunk = &chunk[skip..];
        }
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(chunk.len());
                self.remaining -= take;
                chunk = &chunk[take..];
                body |= self.remaining == 0 && self.in_body;
                continue;
            }
            let take = (FRAME_HEADER - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.header.len() == FRAME_HEADER {
                self.in_body = self.header[0] == FRAME_CONTENT_BODY;
                let size = u32::from_be_bytes([
                    self.header[3],
                    self.header[4],
                    self.header[5],
                    self.header[6],
                ]);
                self.remaining = size as usize + 1;
                self.header.clear();
            }
        }
        body
    }
}
