//! DegradeLayer and DegradationLevel: degraded answers, views, levels, shedding.
#![cfg(feature = "degrade")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::degrade::{DegradationLevel, DegradeLayer, Level, Shed};
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

#[allow(clippy::trivially_copy_pass_by_ref, clippy::unnecessary_wraps)] // a `Degrade` function's shape
fn template(_: &(), _: &BoxError) -> Option<Reply> {
    Some(Attributed::new("sorry, try again later".into()))
}

#[tokio::test]
async fn success_passes_through_untouched() {
    let calls = Arc::new(AtomicUsize::new(0));
    let degrade_calls = Arc::new(AtomicUsize::new(0));
    let seen = degrade_calls.clone();
    let service = DegradeLayer::new(move |(): &(), _: &BoxError| {
        seen.fetch_add(1, Ordering::SeqCst);
        Some(Attributed::new(String::new()))
    })
    .mark_responses()
    .layer(counted(&calls, Ok("answer")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "answer");
    assert_eq!(reply.served(), Served::Primary);
    assert_eq!(degrade_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn error_becomes_a_degraded_answer_marked_with_the_reason() {
    let slow = service_fn(|_: String| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<Reply, BoxError>(Attributed::new("late".into()))
    });
    let service = ServiceBuilder::new()
        .layer(DegradeLayer::new(template).mark_responses())
        .timeout(Duration::from_secs(1))
        .service(slow);
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "sorry, try again later");
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "timeout".into()
        }
    );
}

#[tokio::test]
async fn none_from_the_degrade_function_passes_the_error_through() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = DegradeLayer::new(|(): &(), _: &BoxError| None::<Reply>)
        .layer(counted(&calls, Err("model down")));
    let error = service.oneshot("q".into()).await.unwrap_err();
    assert_eq!(error.to_string(), "model down");
}

#[tokio::test]
async fn view_is_captured_before_the_inner_service_takes_the_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = DegradeLayer::new(|language: &&'static str, _: &BoxError| {
        Some(Attributed::new(match *language {
            "fr" => "réessayez plus tard".to_string(),
            _ => "try again later".to_string(),
        }))
    })
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
    let service = DegradeLayer::new(move |(): &(), _: &BoxError| {
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
    let mut service = DegradeLayer::new(|(): &(), error: &BoxError| {
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
    let service = DegradeLayer::new(|(): &(), _: &BoxError| None::<Reply>)
        .level(level)
        .shed_at(Level::Minimal)
        .layer(counted(&calls, Ok("answer")));
    let error = service.oneshot("q".into()).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<Shed>().unwrap().level(),
        Level::Emergency
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
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
            CircuitBreakerLayer::new(BreakerConfig::default())
                .named(format!("agent-{i}"))
                .register(&registry)
                .handle()
        })
        .collect();
    (registry, handles)
}

#[cfg(feature = "circuit-breaker")]
#[test]
fn level_follows_the_share_of_breakers_not_closed() {
    let (registry, handles) = registry_with(4);
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
    use steadfast::fallback::FallbackLayer;
    let calls = Arc::new(AtomicUsize::new(0));
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default()).named("primary");
    breaker.handle().force_open();
    let service = ServiceBuilder::new()
        .layer(DegradeLayer::new(template).mark_responses())
        .layer(FallbackLayer::new().then_named("backup", counted(&calls, Err("backup down"))))
        .layer(breaker)
        .service(counted(&calls, Ok("never")));
    let reply = service.oneshot("q".into()).await.unwrap();
    assert_eq!(
        reply.served(),
        Served::Degraded {
            reason: "circuit open".into()
        }
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the backup was called"
    );
}
