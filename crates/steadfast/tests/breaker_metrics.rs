//! The breaker's metrics, seen through a real `metrics` recorder.
#![cfg(feature = "circuit-breaker")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use steadfast::BoxError;
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Keeps every counter and gauge by `name{label=value,...}`.
#[derive(Default)]
struct TestRecorder {
    values: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.values.lock().unwrap().entry(name).or_default().clone()
    }

    fn counter(&self, name: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |v| v.load(Ordering::SeqCst))
    }

    fn gauge(&self, name: &str) -> f64 {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .map_or(f64::NAN, |v| f64::from_bits(v.load(Ordering::SeqCst)))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
#[allow(clippy::float_cmp)] // the state gauge holds small integers, exact in f64
fn calls_states_and_transitions_are_counted() {
    let recorder = Arc::new(TestRecorder::default());
    metrics::with_local_recorder(&*recorder.clone(), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = CircuitBreakerLayer::new(BreakerConfig::default()).named("gpt");
            let mut agent = layer.layer(service_fn(|fail: bool| async move {
                if fail {
                    Err::<(), BoxError>("down".into())
                } else {
                    Ok(())
                }
            }));
            for fail in [false, false, true, true, true, true, true, false] {
                let _ = agent.ready().await.unwrap().call(fail).await;
            }
            tokio::time::advance(Duration::from_secs(1)).await;
            for _ in 0..3 {
                agent.ready().await.unwrap().call(false).await.unwrap();
            }
        });
    });
    assert_eq!(
        recorder.counter("steadfast_calls_total{agent=gpt,outcome=success}"),
        5
    );
    assert_eq!(
        recorder.counter("steadfast_calls_total{agent=gpt,outcome=transient}"),
        5
    );
    assert_eq!(
        recorder.counter("steadfast_calls_total{agent=gpt,outcome=rejected}"),
        1
    );
    assert_eq!(
        recorder.counter("steadfast_breaker_transitions_total{agent=gpt,from=closed,to=open}"),
        1
    );
    assert_eq!(
        recorder.counter("steadfast_breaker_transitions_total{agent=gpt,from=open,to=half_open}"),
        1
    );
    assert_eq!(
        recorder.counter("steadfast_breaker_transitions_total{agent=gpt,from=half_open,to=closed}"),
        1
    );
    assert_eq!(recorder.gauge("steadfast_breaker_state{agent=gpt}"), 0.0);
}
