//! Fleet sync while Redis dies and comes back: a private `redis-server` on a free port (no
//! persistence), killed and restarted by the test; the shared Redis is never touched. Real
//! time (Redis I/O), bounded to a few seconds.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, BreakerState, TransitionReason};
use steadfast::events::Event;
use support::{PrivateRedis, Replica, SharedAgent, eventually, fleet_config, unique_prefix};
use tokio::time::Instant;

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .consecutive_failures(5)
        .initial_open_duration(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_no_call_and_state_converges_once_it_returns() {
    let mut redis = PrivateRedis::start().await;
    let prefix = unique_prefix("faults");
    let agents: Vec<SharedAgent> = (0..3).map(|_| SharedAgent::default()).collect();
    let mut fleet: Vec<Replica> = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            let fleet = fleet_config(&redis.url(), &prefix, &format!("r{index}"))
                .build()
                .unwrap();
            Replica::new("gpt", config(), agent.service(), Some(fleet))
        })
        .collect();
    let mut events: Vec<_> = fleet
        .iter()
        .map(|replica| replica.registry.events().subscribe())
        .collect();
    for replica in &fleet {
        assert!(
            replica
                .fleet
                .as_ref()
                .unwrap()
                .wait_connected(Duration::from_secs(5))
                .await
        );
    }
    for replica in &mut fleet {
        assert!(replica.call().await.is_ok());
    }

    // Redis dies: every replica notices, and no call fails or slows because of it.
    redis.kill();
    let all_down = eventually(Duration::from_secs(2), || {
        fleet
            .iter()
            .all(|replica| !replica.fleet.as_ref().unwrap().connected())
    })
    .await;
    assert!(all_down, "every replica sees Redis go");
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        for replica in &mut fleet {
            let started = Instant::now();
            let result = replica.call().await;
            slowest = slowest.max(started.elapsed());
            assert!(
                result.is_ok(),
                "a call failed while Redis was down: {result:?}"
            );
        }
    }
    assert!(
        slowest < Duration::from_millis(50),
        "calls never wait on Redis: slowest {slowest:?}"
    );

    // While Redis is away, replica 0's agent dies: only replica 0 can know.
    agents[0].dead.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let _ = fleet[0].call().await;
    }
    assert_eq!(fleet[0].state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fleet[1].state(), BreakerState::Closed, "no Redis, no news");
    assert_eq!(fleet[2].state(), BreakerState::Closed);

    // Redis returns (empty: no persistence). Within a second every replica agrees.
    redis.restart().await;
    let back = Instant::now();
    let converged = eventually(Duration::from_secs(2), || {
        fleet
            .iter()
            .all(|replica| replica.state() == BreakerState::Open)
    })
    .await;
    let took = back.elapsed();
    assert!(converged, "the fleet converges once Redis is back");
    assert!(
        took <= Duration::from_secs(1),
        "state converged {took:?} after Redis returned (at most 1 s)"
    );
    println!("converged {took:?} after Redis returned");
    for replica in &fleet[1..] {
        assert_eq!(
            replica.breaker.last_transition_reason(),
            Some(TransitionReason::Remote)
        );
    }

    // One outage: each replica reported it once, and its end once.
    for (index, receiver) in events.iter_mut().enumerate() {
        let mut lost = 0;
        let mut restored = 0;
        while let Some(event) = receiver.try_recv() {
            match event {
                Event::FleetSyncLost { .. } => lost += 1,
                Event::FleetSyncRestored { .. } => restored += 1,
                _ => {}
            }
        }
        assert_eq!((lost, restored), (1, 1), "replica {index}");
        assert_eq!(fleet[index].fleet.as_ref().unwrap().outages(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_starts_while_redis_is_down_works_and_joins_when_it_comes() {
    let mut redis = PrivateRedis::start().await;
    redis.kill();
    let prefix = unique_prefix("late-redis");
    let agent = SharedAgent::default();
    let fleet_config = fleet_config(&redis.url(), &prefix, "r0").build().unwrap();
    let mut replica = Replica::new("gpt", config(), agent.service(), Some(fleet_config));
    let fleet = replica.fleet.clone().unwrap();
    let started = Instant::now();
    for _ in 0..10 {
        assert!(replica.call().await.is_ok());
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "no wait for Redis"
    );
    assert!(!fleet.connected());
    redis.restart().await;
    assert!(fleet.wait_connected(Duration::from_secs(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_counts_as_down_and_slows_no_call() {
    let redis = PrivateRedis::start().await;
    let proxy = support::StallProxy::start(redis.port).await;
    let prefix = unique_prefix("stall");
    let agents: Vec<SharedAgent> = (0..2).map(|_| SharedAgent::default()).collect();
    let mut fleet: Vec<Replica> = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            let fleet = fleet_config(&proxy.url(), &prefix, &format!("r{index}"))
                .io_timeout(Duration::from_millis(200))
                .build()
                .unwrap();
            Replica::new("gpt", config(), agent.service(), Some(fleet))
        })
        .collect();
    let mut events: Vec<_> = fleet
        .iter()
        .map(|replica| replica.registry.events().subscribe())
        .collect();
    for replica in &fleet {
        assert!(
            replica
                .fleet
                .as_ref()
                .unwrap()
                .wait_connected(Duration::from_secs(5))
                .await
        );
    }

    // Redis stops answering (no disconnect): the ping finds out.
    proxy.stall(true);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(1) {
        for replica in &mut fleet {
            let call = Instant::now();
            assert!(replica.call().await.is_ok());
            slowest = slowest.max(call.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        slowest < Duration::from_millis(50),
        "calls never wait on Redis: slowest {slowest:?}"
    );
    assert!(
        fleet
            .iter()
            .all(|replica| !replica.fleet.as_ref().unwrap().connected()),
        "a Redis that does not answer within io_timeout counts as down"
    );
    for receiver in &mut events {
        let lost: Vec<_> = std::iter::from_fn(|| receiver.try_recv())
            .filter_map(|event| match event {
                Event::FleetSyncLost { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(lost, ["timeout"]);
    }

    // Replica 0 trips alone; when Redis answers again replica 1 learns it.
    agents[0].dead.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        let _ = fleet[0].call().await;
    }
    assert_eq!(fleet[0].state(), BreakerState::Open);
    proxy.stall(false);
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(2), || fleet[1].state()
            == BreakerState::Open)
        .await,
        "the fleet converges once Redis answers"
    );
    assert!(
        back.elapsed() <= Duration::from_secs(1),
        "{:?}",
        back.elapsed()
    );
}
