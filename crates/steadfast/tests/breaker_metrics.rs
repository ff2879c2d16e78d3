//! The breaker's metrics, seen through a real `metrics` recorder.
#![cfg(feature = "circuit-breaker")]

#[path = "support/metrics.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use steadfast::BoxError;
use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use support::TestRecorder;
use tower::{Layer, Service, ServiceExt, service_fn};

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
