//! The breaker's metrics, seen through a real `metrics` recorder.
#![cfg(feature = "circuit-breaker")]

#[path = "support/metrics.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use steadfast::circuit_breaker::{BreakerConfig, CircuitBreakerLayer};
use steadfast::{BoxError, Registry};
use support::TestRecorder;
use tower::{Layer, Service, ServiceExt, service_fn};

const STATES: [&str; 5] = ["closed", "open", "half_open", "forced_open", "disabled"];

/// Asserts that `steadfast_breaker_state{agent=gpt}` is 1 for `state` and 0 for the others.
#[allow(clippy::float_cmp)] // the state gauges hold 0 or 1, exact in f64
fn assert_state(recorder: &TestRecorder, state: &str) {
    for each in STATES {
        let expected = if each == state { 1.0 } else { 0.0 };
        assert_eq!(
            recorder.gauge(&format!(
                "steadfast_breaker_state{{agent=gpt,state={each}}}"
            )),
            expected,
            "while {state}: the {each} gauge"
        );
    }
}

#[test]
fn calls_states_and_transitions_are_counted() {
    let recorder = Arc::new(TestRecorder::default());
    metrics::with_local_recorder(&*recorder.clone(), || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let registry = Registry::new();
            let layer = CircuitBreakerLayer::new(&registry.agent("gpt"), BreakerConfig::default());
            // Registered under the agent's name as the breaker is made, before any call.
            assert!(recorder.registered("steadfast_calls_total{agent=gpt,outcome=success}"));
            assert_state(&recorder, "closed");
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
            assert_state(&recorder, "open");
            tokio::time::advance(Duration::from_secs(1)).await;
            agent.ready().await.unwrap().call(false).await.unwrap();
            assert_state(&recorder, "half_open");
            for _ in 0..2 {
                agent.ready().await.unwrap().call(false).await.unwrap();
            }
            // An agent without a breaker has no call series at all.
            let _claude = registry.agent("claude");
        });
    });
    assert!(!recorder.registered("steadfast_calls_total{agent=claude,outcome=success}"));
    for state in STATES {
        assert!(!recorder.registered(&format!(
            "steadfast_breaker_state{{agent=claude,state={state}}}"
        )));
    }
    for outcome in ["rate_limited", "agent_fault", "caller_fault"] {
        assert_eq!(
            recorder.counter(&format!(
                "steadfast_calls_total{{agent=gpt,outcome={outcome}}}"
            )),
            0,
            "{outcome}"
        );
    }
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
    assert_state(&recorder, "closed");
    // The paused clock stood still except for the one second the circuit stayed open.
    assert_eq!(
        recorder.counter("steadfast_breaker_state_seconds_total{agent=gpt,state=open}"),
        1
    );
    assert_eq!(
        recorder.counter("steadfast_breaker_state_seconds_total{agent=gpt,state=closed}"),
        0
    );
}
