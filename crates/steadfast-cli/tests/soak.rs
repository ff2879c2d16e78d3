//! Chaos soak: the full client stack over real hyper agents on 127.0.0.1, with seeded faults
//! injected on the client side of both agents, at concurrency 64.
//!
//! Stack, outer to inner (DESIGN §1):
//! `Degrade > DeadLetter(SqliteSink) > Fallback(backup, cache) > Retry > CircuitBreaker >
//! Timeout > Chaos > hyper client`; the backup alternative is `CircuitBreaker > Timeout > Chaos
//! > hyper client`. Each agent (`primary`, `backup`) is named once and handed to its layers.
//!
//! Checks, after `calls` calls:
//! - every call is accounted for exactly once: answered by the primary, a fallback or the cache,
//!   degraded, or dead-lettered (`DeadLettered { id }`); anything else is "unaccounted";
//! - no dead letter is lost: every id a caller got back is in the store after it is reopened,
//!   and the store holds nothing else;
//! - memory is stable: resident memory grows by less than [`RSS_GROWTH_BOUND`] between 10% of
//!   the run and its end.
//!
//! CI runs [`CI_CALLS`] calls; `STEADFAST_SOAK_CALLS=1000000` (see `scripts/soak.sh`, release
//! mode) runs the long soak with the same test. Figures are printed (`-- --nocapture`).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::chaos::{ChaosConfig, ChaosHandle, ChaosLayer, InjectedCounts};
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::dead_letter::{DeadLetterId, DeadLetterLayer, DeadLetterSink, DeadLettered};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::provenance::{Provenance, Served};
use steadfast::retry::{BackoffRetryLayer, Jitter, RetryConfig};
use steadfast::{Agent, BoxError, Registry};
use steadfast_http::dead_letter::HttpRequestEncoder;
use steadfast_http::{BufferedBody, HttpClassifier};
use steadfast_sqlite::SqliteSink;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Calls in CI mode. Measured in a debug build on the shared 2-core machine: 250,000 calls in
/// 12.6 s when quiet, 500,000 in 96 s beside a release build; 250,000 (~50 s on a busy machine)
/// keeps the test well under 90 s. The long soak (`scripts/soak.sh`) runs 1,000,000.
const CI_CALLS: u64 = 250_000;
/// Concurrent callers.
const CONCURRENCY: usize = 64;
/// Allowed growth of resident memory from 10% of the run to its end, on top of
/// [`RSS_PER_DEAD_LETTER`]. Everything the stack keeps is bounded (cache: 512 entries of ~150
/// bytes; breakers, retry budget: fixed; hyper's pool: at most one connection per concurrent
/// caller and agent, ~20 KiB of buffers each, ~3 MiB; SQLite's page caches, 2 MiB per
/// connection by default) except the test's own list of dead-letter ids. 32 MiB is ten times the
/// bounded part: above it, something grows per call (33 bytes a call over a 1,000,000-call run).
const RSS_GROWTH_BOUND: u64 = 32 << 20;
/// What each live dead letter may add: the test's own copies of its id (a `Vec` per caller, then
/// the merged list), with allocator slack; the store keeps records on disk, not in memory.
/// Measured with the former journal store, which also kept a ~100-byte index entry per record
/// in memory: ~390 bytes a dead letter over the whole run, growth included.
const RSS_PER_DEAD_LETTER: u64 = 512;
/// An outage of the primary starts this often, one of the backup every third time.
const OUTAGE_EVERY: Duration = Duration::from_millis(500);
/// The share of requests that are batch jobs (never degraded: dead-lettered when unanswered).
const BATCH_SHARE: f64 = 0.25;
/// Distinct prompts (repeats are what the cache answers).
const PROMPTS: u64 = 200;

/// The header a degraded answer carries the id of its request's dead letter in.
const DEAD_LETTER_HEADER: &str = "x-dead-letter-id";

type SoakRequest = Request<BufferedBody>;
type SoakResponse = Response<Bytes>;
type SoakStack = BoxCloneSyncService<SoakRequest, SoakResponse, BoxError>;
type HttpClient = Client<HttpConnector, BufferedBody>;
/// A chaos layer answering its injected responses with [`injected_503`].
type SoakChaos = ChaosLayer<fn(&SoakRequest) -> SoakResponse>;

/// SplitMix64, seeded per call so the faults and the traffic repeat with the seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(z: u64) -> f64 {
    (mix(z) >> 11) as f64 / (1u64 << 53) as f64
}

/// What one soak run saw.
#[derive(Debug, Default)]
struct Report {
    calls: u64,
    primary: u64,
    fallback: u64,
    cached: u64,
    degraded: u64,
    dead_lettered: u64,
    /// Degraded answers whose request was dead-lettered first (all of them).
    degraded_dead_letters: u64,
    unaccounted: u64,
    unaccounted_samples: Vec<String>,
    injected_primary: InjectedCounts,
    injected_backup: InjectedCounts,
    outages: u64,
    stored_records: usize,
    lost_dead_letters: usize,
    unexpected_records: usize,
    rss_start: u64,
    rss_at_10_percent: u64,
    rss_end: u64,
    elapsed: Duration,
}

impl Report {
    fn accounted(&self) -> u64 {
        self.primary + self.fallback + self.cached + self.degraded + self.dead_lettered
    }

    /// The memory growth allowed: fixed, plus what each live record may add.
    fn rss_bound(&self) -> u64 {
        RSS_GROWTH_BOUND + RSS_PER_DEAD_LETTER * self.stored_records as u64
    }

    fn faults(counts: InjectedCounts) -> u64 {
        counts.errors + counts.responses + counts.delays + counts.outage_failures
    }

    fn faults_injected(&self) -> u64 {
        Report::faults(self.injected_primary) + Report::faults(self.injected_backup)
    }

    fn merge(&mut self, other: Tally) {
        self.primary += other.primary;
        self.fallback += other.fallback;
        self.cached += other.cached;
        self.degraded += other.degraded;
        self.dead_lettered += other.ids.len() as u64;
        self.degraded_dead_letters += other.degraded_ids.len() as u64;
        self.unaccounted += other.unaccounted;
        self.unaccounted_samples.extend(other.samples);
    }
}

/// One caller's outcomes.
#[derive(Default)]
struct Tally {
    primary: u64,
    fallback: u64,
    cached: u64,
    degraded: u64,
    unaccounted: u64,
    samples: Vec<String>,
    ids: Vec<DeadLetterId>,
    degraded_ids: Vec<DeadLetterId>,
}

impl Tally {
    fn record(&mut self, result: Result<SoakResponse, BoxError>) {
        match result {
            Ok(response) => match response.served() {
                Served::Primary if response.status().is_success() => self.primary += 1,
                Served::Fallback { .. } if response.status().is_success() => self.fallback += 1,
                Served::Cache { .. } => self.cached += 1,
                Served::Degraded { .. } => {
                    self.degraded += 1;
                    // Degrade sits outside DeadLetter: a degraded chat answer was dead-lettered
                    // first, and says under which id.
                    match response
                        .headers()
                        .get(DEAD_LETTER_HEADER)
                        .and_then(|value| value.to_str().ok()?.parse().ok())
                    {
                        Some(id) => self.degraded_ids.push(id),
                        None => self.unaccounted("a degraded answer without a dead letter".into()),
                    }
                }
                served => self.unaccounted(format!("{served:?} answered {}", response.status())),
            },
            Err(error) => match steadfast::error::find::<DeadLettered>(error.as_ref()) {
                Some(dead) => self.ids.push(dead.id()),
                None => self.unaccounted(steadfast::error::chain(error.as_ref()).join(": ")),
            },
        }
    }

    fn unaccounted(&mut self, message: String) {
        self.unaccounted += 1;
        if self.samples.len() < 5 {
            self.samples.push(message);
        }
    }
}

/// Resident memory of this process, from /proc/self/status (0 where there is no procfs).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| kib * 1024)
}

/// A mock agent: answers at once with 200 and the prompt, 1% 503 (seeded per hit).
async fn start_agent(name: &'static str, seed: u64) -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let hit = hits.fetch_add(1, Ordering::Relaxed);
                    async move {
                        let prompt = request
                            .into_body()
                            .collect()
                            .await
                            .map(http_body_util::Collected::to_bytes)
                            .unwrap_or_default();
                        let mut response = if unit(seed ^ hit) < 0.01 {
                            let mut response = Response::new(Full::new(Bytes::from_static(
                                br#"{"error":"overloaded"}"#,
                            )));
                            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            response
                        } else {
                            let mut body =
                                format!(r#"{{"agent":"{name}","answer_to":"#).into_bytes();
                            body.extend_from_slice(&prompt);
                            body.push(b'}');
                            Response::new(Full::new(Bytes::from(body)))
                        };
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(response)
                    }
                });
                // A client that hung up (its timeout fired) is not an error here.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Sends the request to `addr`, buffers the answer.
fn http_agent(
    client: HttpClient,
    addr: SocketAddr,
) -> impl Service<SoakRequest, Response = SoakResponse, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let base: Arc<str> = Arc::from(format!("http://{addr}"));
    service_fn(move |request: SoakRequest| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("{base}{path}").parse()?;
            let response = client.request(Request::from_parts(parts, body)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::from_parts(parts, body))
        }
    })
}

fn is_batch(request: &SoakRequest) -> bool {
    request.uri().path() == "/v1/batch"
}

/// The agent's error response the chaos layer answers with at its response rate.
fn injected_503(_request: &SoakRequest) -> SoakResponse {
    let mut response = Response::new(Bytes::from_static(br#"{"error":"injected"}"#));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

fn chaos<C>(agent: &Agent<C>, seed: u64) -> Result<SoakChaos, BoxError> {
    // Errors and 503s are retried and fall back; a delay past the 200 ms timeout is a timeout.
    let config = ChaosConfig::builder()
        .seed(seed)
        .error_rate(0.03)
        .response_rate(0.02)
        .latency_rate(0.005)
        .latency(Duration::from_millis(300))
        .build()?;
    Ok(ChaosLayer::new(agent, &config).responses(injected_503 as fn(&SoakRequest) -> SoakResponse))
}

struct Built {
    stack: SoakStack,
    primary_chaos: ChaosHandle,
    backup_chaos: ChaosHandle,
}

fn build(
    primary: SocketAddr,
    backup: SocketAddr,
    seed: u64,
    sink: Arc<dyn DeadLetterSink>,
) -> Result<Built, BoxError> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(5))
        .build_http();
    let registry = Registry::new();
    let primary_agent = registry.agent("primary").classifier(HttpClassifier::llm());
    let backup_agent = registry.agent("backup").classifier(HttpClassifier::llm());
    let primary_chaos = chaos(&primary_agent, seed ^ 0x5052_494d)?;
    let backup_chaos = chaos(&backup_agent, seed ^ 0x4241_434b)?;
    let handles = (primary_chaos.handle(), backup_chaos.handle());

    let breaker = BreakerConfig::builder()
        .consecutive_failures(5)
        .initial_open_duration(Duration::from_millis(50))
        .max_open_duration(Duration::from_millis(200))
        .half_open_probes(2)
        .build()?;
    // The fallback layer skips the backup while the backup agent's own breaker is open.
    let backup = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(&backup_agent, breaker.clone()))
        .timeout(Duration::from_millis(200))
        .layer(backup_chaos)
        .service(http_agent(client.clone(), backup));

    // Chat prompts the primary answered are cached; batch jobs never are.
    let cache = ResponseCache::new(
        CacheConfig::builder()
            .max_entries(512)
            .ttl(Duration::from_secs(5))
            .max_stale(Duration::from_secs(600))
            .build()?,
        |request: &SoakRequest| (!is_batch(request)).then(|| request.body().bytes().clone()),
    );
    let retry = RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(10))
        .jitter(Jitter::Full)
        .max_retry_after(Duration::from_millis(50))
        .deadline(Duration::from_millis(600))
        .build()?;

    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(&primary_agent, |batch: &bool, error: &BoxError| {
                (!*batch).then(|| {
                    let mut response =
                        Response::new(Bytes::from_static(br#"{"answer":"busy, try again"}"#));
                    *response.status_mut() = StatusCode::OK;
                    if let Some(dead) = steadfast::error::find::<DeadLettered>(error.as_ref()) {
                        let id = http::HeaderValue::from_str(&dead.id().to_string())
                            .expect("an id is ASCII");
                        response.headers_mut().insert(DEAD_LETTER_HEADER, id);
                    }
                    response
                })
            })
            .view(is_batch)
            .mark_responses(),
        )
        .layer(DeadLetterLayer::from_arc(&primary_agent, sink).encoder(HttpRequestEncoder::new()))
        .layer(
            FallbackLayer::new(&primary_agent)
                .then(&backup_agent, backup)
                .then_cache(cache)
                .mark_responses(),
        )
        .layer(BackoffRetryLayer::new(&primary_agent, retry).seed(seed))
        .layer(CircuitBreakerLayer::new(&primary_agent, breaker))
        .timeout(Duration::from_millis(200))
        .layer(primary_chaos)
        .service(http_agent(client, primary));

    Ok(Built {
        stack: BoxCloneSyncService::new(stack),
        primary_chaos: handles.0,
        backup_chaos: handles.1,
    })
}

/// Call `index`'s request: a chat prompt or a batch job, from a small pool of prompts.
fn request(seed: u64, index: u64) -> SoakRequest {
    let draw = mix(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let prompt = draw % PROMPTS;
    let (path, body) = if unit(draw) < BATCH_SHARE {
        (
            "/v1/batch",
            format!(r#"{{"job":"summarise document {prompt}"}}"#),
        )
    } else {
        ("/v1/chat", format!(r#"{{"prompt":"question {prompt}"}}"#))
    };
    Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::AUTHORIZATION, "Bearer sk-soak-not-a-real-key")
        .body(BufferedBody::from(body))
        .expect("a static method, path and headers make a valid request")
}

/// Starts outage windows of seeded lengths until aborted: the primary's every
/// [`OUTAGE_EVERY`] (50-200 ms), the backup's every third time (30-150 ms, overlapping). Time
/// based, so a debug and a release run see the same share of outage.
async fn outages(primary: ChaosHandle, backup: ChaosHandle, seed: u64, count: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval(OUTAGE_EVERY);
    tick.tick().await;
    for n in 1u64.. {
        tick.tick().await;
        let draw = mix(seed ^ n ^ 0x4f55_5441_4745);
        primary.start_outage(Duration::from_millis(50 + draw % 150));
        count.fetch_add(1, Ordering::Relaxed);
        if n % 3 == 0 {
            backup.start_outage(Duration::from_millis(30 + (draw >> 32) % 120));
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `calls` calls from `concurrency` callers through the full stack and checks the store
/// afterwards.
async fn soak(calls: u64, concurrency: usize, seed: u64) -> Result<Report, BoxError> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let store = SqliteSink::open(dir.path())?;
    let primary = start_agent("primary", seed ^ 1).await?;
    let backup = start_agent("backup", seed ^ 2).await?;
    let built = Arc::new(build(primary, backup, seed, Arc::new(store.clone()))?);

    let mut report = Report {
        calls,
        rss_start: rss_bytes(),
        ..Report::default()
    };
    let next = Arc::new(AtomicU64::new(0));
    let outages_started = Arc::new(AtomicU64::new(0));
    let rss_at_10_percent = Arc::new(AtomicU64::new(0));
    let outage_task = tokio::spawn(outages(
        built.primary_chaos.clone(),
        built.backup_chaos.clone(),
        seed,
        outages_started.clone(),
    ));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (built, next, rss) = (built.clone(), next.clone(), rss_at_10_percent.clone());
        callers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= calls {
                    return tally;
                }
                if index == calls / 10 {
                    rss.store(rss_bytes(), Ordering::Relaxed);
                }
                let result = built.stack.clone().oneshot(request(seed, index)).await;
                tally.record(result);
            }
        });
    }
    let mut ids = Vec::new();
    while let Some(tally) = callers.join_next().await {
        let tally = tally?;
        ids.extend_from_slice(&tally.ids);
        ids.extend_from_slice(&tally.degraded_ids);
        report.merge(tally);
    }
    outage_task.abort();
    report.rss_end = rss_bytes();
    report.rss_at_10_percent = rss_at_10_percent.load(Ordering::Relaxed);
    report.injected_primary = built.primary_chaos.injected();
    report.injected_backup = built.backup_chaos.injected();
    report.outages = outages_started.load(Ordering::Relaxed);

    // Close the store (every clone: the stack holds one), reopen it, and look for every id.
    drop(built);
    drop(store);
    let reopened = SqliteSink::open(dir.path())?;
    let stored: HashSet<DeadLetterId> = reopened
        .list(usize::MAX)
        .await?
        .into_iter()
        .map(|record| record.id)
        .collect();
    let returned: HashSet<DeadLetterId> = ids.iter().copied().collect();
    report.stored_records = stored.len();
    report.lost_dead_letters = returned.difference(&stored).count() + (ids.len() - returned.len());
    report.unexpected_records = stored.difference(&returned).count();
    report.elapsed = started.elapsed();
    Ok(report)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_call_is_accounted_for_no_dead_letter_is_lost_and_memory_is_stable() {
    let calls = env_u64("STEADFAST_SOAK_CALLS").unwrap_or(CI_CALLS);
    let seed = env_u64("STEADFAST_SOAK_SEED").unwrap_or(7);
    // Bounded however large the run: 2 ms per call on top of a minute is far above what it
    // takes (about 1.2 ms per call in a debug build, 0.1 ms in release).
    let limit = Duration::from_secs(60) + Duration::from_millis(2).saturating_mul(calls as u32);
    let report = tokio::time::timeout(limit, soak(calls, CONCURRENCY, seed))
        .await
        .expect("the soak finishes within its time limit")
        .expect("the soak runs");

    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "soak: {} calls (seed {seed}, concurrency {CONCURRENCY}) in {:.1?}: primary {}, fallback {}, \
         cached {}, degraded {}, dead-lettered {}, unaccounted {}",
        report.calls,
        report.elapsed,
        report.primary,
        report.fallback,
        report.cached,
        report.degraded,
        report.dead_lettered,
        report.unaccounted,
    );
    println!(
        "soak: faults injected {} (primary {:?}, backup {:?}), outage windows {}",
        report.faults_injected(),
        report.injected_primary,
        report.injected_backup,
        report.outages,
    );
    println!(
        "soak: degraded answers dead-lettered first {}; store records after reopen {}, lost dead letters {}, unexpected records {}",
        report.degraded_dead_letters,
        report.stored_records,
        report.lost_dead_letters,
        report.unexpected_records,
    );
    println!(
        "soak: VmRSS start {:.1} MiB, at 10% {:.1} MiB, at end {:.1} MiB (growth {:+.1} MiB, bound {:.1} MiB)",
        mib(report.rss_start),
        mib(report.rss_at_10_percent),
        mib(report.rss_end),
        mib(report.rss_end) - mib(report.rss_at_10_percent),
        mib(report.rss_bound()),
    );

    assert_eq!(
        report.unaccounted, 0,
        "calls with no accounted outcome, e.g. {:?}",
        report.unaccounted_samples
    );
    assert_eq!(
        report.accounted(),
        report.calls,
        "every call ends exactly once"
    );
    assert_eq!(
        report.lost_dead_letters, 0,
        "dead-lettered ids missing from the store"
    );
    assert_eq!(
        report.unexpected_records, 0,
        "store records no caller was told about"
    );
    assert_eq!(
        report.stored_records as u64,
        report.dead_lettered + report.degraded_dead_letters
    );
    // The run must have exercised what it claims to: faults, fallbacks, dead letters.
    assert!(report.faults_injected() > report.calls / 100, "{report:?}");
    assert!(
        report.fallback > 0 && report.dead_lettered > 0,
        "{report:?}"
    );
    if report.rss_at_10_percent > 0 {
        assert!(
            report.rss_end.saturating_sub(report.rss_at_10_percent) < report.rss_bound(),
            "resident memory grew from {:.1} MiB to {:.1} MiB, over the bound of {:.1} MiB",
            mib(report.rss_at_10_percent),
            mib(report.rss_end),
            mib(report.rss_bound()),
        );
    }
}
