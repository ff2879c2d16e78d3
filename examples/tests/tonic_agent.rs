//! The tonic example: a gRPC agent under the layers (real sockets, real time: about 1 s).

use std::time::Duration;

use steadfast::prelude::*;
use steadfast_examples::tonic_agent::{ATTEMPT_TIMEOUT, SCRIPT, run};
use tonic::Code;

#[tokio::test]
async fn grpc_codes_drive_retries_and_the_breaker_and_caller_faults_do_not_count() {
    let summary = run().await.unwrap();
    let exchanges = &summary.exchanges;
    assert_eq!(exchanges.len(), 7);
    let answered = |index: usize| exchanges[index].answer.is_some();

    assert!(answered(0));
    assert_eq!(exchanges[0].attempts, 1);

    assert!(answered(1), "UNAVAILABLE is retried: {:?}", exchanges[1]);
    assert_eq!(exchanges[1].attempts, 2);

    assert!(
        answered(2),
        "a hang is timed out and retried: {:?}",
        exchanges[2]
    );
    assert_eq!(exchanges[2].attempts, 2);
    assert!(exchanges[2].elapsed >= ATTEMPT_TIMEOUT);

    assert_eq!(exchanges[3].code, Some(Code::InvalidArgument));
    assert_eq!(exchanges[3].attempts, 1, "a caller fault is not retried");

    assert_eq!(exchanges[4].code, Some(Code::Unavailable));
    assert_eq!(exchanges[4].attempts, 3, "the outage spends the retries");

    assert!(exchanges[5].circuit_open, "{:?}", exchanges[5]);
    assert_eq!(exchanges[5].attempts, 1);
    assert!(exchanges[5].elapsed < Duration::from_millis(100));
    assert_eq!(summary.state_after_outage, BreakerState::Open);

    assert!(answered(6), "the probe succeeds: {:?}", exchanges[6]);
    assert_eq!(summary.final_state, BreakerState::Closed);

    assert_eq!(
        summary.breaker_caller_faults, 1,
        "INVALID_ARGUMENT was not held against the agent"
    );
    assert_eq!(
        summary.breaker_failures, 5,
        "UNAVAILABLE, the timeout and three UNAVAILABLEs"
    );
    assert_eq!(summary.server_hits, SCRIPT.len());
}
