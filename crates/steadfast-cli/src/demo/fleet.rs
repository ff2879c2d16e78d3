//! `steadfast demo --replicas N`: N replicas of one application, each with its own registry,
//! breaker and Redis connections, call one agent that has an outage in the middle of the run.
//! The first replica takes most of the traffic and trips; the others learn the outage from the
//! fleet (reason `remote`) without a failure of their own, one replica probes for the fleet, and
//! its recovery closes every breaker.
//!
//! ```text
//! steadfast demo --replicas 2 --duration 8
//! steadfast demo --replicas 3 --redis-url redis://127.0.0.1:6379
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use steadfast::circuit_breaker::{
    BreakerConfig, BreakerHandle, BreakerState, CircuitBreakerLayer, CircuitOpen, TransitionReason,
};
use steadfast::events::Event;
use steadfast::{BoxError, Registry};
use steadfast_redis::{Fleet, FleetConfig};
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::DemoArgs;

/// One replica of the demo's application.
struct Replica {
    name: String,
    registry: Registry,
    breaker: BreakerHandle,
    service: BoxCloneService<(), &'static str, BoxError>,
    fleet: Fleet,
    redacted_url: String,
    /// Calls that reached the agent from this replica, and those that failed there.
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// Whether its breaker was opened by the fleet (reason `remote`) at least once.
    learned: Arc<AtomicBool>,
}

/// The agent every replica calls: down (an error after 5 ms) while `down` is set.
fn agent(
    down: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> BoxCloneService<(), &'static str, BoxError> {
    BoxCloneService::new(service_fn(move |()| {
        sent.fetch_add(1, Ordering::Relaxed);
        let is_down = down.load(Ordering::Relaxed);
        if is_down {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            if is_down {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err::<&'static str, BoxError>("503 Service Unavailable".into())
            } else {
                Ok("ok")
            }
        }
    }))
}

fn breaker_config() -> Result<BreakerConfig, BoxError> {
    Ok(BreakerConfig::builder()
        .consecutive_failures(5)
        .initial_open_duration(Duration::from_secs(1))
        .max_open_duration(Duration::from_secs(2))
        .half_open_probes(1)
        .success_threshold(1)
        .build()?)
}

/// A line of the timeline, `at` seconds into the run.
fn line(started: Instant, replica: &str, text: &str) {
    println!(
        "{:>6.2}s  {replica:<10} {text}",
        started.elapsed().as_secs_f64()
    );
}

pub(super) async fn run(args: &DemoArgs) -> Result<ExitCode, BoxError> {
    let url = args
        .redis_url
        .clone()
        .unwrap_or_else(steadfast_redis::url_from_env);
    let down = Arc::new(AtomicBool::new(false));
    let config = breaker_config()?;
    let fleet = start_replicas(&url, usize::from(args.replicas), &config, &down)?;
    for replica in &fleet {
        if !replica.fleet.wait_connected(Duration::from_secs(3)).await {
            eprintln!(
                "error: Redis at {} does not answer; start it, or pass --redis-url",
                replica.redacted_url
            );
            return Ok(ExitCode::FAILURE);
        }
    }

    let duration = args.duration;
    let outage = (duration.mul_f64(0.2), duration.mul_f64(0.55));
    println!(
        "\n{} replicas call `primary` for {:.1}s; it is down from {:.1}s to {:.1}s. \
         replica-1 sends 20 calls/s, the others 2 calls/s each.\n",
        fleet.len(),
        duration.as_secs_f64(),
        outage.0.as_secs_f64(),
        outage.1.as_secs_f64()
    );
    let started = Instant::now();
    for replica in &fleet {
        spawn_timeline(replica, started);
    }
    let outage_task = {
        let down = down.clone();
        tokio::spawn(async move {
            tokio::time::sleep(outage.0).await;
            down.store(true, Ordering::Relaxed);
            line(started, "agent", "`primary` goes down (503)");
            tokio::time::sleep(outage.1.saturating_sub(outage.0)).await;
            down.store(false, Ordering::Relaxed);
            line(started, "agent", "`primary` is back");
        })
    };
    let totals = drive(&fleet, started, duration).await?;
    outage_task.await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    summary(&fleet, &totals, &config);
    Ok(ExitCode::SUCCESS)
}

/// The replicas, each with its own registry, breaker and fleet membership (Redis connections).
fn start_replicas(
    url: &str,
    replicas: usize,
    config: &BreakerConfig,
    down: &Arc<AtomicBool>,
) -> Result<Vec<Replica>, BoxError> {
    let prefix = format!("steadfast-demo-{}", std::process::id());
    let mut fleet = Vec::with_capacity(replicas);
    for index in 0..replicas {
        let name = format!("replica-{}", index + 1);
        let registry = Registry::new();
        let scope = registry.agent("primary");
        let layer = CircuitBreakerLayer::new(&scope, config.clone());
        let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let service =
            BoxCloneService::new(layer.layer(agent(down.clone(), sent.clone(), failed.clone())));
        let fleet_config = FleetConfig::builder(url, prefix.as_str())
            .replica(name.as_str())
            .probe_lease(Duration::from_secs(2))
            .build()?;
        let member = Fleet::start(fleet_config.clone(), registry.events());
        member.sync(&layer.handle());
        println!(
            "{name}: its own registry, breaker and Redis connections ({}, prefix {prefix})",
            fleet_config.redacted_url()
        );
        fleet.push(Replica {
            name,
            registry,
            breaker: layer.handle(),
            service,
            fleet: member,
            redacted_url: fleet_config.redacted_url().to_owned(),
            sent,
            failed,
            learned: Arc::new(AtomicBool::new(false)),
        });
    }
    Ok(fleet)
}

/// Prints each breaker transition of `replica`, and its fleet's connection changes.
fn spawn_timeline(replica: &Replica, started: Instant) {
    let mut events = replica.registry.events().subscribe();
    let (name, failed) = (replica.name.clone(), replica.failed.clone());
    let learned = replica.learned.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let text = match &event {
                Event::CircuitOpened {
                    reason: TransitionReason::Remote,
                    ..
                } => {
                    learned.store(true, Ordering::Relaxed);
                    format!(
                        "{event}  <- learned from the fleet (its own failures so far: {})",
                        failed.load(Ordering::Relaxed)
                    )
                }
                Event::CircuitClosed {
                    reason: TransitionReason::Remote,
                    ..
                } => format!("{event}  <- another replica's probe succeeded"),
                Event::CircuitOpened { .. }
                | Event::CircuitHalfOpen { .. }
                | Event::CircuitClosed { .. }
                | Event::FleetSyncLost { .. }
                | Event::FleetSyncRestored { .. } => event.to_string(),
                _ => continue,
            };
            line(started, &name, &text);
        }
    });
}

/// Each replica's caller: replica-1 at 20 calls/s, the others at 2; returns (answered,
/// refused by the breaker, failed) per replica.
async fn drive(
    fleet: &[Replica],
    started: Instant,
    duration: Duration,
) -> Result<Vec<(u64, u64, u64)>, BoxError> {
    let callers: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(index, replica)| {
            let mut service = replica.service.clone();
            let every = if index == 0 {
                Duration::from_millis(50)
            } else {
                Duration::from_millis(500)
            };
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                let (mut ok, mut refused, mut errors) = (0u64, 0u64, 0u64);
                while started.elapsed() < duration {
                    ticker.tick().await;
                    let result = match service.ready().await {
                        Ok(ready) => ready.call(()).await,
                        Err(error) => Err(error),
                    };
                    match result {
                        Ok(_) => ok += 1,
                        Err(error) if error.is::<CircuitOpen>() => refused += 1,
                        Err(_) => errors += 1,
                    }
                }
                (ok, refused, errors)
            })
        })
        .collect();
    let mut totals = Vec::with_capacity(callers.len());
    for caller in callers {
        totals.push(caller.await?);
    }
    Ok(totals)
}

fn summary(fleet: &[Replica], totals: &[(u64, u64, u64)], config: &BreakerConfig) {
    println!("\nsummary:");
    let threshold = u64::from(config.consecutive_failures());
    let mut learned = 0;
    for (replica, (ok, refused, errors)) in fleet.iter().zip(totals) {
        println!(
            "  {:<10} answered {ok}, refused by its open breaker {refused}, failed {errors}; \
             the agent got {} calls from it ({} during the outage); breaker now {}",
            replica.name,
            replica.sent.load(Ordering::Relaxed),
            replica.failed.load(Ordering::Relaxed),
            replica.breaker.state()
        );
        if replica.learned.load(Ordering::Relaxed)
            && replica.failed.load(Ordering::Relaxed) < threshold
        {
            learned += 1;
        }
    }
    let all_closed = fleet
        .iter()
        .all(|replica| replica.breaker.state() == BreakerState::Closed);
    println!(
        "\nfleet: {learned} of {} replica(s) learned the outage from the fleet before failing \
         {threshold} times themselves. Every breaker closed again: {all_closed}.",
        fleet.len()
    );
}
