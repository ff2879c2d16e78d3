//! The callers: a bounded number of tasks, each sending a few requests a second through the
//! stack, and the tally that accounts for every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use steadfast::dead_letter::DeadLettered;
use steadfast::provenance::{Provenance, Served};
use steadfast_http::BufferedBody;
use tokio::time::Instant;
use tower::ServiceExt;

use super::agents::Rng;
use super::stack::{DemoStack, RequestKind};

/// How many distinct prompts callers pick from (repeats are what the cache can answer).
const PROMPTS: u64 = 80;
/// Share of requests that are batch jobs.
const BATCH_SHARE: f64 = 0.25;
/// Unexpected outcomes whose message is kept for the summary.
const KEPT_ERRORS: usize = 10;

/// Every request, by how it ended.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sent: AtomicU64,
    pub(crate) primary: AtomicU64,
    pub(crate) fallback_backup: AtomicU64,
    pub(crate) fallback_slow: AtomicU64,
    pub(crate) cached: AtomicU64,
    pub(crate) degraded: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) other: AtomicU64,
    errors: Mutex<Vec<String>>,
}

/// A [`Tally`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) sent: u64,
    pub(crate) primary: u64,
    pub(crate) fallback_backup: u64,
    pub(crate) fallback_slow: u64,
    pub(crate) cached: u64,
    pub(crate) degraded: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) other: u64,
}

impl Counts {
    pub(crate) const fn fallback(&self) -> u64 {
        self.fallback_backup + self.fallback_slow
    }

    /// Requests with an outcome.
    pub(crate) const fn finished(&self) -> u64 {
        self.primary
            + self.fallback()
            + self.cached
            + self.degraded
            + self.dead_lettered
            + self.other
    }
}

impl Tally {
    pub(crate) fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            sent: load(&self.sent),
            primary: load(&self.primary),
            fallback_backup: load(&self.fallback_backup),
            fallback_slow: load(&self.fallback_slow),
            cached: load(&self.cached),
            degraded: load(&self.degraded),
            dead_lettered: load(&self.dead_lettered),
            other: load(&self.other),
        }
    }

    /// The first unexpected outcomes, as messages.
    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn unexpected(&self, message: String) {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() < KEPT_ERRORS {
            errors.push(message);
        }
    }

    /// Counts one finished call by who answered (its provenance) or why it failed. The
    /// registry counts the same calls from the layers' events; this tally is the caller's side.
    fn record(&self, result: Result<super::stack::DemoResponse, steadfast::BoxError>) {
        match result {
            Ok(response) => match response.served() {
                Served::Primary if response.status().is_success() => {
                    self.primary.fetch_add(1, Ordering::Relaxed);
                }
                Served::Primary => {
                    self.unexpected(format!("the primary answered {}", response.status()));
                }
                Served::Fallback { name } => match &*name {
                    "backup" => {
                        self.fallback_backup.fetch_add(1, Ordering::Relaxed);
                    }
                    "slow" => {
                        self.fallback_slow.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        self.unexpected(format!("an unknown fallback `{other}` answered"));
                    }
                },
                Served::Cache { .. } => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                }
                Served::Degraded { .. } => {
                    self.degraded.fetch_add(1, Ordering::Relaxed);
                }
                other @ Served::Checkpoint { .. } => {
                    self.unexpected(format!(
                        "the traffic demo has no checkpoint layer, yet {other} answered"
                    ));
                }
            },
            Err(error) => {
                if steadfast::error::find::<DeadLettered>(error.as_ref()).is_some() {
                    self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.unexpected(steadfast::error::chain(error.as_ref()).join(": "));
                }
            }
        }
    }
}

/// One caller's request: a chat prompt or a batch job, from a small pool of prompts.
fn next_request(rng: &mut Rng) -> super::stack::DemoRequest {
    let kind = if rng.chance(BATCH_SHARE) {
        RequestKind::Batch
    } else {
        RequestKind::Chat
    };
    let prompt = rng.between(0, PROMPTS);
    let body = match kind {
        RequestKind::Chat => format!(r#"{{"prompt":"question {prompt}"}}"#),
        RequestKind::Batch => format!(r#"{{"job":"summarise document {prompt}"}}"#),
    };
    http::Request::post(kind.path())
        .header(http::header::CONTENT_TYPE, "application/json")
        // A secret the dead-letter encoder must redact.
        .header(http::header::AUTHORIZATION, "Bearer sk-demo-not-a-real-key")
        .body(BufferedBody::from(body))
        .expect("a static method, path and headers make a valid request")
}

/// Runs `callers` tasks until `until`, each sending about `rate` requests a second.
pub(crate) async fn drive(
    stack: DemoStack,
    tally: Arc<Tally>,
    callers: usize,
    rate: f64,
    seed: u64,
    until: Instant,
) {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let stack = stack.clone();
        let tally = tally.clone();
        let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(caller as u64 + 1));
        tasks.spawn(async move {
            // Stagger the callers over the first interval.
            let mut next = Instant::now() + interval.mul_f64(rng.unit());
            loop {
                tokio::time::sleep_until(next).await;
                if Instant::now() >= until {
                    break;
                }
                let request = next_request(&mut rng);
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let result = stack.clone().oneshot(request).await;
                tally.record(result);
                // Jittered pacing (0.5x to 1.5x the interval), never bunching up after a slow call.
                next = (next + interval.mul_f64(0.5 + rng.unit())).max(Instant::now());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
