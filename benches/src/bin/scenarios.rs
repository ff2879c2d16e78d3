//! Deterministic scenarios under tokio's paused clock (no real time passes): how steadfast
//! behaves through an outage, reported as markdown tables for docs/benchmarks.md.
//!
//! `cargo run -p steadfast-benches --bin scenarios`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use steadfast::circuit_breaker::{
    BreakerConfig, BreakerState, CircuitBreakerLayer, MAX_OPEN_DURATION_LIMIT,
};
use steadfast::retry::{BackoffRetryLayer, RetryConfig};
use steadfast::{Agent, BoxError};
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Traffic: one call every 100 ms (10 requests/s).
const TICK: Duration = Duration::from_millis(100);

/// Drives traffic at an agent that is down for `outage`, and returns how long after the agent
/// came back the breaker closed again.
async fn recovery_time(outage: Duration, health_check: bool) -> Duration {
    let up = Arc::new(AtomicBool::new(false));
    let agent = {
        let up = up.clone();
        service_fn(move |()| {
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err::<(), BoxError>("down".into())
                }
            }
        })
    };
    let mut layer = CircuitBreakerLayer::new(&Agent::new("llm"), BreakerConfig::default());
    if health_check {
        let up = up.clone();
        layer = layer.health_check(move || {
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err::<(), BoxError>("down".into())
                }
            }
        });
    }
    let handle = layer.handle();
    let mut service = layer.layer(agent);
    let started = Instant::now();
    let mut recovered_at = None;
    loop {
        if recovered_at.is_none() && started.elapsed() >= outage {
            up.store(true, Ordering::Relaxed);
            recovered_at = Some(Instant::now());
        }
        let _ = service.ready().await.unwrap().call(()).await;
        if let Some(at) = recovered_at
            && handle.state() == BreakerState::Closed
        {
            return at.elapsed();
        }
        sleep(TICK).await;
    }
}

/// Requests in the outage scenario, and their arrival rate.
const REQUESTS: u64 = 10_000;
const ARRIVAL_EVERY: Duration = Duration::from_millis(10);
/// The agent is down from 10 s to 70 s into the run (requests arrive for 100 s).
const OUTAGE_START: Duration = Duration::from_secs(10);
const OUTAGE_END: Duration = Duration::from_secs(70);

#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    attempts_while_down: AtomicU64,
    requests_while_down: AtomicU64,
}

/// An agent that is down during the outage window; counts every call that reaches it.
fn outage_agent(
    started: Instant,
    tally: Arc<Tally>,
) -> impl Service<
    u64,
    Response = (),
    Error = BoxError,
    Future = impl Future<Output = Result<(), BoxError>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |_request: u64| {
        let since = started.elapsed();
        let down = since >= OUTAGE_START && since < OUTAGE_END;
        tally.attempts.fetch_add(1, Ordering::Relaxed);
        if down {
            tally.attempts_while_down.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(if down {
            Err::<(), BoxError>("503 overloaded".into())
        } else {
            Ok(())
        })
    })
}

/// A naive retry: up to 3 retries with exponential backoff (0.5, 1, 2 s), no budget.
#[derive(Clone)]
struct NaiveRetry {
    retries_left: u32,
    next_wait: Duration,
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for NaiveRetry {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _request: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        if result.is_ok() || self.retries_left == 0 {
            return None;
        }
        self.retries_left -= 1;
        let wait = self.next_wait;
        self.next_wait *= 2;
        Some(sleep(wait))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Sends `REQUESTS` requests, one every `ARRIVAL_EVERY`, each through a clone of `stack`.
async fn drive<S>(stack: S, started: Instant, tally: &Tally)
where
    S: Service<u64, Response = ()> + Clone + Send + 'static,
    S::Error: Send,
    S::Future: Send,
{
    let mut calls = tokio::task::JoinSet::new();
    for request in 0..REQUESTS {
        tokio::time::sleep_until(started + ARRIVAL_EVERY * request as u32).await;
        let since = started.elapsed();
        if since >= OUTAGE_START && since < OUTAGE_END {
            tally.requests_while_down.fetch_add(1, Ordering::Relaxed);
        }
        let stack = stack.clone();
        calls.spawn(async move {
            let _ = stack.oneshot(request).await;
        });
    }
    while calls.join_next().await.is_some() {}
}

/// One row of the outage table.
async fn outage_row(
    name: &str,
    build: impl FnOnce(Instant, Arc<Tally>) -> tower::util::BoxCloneSyncService<u64, (), BoxError>,
) {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let stack = build(started, tally.clone());
    drive(stack, started, &tally).await;
    let attempts = tally.attempts.load(Ordering::Relaxed);
    let down_requests = tally.requests_while_down.load(Ordering::Relaxed);
    let down_attempts = tally.attempts_while_down.load(Ordering::Relaxed);
    println!(
        "| {name} | {:.2} | {:.2} | {down_attempts} |",
        attempts as f64 / REQUESTS as f64,
        down_attempts as f64 / down_requests as f64,
    );
}

async fn outage_amplification() {
    println!("## Outage amplification: attempts per request while an agent is down");
    println!();
    println!(
        "{REQUESTS} requests at 100/s; the agent fails every call from {} s to {} s; simulated clock.",
        OUTAGE_START.as_secs(),
        OUTAGE_END.as_secs()
    );
    println!("Retries: up to 3 with exponential backoff from 500 ms. Budget: steadfast's default");
    println!("(20 % of requests over 10 s, plus 10 retries/s). Breaker: steadfast's default.");
    println!();
    println!(
        "| stack | attempts per request (whole run) | attempts per request during the outage | calls reaching the dead agent |"
    );
    println!("|---|---|---|---|");
    let retry_config = || RetryConfig::builder().build().unwrap();
    outage_row("naive retry (tower::retry, no budget)", |started, tally| {
        let policy = NaiveRetry {
            retries_left: 3,
            next_wait: Duration::from_millis(500),
        };
        tower::util::BoxCloneSyncService::new(tower::retry::Retry::new(
            policy,
            outage_agent(started, tally),
        ))
    })
    .await;
    outage_row("steadfast retry + budget", |started, tally| {
        tower::util::BoxCloneSyncService::new(
            BackoffRetryLayer::new(&Agent::new("llm"), retry_config())
                .seed(7)
                .layer(outage_agent(started, tally)),
        )
    })
    .await;
    outage_row(
        "steadfast retry + budget without the 10/s floor",
        |started, tally| {
            let config = RetryConfig::builder()
                .budget_min_per_sec(0)
                .build()
                .unwrap();
            tower::util::BoxCloneSyncService::new(
                BackoffRetryLayer::new(&Agent::new("llm"), config)
                    .seed(7)
                    .layer(outage_agent(started, tally)),
            )
        },
    )
    .await;
    outage_row("steadfast retry + budget + breaker", |started, tally| {
        let llm = Agent::new("llm");
        let breaker = CircuitBreakerLayer::new(&llm, BreakerConfig::default());
        tower::util::BoxCloneSyncService::new(
            BackoffRetryLayer::new(&llm, retry_config())
                .seed(7)
                .layer(breaker.layer(outage_agent(started, tally))),
        )
    })
    .await;
    println!();
    println!(
        "The budget's per-second floor is added to its ratio (as in Finagle): at 100 requests/s"
    );
    println!(
        "it allows 20 + 10 retries/s, hence 1.3 attempts per request; the floor's share shrinks"
    );
    println!("as traffic grows, and without it the ratio alone holds retries to 20 %. With the");
    println!(
        "breaker, calls during the outage fail fast without reaching the agent (that is where a"
    );
    println!(
        "`FallbackLayer` answers them); after it, the breaker probes its way back (see below)."
    );
    println!();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(outage_amplification());
    println!("## Recovery: time from the agent coming back to the breaker closing");
    println!();
    println!(
        "Default `BreakerConfig` (open 1 s growing x1.5 to 60 s), 10 requests/s, simulated clock."
    );
    println!(
        "With a health check: checked every 10 s (the default) once the open time has elapsed."
    );
    println!();
    println!("| outage | without health check | with health check |");
    println!("|---|---|---|");
    for outage_secs in [5u64, 30, 90, 300, 900] {
        let outage = Duration::from_secs(outage_secs);
        let (lazy, checked) = runtime.block_on(async {
            (
                recovery_time(outage, false).await,
                recovery_time(outage, true).await,
            )
        });
        // The promise of the two-minute recovery: whatever the outage, the breaker is closed again
        // well within it of the agent coming back.
        assert!(lazy <= MAX_OPEN_DURATION_LIMIT && checked <= MAX_OPEN_DURATION_LIMIT);
        println!(
            "| {outage_secs} s | {:.1} s | {:.1} s |",
            lazy.as_secs_f64(),
            checked.as_secs_f64()
        );
    }
}
