//! The retry layer's metrics: `steadfast_retries_total{agent,reason}` and
//! `steadfast_retry_budget_exhausted_total{agent}`, read through a recorder local to the test.
#![cfg(feature = "retry")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use steadfast::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

/// Counters by `name{label=value,...}`.
#[derive(Default)]
struct Counters(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |counter| counter.load(Ordering::SeqCst))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let counter = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn retries_and_budget_refusals_are_counted_per_agent_and_reason() {
    let counters = Counters::default();
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
        counters.get("steadfast_retries_total{agent=gpt,reason=error}"),
        1
    );
    assert_eq!(
        counters.get("steadfast_retry_budget_exhausted_total{agent=gpt}"),
        1
    );
}
