//! The retry, fallback, degrade and dead-letter layers report their decisions on the
//! registry's event bus and in its per-agent counters, exactly once per decision and never on
//! a success; the counters are derived from the events on the bus and nothing else; every
//! report is under the name the agent was given (no default name); a drain's cancelled calls
//! end up dead-lettered with reason "shutdown".
#![cfg(all(
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/counters.rs"]
mod snapshot_counters;

use bytes::Bytes;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{
    DeadLetterFailed, DeadLetterRecord, DeadLetterSink, DeadLettered, Monitor,
};
use steadfast::events::EventReceiver;
use steadfast::prelude::*;
use steadfast::registry::CountersSnapshot;
use steadfast::shutdown::{CancelledByShutdown, ShuttingDown};
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

/// A subscriber that remembers every event it delivered, so a test can check that the
/// registry's counters are derived from exactly those events.
struct Bus {
    receiver: EventReceiver,
    seen: Vec<Event>,
}

impl Bus {
    fn of(registry: &Registry) -> Self {
        Bus {
            receiver: registry.events().subscribe(),
            seen: Vec::new(),
        }
    }

    /// The events published since the last call.
    fn drain(&mut self) -> Vec<Event> {
        let new: Vec<Event> = std::iter::from_fn(|| self.receiver.try_recv()).collect();
        self.seen.extend(new.iter().cloned());
        new
    }

    /// Every counter the registry derives from events, for every agent it holds, equals the
    /// number of events of that kind this subscriber saw for that agent.
    fn assert_counters_match(&mut self, registry: &Registry) {
        self.drain();
        for agent in registry.snapshot().agents {
            let mut from_events = snapshot_counters::event_fed(&CountersSnapshot::default());
            for event in &self.seen {
                if event.agent() == Some(agent.name.as_str())
                    && let Some(counter) = counter_fed_by(event)
                {
                    *from_events.get_mut(counter).unwrap() += 1;
                }
            }
            assert_eq!(
                snapshot_counters::event_fed(&agent.counters),
                from_events,
                "agent `{}`: registry counters vs events on the bus",
                agent.name
            );
        }
    }
}

/// The registry counter each kind of event feeds (the table in `steadfast::events`).
fn counter_fed_by(event: &Event) -> Option<&'static str> {
    Some(match event {
        Event::RetryScheduled { .. } => "retries",
        Event::RetriesExhausted { .. } => "retries_exhausted",
        Event::RetryBudgetExhausted { .. } => "retry_budget_exhausted",
        Event::DeadlineExceeded { .. } => "deadlines_exceeded",
        Event::FallbackUsed {
            source: "cache", ..
        } => "cache_hits",
        Event::FallbackUsed { .. } => "fallbacks",
        Event::Degraded { .. } => "degraded",
        Event::DeadLettered { .. } => "dead_lettered",
        Event::DeadLetterFailed { .. } => "dead_letter_failures",
        Event::ConcurrencyLimitLowered { .. } => "concurrency_limit_lowered",
        _ => return None,
    })
}

fn counters(registry: &Registry, agent: &str) -> CountersSnapshot {
    registry
        .counters(agent)
        .unwrap_or_else(|| panic!("agent `{agent}` is not registered"))
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
    let mut bus = Bus::of(&registry);
    let script = Scripted::new([
        Ok(()),
        Err("overloaded"),
        Err("overloaded"),
        Ok(()),
        Err("overloaded"),
        Err("overloaded"),
        Err("overloaded"),
    ]);
    let gpt = registry.agent("gpt");
    let mut service = BackoffRetryLayer::new(&gpt, retry_config()).layer(script.clone());

    // A first-time success decides nothing and reports nothing.
    service
        .ready()
        .await
        .unwrap()
        .call("a".into())
        .await
        .unwrap();
    assert_eq!(bus.drain(), []);
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
        bus.drain(),
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
    // The registry holds the agent that was named, and nothing under a default name.
    assert_eq!(registry.agents(), ["gpt"]);
    assert!(registry.counters("agent").is_none());
    assert!(registry.snapshot().agents.iter().all(|a| a.name == "gpt"));
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn an_agent_of_its_own_reports_on_its_own_bus_and_counts_there() {
    let registry = Registry::new();
    let mut registry_events = registry.events().subscribe();
    // Not made by `registry`: its events and counters are its own.
    let gpt = Agent::new("gpt");
    let mut own_events = gpt.events().subscribe();
    let service = BackoffRetryLayer::new(&gpt, retry_config())
        .layer(Scripted::new([Err("overloaded"), Ok(())]));

    service.oneshot("a".into()).await.unwrap();

    assert_eq!(
        std::iter::from_fn(|| own_events.try_recv()).collect::<Vec<_>>(),
        [Event::RetryScheduled {
            agent: agent("gpt"),
            attempt: 2,
            delay: Duration::from_millis(100),
            reason: Some("error"),
        }]
    );
    assert_eq!(registry_events.try_recv(), None);
    assert_eq!(gpt.counters().retries, 1);
    assert!(registry.agents().is_empty());
}

#[tokio::test(start_paused = true)]
async fn fallback_layer_reports_each_answer_an_alternative_gave() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    let primary = Scripted::new([Ok(()), Err("overloaded"), Err("overloaded")]);
    let backup = Scripted::new([Ok(()), Err("down too")]);
    let (gpt, claude) = (registry.agent("gpt"), registry.agent("claude"));
    let mut service = FallbackLayer::new(&gpt)
        .then(&claude, backup.clone())
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
    assert_eq!(bus.drain(), []);

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
        bus.drain(),
        [Event::FallbackUsed {
            agent: agent("gpt"),
            fallback: agent("claude"),
            source: "fallback",
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
    assert_eq!(bus.drain(), []);
    assert_eq!((primary.left(), backup.left()), (0, 0));
    let counted = counters(&registry, "gpt");
    assert_eq!((counted.primary, counted.fallbacks), (1, 1));
    assert_eq!(counters(&registry, "claude"), CountersSnapshot::default());
    assert_eq!(registry.agents(), ["claude", "gpt"]);
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn degrade_layer_reports_each_degraded_answer_and_not_a_passed_through_error() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    let degrade = |(): &(), error: &BoxError| {
        (error.to_string() != "invalid prompt").then(|| "sorry, try later".to_string())
    };
    let mut service = DegradeLayer::new(&registry.agent("gpt"), degrade).layer(Scripted::new([
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
    assert_eq!(bus.drain(), []);
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
        bus.drain(),
        [Event::Degraded {
            agent: agent("gpt"),
            from: "primary",
            to: "degraded",
            reason: Some("error"),
        }]
    );
    assert_eq!(counters(&registry, "gpt").degraded, 1);
    assert_eq!(registry.agents(), ["gpt"]);
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn dead_letter_layer_reports_records_the_sink_confirmed_and_those_it_lost() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    let sink = MemorySink::new(10);
    let mut service = DeadLetterLayer::new(&registry.agent("gpt"), sink.clone())
        .encoder(encode)
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
    assert_eq!(bus.drain(), []);

    let error = service
        .ready()
        .await
        .unwrap()
        .call("b".into())
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<DeadLettered>().is_some());
    assert_eq!(
        bus.drain(),
        [Event::DeadLettered {
            agent: agent("gpt"),
            reason: "error",
        }]
    );

    // The sink refuses the next record: it was not dead-lettered, and is reported as lost.
    sink.fail_next_append("disk full");
    let error = service
        .ready()
        .await
        .unwrap()
        .call("c".into())
        .await
        .unwrap_err();
    assert!(error.downcast_ref::<DeadLetterFailed>().is_some());
    assert_eq!(
        bus.drain(),
        [Event::DeadLetterFailed {
            agent: agent("gpt"),
            reason: "error",
        }]
    );
    assert_eq!(sink.len(), 1);
    let counted = counters(&registry, "gpt");
    assert_eq!(
        (counted.dead_lettered, counted.dead_letter_failures),
        (1, 1)
    );
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn a_drain_dead_letters_the_calls_it_cancels_with_reason_shutdown() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    let sink = MemorySink::new(10);
    let handed_to_hook = Arc::new(Mutex::new(Vec::new()));
    let hook_calls = handed_to_hook.clone();
    let shutdown = Shutdown::with_hook(move |call| hook_calls.lock().unwrap().push(call.clone()));
    let gpt = registry.agent("gpt");
    // The dead-letter layer outside the shutdown layer: it holds the request, and sees a
    // cancelled call fail with `CancelledByShutdown` (classified as agent fault "shutdown").
    let service = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(&gpt, sink.clone())
                .encoder(|secs: &u64| Ok::<_, BoxError>(Bytes::from(secs.to_string()))),
        )
        .layer(ShutdownLayer::new(&gpt, &shutdown))
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
        let cancelled = dead
            .original()
            .downcast_ref::<CancelledByShutdown>()
            .expect("cancelled by the drain");
        assert_eq!(cancelled.agent(), "gpt");
        assert_eq!(cancelled.in_flight_for(), Duration::from_secs(5));
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
    assert_eq!(bus.drain(), [dead_lettered.clone(), dead_lettered]);
    assert_eq!(counters(&registry, "gpt").dead_lettered, 2);

    // A call refused once the drain started is kept too, with its own reason.
    let refused = service.oneshot(1).await.unwrap_err();
    let dead = refused
        .downcast_ref::<DeadLettered>()
        .expect("dead-lettered");
    assert_eq!(
        dead.original()
            .downcast_ref::<ShuttingDown>()
            .map(ShuttingDown::agent),
        Some("gpt")
    );
    assert_eq!(
        bus.drain(),
        [Event::DeadLettered {
            agent: agent("gpt"),
            reason: "shutting down",
        }]
    );
    assert_eq!(registry.agents(), ["gpt"]);
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn dlq_monitor_publishes_the_depth_alert_and_sets_each_known_agents_depth() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    registry.agent("gpt");
    registry.agent("claude");
    let sink = MemorySink::new(10);
    // "mistral" has records but is not an agent of this registry.
    for agent in ["gpt", "gpt", "gpt", "claude", "mistral"] {
        let record = DeadLetterRecord::new(agent, Bytes::from("prompt"), OutcomeKind::Transient);
        sink.append(record).await.unwrap();
    }
    let monitor = Monitor::new(sink.clone(), "main")
        .max_depth(3)
        .register(&registry);

    monitor.check().await.unwrap();
    assert_eq!(
        bus.drain(),
        [Event::DlqOverThreshold {
            queue: agent("main"),
            depth: 5,
            threshold: 3,
        }]
    );
    assert_eq!(counters(&registry, "gpt").dlq_depth, 3);
    assert_eq!(counters(&registry, "claude").dlq_depth, 1);
    // The monitor sets depths; it does not make agents.
    assert_eq!(registry.agents(), ["claude", "gpt"]);
    assert!(registry.counters("mistral").is_none());

    // Replayed away: the depths follow, and no alert is raised under the threshold.
    for record in sink.records() {
        if record.agent == "gpt" {
            assert!(sink.remove(record.id).await.unwrap());
        }
    }
    monitor.check().await.unwrap();
    assert_eq!(bus.drain(), []);
    assert_eq!(counters(&registry, "gpt").dlq_depth, 0);
    assert_eq!(counters(&registry, "claude").dlq_depth, 1);
    bus.assert_counters_match(&registry);
}

#[tokio::test(start_paused = true)]
async fn dlq_monitor_publishes_the_alert_even_when_the_registry_knows_no_agent_of_the_queue() {
    let registry = Registry::new();
    let mut bus = Bus::of(&registry);
    let sink = MemorySink::new(10);
    for _ in 0..2 {
        let record = DeadLetterRecord::new("gpt", Bytes::from("prompt"), OutcomeKind::Transient);
        sink.append(record).await.unwrap();
    }
    let monitor = Monitor::new(sink, "main").max_depth(1).register(&registry);
    monitor.check().await.unwrap();
    assert_eq!(
        bus.drain(),
        [Event::DlqOverThreshold {
            queue: agent("main"),
            depth: 2,
            threshold: 1,
        }]
    );
    assert!(registry.agents().is_empty());
}
