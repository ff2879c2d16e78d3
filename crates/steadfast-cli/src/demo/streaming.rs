//! The demo's streaming lane: OpenAI-style SSE streams from two mock agents, two callers, through
//! `Fallback > CircuitBreaker > StreamGuard`, beside the main traffic.
//!
//! `stream-primary` is scripted (from the seed) with the faults streams have in production: a
//! stall before the first event (the guard gives up at the first-byte deadline and the fallback,
//! `stream-backup`, answers in full: the caller never sees a byte of the stalled stream), a
//! connection reset after a few events and Anthropic-style in-band error events (typed
//! mid-stream errors, never restarted), and slow trickles (never cut by the stall timeout).
//! Mid-stream failures are recorded by `stream-primary`'s breaker when they happen, so a run of
//! them opens it. Its agents live in a registry of their own, so the main stack's figures, timeline
//! and status page are unchanged.
//!
//! The live view and the summary read the lane's tally through [`status`] and
//! [`print_summary`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use steadfast::circuit_breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer};
use steadfast::fallback::FallbackLayer;
use steadfast::provenance::{Provenance, Served};
use steadfast::{BoxError, Registry};
use steadfast_http::HttpClassifier;
use steadfast_http::stream::{StreamConfig, StreamError, StreamGuardLayer, StreamInfo};
use steadfast_mock::{MockServer, Reply, Route, Script, StreamReply, faults};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

use super::agents::Rng;

/// Concurrent callers, each reading one stream at a time.
const CALLERS: usize = 2;
/// Streamed requests per second per caller.
const RATE: f64 = 3.0;
/// The first-byte deadline: a stalled `stream-primary` is abandoned after this.
const FIRST_BYTE: Duration = Duration::from_millis(800);
/// The stall timeout once a stream has started.
const IDLE: Duration = Duration::from_millis(600);

/// What the lane counted.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    sent: AtomicU64,
    /// Complete streams of `stream-primary`.
    primary: AtomicU64,
    /// Complete streams of `stream-backup` after the primary failed before its first byte.
    failover: AtomicU64,
    /// Complete streams of `stream-backup` while the primary's breaker was open.
    backup_breaker_open: AtomicU64,
    /// Streams that failed after their first byte (typed error; nothing restarted).
    mid_stream: AtomicU64,
    /// Events the callers had received from those streams before they failed.
    mid_stream_events: AtomicU64,
    /// Calls that failed before any byte (every agent failed).
    failed: AtomicU64,
    ttfb_millis: Mutex<Vec<u64>>,
    breaker: OnceLock<BreakerHandle>,
}

/// The lane's tally, once started (the view reads it from here).
static TALLY: OnceLock<Arc<Tally>> = OnceLock::new();

/// The running lane, until the summary waits for it.
static LANE: Mutex<Option<Lane>> = Mutex::new(None);

/// The running lane.
struct Lane {
    tasks: Vec<JoinHandle<()>>,
    servers: [MockServer; 2],
}

type Answer = http::Response<steadfast_http::stream::StreamBody<Incoming>>;
type StreamService = BoxCloneSyncService<http::Request<Bytes>, Answer, BoxError>;

/// A client that sends every request to `server`.
fn towards(
    client: &Client<HttpConnector, http_body_util::Full<Bytes>>,
    server: &MockServer,
) -> BoxCloneSyncService<http::Request<Bytes>, http::Response<Incoming>, BoxError> {
    let client = client.clone();
    let uri: http::Uri = server
        .url(Route::OpenAiChat)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1/"));
    BoxCloneSyncService::new(service_fn(move |request: http::Request<Bytes>| {
        let (mut parts, body) = request.into_parts();
        parts.uri = uri.clone();
        let request = http::Request::from_parts(parts, http_body_util::Full::new(body));
        let client = client.clone();
        async move { client.request(request).await.map_err(BoxError::from) }
    }))
}

/// `stream-primary`'s script: mostly good streams, and each kind of stream fault, from `seed`.
fn primary_script(seed: u64) -> Script {
    let mut rng = Rng::new(seed ^ 0x5713_ea11);
    let tokens = [
        "Stream", "ing", " is", " judged", " while", " it", " streams", ".",
    ];
    let replies = (0..1_000).map(|_| {
        let stream = StreamReply::tokens(tokens).every(Duration::from_millis(15));
        let roll = rng.unit();
        let reply = if roll < 0.15 {
            stream.stall_before_first(Duration::from_secs(5))
        } else if roll < 0.27 {
            stream.reset_after(3)
        } else if roll < 0.35 {
            stream.error_after(4, faults::openai::stream_server_error())
        } else if roll < 0.42 {
            // A slow but steady trickle: gaps just under the stall timeout.
            StreamReply::tokens(["slow", " but", " steady"]).every(IDLE * 4 / 5)
        } else {
            // The model thinks a little before its first token.
            stream.stall_before_first(Duration::from_millis(rng.between(40, 200)))
        };
        Reply::from(reply)
    });
    Script::steps(replies)
}

/// Starts the mock agents and the lane's callers, which send streams until `until`.
pub(crate) async fn start(seed: u64, started: Instant, until: Instant) -> Result<(), BoxError> {
    let primary_server = MockServer::start().await?;
    let backup_server = MockServer::start().await?;
    primary_server.script(Route::OpenAiChat, primary_script(seed));
    backup_server.script(
        Route::OpenAiChat,
        Script::always(
            StreamReply::tokens(["Backup", " answer", "."]).every(Duration::from_millis(15)),
        ),
    );
    let registry = Registry::new();
    let primary = registry
        .agent("stream-primary")
        .classifier(HttpClassifier::llm());
    let backup = registry
        .agent("stream-backup")
        .classifier(HttpClassifier::llm());
    let config = StreamConfig::builder()
        .first_byte(FIRST_BYTE)
        .idle(IDLE)
        .build()?;
    let breaker_config = BreakerConfig::builder()
        .consecutive_failures(3)
        .initial_open_duration(Duration::from_secs(2))
        .build()?;
    let breaker = CircuitBreakerLayer::new(&primary, breaker_config);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let backup_service: StreamService = BoxCloneSyncService::new(
        StreamGuardLayer::new(&backup, config).layer(towards(&client, &backup_server)),
    );
    let stack: StreamService = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                FallbackLayer::new(&primary)
                    .then(&backup, backup_service)
                    .mark_responses(),
            )
            .layer(breaker.clone())
            .layer(StreamGuardLayer::new(&primary, config))
            .service(towards(&client, &primary_server)),
    );
    let tally = Arc::new(Tally::default());
    let _ = tally.breaker.set(breaker.handle());
    let _ = TALLY.set(Arc::clone(&tally));
    let tasks = (0..CALLERS)
        .map(|_| tokio::spawn(drive(stack.clone(), Arc::clone(&tally), started, until)))
        .collect();
    *LANE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Lane {
        tasks,
        servers: [primary_server, backup_server],
    });
    Ok(())
}

/// One caller: a stream every `1 / RATE` s (or as soon as the last one ended), each read to
/// its end.
async fn drive(stack: StreamService, tally: Arc<Tally>, started: Instant, until: Instant) {
    let mut ticker = tokio::time::interval_at(started, Duration::from_secs_f64(1.0 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if Instant::now() >= until {
            break;
        }
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let request = http::Request::post("http://stream-primary/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Bytes::from_static(
                br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            ));
        let Ok(request) = request else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(answer) = stack.clone().oneshot(request).await else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if let Some(ttfb) = answer
            .extensions()
            .get::<StreamInfo>()
            .and_then(StreamInfo::time_to_first_byte)
        {
            let millis = u64::try_from(ttfb.as_millis()).unwrap_or(u64::MAX);
            tally
                .ttfb_millis
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(millis);
        }
        let served = answer.served();
        let breaker_open = tally.breaker.get().is_some_and(|breaker| {
            breaker.state() != steadfast::circuit_breaker::BreakerState::Closed
        });
        match answer.into_body().collect().await {
            Ok(_) => match served {
                Served::Fallback { .. } if breaker_open => {
                    tally.backup_breaker_open.fetch_add(1, Ordering::Relaxed);
                }
                Served::Fallback { .. } => {
                    tally.failover.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    tally.primary.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(error) => {
                tally.mid_stream.fetch_add(1, Ordering::Relaxed);
                if let Some(failed) = steadfast::error::find::<StreamError>(error.as_ref()) {
                    tally
                        .mid_stream_events
                        .fetch_add(failed.delivered().events, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Lane {
    /// Waits for the lane's last stream (at most `drain`), then stops its agents.
    async fn finish(self, drain: Duration) {
        let _ = tokio::time::timeout(drain, async {
            for task in self.tasks {
                let _ = task.await;
            }
        })
        .await;
        for server in self.servers {
            server.shutdown().await;
        }
    }
}

/// The time to first byte at `percent` (0 to 100) of the streams so far, in milliseconds.
fn ttfb_percentile(tally: &Tally, percent: usize) -> Option<u64> {
    let mut seen = tally
        .ttfb_millis
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if seen.is_empty() {
        return None;
    }
    seen.sort_unstable();
    let index = (seen.len() - 1) * percent / 100;
    seen.get(index).copied()
}

/// One line for the live view and the plain status lines; `None` before the lane started.
pub(crate) fn status() -> Option<String> {
    let tally = TALLY.get()?;
    let load = |count: &AtomicU64| count.load(Ordering::Relaxed);
    let breaker = tally.breaker.get().map_or_else(String::new, |breaker| {
        format!(" | stream-primary {}", breaker.state())
    });
    Some(format!(
        "streams {} | primary {} | failover before first byte {} | backup (breaker open) {} | mid-stream errors {} | failed {} | ttfb p50 {}{breaker}",
        load(&tally.sent),
        load(&tally.primary),
        load(&tally.failover),
        load(&tally.backup_breaker_open),
        load(&tally.mid_stream),
        load(&tally.failed),
        ttfb_percentile(tally, 50).map_or_else(|| "-".to_owned(), |millis| format!("{millis} ms")),
    ))
}

/// Waits for the lane's last streams (at most `drain`) and stops its agents.
pub(crate) async fn finish(drain: Duration) {
    let lane = LANE.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(lane) = lane {
        lane.finish(drain).await;
    }
}

/// The lane's part of the summary.
pub(crate) fn print_summary() {
    let Some(tally) = TALLY.get() else {
        return;
    };
    let load = |count: &AtomicU64| count.load(Ordering::Relaxed);
    let sent = load(&tally.sent);
    println!();
    println!(
        "streaming: {sent} streamed requests (SSE) through Fallback > CircuitBreaker > StreamGuard"
    );
    println!(
        "  primary               {:>5}  complete streams of stream-primary (slow trickles included: never cut)",
        load(&tally.primary)
    );
    println!(
        "  failover              {:>5}  stream-primary stalled before its first byte; stream-backup's stream delivered in full",
        load(&tally.failover)
    );
    println!(
        "  backup (breaker open) {:>5}  stream-primary's breaker was open",
        load(&tally.backup_breaker_open)
    );
    println!(
        "  mid-stream errors     {:>5}  typed errors after {} events delivered in all; never restarted",
        load(&tally.mid_stream),
        load(&tally.mid_stream_events)
    );
    println!(
        "  failed                {:>5}  before any byte, every agent failed",
        load(&tally.failed)
    );
    if let (Some(p50), Some(p95)) = (ttfb_percentile(tally, 50), ttfb_percentile(tally, 95)) {
        println!("  time to first byte    p50 {p50} ms, p95 {p95} ms");
    }
    if let Some(breaker) = tally.breaker.get() {
        let counts = breaker.counts();
        println!(
            "  breaker stream-primary {} (calls {}, failures {}: mid-stream failures counted when they happened)",
            breaker.state(),
            counts.calls,
            counts.failures
        );
    }
    let accounted = load(&tally.primary)
        + load(&tally.failover)
        + load(&tally.backup_breaker_open)
        + load(&tally.mid_stream)
        + load(&tally.failed);
    println!(
        "  streams accounted: primary + failover + backup + mid-stream + failed = {accounted} of {sent}"
    );
}
