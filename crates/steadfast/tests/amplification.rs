//! Retry amplification against a dead agent: attempts that reach the agent per request, at
//! several arrival rates, with the default retry layer alone and with the default breaker
//! under it (the order `ServiceBuilder` users write: retry, then breaker, then the agent).
//! On tokio's paused clock, seeded jitter: deterministic, and the table printed with
//! `--nocapture` is the one in docs/retry.md.
#![cfg(all(feature = "retry", feature = "circuit-breaker"))]

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use steadfast::prelude::*;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const REQUESTS: u64 = 1_000;

#[derive(Clone, Copy, Debug)]
enum Arrival {
    /// One request after the other: each waits for the previous one's answer.
    Sequential,
    /// Requests start at this many per second, whatever the earlier ones are doing.
    PerSecond(u64),
}

impl Arrival {
    fn label(self) -> String {
        match self {
            Arrival::Sequential => "sequential".to_string(),
            Arrival::PerSecond(rate) => format!("{rate}/s"),
        }
    }
}

type Stack = BoxCloneSyncService<u64, u64, BoxError>;

/// Sends `REQUESTS` requests arriving as `arrival` to a dead agent; returns the attempts that
/// reached it.
async fn attempts(arrival: Arrival, with_breaker: bool) -> u64 {
    let reached = Arc::new(AtomicU64::new(0));
    let counted = reached.clone();
    let dead = service_fn(move |_: u64| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Err::<u64, BoxError>("connection refused".into()) }
    });
    let agent = Agent::new("dead");
    let retry = BackoffRetryLayer::new(&agent, RetryConfig::default()).seed(7);
    let stack: Stack = if with_breaker {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(retry)
                .layer(CircuitBreakerLayer::new(&agent, BreakerConfig::default()))
                .service(dead),
        )
    } else {
        BoxCloneSyncService::new(retry.layer(dead))
    };
    match arrival {
        Arrival::Sequential => {
            for request in 0..REQUESTS {
                let _ = stack.clone().oneshot(request).await;
            }
        }
        Arrival::PerSecond(rate) => {
            let start = Instant::now();
            let mut calls = tokio::task::JoinSet::new();
            for request in 0..REQUESTS {
                let at = start + Duration::from_nanos(request * 1_000_000_000 / rate);
                let stack = stack.clone();
                calls.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let _ = stack.oneshot(request).await;
                });
            }
            while calls.join_next().await.is_some() {}
        }
    }
    reached.load(Ordering::Relaxed)
}

fn per_request(attempts: u64) -> f64 {
    attempts as f64 / REQUESTS as f64
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_bursts_and_the_breaker_bounds_every_rate() {
    let arrivals = [
        Arrival::Sequential,
        Arrival::PerSecond(10),
        Arrival::PerSecond(100),
        Arrival::PerSecond(1_000),
    ];
    let mut table = String::from(
        "| arrival of 1,000 requests | retry alone | retry + breaker |\n|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for arrival in arrivals {
        let (alone, guarded) = (
            attempts(arrival, false).await,
            attempts(arrival, true).await,
        );
        let _ = writeln!(
            table,
            "| {} | {:.2} | {:.2} |",
            arrival.label(),
            per_request(alone),
            per_request(guarded)
        );
        rows.push((arrival, alone, guarded));
    }
    println!("attempts reaching the dead agent per request:\n{table}");

    for (arrival, alone, guarded) in rows {
        match arrival {
            // Sequential calls never bind the budget: they ask for under one retry a second,
            // below its floor of 10, so every request makes all four attempts.
            Arrival::Sequential => assert_eq!(alone, 4 * REQUESTS, "{table}"),
            // At 10/s requests ask for 30 retries a second; the budget grants its floor (10)
            // plus 20 % of the first attempts (2): about 1 + 12/10 attempts per request.
            Arrival::PerSecond(10) => assert!((2_000..2_400).contains(&alone), "{table}"),
            // Faster, the floor matters less and less: towards 1 + 20 %.
            Arrival::PerSecond(_) => assert!(alone < 1_400, "{arrival:?}: {table}"),
        }
        // With the breaker, five failures open the circuit; refusals are not retried (they
        // never reached the agent, and the circuit answers for it), and the open time grows.
        assert!(guarded < REQUESTS / 10, "{arrival:?}: {table}");
    }
}
