//! The reqwest example against its local fake LLM API (real sockets, real time: about 0.5 s).

use steadfast_examples::reqwest_client::{ATTEMPT_TIMEOUT, SCRIPT, run};

#[tokio::test]
async fn reqwest_under_the_layers_retries_what_is_transient_and_only_that() {
    let summary = run().await.unwrap();
    let exchanges = &summary.exchanges;
    assert_eq!(exchanges.len(), 5);

    assert_eq!(exchanges[0].status, Some(200), "{:?}", exchanges[0]);
    assert_eq!(
        exchanges[0].attempts, 2,
        "the 503 was retried with a rebuilt request"
    );
    assert!(
        exchanges[0].body.contains("prompt 1"),
        "the body was resent"
    );

    assert_eq!(exchanges[1].status, Some(429));
    assert_eq!(
        exchanges[1].attempts, 1,
        "an exhausted quota is not retried"
    );
    assert!(exchanges[1].body.contains("insufficient_quota"));

    assert_eq!(exchanges[2].status, Some(200));
    assert_eq!(
        exchanges[2].attempts, 2,
        "the hang was timed out and retried"
    );
    assert!(exchanges[2].elapsed >= ATTEMPT_TIMEOUT);

    assert!(exchanges[3].connect_error, "{:?}", exchanges[3]);
    assert_eq!(
        exchanges[3].attempts, 3,
        "a refused connection is transient: retried"
    );

    assert_eq!(exchanges[4].status, Some(200), "{:?}", exchanges[4]);
    assert_eq!(exchanges[4].attempts, 1, "a caller fault is not retried");
    assert!(
        exchanges[4].body.contains("prompt 5"),
        "the bigger model got the same prompt: {:?}",
        exchanges[4]
    );
    assert_eq!(summary.big_model_hits, 1);

    assert_eq!(summary.server_hits, SCRIPT.len());
}

#[tokio::test]
async fn the_reqwest_middleware_adapter_retries_waits_as_told_and_reports_its_errors() {
    use std::time::Duration;

    use steadfast_examples::resilient_middleware::{SCRIPT, run};

    let summary = run().await.unwrap();
    let exchanges = &summary.exchanges;
    assert_eq!(exchanges.len(), 3);

    assert_eq!(exchanges[0].status, Some(200), "{:?}", exchanges[0]);
    assert_eq!(
        exchanges[0].attempts, 2,
        "the 503 was retried with a rebuilt request"
    );

    assert_eq!(exchanges[1].status, Some(200), "{:?}", exchanges[1]);
    assert_eq!(exchanges[1].attempts, 2);
    assert!(
        exchanges[1].elapsed >= Duration::from_millis(200),
        "waited as the 429 asked: {:?}",
        exchanges[1].elapsed
    );

    assert!(exchanges[2].resilience_error, "{:?}", exchanges[2]);
    assert_eq!(exchanges[2].attempts, 3, "a refused connection is retried");
    assert!(
        exchanges[2]
            .error
            .as_deref()
            .unwrap()
            .contains("3 attempts")
    );

    assert_eq!(summary.server_hits, SCRIPT.len());
}
