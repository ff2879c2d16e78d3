//! A flaky in-process agent behind a circuit breaker: watch it open, probe and recover.
//!
//! ```text
//! cargo run -p steadfast --example breaker_demo
//! ```
//!
//! The agent answers, then goes down for two seconds, then comes back. The breaker trips after
//! three failures, rejects calls without touching the agent while open, runs a health check in
//! the background, and closes again once its probes succeed. Takes about five seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer, CircuitOpen};
use steadfast::{BoxError, Registry};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let started = Instant::now();
    let stamp = move || format!("{:>5.2}s", started.elapsed().as_secs_f64());

    let agent_up = Arc::new(AtomicBool::new(true));
    let agent_calls = Arc::new(AtomicU32::new(0));
    let agent = {
        let (up, calls) = (agent_up.clone(), agent_calls.clone());
        service_fn(move |prompt: String| {
            calls.fetch_add(1, Ordering::Relaxed);
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(format!("answer to {prompt:?}"))
                } else {
                    Err::<String, BoxError>("503 model overloaded".into())
                }
            }
        })
    };

    let config = BreakerConfig::builder()
        .consecutive_failures(3)
        .initial_open_duration(Duration::from_millis(500))
        .max_open_duration(Duration::from_secs(2))
        .health_check_interval(Duration::from_millis(400))
        .half_open_probes(2)
        .build()?;
    let registry = Registry::new();
    let health_up = agent_up.clone();
    let layer =
        CircuitBreakerLayer::new(&registry.agent("gpt-primary"), config).health_check(move || {
            let up = health_up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err::<(), BoxError>("health check: 503".into())
                }
            }
        });
    let handle = layer.handle();
    let mut service = ServiceBuilder::new().layer(layer).service(agent);

    print_state_changes(handle.clone(), started);

    println!("{} agent is up", stamp());
    let (mut answered, mut failed, mut rejected) = (0u32, 0u32, 0u32);
    for i in 0..45u32 {
        if i == 5 {
            agent_up.store(false, Ordering::Relaxed);
            println!("{} !! agent goes down", stamp());
        }
        if i == 25 {
            agent_up.store(true, Ordering::Relaxed);
            println!("{} !! agent is back", stamp());
        }
        match service.ready().await?.call(format!("prompt {i}")).await {
            Ok(_) => answered += 1,
            Err(err) => {
                if let Some(open) = err.downcast_ref::<CircuitOpen>() {
                    rejected += 1;
                    if rejected % 5 == 1 {
                        println!("{}    call {i} rejected fast: {open}", stamp());
                    }
                } else {
                    failed += 1;
                    println!("{}    call {i} failed: {err}", stamp());
                }
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_millis(50)).await;

    let counts = handle.counts();
    println!(
        "\n{} done: {answered} answered, {failed} failed, {rejected} rejected without calling the agent \
         (the agent saw {} calls); breaker is {}",
        stamp(),
        agent_calls.load(Ordering::Relaxed),
        handle.state()
    );
    assert_eq!(counts.rejected, u64::from(rejected));
    assert_eq!(
        answered + failed + rejected,
        45,
        "every call is accounted for"
    );
    Ok(())
}

/// Prints every state change of the breaker as it happens.
fn print_state_changes(handle: BreakerHandle, started: Instant) {
    let mut watch = handle.watch();
    tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let state = *watch.borrow_and_update();
            println!(
                "{:>5.2}s ** breaker `{}` is now {} ({})",
                started.elapsed().as_secs_f64(),
                handle.name(),
                state,
                handle
                    .last_transition_reason()
                    .map_or("-", |reason| reason.as_str()),
            );
        }
    });
}
