//! FallbackLayer and ResponseCache: ordering, breakers, targeted caller faults, errors, cache,
//! provenance.
#![cfg(feature = "fallback")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::cache::{CacheConfig, CacheMiss, ResponseCache};
use steadfast::classify::classify_known_error;
use steadfast::fallback::{
    AllFailed, Alternative, FallbackLayer, SkipReason, UnsuccessfulResponse,
};
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Log = Arc<Mutex<Vec<&'static str>>>;
type Reply = Attributed<String>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn calls(log: &Log) -> Vec<&'static str> {
    log.lock().unwrap().clone()
}

/// An agent that records its name on each call and answers `reply` (or fails with it).
fn agent(
    name: &'static str,
    log: &Log,
    reply: Result<&'static str, &'static str>,
) -> impl Service<String, Response = Reply, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    let log = log.clone();
    service_fn(move |prompt: String| {
        log.lock().unwrap().push(name);
        async move {
            match reply {
                Ok(text) => Ok(Attributed::new(format!("{text}: {prompt}"))),
                Err(error) => Err(BoxError::from(error)),
            }
        }
    })
}

/// Errors mentioning "too long" are caller faults; everything else as the default classifier.
fn context_aware(result: Result<&Reply, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(error) => classify_known_error(error).unwrap_or_else(|| {
            if error.to_string().contains("too long") {
                Outcome::caller_fault("context too long")
            } else {
                Outcome::transient("error")
            }
        }),
    }
}

#[tokio::test]
async fn successful_primary_is_returned_unmarked_and_alternatives_are_not_called() {
    let log = log();
    let service = FallbackLayer::new()
        .then_named("backup", agent("backup", &log, Ok("backup")))
        .mark_responses()
        .layer_onto(agent("primary", &log, Ok("primary")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(reply.value, "primary: hi");
    assert_eq!(reply.served(), Served::Primary);
    assert_eq!(calls(&log), ["primary"]);
}

#[tokio::test]
async fn alternatives_are_tried_in_priority_order_until_one_answers() {
    let log = log();
    let layer = FallbackLayer::new()
        .then_named("second", agent("second", &log, Err("down")))
        .then_with_priority(-1, "first", agent("first", &log, Err("down")))
        .then_named("third", agent("third", &log, Ok("third")))
        .then_with_priority(5, "never", agent("never", &log, Ok("never")))
        .mark_responses();
    assert_eq!(layer.alternatives(), ["first", "second", "third", "never"]);
    let reply = layer
        .layer_onto(agent("primary", &log, Err("overloaded")))
        .oneshot("hi".into())
        .await
        .unwrap();
    assert_eq!(reply.value, "third: hi");
    assert_eq!(
        reply.served(),
        Served::Fallback {
            name: "third".into()
        }
    );
    assert_eq!(calls(&log), ["primary", "first", "second", "third"]);
}

#[tokio::test]
async fn alternative_with_open_breaker_is_skipped_without_a_call() {
    let log = log();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default()).named("cheap");
    breaker.handle().force_open();
    let service = FallbackLayer::new()
        .then_alternative(
            Alternative::new("cheap", agent("cheap", &log, Ok("cheap")))
                .guarded_by(breaker.handle()),
        )
        .then_named("spare", agent("spare", &log, Ok("spare")))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(reply.value, "spare: hi");
    assert_eq!(calls(&log), ["primary", "spare"]);
}

#[tokio::test]
async fn breaker_found_by_name_in_the_registry_is_honoured() {
    let log = log();
    let registry = Registry::new();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default())
        .named("cheap")
        .register(&registry);
    breaker.handle().force_open();
    let service = FallbackLayer::new()
        .registry(&registry)
        .then_named("cheap", agent("cheap", &log, Ok("cheap")))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    let error = service.oneshot("hi".into()).await.unwrap_err();
    // Nothing could be tried: the primary's own error comes back untouched.
    assert_eq!(error.to_string(), "overloaded");
    assert!(error.downcast_ref::<AllFailed>().is_none());
    assert_eq!(calls(&log), ["primary"]);
}

#[tokio::test(start_paused = true)]
async fn open_breaker_due_for_a_probe_is_called() {
    let log = log();
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::new(config).named("cheap");
    let guarded =
        ServiceBuilder::new()
            .layer(breaker.clone())
            .service(agent("cheap", &log, Ok("cheap")));
    // Trip it with one failure through a failing twin of the same breaker.
    let mut failing = ServiceBuilder::new().layer(breaker.clone()).service(agent(
        "cheap-failing",
        &log,
        Err("boom"),
    ));
    let _ = failing.ready().await.unwrap().call("x".into()).await;
    assert_eq!(breaker.handle().state(), BreakerState::Open);

    let service = FallbackLayer::new()
        .then_alternative(Alternative::new("cheap", guarded).guarded_by(breaker.handle()))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    let error = service.clone().oneshot("early".into()).await.unwrap_err();
    assert_eq!(error.to_string(), "overloaded", "still open: skipped");

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        breaker.handle().state(),
        BreakerState::Open,
        "only a call moves it"
    );
    let reply = service.oneshot("later".into()).await.unwrap();
    assert_eq!(reply.value, "cheap: later");
    assert_eq!(
        calls(&log),
        ["cheap-failing", "primary", "primary", "cheap"]
    );
}

#[tokio::test]
async fn primary_circuit_open_goes_straight_to_first_healthy_alternative() {
    let log = log();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default()).named("primary");
    breaker.handle().force_open();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::new()
                .named("assistant")
                .then_named("backup", agent("backup", &log, Ok("backup")))
                .mark_responses(),
        )
        .layer(breaker)
        .service(agent("primary", &log, Ok("primary")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(
        reply.served(),
        Served::Fallback {
            name: "backup".into()
        }
    );
    assert_eq!(
        calls(&log),
        ["backup"],
        "the primary agent itself is never reached"
    );
}

#[tokio::test(start_paused = true)]
async fn primary_timeout_falls_back_after_the_deadline() {
    let log = log();
    let slow = service_fn(|prompt: String| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<Reply, BoxError>(Attributed::new(prompt))
    });
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::new()
                .then_named("backup", agent("backup", &log, Ok("backup")))
                .mark_responses(),
        )
        .timeout(Duration::from_secs(5))
        .service(slow);
    let started = tokio::time::Instant::now();
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(
        reply.served(),
        Served::Fallback {
            name: "backup".into()
        }
    );
}

#[tokio::test]
async fn caller_fault_goes_only_to_alternatives_that_handle_it() {
    let log = log();
    let service = FallbackLayer::new()
        .classifier(context_aware)
        .then_named("small", agent("small", &log, Ok("small")))
        .then_alternative(
            Alternative::new("big-context", agent("big-context", &log, Ok("big")))
                .handles_caller_fault(|outcome| outcome.reason() == Some("context too long")),
        )
        .layer_onto(agent("primary", &log, Err("prompt too long")));
    let reply = service.oneshot("long prompt".into()).await.unwrap();
    assert_eq!(reply.value, "big: long prompt");
    assert_eq!(calls(&log), ["primary", "big-context"]);
}

#[tokio::test]
async fn unhandled_caller_fault_is_returned_as_is() {
    let log = log();
    let service = FallbackLayer::new()
        .classifier(context_aware)
        .then_named("small", agent("small", &log, Ok("small")))
        .layer_onto(agent("primary", &log, Err("prompt too long")));
    let error = service.oneshot("long prompt".into()).await.unwrap_err();
    assert_eq!(error.to_string(), "prompt too long");
    assert_eq!(calls(&log), ["primary"]);
}

#[tokio::test]
async fn all_failed_keeps_every_error_primary_first_and_lists_skipped() {
    let log = log();
    let breaker = CircuitBreakerLayer::new(BreakerConfig::default()).named("resting");
    breaker.handle().force_open();
    let service = FallbackLayer::new()
        .named("assistant")
        .then_named("a", agent("a", &log, Err("a failed")))
        .then_alternative(
            Alternative::new("resting", agent("resting", &log, Ok("r")))
                .guarded_by(breaker.handle()),
        )
        .then_named("b", agent("b", &log, Err("b failed")))
        .layer_onto(agent("primary", &log, Err("primary failed")));
    let error = service.oneshot("hi".into()).await.unwrap_err();
    let all = error.downcast_ref::<AllFailed>().expect("AllFailed");
    assert_eq!(all.agent(), "assistant");
    let attempts: Vec<(String, String)> = all
        .attempts()
        .iter()
        .map(|(name, error)| (name.to_string(), error.to_string()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("assistant".to_string(), "primary failed".to_string()),
            ("a".to_string(), "a failed".to_string()),
            ("b".to_string(), "b failed".to_string()),
        ]
    );
    assert_eq!(all.skipped().len(), 1);
    assert_eq!(&*all.skipped()[0].name, "resting");
    assert_eq!(all.skipped()[0].reason, SkipReason::BreakerOpen);
    assert_eq!(
        std::error::Error::source(all).unwrap().to_string(),
        "primary failed"
    );
    let message = all.to_string();
    assert!(
        message.contains("`a`: a failed") && message.contains("`resting` (breaker open)"),
        "{message}"
    );
    assert_eq!(
        calls(&log),
        ["primary", "a", "b"],
        "each alternative at most once"
    );
}

#[tokio::test]
async fn ok_response_classified_as_failure_falls_back_and_is_recorded() {
    let log = log();
    let failing_ok = |result: Result<&Reply, &BoxError>| match result {
        Ok(reply) if reply.value.starts_with("503") => Outcome::transient("status 503"),
        Ok(_) => Outcome::success(),
        Err(error) => classify_known_error(error).unwrap_or(Outcome::transient("error")),
    };
    let service = FallbackLayer::new()
        .classifier(failing_ok)
        .then_named("backup", agent("backup", &log, Err("backup down")))
        .layer_onto(agent("primary", &log, Ok("503")));
    let error = service.oneshot("hi".into()).await.unwrap_err();
    let all = error.downcast_ref::<AllFailed>().unwrap();
    let unsuccessful = all.attempts()[0]
        .1
        .downcast_ref::<UnsuccessfulResponse>()
        .unwrap();
    assert_eq!(unsuccessful.outcome().reason(), Some("status 503"));
}

fn cache(ttl: u64, max_stale: u64) -> ResponseCache<String, Reply, String> {
    let config = CacheConfig::builder()
        .max_entries(16)
        .ttl(Duration::from_secs(ttl))
        .max_stale(Duration::from_secs(max_stale))
        .build()
        .unwrap();
    ResponseCache::new(config, |prompt: &String| Some(prompt.clone()))
}

#[tokio::test(start_paused = true)]
async fn cache_is_fed_by_primary_and_serves_stale_on_error_until_max_staleness() {
    let log = log();
    let cache = cache(10, 20);
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let primary = {
        let healthy = healthy.clone();
        service_fn(move |prompt: String| {
            let ok = healthy.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if ok {
                    Ok(Attributed::new(format!("fresh: {prompt}")))
                } else {
                    Err(BoxError::from("primary down"))
                }
            }
        })
    };
    let service = FallbackLayer::new()
        .then_named("backup", agent("backup", &log, Err("backup down")))
        .then_cache(cache.clone())
        .mark_responses()
        .layer_onto(primary);

    let reply = service.clone().oneshot("q".into()).await.unwrap();
    assert_eq!(reply.served(), Served::Primary);
    assert_eq!(cache.len(), 1);

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(25)).await; // past ttl, within ttl + max_stale
    let reply = service.clone().oneshot("q".into()).await.unwrap();
    assert_eq!(reply.value, "fresh: q");
    assert_eq!(
        reply.served(),
        Served::Cache {
            age: Duration::from_secs(25)
        }
    );
    assert_eq!(calls(&log), ["backup"], "the cache is the last resort");

    tokio::time::advance(Duration::from_secs(6)).await; // 31 s: older than ttl + max_stale
    let error = service.oneshot("q".into()).await.unwrap_err();
    let all = error.downcast_ref::<AllFailed>().unwrap();
    let names: Vec<&str> = all.attempts().iter().map(|(name, _)| &**name).collect();
    assert_eq!(names, ["agent", "backup", "cache"]);
    assert!(all.attempts()[2].1.downcast_ref::<CacheMiss>().is_some());
    assert!(cache.is_empty(), "the expired entry was dropped");
}

#[tokio::test]
async fn requests_without_a_cache_key_are_never_stored_nor_served() {
    let config = CacheConfig::default();
    let cache: ResponseCache<String, Reply, String> =
        ResponseCache::new(config, |prompt: &String| {
            (!prompt.starts_with("secret")).then(|| prompt.clone())
        });
    cache.insert(&"secret plan".to_string(), Attributed::new("x".into()));
    assert!(cache.is_empty(), "requests without a key are never stored");
    let service = FallbackLayer::new()
        .then_cache(cache)
        .layer_onto(service_fn(|_: String| async {
            Err::<Reply, BoxError>("down".into())
        }));
    let error = service.oneshot("secret plan".into()).await.unwrap_err();
    assert!(error.downcast_ref::<AllFailed>().is_some());
}

#[tokio::test]
async fn byte_budget_bounds_the_cache() {
    let config = CacheConfig::builder().max_bytes(10).build().unwrap();
    let cache = ResponseCache::with_size(
        config,
        |prompt: &String| Some(prompt.clone()),
        |reply: &String| reply.len(),
    );
    cache.insert(&"a".to_string(), "123456".to_string());
    cache.insert(&"b".to_string(), "123456".to_string());
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.bytes(), 6);
    assert!(cache.get(&"a".to_string()).is_none());
    assert!(!cache.get(&"b".to_string()).unwrap().is_stale);
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_responses_carry_provenance_as_an_extension() {
    let backup = service_fn(|(): ()| async { Ok::<_, BoxError>(http::Response::new("backup")) });
    let service = FallbackLayer::new()
        .then_named("backup", backup)
        .mark_responses()
        .layer_onto(service_fn(|(): ()| async {
            Err::<http::Response<&str>, BoxError>("down".into())
        }));
    let response = service.oneshot(()).await.unwrap();
    assert_eq!(
        response.extensions().get::<Served>(),
        Some(&Served::Fallback {
            name: "backup".into()
        })
    );
}

/// `layer.layer_onto(service)`: reads better than `Layer::layer` in tests.
trait LayerOnto<S>: tower::Layer<S> {
    fn layer_onto(&self, service: S) -> Self::Service {
        self.layer(service)
    }
}
impl<S, L: tower::Layer<S>> LayerOnto<S> for L {}
