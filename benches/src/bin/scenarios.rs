//! Deterministic scenarios under tokio's paused clock (no real time passes): how steadfast
//! behaves through an outage, reported as markdown tables for docs/benchmarks.md.
//!
//! `cargo run -p steadfast-benches --bin scenarios`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{
    BreakerConfig, BreakerState, CircuitBreakerLayer, MAX_OPEN_DURATION_LIMIT,
};
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
    let mut layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("agent");
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

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
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
