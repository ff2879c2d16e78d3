//! The three mock LLM agents: real hyper HTTP/1 servers on 127.0.0.1, each following a script
//! derived from the run's seed and the share of the run elapsed, so a run repeats.
//!
//! | agent | normally | scripted trouble |
//! |---|---|---|
//! | `primary` | fast (5-30 ms), 2% 503 | outage from 25% to 55% of the run: 503, some 429 + `Retry-After`, `/health` 503 |
//! | `backup` | slower (30-100 ms), 10% 503 | brown-out from 35% to 52% of the run: 85% 503 |
//! | `slow` | 150-1200 ms, so often past the client's timeout | - |

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use steadfast::BoxError;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Where the primary's outage lies, as shares of the run.
pub(crate) const PRIMARY_OUTAGE: (f64, f64) = (0.25, 0.55);
/// Where the backup's brown-out lies, as shares of the run.
const BACKUP_BROWNOUT: (f64, f64) = (0.35, 0.52);

/// Which mock agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AgentKind {
    Primary,
    Backup,
    Slow,
}

impl AgentKind {
    pub(crate) const ALL: [AgentKind; 3] = [AgentKind::Primary, AgentKind::Backup, AgentKind::Slow];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            AgentKind::Primary => "primary",
            AgentKind::Backup => "backup",
            AgentKind::Slow => "slow",
        }
    }

    const fn salt(self) -> u64 {
        match self {
            AgentKind::Primary => 0x5052_494d,
            AgentKind::Backup => 0x4241_434b,
            AgentKind::Slow => 0x534c_4f57,
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SplitMix64: a tiny, seedable generator, plenty for scripting mock agents.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// A value in `[low, high)`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low).max(1)
    }
}

/// What an agent does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Answer { latency_ms: u64 },
    Unavailable { latency_ms: u64 },
    RateLimited { retry_after_s: u64 },
}

/// The script of one agent: pure, from the seed, the request's index and the share of the run.
fn script(kind: AgentKind, seed: u64, hit: u64, progress: f64) -> Act {
    let mut rng = Rng::new(seed ^ kind.salt() ^ hit.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let within = |(from, to): (f64, f64)| progress >= from && progress < to;
    match kind {
        AgentKind::Primary if within(PRIMARY_OUTAGE) => {
            if rng.chance(0.25) {
                Act::RateLimited { retry_after_s: 1 }
            } else {
                Act::Unavailable {
                    latency_ms: rng.between(2, 10),
                }
            }
        }
        AgentKind::Primary => {
            let latency_ms = rng.between(5, 30);
            if rng.chance(0.02) {
                Act::Unavailable { latency_ms }
            } else {
                Act::Answer { latency_ms }
            }
        }
        AgentKind::Backup => {
            let latency_ms = rng.between(30, 100);
            let failure = if within(BACKUP_BROWNOUT) { 0.85 } else { 0.1 };
            if rng.chance(failure) {
                Act::Unavailable { latency_ms }
            } else {
                Act::Answer { latency_ms }
            }
        }
        AgentKind::Slow => Act::Answer {
            latency_ms: rng.between(150, 1200),
        },
    }
}

/// A running mock agent.
#[derive(Debug)]
pub(crate) struct MockAgent {
    pub(crate) kind: AgentKind,
    pub(crate) addr: SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

struct Script {
    kind: AgentKind,
    seed: u64,
    started: Instant,
    duration: Duration,
    hits: AtomicU64,
}

impl Script {
    fn progress(&self) -> f64 {
        self.started.elapsed().as_secs_f64() / self.duration.as_secs_f64().max(f64::EPSILON)
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() == "/health" {
            let down = self.kind == AgentKind::Primary
                && (PRIMARY_OUTAGE.0..PRIMARY_OUTAGE.1).contains(&self.progress());
            let status = if down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            return reply(status, Bytes::new());
        }
        let hit = self.hits.fetch_add(1, Ordering::Relaxed);
        let act = script(self.kind, self.seed, hit, self.progress());
        let prompt = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return reply(StatusCode::BAD_REQUEST, Bytes::new()),
        };
        match act {
            Act::Answer { latency_ms } => {
                tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                let mut body = format!(r#"{{"agent":"{}","answer_to":"#, self.kind).into_bytes();
                body.extend_from_slice(&prompt);
                body.push(b'}');
                reply(StatusCode::OK, Bytes::from(body))
            }
            Act::Unavailable { latency_ms } => {
                tokio::time::sleep(Duration::from_millis(latency_ms)).await;
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(br#"{"error":"overloaded"}"#),
                )
            }
            Act::RateLimited { retry_after_s } => {
                let mut response = reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    Bytes::from_static(br#"{"error":"rate limited"}"#),
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after_s),
                );
                response
            }
        }
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

/// Starts `kind` on 127.0.0.1 (any port), scripted for a run of `duration` from `started`.
pub(crate) async fn start(
    kind: AgentKind,
    seed: u64,
    started: Instant,
    duration: Duration,
) -> Result<MockAgent, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| format!("cannot start the mock agent `{kind}` on 127.0.0.1: {error}"))?;
    let addr = listener.local_addr()?;
    let script = Arc::new(Script {
        kind,
        seed,
        started,
        duration,
        hits: AtomicU64::new(0),
    });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let script = script.clone();
                    async move { Ok::<_, Infallible>(script.answer(request).await) }
                });
                // A client that hangs up mid-answer (its timeout fired) is not an error here.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(MockAgent { kind, addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_scripts_the_same_answers() {
        for hit in 0..200 {
            for progress in [0.1, 0.3, 0.45, 0.9] {
                for kind in AgentKind::ALL {
                    assert_eq!(
                        script(kind, 7, hit, progress),
                        script(kind, 7, hit, progress)
                    );
                }
            }
        }
    }

    #[test]
    fn the_primary_fails_every_call_during_its_outage_and_mostly_answers_outside() {
        let during = (0..200)
            .filter(|hit| matches!(script(AgentKind::Primary, 7, *hit, 0.4), Act::Answer { .. }));
        assert_eq!(during.count(), 0);
        let after = (0..200)
            .filter(|hit| matches!(script(AgentKind::Primary, 7, *hit, 0.8), Act::Answer { .. }));
        assert!(after.count() > 180);
        let limited = (0..200).filter(|hit| {
            matches!(
                script(AgentKind::Primary, 7, *hit, 0.4),
                Act::RateLimited { .. }
            )
        });
        assert!(
            limited.count() > 20,
            "some 429s with Retry-After during the outage"
        );
    }

    #[test]
    fn rng_unit_stays_in_range() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let value = rng.unit();
            assert!((0.0..1.0).contains(&value));
            assert!((5..30).contains(&rng.between(5, 30)));
        }
    }
}
