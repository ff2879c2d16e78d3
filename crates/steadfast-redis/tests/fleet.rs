//! Fleet sync against the real Redis at `STEADFAST_REDIS_URL` (default redis://127.0.0.1:6379):
//! several independent stacks, each with its own Redis connections, in one test process. These
//! tests FAIL when Redis is unreachable: CI must start it. Each test uses its own key prefix.
//!
//! Redis I/O needs real time, so these tests run on the real clock; each is bounded to a few
//! seconds, and timing assertions leave room for a loaded machine.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, BreakerState, TransitionReason};
use steadfast_redis::{Fleet, FleetBudget};
use support::{Replica, SharedAgent, eventually, fleet_config, redis_url, unique_prefix};
use tokio::time::Instant;

const REPLICAS: usize = 8;
const THRESHOLD: u32 = 5;

fn breaker_config(open: Duration, probes: u32) -> BreakerConfig {
    BreakerConfig::builder()
        .consecutive_failures(THRESHOLD)
        .initial_open_duration(open)
        .open_duration_multiplier(1.0)
        .max_open_duration(open)
        .half_open_probes(probes)
        .build()
        .unwrap()
}

async fn connected_fleet(
    prefix: &str,
    replicas: usize,
    config: &BreakerConfig,
    agent: &SharedAgent,
) -> Vec<Replica> {
    let url = redis_url();
    let fleet: Vec<Replica> = (0..replicas)
        .map(|index| {
            let fleet = fleet_config(&url, prefix, &format!("r{index}"))
                .build()
                .unwrap();
            Replica::new("gpt", config.clone(), agent.service(), Some(fleet))
        })
        .collect();
    for replica in &fleet {
        let connected = replica
            .fleet
            .as_ref()
            .unwrap()
            .wait_connected(Duration::from_secs(5))
            .await;
        assert!(
            connected,
            "Redis at {url} is unreachable: start it (CI does)"
        );
    }
    fleet
}

/// Each replica calls the agent every `every`, its first call `offset x index` after the start;
/// returns, per replica, when its breaker was first seen open.
fn drive(
    fleet: Vec<Replica>,
    every: Duration,
    offset: Duration,
    run_for: Duration,
) -> Vec<tokio::task::JoinHandle<Vec<Result<(), String>>>> {
    let start = Instant::now();
    fleet
        .into_iter()
        .enumerate()
        .map(|(index, mut replica)| {
            tokio::spawn(async move {
                tokio::time::sleep(offset * index as u32).await;
                let mut results = Vec::new();
                while start.elapsed() < run_for {
                    let result = replica.call().await;
                    results.push(result.map(|_| ()).map_err(|error| error.to_string()));
                    tokio::time::sleep(every).await;
                }
                drop(replica);
                results
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario: trip, spread, then half-open periods
async fn eight_replicas_stop_calling_a_dead_agent_after_about_one_threshold() {
    let prefix = unique_prefix("eight");
    let agent = SharedAgent::default();
    agent.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let probes = 2;
    let open = Duration::from_millis(700);
    let config = breaker_config(open, probes);
    let fleet = connected_fleet(&prefix, REPLICAS, &config, &agent).await;

    // When each replica's breaker is first seen open, and every call the agent receives.
    let opened: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; REPLICAS]));
    for (index, replica) in fleet.iter().enumerate() {
        let mut watch = replica.breaker.watch();
        let opened = opened.clone();
        tokio::spawn(async move {
            if watch
                .wait_for(|state| *state == BreakerState::Open)
                .await
                .is_ok()
            {
                opened.lock().unwrap()[index] = Some(Instant::now());
            }
        });
    }
    let handles: Vec<_> = fleet
        .iter()
        .map(|replica| replica.breaker.clone())
        .collect();
    let fleets: Vec<Fleet> = fleet.iter().map(|r| r.fleet.clone().unwrap()).collect();
    let run_for = Duration::from_secs(3);
    // 8 replicas x 25 calls/s: 200 calls/s to the agent while it is closed.
    let callers = drive(
        fleet,
        Duration::from_millis(40),
        Duration::from_millis(5),
        run_for,
    );

    let all_open = eventually(Duration::from_secs(2), || {
        opened.lock().unwrap().iter().all(Option::is_some)
    })
    .await;
    let calls_before_all_open = agent.calls();
    assert!(
        all_open,
        "every replica opens: {:?}",
        handles
            .iter()
            .map(steadfast::circuit_breaker::BreakerHandle::state)
            .collect::<Vec<_>>()
    );
    assert!(
        calls_before_all_open <= u64::from(2 * THRESHOLD),
        "the dead agent got {calls_before_all_open} calls before the whole fleet was open \
         (at most 2 x {THRESHOLD}; independent breakers: {})",
        REPLICAS as u32 * THRESHOLD
    );
    let times: Vec<Instant> = opened
        .lock()
        .unwrap()
        .iter()
        .map(|at| at.unwrap())
        .collect();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    assert!(
        last - first <= Duration::from_millis(100),
        "every replica open within 100 ms of the first: spread {:?}",
        last - first
    );

    // Half-open, fleet-wide: record each call the agent receives from now on, by time.
    let probe_times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let counted_from = agent.calls();
    {
        let (probe_times, agent) = (probe_times.clone(), agent.clone());
        tokio::spawn(async move {
            let mut seen = counted_from;
            loop {
                let now = agent.calls();
                for _ in seen..now {
                    probe_times.lock().unwrap().push(Instant::now());
                }
                seen = now;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }
    for caller in callers {
        let results = caller.await.unwrap();
        assert!(!results.is_empty());
    }
    println!(
        "fleet of {REPLICAS}: {calls_before_all_open} calls before all open, spread {:?}",
        last - first
    );
    let probe_times = probe_times.lock().unwrap().clone();
    // Probes of one half-open period come together; periods are an open time (700 ms) apart.
    let mut periods: Vec<Vec<Instant>> = Vec::new();
    for at in probe_times {
        match periods.last_mut() {
            Some(period) if at - *period.last().unwrap() < Duration::from_millis(300) => {
                period.push(at);
            }
            _ => periods.push(vec![at]),
        }
    }
    println!(
        "probes per half-open period: {:?}",
        periods.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        !periods.is_empty(),
        "the fleet keeps probing the agent after it opened"
    );
    for period in &periods {
        assert!(
            period.len() <= probes as usize,
            "a half-open period sent {} probes across the fleet (at most {probes}): {periods:?}",
            period.len()
        );
    }
    assert!(fleets.iter().all(|fleet| fleet.outages() == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_breakers_let_a_dead_agent_take_one_threshold_per_replica() {
    // The comparison: the same fleet without sync.
    let agent = SharedAgent::default();
    agent.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let config = breaker_config(Duration::from_secs(5), 1);
    let fleet: Vec<Replica> = (0..REPLICAS)
        .map(|_| Replica::new("gpt", config.clone(), agent.service(), None))
        .collect();
    let handles: Vec<_> = fleet
        .iter()
        .map(|replica| replica.breaker.clone())
        .collect();
    let callers = drive(
        fleet,
        Duration::from_millis(5),
        Duration::ZERO,
        Duration::from_millis(300),
    );
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(handles.iter().all(|h| h.state() == BreakerState::Open));
    assert_eq!(agent.calls(), u64::from(REPLICAS as u32 * THRESHOLD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_starts_later_learns_the_open_state() {
    let prefix = unique_prefix("late");
    let agent = SharedAgent::default();
    agent.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let config = breaker_config(Duration::from_secs(5), 1);
    let mut first = connected_fleet(&prefix, 1, &config, &agent)
        .await
        .pop()
        .unwrap();
    for _ in 0..THRESHOLD {
        let _ = first.call().await;
    }
    assert_eq!(first.state(), BreakerState::Open);
    let probe_at = first.breaker.next_probe_at().unwrap();

    let late_agent = SharedAgent::default();
    let mut late = connected_fleet(&prefix, 1, &config, &late_agent)
        .await
        .pop()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(1), || late.state()
            == BreakerState::Open)
        .await,
        "a replica started later reads the open-until key"
    );
    assert_eq!(
        late.breaker.last_transition_reason(),
        Some(TransitionReason::Remote)
    );
    let late_probe_at = late.breaker.next_probe_at().unwrap();
    let skew = if late_probe_at > probe_at {
        late_probe_at - probe_at
    } else {
        probe_at - late_probe_at
    };
    assert!(
        skew < Duration::from_millis(100),
        "same open-until, within {skew:?}"
    );
    assert!(
        late.call().await.is_err(),
        "refused without calling the agent"
    );
    assert_eq!(late_agent.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_probes_and_its_recovery_closes_the_fleet() {
    let prefix = unique_prefix("close");
    let agent = SharedAgent::default();
    agent.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let config = breaker_config(Duration::from_millis(400), 1);
    let mut fleet = connected_fleet(&prefix, 3, &config, &agent).await;
    for _ in 0..THRESHOLD {
        let _ = fleet[0].call().await;
    }
    assert!(
        eventually(Duration::from_secs(1), || fleet
            .iter()
            .all(|r| r.state() == BreakerState::Open))
        .await,
        "one replica's trip opens the fleet"
    );
    agent.dead.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = agent.calls();
    // Every replica keeps calling; after the open time exactly one of them probes.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !fleet.iter().all(|r| r.state() == BreakerState::Closed) {
        for replica in &mut fleet {
            let _ = replica.call().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let states: Vec<_> = fleet.iter().map(Replica::state).collect();
    assert!(
        states.iter().all(|s| *s == BreakerState::Closed),
        "{states:?}"
    );
    let closed_by_fleet = fleet
        .iter()
        .filter(|r| r.breaker.last_transition_reason() == Some(TransitionReason::Remote))
        .count();
    assert_eq!(
        closed_by_fleet, 2,
        "one replica closed on its probe, two followed it"
    );
    assert!(agent.calls() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_budget_grants_its_tokens_once_across_replicas() {
    let prefix = unique_prefix("budget");
    let agent = SharedAgent::default();
    let config = breaker_config(Duration::from_secs(1), 1);
    let fleet = connected_fleet(&prefix, 3, &config, &agent).await;
    let period = Duration::from_secs(2);
    // Start just after a period boundary of the server's clock, so the test stays in one.
    align_to_period(period).await;

    let budgets: Vec<FleetBudget> = fleet
        .iter()
        .map(|r| FleetBudget::new(r.fleet.as_ref().unwrap(), "retries", 20, period, 4).unwrap())
        .collect();
    let mut granted = 0u32;
    let deadline = Instant::now() + Duration::from_millis(800);
    while Instant::now() < deadline {
        for budget in &budgets {
            if budget.try_acquire() {
                granted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        granted, 20,
        "the fleet's 20 tokens, once, whatever the replicas"
    );
    assert!(budgets.iter().all(|b| b.leased() <= 20));
    assert!(
        budgets.iter().filter(|b| b.leased() > 0).count() >= 2,
        "leased to several replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_budget_bounds_the_retry_layers_of_every_replica_together() {
    use steadfast::retry::{BackoffRetryLayer, RetryConfig};
    use tower::{Layer, Service, ServiceExt};

    let prefix = unique_prefix("retry-budget");
    let agent = SharedAgent::default();
    agent.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let config = breaker_config(Duration::from_secs(1), 1);
    let fleet = connected_fleet(&prefix, 3, &config, &agent).await;
    align_to_period(Duration::from_secs(2)).await;

    // Locally generous (every request may retry three times): only the fleet's 6 bound them.
    let retry_config = RetryConfig::builder()
        .max_retries(3)
        .base(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2))
        .budget_ratio(10.0)
        .budget_min_per_sec(1000)
        .build()
        .unwrap();
    let mut stacks = Vec::new();
    for replica in &fleet {
        let budget = FleetBudget::new(
            replica.fleet.as_ref().unwrap(),
            "retries",
            6,
            Duration::from_secs(2),
            2,
        )
        .unwrap();
        let layer = BackoffRetryLayer::new(&replica.registry.agent("gpt"), retry_config.clone());
        assert!(layer.retry_budget().also_limit_by(Arc::new(budget)));
        stacks.push(layer.layer(agent.service()));
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // the first leases
    let mut requests = 0;
    for _ in 0..10 {
        for stack in &mut stacks {
            let result = stack.ready().await.unwrap().call(()).await;
            assert!(result.is_err());
            requests += 1;
        }
    }
    let retries = agent.calls() - requests;
    println!("{requests} requests, {retries} retries across the fleet (fleet budget 6)");
    assert!(
        retries <= 6,
        "{retries} retries: the fleet's budget is 6 a period"
    );
    assert!(retries > 0, "the fleet's budget grants some");
}

/// Sleeps until just after a period boundary of the Redis server's clock, so a test that lasts
/// less than a period stays in one.
async fn align_to_period(period: Duration) {
    let mut connection = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut connection)
        .await
        .unwrap();
    let period_ms = period.as_millis() as u64;
    let into_period = (secs * 1000 + micros / 1000) % period_ms;
    tokio::time::sleep(Duration::from_millis(period_ms - into_period + 20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_runs_the_health_check_per_interval() {
    use steadfast::circuit_breaker::CircuitBreakerLayer;
    use steadfast::{BoxError, Registry};
    use tower::{Layer, Service, ServiceExt};

    let prefix = unique_prefix("health");
    let url = redis_url();
    let interval = Duration::from_millis(300);
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .initial_open_duration(Duration::from_millis(300))
        .max_open_duration(Duration::from_millis(300))
        .health_check_interval(interval)
        .build()
        .unwrap();
    let checks = Arc::new(Mutex::new(Vec::<(usize, Instant)>::new()));
    let mut replicas = Vec::new();
    for index in 0..3 {
        let registry = Registry::new();
        let checks = checks.clone();
        let layer = CircuitBreakerLayer::new(&registry.agent("gpt"), config.clone()).health_check(
            move || {
                checks.lock().unwrap().push((index, Instant::now()));
                async { Err::<(), BoxError>("still down".into()) }
            },
        );
        let fleet = Fleet::start(
            fleet_config(&url, &prefix, &format!("r{index}"))
                .build()
                .unwrap(),
            registry.events(),
        );
        fleet.sync(&layer.handle());
        assert!(fleet.wait_connected(Duration::from_secs(5)).await);
        let service = layer.layer(tower::service_fn(|()| async {
            Err::<(), BoxError>("down".into())
        }));
        replicas.push((layer.handle(), service, fleet));
    }
    // Replica 0's one failure trips it; the fleet follows.
    let service = &mut replicas[0].1;
    let _ = service.ready().await.unwrap().call(()).await;
    assert!(
        eventually(Duration::from_secs(1), || replicas
            .iter()
            .all(|(handle, _, _)| handle.state() == BreakerState::Open))
        .await
    );
    let observe = Duration::from_millis(1800);
    tokio::time::sleep(observe).await;
    let checks = checks.lock().unwrap().clone();
    println!("health checks: {checks:?}");
    // One replica alone would check about every interval: 6 times in 1.8 s. Three independent
    // replicas: about 18.
    let most = (observe.as_millis() / interval.as_millis()) as usize + 2;
    assert!(
        !checks.is_empty() && checks.len() <= most,
        "{} checks in {observe:?} (one replica alone: at most {most})",
        checks.len()
    );
    for pair in checks.windows(2) {
        let ((first, at), (second, next)) = (pair[0], pair[1]);
        assert!(
            first == second || next - at >= interval / 2,
            "replicas {first} and {second} both checked within {:?}",
            next - at
        );
    }

    // Long after the first open period (300 ms) and lease (1 s) ended, a replica that starts
    // now still learns that the fleet is open: the checking replica keeps the key alive.
    let registry = Registry::new();
    let late = CircuitBreakerLayer::new(&registry.agent("gpt"), config.clone());
    let fleet = Fleet::start(
        fleet_config(&url, &prefix, "late").build().unwrap(),
        registry.events(),
    );
    fleet.sync(&late.handle());
    assert!(fleet.wait_connected(Duration::from_secs(5)).await);
    assert!(
        eventually(Duration::from_secs(1), || late.handle().state()
            == BreakerState::Open)
        .await,
        "a replica started during a long outage learns it"
    );
}
