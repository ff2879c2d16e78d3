//! The hyper example against its local fake LLM API (real sockets, so real time: about 1.5 s).

use std::time::Duration;

use steadfast::prelude::*;
use steadfast_examples::hyper_agent::{ATTEMPT_TIMEOUT, SCRIPT, run};

#[tokio::test]
async fn retries_wait_as_told_time_out_hangs_and_the_outage_opens_the_breaker() {
    let summary = run().await.unwrap();
    let exchanges = &summary.exchanges;
    assert_eq!(exchanges.len(), 7);
    let status = |index: usize| exchanges[index].status;
    let attempts = |index: usize| exchanges[index].attempts;

    assert_eq!((status(0), attempts(0)), (Some(200), 1));

    assert_eq!(
        (status(1), attempts(1)),
        (Some(200), 2),
        "the 429 is retried"
    );
    assert!(
        exchanges[1].elapsed >= Duration::from_millis(250),
        "after the wait the server asked for: {:?}",
        exchanges[1].elapsed
    );
    assert!(
        exchanges[1].elapsed < Duration::from_secs(1),
        "and not much longer"
    );

    assert_eq!(
        (status(2), attempts(2)),
        (Some(200), 2),
        "the 503 is retried"
    );

    assert_eq!(
        (status(3), attempts(3)),
        (Some(200), 2),
        "the hang is timed out and retried"
    );
    assert!(exchanges[3].elapsed >= ATTEMPT_TIMEOUT);

    assert_eq!(
        (status(4), attempts(4)),
        (Some(503), 3),
        "the outage spends the retries and returns the last answer"
    );

    assert!(
        exchanges[5].circuit_open,
        "then the breaker refuses: {:?}",
        exchanges[5]
    );
    assert_eq!(attempts(5), 1, "CircuitOpen is not retried");
    assert!(
        exchanges[5].elapsed < Duration::from_millis(100),
        "and fails fast"
    );
    assert_eq!(summary.state_after_outage, BreakerState::Open);

    assert_eq!(
        (status(6), attempts(6)),
        (Some(200), 1),
        "the probe succeeds"
    );
    assert_eq!(summary.final_state, BreakerState::Closed);

    assert_eq!(
        summary.server_hits,
        SCRIPT.len(),
        "every attempt but the refused one reached the server"
    );
}
