//! DegradeLayer and DegradationLevel: degraded answers, views, levels, shedding.
#![cfg(feature = "degrade")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::classify::FailedResponse;
use steadfast::degrade::{DegradationLevel, DegradeLayer, Level, Shed};
use steadfast::events::Event;
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

type Reply = Attributed<String>;

fn counted(
    calls: &Arc<AtomicUsize>,
    reply: Result<&'static str, &'static str>,
) -> impl Service<String, Response = Reply, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    let calls = calls.clone();
    service_fn(move |_prompt: String| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match reply {
                Ok(text) => Ok(Attributed::new(text.to_string())),
                Err(error) => Err(BoxError::from(error)),
            }
        }
    })
}

#[allow(clippy::trivially_copy_pass_by_ref, clippy::unnecessary_wraps)] // a `Degrader`'s shape
fn template(_: &(), _: &BoxError) -> Option<Reply> {
    Some(Attributed::new("sorry, try again later".into()))
}

/// An answer starting with "503" is a failure, as an HTTP classifier would say of a 503.
fn status_aware(result: Result<&Reply, &BoxError>) -> Outcome {
    match result {
        Ok(reply) if reply.value.starts_with("503") => Outcome::transient("status 503"),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    }
}

#[tokio::test]
async fn success_passes_through_untouched() {
    let calls = Arc::new(AtomicUsize::new(0));
    let degrade_calls = Arc::new(AtomicUsize::new(0));
    let seen = degrade_calls.clone();
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let assistant = registry.agent("assistant").classifier(status_aware);
    let service = DegradeLayer::new(&assistant, move |(): &(), _: &BoxError| {
        seen.fetch_add(1, Ordering::SeqCst);
        Some(Attributed::new(String::new()))
    })
    .mark_responses()
    .layer(counted(&calls, Ok("answer")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "answer");
    assert_eq!(reply.served(), Served::Primary);
    assert_eq!(degrade_calls.load(Ordering::SeqCst), 0);
    assert_eq!(events.try_recv(), None, "a success is no event");
    assert_eq!(registry.counters("assistant").unwrap().degraded, 0);
}

#[tokio::test(start_paused = true)]
async fn error_becomes_a_degraded_answer_marked_with_the_reason() {
    let slow = service_fn(|_: String| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<Reply, BoxError>(Attributed::new("late".into()))
    });
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let service = ServiceBuilder::new()
        .layer(DegradeLayer::new(&registry.agent("assistant"), template).mark_responses())
        .timeout(Duration::from_secs(1))
        .service(slow);
    let started = tokio::time::Instant::now();
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(reply.value, "sorry, try again later");
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "timeout".into()
        }
    );
    assert_eq!(
        events.try_recv(),
        Some(Event::Degraded {
            agent: Arc::from("assistant"),
            from: "primary",
            to: "degraded",
            reason: Some("timeout"),
        })
    );
    assert_eq!(registry.counters("assistant").unwrap().degraded, 1);
}

#[tokio::test]
async fn none_from_the_degrade_function_passes_the_error_through() {
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new();
    let service = DegradeLayer::new(&registry.agent("assistant"), |(): &(), _: &BoxError| {
        None::<Reply>
    })
    .layer(counted(&calls, Err("model down")));
    let error = service.oneshot("q".into()).await.unwrap_err();
    assert_eq!(error.to_string(), "model down");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(registry.counters("assistant").unwrap().degraded, 0);
}

#[tokio::test]
async fn an_ok_answer_the_agents_classifier_calls_a_failure_is_degraded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new();
    let assistant = registry.agent("assistant").classifier(status_aware);
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let service = DegradeLayer::new(&assistant, move |(): &(), error: &BoxError| {
        let failed = error.downcast_ref::<FailedResponse>()?;
        record.lock().unwrap().push(error.to_string());
        Some(Attributed::new(format!("degraded ({})", failed.outcome())))
    })
    .mark_responses()
    .layer(counted(&calls, Ok("503 service unavailable")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "degraded (transient (status 503))");
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "status 503".into()
        }
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the degrader saw the failure once"
    );
    assert_eq!(registry.counters("assistant").unwrap().degraded, 1);

    // Without the classifier, the same answer is a success and passes through.
    let plain = DegradeLayer::new(&Agent::new("assistant"), template)
        .mark_responses()
        .layer(counted(&calls, Ok("503 service unavailable")));
    let reply = plain.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "503 service unavailable");
    assert_eq!(reply.served(), Served::Primary);
}

#[tokio::test]
async fn an_ok_failure_the_degrader_declines_is_returned_as_the_agent_gave_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new();
    let assistant = registry.agent("assistant").classifier(status_aware);
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let service = DegradeLayer::new(&assistant, move |(): &(), _: &BoxError| {
        count.fetch_add(1, Ordering::SeqCst);
        None::<Reply>
    })
    .mark_responses()
    .layer(counted(&calls, Ok("503 service unavailable")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "503 service unavailable");
    assert_eq!(reply.served(), Served::Primary, "not marked degraded");
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the degrader was asked");
    assert_eq!(registry.counters("assistant").unwrap().degraded, 0);
}

#[tokio::test]
async fn view_is_captured_before_the_inner_service_takes_the_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = DegradeLayer::new(
        &Agent::new("assistant"),
        |language: &&'static str, _: &BoxError| {
            Some(Attributed::new(match *language {
                "fr" => "réessayez plus tard".to_string(),
                _ => "try again later".to_string(),
            }))
        },
    )
    .view(|prompt: &String| {
        if prompt.starts_with("fr:") {
            "fr"
        } else {
            "en"
        }
    })
    .layer(counted(&calls, Err("model down")));
    let reply = service.oneshot("fr: bonjour".into()).await.unwrap();
    assert_eq!(reply.value, "réessayez plus tard");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn degrade_function_reads_the_shared_level() {
    let calls = Arc::new(AtomicUsize::new(0));
    let level = DegradationLevel::new();
    let read = level.clone();
    let service = DegradeLayer::new(&Agent::new("assistant"), move |(): &(), _: &BoxError| {
        Some(Attributed::new(format!("degraded at {}", read.get())))
    })
    .layer(counted(&calls, Err("down")));
    level.set(Level::Minimal);
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "degraded at minimal");
}

#[tokio::test]
async fn calls_are_shed_at_the_configured_level_and_resume_below_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let level = DegradationLevel::new();
    let mut service = DegradeLayer::new(&Agent::new("assistant"), |(): &(), error: &BoxError| {
        error
            .downcast_ref::<Shed>()
            .map(|shed| Attributed::new(format!("shed at {}", shed.level())))
    })
    .level(level.clone())
    .shed_at(Level::Emergency)
    .mark_responses()
    .layer(counted(&calls, Ok("answer")));

    level.set(Level::Minimal);
    let reply = service
        .ready()
        .await
        .unwrap()
        .call("q".into())
        .await
        .unwrap();
    assert_eq!(reply.value, "answer");

    level.set(Level::Emergency);
    let reply = service
        .ready()
        .await
        .unwrap()
        .call("q".into())
        .await
        .unwrap();
    assert_eq!(reply.value, "shed at emergency");
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "shed".into()
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the shed call never reached the agent"
    );

    level.set(Level::Normal);
    service
        .ready()
        .await
        .unwrap()
        .call("q".into())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shed_error_reaches_the_caller_when_not_degraded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let level = DegradationLevel::new();
    level.set(Level::Emergency);
    let service = DegradeLayer::new(&Agent::new("assistant"), |(): &(), _: &BoxError| {
        None::<Reply>
    })
    .level(level)
    .shed_at(Level::Minimal)
    .layer(counted(&calls, Ok("answer")));
    let error = service.oneshot("q".into()).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<Shed>().unwrap().level(),
        Level::Emergency
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A shed call never reached the agent: safe to send again, and not the caller's fault.
    let outcome = steadfast::classify::error_outcome(error.as_ref()).unwrap();
    assert_eq!(outcome, Outcome::agent_fault("shed").unprocessed());
}

#[tokio::test]
async fn subscribers_see_level_changes_only_when_it_changes() {
    let level = DegradationLevel::new();
    let mut changes = level.subscribe();
    assert_eq!(level.set(Level::Normal), Level::Normal);
    assert!(!changes.has_changed().unwrap());
    assert_eq!(level.set(Level::Reduced), Level::Normal);
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), Level::Reduced);
}

#[cfg(feature = "circuit-breaker")]
fn registry_with(breakers: usize) -> (Registry, Vec<BreakerHandle>) {
    let registry = Registry::new();
    let handles = (0..breakers)
        .map(|i| {
            CircuitBreakerLayer::new(
                &registry.agent(format!("agent-{i}")),
                BreakerConfig::default(),
            )
            .handle()
        })
        .collect();
    (registry, handles)
}

#[cfg(feature = "circuit-breaker")]
#[test]
fn level_follows_the_share_of_breakers_not_closed() {
    let (registry, handles) = registry_with(4);
    let _no_breaker = registry.agent("without-breaker"); // not counted either way
    let level = DegradationLevel::new();
    assert_eq!(level.update_from_registry(&registry), Level::Normal);
    let expected = [
        Level::Reduced,
        Level::Minimal,
        Level::Emergency,
        Level::Emergency,
    ];
    for (handle, expected) in handles.iter().zip(expected) {
        handle.force_open();
        assert_eq!(level.update_from_registry(&registry), expected);
    }
    for handle in &handles {
        handle.force_closed();
    }
    assert_eq!(level.update_from_registry(&registry), Level::Normal);
    assert_eq!(
        DegradationLevel::new().update_from_registry(&Registry::new()),
        Level::Normal
    );
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn following_the_registry_updates_the_level_on_each_tick() {
    let (registry, handles) = registry_with(2);
    let level = DegradationLevel::new();
    let task = level.follow_registry(registry, Duration::from_secs(5));
    tokio::task::yield_now().await;
    handles[0].force_open();
    assert_eq!(level.get(), Level::Normal, "not until the next tick");
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert_eq!(level.get(), Level::Minimal);
    drop(level);
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert!(
        task.is_finished(),
        "the task ends with the last handle on the level"
    );
}

#[cfg(feature = "fallback")]
#[tokio::test]
async fn degrade_over_fallback_reports_why_everything_failed() {
    use steadfast::fallback::{AllFailed, FallbackLayer};
    let calls = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new();
    let assistant = registry.agent("assistant");
    let breaker = CircuitBreakerLayer::new(&assistant, BreakerConfig::default());
    breaker.handle().force_open();
    // The degrader sees the whole story: the chain failed (AllFailed classifies itself as
    // "all fallbacks failed"), and the primary's CircuitOpen is in its source chain.
    let explain = |(): &(), error: &BoxError| {
        let all = steadfast::error::find::<AllFailed>(error.as_ref())?;
        let open = steadfast::error::find::<CircuitOpen>(error.as_ref())?;
        Some(Attributed::new(format!(
            "{} failed; `{}` is resting",
            all.attempts().len(),
            open.agent()
        )))
    };
    let service = ServiceBuilder::new()
        .layer(DegradeLayer::new(&assistant, explain).mark_responses())
        .layer(FallbackLayer::new(&assistant).then(
            &registry.agent("backup"),
            counted(&calls, Err("backup down")),
        ))
        .layer(breaker)
        .service(counted(&calls, Ok("never")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "2 failed; `assistant` is resting");
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "all fallbacks failed".into()
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the backup was called"
    );
    let counters = registry.counters("assistant").unwrap();
    assert_eq!(
        (counters.primary, counters.fallbacks, counters.degraded),
        (0, 0, 1)
    );
}
