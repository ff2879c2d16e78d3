//! The retry layer's metrics: `steadfast_retries_total{agent,reason}` and
//! `steadfast_retry_budget_exhausted_total{agent}`, read through a recorder local to the test.
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
            let agent = BackoffRetryLayer::new(config).named("gpt").layer(dead);
            let err = agent.oneshot(()).await.unwrap_err();
            assert!(err.downcast_ref::<BudgetExhausted>().is_some(), "{err}");
            tokio::time::advance(Duration::from_secs(1)).await;
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
}
