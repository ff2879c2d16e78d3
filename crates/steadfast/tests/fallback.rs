//! FallbackLayer and ResponseCache: ordering, each alternative's own breaker and classifier,
//! targeted caller faults, errors, cache, provenance, counters.
#![cfg(feature = "fallback")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::cache::{CacheConfig, CacheMiss, ResponseCache};
use steadfast::classify::FailedResponse;
use steadfast::events::Event;
use steadfast::fallback::{AllFailed, Alternative, FallbackLayer, SkipReason};
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

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

/// Errors mentioning "too long" are caller faults; every other error is transient. (Errors
/// that classify themselves, such as `CircuitOpen`, never reach a classifier.)
fn context_aware(result: Result<&Reply, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(error) if error.to_string().contains("too long") => {
            Outcome::caller_fault("context too long")
        }
        Err(_) => Outcome::transient("error"),
    }
}

/// An answer starting with "503" is a failure, as an HTTP classifier would say of a 503.
fn status_aware(result: Result<&Reply, &BoxError>) -> Outcome {
    match result {
        Ok(reply) if reply.value.starts_with("503") => Outcome::transient("status 503"),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    }
}

/// `service` behind the circuit breaker of `agent`, forced open: the agent is down.
fn behind_open_breaker<S>(
    agent: &Agent,
    service: S,
) -> steadfast::circuit_breaker::CircuitBreaker<S, DefaultClassifier> {
    let breaker = CircuitBreakerLayer::new(agent, BreakerConfig::default());
    breaker.handle().force_open();
    breaker.layer(service)
}

#[tokio::test]
async fn successful_primary_is_returned_unmarked_and_alternatives_are_not_called() {
    let log = log();
    let registry = Registry::new();
    let service = FallbackLayer::new(&registry.agent("assistant"))
        .then(
            &registry.agent("backup"),
            agent("backup", &log, Ok("backup")),
        )
        .mark_responses()
        .layer_onto(agent("primary", &log, Ok("primary")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(reply.value, "primary: hi");
    assert_eq!(reply.served(), Served::Primary);
    assert_eq!(calls(&log), ["primary"]);
    let counters = registry.counters("assistant").unwrap();
    assert_eq!((counters.primary, counters.fallbacks), (1, 0));
}

#[tokio::test]
async fn alternatives_are_tried_in_priority_order_until_one_answers() {
    let log = log();
    let layer = FallbackLayer::new(&Agent::new("assistant"))
        .then(&Agent::new("second"), agent("second", &log, Err("down")))
        .then_alternative(
            Alternative::new(&Agent::new("first"), agent("first", &log, Err("down"))).priority(-1),
        )
        .then(&Agent::new("third"), agent("third", &log, Ok("third")))
        .then_alternative(
            Alternative::new(&Agent::new("never"), agent("never", &log, Ok("never"))).priority(5),
        )
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
async fn alternative_whose_agent_breaker_is_open_is_skipped_without_a_call() {
    let log = log();
    let cheap = Agent::new("cheap");
    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then(
            &cheap,
            behind_open_breaker(&cheap, agent("cheap", &log, Ok("cheap"))),
        )
        .then(&Agent::new("spare"), agent("spare", &log, Ok("spare")))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(reply.value, "spare: hi");
    assert_eq!(calls(&log), ["primary", "spare"]);
}

#[tokio::test]
async fn the_alternatives_own_agent_breaker_is_honoured_wherever_it_was_made() {
    // (Replaces the lookup of an alternative's breaker by name in a registry: the agent
    // scope is the link now.) The breaker was made for the agent elsewhere, e.g. on the
    // route that calls `cheap` directly; the alternative's service is not even behind it.
    let log = log();
    let registry = Registry::new();
    let elsewhere = CircuitBreakerLayer::new(&registry.agent("cheap"), BreakerConfig::default());
    elsewhere.handle().force_open();
    let service = FallbackLayer::new(&registry.agent("assistant"))
        .then(&registry.agent("cheap"), agent("cheap", &log, Ok("cheap")))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    let error = service.clone().oneshot("hi".into()).await.unwrap_err();
    // Nothing could be tried: the primary's own error comes back untouched.
    assert_eq!(error.to_string(), "overloaded");
    assert!(error.downcast_ref::<AllFailed>().is_none());
    assert_eq!(calls(&log), ["primary"]);

    // The same name in another registry is another agent: its breaker is not this one.
    let other = FallbackLayer::new(&Agent::new("assistant"))
        .then(&Agent::new("cheap"), agent("cheap", &log, Ok("cheap")))
        .layer_onto(agent("primary", &log, Err("overloaded")));
    assert_eq!(other.oneshot("hi".into()).await.unwrap().value, "cheap: hi");

    elsewhere.handle().force_closed();
    assert_eq!(
        service.oneshot("hi".into()).await.unwrap().value,
        "cheap: hi"
    );
    assert_eq!(
        calls(&log),
        ["primary", "primary", "cheap", "primary", "cheap"]
    );
}

#[tokio::test(start_paused = true)]
async fn open_breaker_due_for_a_probe_is_called() {
    let log = log();
    let cheap = Agent::new("cheap");
    let config = BreakerConfig::builder()
        .consecutive_failures(1)
        .build()
        .unwrap();
    let breaker = CircuitBreakerLayer::new(&cheap, config);
    let guarded =
        ServiceBuilder::new()
            .layer(breaker.clone())
            .service(agent("cheap", &log, Ok("cheap")));
    // Trip it with one failure through a failing twin behind the same breaker.
    let mut failing = ServiceBuilder::new().layer(breaker.clone()).service(agent(
        "cheap-failing",
        &log,
        Err("boom"),
    ));
    let _ = failing.ready().await.unwrap().call("x".into()).await;
    assert_eq!(breaker.handle().state(), BreakerState::Open);

    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then(&cheap, guarded)
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
    assert_eq!(
        breaker.handle().state(),
        BreakerState::HalfOpen,
        "it was the probe"
    );
}

#[tokio::test]
async fn primary_circuit_open_goes_straight_to_first_healthy_alternative() {
    let log = log();
    let assistant = Agent::new("assistant");
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(&assistant)
                .then(&Agent::new("backup"), agent("backup", &log, Ok("backup")))
                .mark_responses(),
        )
        .service(behind_open_breaker(
            &assistant,
            agent("primary", &log, Ok("primary")),
        ));
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
            FallbackLayer::new(&Agent::new("assistant"))
                .then(&Agent::new("backup"), agent("backup", &log, Ok("backup")))
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
    let service = FallbackLayer::new(&Agent::new("assistant").classifier(context_aware))
        .then(&Agent::new("small"), agent("small", &log, Ok("small")))
        .then_alternative(
            Alternative::new(
                &Agent::new("big-context"),
                agent("big-context", &log, Ok("big")),
            )
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
    let service = FallbackLayer::new(&Agent::new("assistant").classifier(context_aware))
        .then(&Agent::new("small"), agent("small", &log, Ok("small")))
        .layer_onto(agent("primary", &log, Err("prompt too long")));
    let error = service.oneshot("long prompt".into()).await.unwrap_err();
    assert_eq!(error.to_string(), "prompt too long");
    assert!(error.downcast_ref::<AllFailed>().is_none());
    assert_eq!(calls(&log), ["primary"]);
}

#[tokio::test]
async fn all_failed_keeps_every_error_primary_first_and_lists_skipped() {
    let log = log();
    let resting = Agent::new("resting");
    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then(&Agent::new("a"), agent("a", &log, Err("a failed")))
        .then(
            &resting,
            behind_open_breaker(&resting, agent("resting", &log, Ok("r"))),
        )
        .then(&Agent::new("b"), agent("b", &log, Err("b failed")))
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
    assert_eq!(all.skipped()[0].name(), "resting");
    assert_eq!(all.skipped()[0].reason(), SkipReason::BreakerOpen);
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
    // A chain tried through is an agent fault, so an outer retry does not run it again.
    let outcome = steadfast::classify::error_outcome(error.as_ref()).unwrap();
    assert_eq!(outcome, Outcome::agent_fault("all fallbacks failed"));
    assert_eq!(all.last_outcome(), Outcome::transient("error"));
}

#[tokio::test]
async fn ok_response_classified_as_failure_falls_back_and_is_recorded() {
    let log = log();
    let service = FallbackLayer::new(&Agent::new("assistant").classifier(status_aware))
        .then(
            &Agent::new("backup").classifier(status_aware),
            agent("backup", &log, Err("backup down")),
        )
        .layer_onto(agent("primary", &log, Ok("503")));
    let error = service.oneshot("hi".into()).await.unwrap_err();
    let all = error.downcast_ref::<AllFailed>().unwrap();
    let failed = all.attempts()[0]
        .1
        .downcast_ref::<FailedResponse>()
        .expect("the primary's 503 as an error");
    assert_eq!(failed.outcome(), Outcome::transient("status 503"));
    assert_eq!(calls(&log), ["primary", "backup"]);
}

#[tokio::test]
async fn each_alternative_is_judged_by_its_own_agents_classifier() {
    let log = log();
    let registry = Registry::new();
    // Both alternatives answer "503 ...". `strict`'s classifier calls that a failure, so the
    // chain moves on; `lenient`'s (the default) calls any `Ok` a success, so its answer is
    // taken, although the primary's classifier would have refused it.
    let service = FallbackLayer::new(&registry.agent("assistant").classifier(status_aware))
        .then(
            &registry.agent("strict").classifier(status_aware),
            agent("strict", &log, Ok("503")),
        )
        .then(
            &registry.agent("lenient"),
            agent("lenient", &log, Ok("503")),
        )
        .mark_responses()
        .layer_onto(agent("primary", &log, Err("primary down")));
    let reply = service.oneshot("hi".into()).await.unwrap();
    assert_eq!(reply.value, "503: hi");
    assert_eq!(
        reply.served(),
        Served::Fallback {
            name: "lenient".into()
        }
    );
    assert_eq!(calls(&log), ["primary", "strict", "lenient"]);

    // And the other way round: a primary that takes any `Ok`, an alternative that does not.
    let log = self::log();
    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then(
            &Agent::new("strict").classifier(status_aware),
            agent("strict", &log, Ok("503")),
        )
        .layer_onto(agent("primary", &log, Err("primary down")));
    let error = service.oneshot("hi".into()).await.unwrap_err();
    let all = error
        .downcast_ref::<AllFailed>()
        .expect("the 503 was not an answer");
    assert!(all.attempts()[1].1.is::<FailedResponse>());
    assert_eq!(all.last_outcome(), Outcome::transient("status 503"));
}

#[tokio::test]
async fn fallbacks_are_counted_and_announced_on_the_primary_agent() {
    let log = log();
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let service = FallbackLayer::new(&registry.agent("assistant"))
        .then(
            &registry.agent("backup"),
            agent("backup", &log, Ok("backup")),
        )
        .layer_onto(agent("primary", &log, Err("overloaded")));
    service.oneshot("hi".into()).await.unwrap();
    assert_eq!(
        events.try_recv(),
        Some(Event::FallbackUsed {
            agent: Arc::from("assistant"),
            fallback: Arc::from("backup"),
            source: "fallback",
            reason: Some("error"),
        })
    );
    assert_eq!(events.try_recv(), None);
    let counters = registry.counters("assistant").unwrap();
    assert_eq!(
        (counters.primary, counters.fallbacks, counters.cache_hits),
        (0, 1, 0)
    );
    let backup = registry.counters("backup").unwrap();
    assert_eq!(
        (backup.primary, backup.fallbacks),
        (0, 0),
        "counted on the agent that failed"
    );
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
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
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
    let service = FallbackLayer::new(&registry.agent("assistant"))
        .then(
            &registry.agent("backup"),
            agent("backup", &log, Err("backup down")),
        )
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
    assert_eq!(
        events.try_recv(),
        Some(Event::FallbackUsed {
            agent: Arc::from("assistant"),
            fallback: Arc::from("cache"),
            source: "cache",
            reason: Some("error"),
        })
    );

    tokio::time::advance(Duration::from_secs(6)).await; // 31 s: older than ttl + max_stale
    let error = service.oneshot("q".into()).await.unwrap_err();
    let all = error.downcast_ref::<AllFailed>().unwrap();
    let names: Vec<&str> = all.attempts().iter().map(|(name, _)| &**name).collect();
    assert_eq!(names, ["assistant", "backup", "cache"]);
    assert!(all.attempts()[2].1.downcast_ref::<CacheMiss>().is_some());
    assert!(cache.is_empty(), "the expired entry was dropped");
    let counters = registry.counters("assistant").unwrap();
    assert_eq!(
        (counters.primary, counters.fallbacks, counters.cache_hits),
        (1, 0, 1)
    );
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
    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then_cache(cache.clone())
        .layer_onto(service_fn(|prompt: String| async move {
            if prompt.ends_with("down") {
                Err::<Reply, BoxError>("down".into())
            } else {
                Ok(Attributed::new(prompt))
            }
        }));
    service.clone().oneshot("secret plan".into()).await.unwrap();
    assert!(
        cache.is_empty(),
        "a keyless answer of the primary is not stored"
    );
    let error = service
        .oneshot("secret plan down".into())
        .await
        .unwrap_err();
    let all = error.downcast_ref::<AllFailed>().expect("AllFailed");
    assert!(all.attempts()[1].1.is::<CacheMiss>());
}

#[test]
fn the_byte_budget_bounds_the_cache() {
    // Eviction is quick_cache's (S3-FIFO), not oldest-first: which answer goes is its call;
    // that the budgets hold is ours.
    let config = CacheConfig::builder().max_bytes(10).build().unwrap();
    let cache = ResponseCache::with_size(
        config,
        |prompt: &String| Some(prompt.clone()),
        |reply: &String| reply.len(),
    );
    cache.insert(&"a".to_string(), "123456".to_string());
    assert_eq!(cache.get(&"a".to_string()).unwrap().value, "123456");
    cache.insert(&"b".to_string(), "123456".to_string());
    assert_eq!(cache.len(), 1, "two answers of 6 bytes do not fit in 10");
    assert_eq!(cache.bytes(), 6);
    let kept = ["a", "b"]
        .iter()
        .filter(|key| cache.get(&key.to_string()).is_some())
        .count();
    assert_eq!(kept, 1);
    cache.insert(&"c".to_string(), "12345678901".to_string());
    assert!(
        cache.get(&"c".to_string()).is_none(),
        "an answer over the whole budget is never stored"
    );
    assert!(cache.bytes() <= 10);
}

#[test]
fn an_answer_within_the_byte_budget_is_cached_whatever_the_entry_limit() {
    // The default entry limit (1,000) spreads the store over several shards on a machine
    // with more than one core; each answer that fits the byte budget must still be kept.
    for (max_entries, max_bytes) in [(1_000, 10_000), (100, 1_000), (10_000, 1_000_000)] {
        let config = CacheConfig::builder()
            .max_entries(max_entries)
            .max_bytes(max_bytes)
            .build()
            .unwrap();
        let cache = ResponseCache::with_size(
            config,
            |prompt: &String| Some(prompt.clone()),
            |reply: &String| reply.len(),
        );
        // (Up to 90 %: quick_cache admits no entry over 97 % of its capacity.)
        for size in [1, max_bytes / 10, max_bytes / 2, max_bytes / 10 * 9] {
            let key = format!("{size} bytes");
            cache.insert(&key, "x".repeat(size));
            assert_eq!(
                cache.get(&key).map(|hit| hit.value.len()),
                Some(size),
                "{size} of {max_bytes} bytes (max_entries {max_entries})"
            );
        }
        assert!(cache.bytes() <= max_bytes);
    }
}

#[test]
fn the_entry_limit_bounds_the_cache_and_answers_asked_for_again_outlive_one_offs() {
    let config = CacheConfig::builder().max_entries(8).build().unwrap();
    let cache = ResponseCache::new(config, |n: &u32| Some(*n));
    cache.insert(&0, "popular");
    for n in 1..200 {
        // The popular answer is asked for between one-off answers.
        assert_eq!(
            cache.get(&0).map(|hit| hit.value),
            Some("popular"),
            "after {n}"
        );
        cache.insert(&n, "one-off");
        assert!(cache.len() <= 8, "{} entries", cache.len());
    }
    assert!(
        cache.len() >= 4,
        "the cache is used: {} entries",
        cache.len()
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_responses_carry_provenance_as_an_extension() {
    let backup = service_fn(|(): ()| async { Ok::<_, BoxError>(http::Response::new("backup")) });
    let service = FallbackLayer::new(&Agent::new("assistant"))
        .then(&Agent::new("backup"), backup)
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
