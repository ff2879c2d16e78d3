//! The retry, fallback, degrade and dead-letter layers report their decisions on the
//! registry's event bus and in its per-agent counters, exactly once per decision and never on
//! a success; a drain's cancelled calls end up dead-lettered with reason "shutdown".
#![cfg(all(
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{DeadLetterRecord, DeadLetterSink, DeadLettered, Monitor};
use steadfast::events::EventReceiver;
use steadfast::prelude::*;
use steadfast::registry::CountersSnapshot;
use steadfast::shutdown::CancelledByShutdown;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

/// An agent that answers from a script: `Ok(())` echoes the request, `Err(message)` fails with
/// `message` (a transient error for the default classifier).
#[derive(Clone)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Result<(), &'static str>>>>,
}

impl Scripted {
    fn new(script: impl IntoIterator<Item = Result<(), &'static str>>) -> Self {
        Scripted {
            script: Arc::new(Mutex::new(script.into_iter().collect())),
        }
    }

    fn left(&self) -> usize {
        self.script.lock().unwrap().len()
    }
}

impl Service<String> for Scripted {
    type Response = String;
    type Error = BoxError;
    type Future = std::future::Ready<Result<String, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: String) -> Self::Future {
        let next = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script ran out");
        std::future::ready(next.map(|()| request).map_err(Into::into))
    }
}

fn drain(events: &mut EventReceiver) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

fn counters(registry: &Registry, agent: &str) -> CountersSnapshot {
    let snapshot = registry.snapshot();
    snapshot
        .agents
        .iter()
        .find(|a| a.name == agent)
        .unwrap_or_else(|| panic!("agent `{agent}` is not registered"))
        .counters
}

fn agent(name: &str) -> Arc<str> {
    Arc::from(name)
}

#[allow(clippy::ptr_arg, clippy::unnecessary_wraps)]
fn encode(prompt: &String) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(prompt.clone()))
}

fn retry_config() -> RetryConfig {
    RetryConfig::builder()
        .max_retries(2)
        .base(Duration::from_millis(100))
        .multiplier(2.0)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_layer_reports_each_scheduled_retry_and_the_give_up() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let script = Scripted::new([
        Ok(()),
        Err("overloaded"),
        Err("overloaded"),
        Ok(()),
        Err("overloaded"),
        Err("overloaded"),
        Err("overloaded"),
    ]);
    let mut service = BackoffRetryLayer::new(retry_config())
        .register(&registry)
        .named("gpt")
        .layer(script.clone());

    // A first-time success decides nothing and reports nothing.
    service
        .ready()
        .await
        .unwrap()
        .call("a".into())
        .await
        .unwrap();
    assert_eq!(drain(&mut events), []);
    assert_eq!(counters(&registry, "gpt"), CountersSnapshot::default());

    service
        .ready()
        .await
        .unwrap()
        .call("b".into())
        .await
        .unwrap();
    let error = service
        .ready()
        .await
        .unwrap()
        .call("c".into())
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<RetriesExhausted>().is_some());
    assert_eq!(script.left(), 0);

    let scheduled = |attempt, millis| Event::RetryScheduled {
        agent: agent("gpt"),
        attempt,
        delay: Duration::from_millis(millis),
        reason: Some("error"),
    };
    assert_eq!(
        drain(&mut events),
        [
            scheduled(2, 100),
            scheduled(3, 200),
            scheduled(2, 100),
            scheduled(3, 200),
            Event::RetriesExhausted {
                agent: agent("gpt"),
                attempts: 3,
                reason: Some("error"),
            },
        ]
    );
    let counted = counters(&registry, "gpt");
    assert_eq!((counted.retries, counted.retries_exhausted), (4, 1));
    // Counted under the final name only, whatever the order of `register` and `named`.
    assert_eq!(registry.agents(), ["agent", "gpt"]);
    assert_eq!(counters(&registry, "agent"), CountersSnapshot::default());
}

#[tokio::test(start_paused = true)]
async fn a_bus_given_with_events_replaces_the_registry_bus_but_counters_still_count() {
    let registry = Registry::new();
    let mut registry_events = registry.events().subscribe();
    let bus = EventBus::new(16);
    let mut own_events = bus.subscribe();
    let service = BackoffRetryLayer::new(retry_config())
        .named("gpt")
        .events(&bus)
        .register(&registry)
        .layer(Scripted::new([Err("overloaded"), Ok(())]));

    service.oneshot("a".into()).await.unwrap();

    assert_eq!(
        drain(&mut own_events),
        [Event::RetryScheduled {
            agent: agent("gpt"),
            attempt: 2,
            delay: Duration::from_millis(100),
            reason: Some("error"),
        }]
    );
    assert_eq!(drain(&mut registry_events), []);
    assert_eq!(counters(&registry, "gpt").retries, 1);
}

#[tokio::test(start_paused = true)]
async fn fallback_layer_reports_each_answer_an_alternative_gave() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let primary = Scripted::new([Ok(()), Err("overloaded"), Err("overloaded")]);
    let backup = Scripted::new([Ok(()), Err("down too")]);
    let mut service = FallbackLayer::new()
        .named("gpt")
        .then_named("claude", backup.clone())
        .register(&registry)
        .layer(primary.clone());

    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call("a".into())
            .await
            .unwrap(),
        "a"
    );
    assert_eq!(drain(&mut events), []);

    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call("b".into())
            .await
            .unwrap(),
        "b"
    );
    assert_eq!(
        drain(&mut events),
        [Event::FallbackUsed {
            agent: agent("gpt"),
            fallback: agent("claude"),
            reason: Some("error"),
        }]
    );

    // Everything failed: no fallback answered, so none is reported.
    let error = service
        .ready()
        .await
        .unwrap()
        .call("c".into())
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<AllFailed>().is_some());
    assert_eq!(drain(&mut events), []);
    assert_eq!((primary.left(), backup.left()), (0, 0));
    assert_eq!(counters(&registry, "gpt").fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn degrade_layer_reports_each_degraded_answer_and_not_a_passed_through_error() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let degrade = |(): &(), error: &BoxError| {
        (error.to_string() != "invalid prompt").then(|| "sorry, try later".to_string())
    };
    let mut service = DegradeLayer::new(degrade)
        .named("gpt")
        .register(&registry)
        .layer(Scripted::new([
            Ok(()),
            Err("overloaded"),
            Err("invalid prompt"),
        ]));

    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call("a".into())
            .await
            .unwrap(),
        "a"
    );
    assert_eq!(drain(&mut events), []);
    assert_eq!(
        service
            .ready()
            .await
            .unwrap()
            .call("b".into())
            .await
            .unwrap(),
        "sorry, try later"
    );
    let passed = service
        .ready()
        .await
        .unwrap()
        .call("c".into())
        .await
        .unwrap_err();
    assert_eq!(passed.to_string(), "invalid prompt");

    assert_eq!(
        drain(&mut events),
        [Event::Degraded {
            agent: agent("gpt"),
            from: "primary",
            to: "degraded",
            reason: Some("error"),
        }]
    );
    assert_eq!(counters(&registry, "gpt").degraded, 1);
}

#[tokio::test(start_paused = true)]
async fn dead_letter_layer_reports_only_records_the_sink_confirmed() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let sink = MemorySink::new(10);
    let mut service = DeadLetterLayer::new(sink.clone())
        .named("gpt")
        .encoder(encode)
        .register(&registry)
        .layer(Scripted::new([
            Ok(()),
            Err("overloaded"),
            Err("overloaded"),
        ]));

    service
        .ready()
        .await
        .unwrap()
        .call("a".into())
        .await
        .unwrap();
    assert_eq!(drain(&mut events), []);

    let error = service
        .ready()
        .await
        .unwrap()
        .call("b".into())
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<DeadLettered>().is_some());
    assert_eq!(
        drain(&mut events),
        [Event::DeadLettered {
            agent: agent("gpt"),
            reason: "error",
        }]
    );

    // The sink refuses the next record: it was not dead-lettered, so it is not reported.
    sink.fail_next_append("disk full");
    service
        .ready()
        .await
        .unwrap()
        .call("c".into())
        .await
        .unwrap_err();
    assert_eq!(drain(&mut events), []);
    assert_eq!(sink.len(), 1);
    assert_eq!(counters(&registry, "gpt").dead_lettered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_drain_dead_letters_the_calls_it_cancels_with_reason_shutdown() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let sink = MemorySink::new(10);
    let handed_to_hook = Arc::new(Mutex::new(Vec::new()));
    let hook_calls = handed_to_hook.clone();
    let shutdown = Shutdown::with_hook(move |call| hook_calls.lock().unwrap().push(call.clone()));
    // The dead-letter layer outside the shutdown layer: it holds the request, and sees a
    // cancelled call fail with `CancelledByShutdown` (classified as agent fault "shutdown").
    let service = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(sink.clone())
                .named("gpt")
                .encoder(|secs: &u64| Ok::<_, BoxError>(Bytes::from(secs.to_string())))
                .register(&registry),
        )
        .layer(ShutdownLayer::new(&shutdown).named("gpt"))
        .service(service_fn(|secs: u64| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, BoxError>(secs)
        }));

    let calls: Vec<_> = [1, 60, 2, 120]
        .into_iter()
        .map(|secs| tokio::spawn(service.clone().oneshot(secs)))
        .collect();
    tokio::task::yield_now().await; // every call starts
    assert_eq!(shutdown.in_flight(), 4);

    let report = shutdown.drain(Duration::from_secs(5)).await;
    assert_eq!(report.in_flight_at_start, 4);
    assert_eq!(report.cancelled, 2);

    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    // The calls that finished within the deadline answered and were not dead-lettered.
    assert_eq!(results[0].as_ref().unwrap(), &1);
    assert_eq!(results[2].as_ref().unwrap(), &2);
    for cancelled in [&results[1], &results[3]] {
        let error = cancelled.as_ref().unwrap_err();
        let dead = error.downcast_ref::<DeadLettered>().expect("dead-lettered");
        assert!(
            dead.original()
                .downcast_ref::<CancelledByShutdown>()
                .is_some()
        );
    }

    let mut records: Vec<DeadLetterRecord> = sink.records();
    records.sort_by(|a, b| a.request.cmp(&b.request));
    let stored: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.request.clone(),
                r.outcome,
                r.reason.as_str(),
                r.agent.as_str(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            (
                Bytes::from("120"),
                OutcomeKind::AgentFault,
                "shutdown",
                "gpt"
            ),
            (
                Bytes::from("60"),
                OutcomeKind::AgentFault,
                "shutdown",
                "gpt"
            ),
        ]
    );
    assert_eq!(handed_to_hook.lock().unwrap().len(), 2);
    let dead_lettered = Event::DeadLettered {
        agent: agent("gpt"),
        reason: "shutdown",
    };
    assert_eq!(drain(&mut events), [dead_lettered.clone(), dead_lettered]);
    assert_eq!(counters(&registry, "gpt").dead_lettered, 2);

    // A call refused once the drain started is kept too, with its own reason.
    let refused = service.oneshot(1).await.unwrap_err();
    assert!(refused.downcast_ref::<DeadLettered>().is_some());
    assert_eq!(
        drain(&mut events),
        [Event::DeadLettered {
            agent: agent("gpt"),
            reason: "shutting down",
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn dlq_monitor_publishes_the_depth_alert_and_sets_each_agents_depth() {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let sink = MemorySink::new(10);
    for agent in ["gpt", "gpt", "gpt", "claude"] {
        let record = DeadLetterRecord::new(agent, Bytes::from("prompt"), OutcomeKind::Transient);
        sink.append(record).await.unwrap();
    }
    let monitor = Monitor::new(sink.clone(), "main")
        .max_depth(3)
        .register(&registry);

    monitor.check().await.unwrap();
    assert_eq!(
        drain(&mut events),
        [Event::DlqOverThreshold {
            queue: agent("main"),
            depth: 4,
            threshold: 3,
        }]
    );
    assert_eq!(counters(&registry, "gpt").dlq_depth, 3);
    assert_eq!(counters(&registry, "claude").dlq_depth, 1);

    // Replayed away: the depths follow, and no alert is raised under the threshold.
    for record in sink.records() {
        if record.agent == "gpt" {
            assert!(sink.remove(record.id).await.unwrap());
        }
    }
    monitor.check().await.unwrap();
    assert_eq!(drain(&mut events), []);
    assert_eq!(counters(&registry, "gpt").dlq_depth, 0);
    assert_eq!(counters(&registry, "claude").dlq_depth, 1);
}

#[tokio::test(start_paused = true)]
async fn dlq_monitor_with_only_a_bus_publishes_the_alert_there() {
    let bus = EventBus::new(4);
    let mut events = bus.subscribe();
    let sink = MemorySink::new(10);
    for _ in 0..2 {
        let record = DeadLetterRecord::new("gpt", Bytes::from("prompt"), OutcomeKind::Transient);
        sink.append(record).await.unwrap();
    }
    let monitor = Monitor::new(sink, "main").max_depth(1).events(&bus);
    monitor.check().await.unwrap();
    assert_eq!(
        drain(&mut events),
        [Event::DlqOverThreshold {
            queue: agent("main"),
            depth: 2,
            threshold: 1,
        }]
    );
}
