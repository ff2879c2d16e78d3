//! The retry layer's metrics: `steadfast_retries_total{agent,reason}`,
//! `steadfast_retries_exhausted_total{agent}`, `steadfast_retry_budget_exhausted_total{agent}`
//! and `steadfast_retry_deadline_exceeded_total{agent}`, read through a recorder local to the
//! test.
#![cfg(feature = "retry")]

#[path = "support/metrics.rs"]
mod support;

use std::time::Duration;

use steadfast::prelude::*;
use support::TestRecorder;
use tower::{Layer, ServiceExt, service_fn};

#[test]
fn retries_and_budget_refusals_are_counted_per_agent_and_reason() {
    let counters = TestRecorder::default();
    metrics::with_local_recorder(&counters, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let config = RetryConfig::builder()
                .jitter(Jitter::None)
                .budget_ratio(0.0)
                .budget_min_per_sec(1)
                .build()
                .unwrap();
            let dead = service_fn(|()| async { Err::<(), BoxError>("refused".into()) });
            let agent = BackoffRetryLayer::new(&Agent::new("gpt"), config).layer(dead);
            let err = agent.oneshot(()).await.unwrap_err();
            assert!(err.downcast_ref::<BudgetExhausted>().is_some(), "{err}");
            tokio::time::advance(Duration::from_secs(1)).await;

            // The classifier's reason labels the retry; running out is counted apart.
            let timeouts = |result: Result<&(), &BoxError>| match result {
                Ok(()) => Outcome::success(),
                Err(_) => Outcome::transient("timeout"),
            };
            let config = RetryConfig::builder()
                .jitter(Jitter::None)
                .max_retries(1)
                .build()
                .unwrap();
            let claude = Agent::new("claude").classifier(timeouts);
            let agent = BackoffRetryLayer::new(&claude, config).layer(dead);
            let err = agent.oneshot(()).await.unwrap_err();
            assert!(err.downcast_ref::<RetriesExhausted>().is_some(), "{err}");

            // A deadline that passes during the first attempt.
            let slow = service_fn(|()| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<(), BoxError>(())
            });
            let config = RetryConfig::builder()
                .deadline(Duration::from_secs(1))
                .build()
                .unwrap();
            let agent = BackoffRetryLayer::new(&Agent::new("mistral"), config).layer(slow);
            let err = agent.oneshot(()).await.unwrap_err();
            assert!(err.downcast_ref::<DeadlineExceeded>().is_some(), "{err}");
        });
    });
    // One retry from the per-second floor, then the budget refused the next.
    assert_eq!(
        counters.counter("steadfast_retries_total{agent=gpt,reason=error}"),
        1
    );
    assert_eq!(
        counters.counter("steadfast_retry_budget_exhausted_total{agent=gpt}"),
        1
    );
    assert_eq!(
        counters.counter("steadfast_retries_exhausted_total{agent=gpt}"),
        0
    );
    assert_eq!(
        counters.counter("steadfast_retries_total{agent=claude,reason=timeout}"),
        1
    );
    assert_eq!(
        counters.counter("steadfast_retries_exhausted_total{agent=claude}"),
        1
    );
    assert_eq!(
        counters.counter("steadfast_retry_deadline_exceeded_total{agent=mistral}"),
        1
    );
    assert_eq!(
        counters.counter("steadfast_retries_total{agent=mistral,reason=error}"),
        0
    );
}
