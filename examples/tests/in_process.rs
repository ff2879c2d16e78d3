//! The in-process example, under tokio's paused clock: deterministic and instant.

use std::time::Duration;

use steadfast::prelude::*;
use steadfast_examples::in_process::{Settings, Summary, run};

fn assert_accounted(summary: &Summary) {
    assert_eq!(
        summary.accounted(),
        summary.sent,
        "every request accounted for: {summary:#?}"
    );
    assert_eq!(
        summary.attempts,
        summary.breaker_calls + summary.breaker_rejected,
        "every attempt either went through the breaker or was refused by it"
    );
    assert_eq!(
        summary.failed, 0,
        "the degrade layer answers what nothing else could"
    );
    assert!(summary.agent_calls <= summary.breaker_calls);
}

#[tokio::test(start_paused = true)]
async fn the_outage_opens_the_breaker_and_a_probe_closes_it_after() {
    let summary = run(Settings::default()).await.unwrap();

    assert_eq!(summary.sent, 60);
    assert_accounted(&summary);
    assert!(
        summary.injected_outage_failures >= 3,
        "the outage failed calls: {summary:#?}"
    );
    assert!(
        summary.breaker_opened >= 1,
        "the breaker opened: {summary:#?}"
    );
    assert!(
        summary.breaker_rejected >= 1,
        "the primary failed fast while open"
    );
    assert!(
        summary.answered_by_backup >= 1,
        "the backup answered for it: {summary:#?}"
    );
    assert!(
        summary.answered_from_cache >= 1,
        "the cache answered when the backup failed too: {summary:#?}"
    );
    assert!(
        summary.degraded >= 1,
        "a topic never answered before got a degraded answer: {summary:#?}"
    );
    assert!(summary.breaker_closed >= 1, "a probe closed it again");
    assert_eq!(summary.final_state, BreakerState::Closed);
    assert!(
        summary.answered_after_retry >= 1,
        "retries hid scattered faults: {summary:#?}"
    );
    assert!(
        summary
            .timeline
            .iter()
            .any(|line| line.contains("circuit OPENED"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_the_same_run() {
    let first = run(Settings::default()).await.unwrap();
    let second = run(Settings::default()).await.unwrap();
    assert_eq!(first.timeline, second.timeline);
}

#[tokio::test(start_paused = true)]
async fn every_request_is_accounted_for_whatever_the_seed() {
    for seed in 0..8 {
        let summary = run(Settings {
            seed,
            requests: 40,
            ..Settings::default()
        })
        .await
        .unwrap();
        assert_eq!(summary.sent, 40);
        assert_accounted(&summary);
    }
}

#[tokio::test(start_paused = true)]
async fn without_an_outage_the_breaker_stays_closed_and_the_primary_answers_every_prompt() {
    let summary = run(Settings {
        outage_after: Duration::from_secs(3600),
        requests: 30,
        ..Settings::default()
    })
    .await
    .unwrap();
    assert_accounted(&summary);
    assert_eq!(summary.breaker_rejected, 0);
    assert_eq!(summary.backup_calls, 0, "no fallback was needed");
    assert_eq!(summary.breaker_opened, 0);
    assert_eq!(
        summary.answered_first_time + summary.answered_after_retry,
        30,
        "{summary:#?}"
    );
}
