//! The whole stack of DESIGN §1, outer to inner: Degrade > DeadLetter > Fallback > Retry >
//! CircuitBreaker > Timeout > agent, every layer made from one agent scope, driven through an
//! outage under a paused clock. Every request ends in exactly one of: primary, fallback, cache,
//! degraded, dead-lettered; the registry counts the same.
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::dead_letter::{Bytes, DeadLetterLayer, DeadLettered, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[derive(Debug)]
struct Prompt {
    text: String,
    /// Only prompts marked `degradable` may get the template answer.
    degradable: bool,
}
type Request = Arc<Prompt>;
type Reply = Attributed<String>;

#[derive(Default, Debug, PartialEq)]
struct Tally {
    primary: u32,
    fallback: u32,
    cache: u32,
    degraded: u32,
    dead_lettered: u32,
}

#[tokio::test(start_paused = true)]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn every_request_ends_in_exactly_one_place_through_an_outage() {
    let primary_up = Arc::new(AtomicBool::new(true));
    let backup_up = Arc::new(AtomicBool::new(true));
    let primary_calls = Arc::new(AtomicU32::new(0));
    let primary = {
        let (up, calls) = (primary_up.clone(), primary_calls.clone());
        service_fn(move |prompt: Request| {
            calls.fetch_add(1, Ordering::SeqCst);
            let up = up.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok::<Reply, BoxError>(Attributed::new(format!("large: {}", prompt.text)))
                } else {
                    Err("529 overloaded".into())
                }
            }
        })
    };
    let backup = {
        let up = backup_up.clone();
        service_fn(move |prompt: Request| {
            let up = up.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok::<Reply, BoxError>(Attributed::new(format!("small: {}", prompt.text)))
                } else {
                    Err("503 unavailable".into())
                }
            }
        })
    };

    let registry = Registry::new();
    let sink = MemorySink::new(1_000);
    let cache = ResponseCache::new(
        CacheConfig::builder()
            .ttl(Duration::from_secs(60))
            .max_stale(Duration::from_secs(3_600))
            .build()
            .unwrap(),
        |prompt: &Request| Some(prompt.text.clone()),
    );
    // The agent is named once; every layer of its stack reports under that name.
    let large = registry.agent("large");
    let small = registry.agent("small");
    let breaker = CircuitBreakerLayer::new(&large, BreakerConfig::default());
    let retry_config = RetryConfig::builder()
        .max_retries(2)
        .jitter(Jitter::None)
        .build()
        .unwrap();

    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(&large, |degradable: &bool, _: &BoxError| {
                degradable.then(|| Attributed::new("busy, try again soon".to_string()))
            })
            .view(|prompt: &Request| prompt.degradable)
            .mark_responses(),
        )
        .layer(
            DeadLetterLayer::new(&large, sink.clone())
                .encoder(|prompt: &Request| Ok::<_, BoxError>(Bytes::from(prompt.text.clone()))),
        )
        .layer(
            FallbackLayer::new(&large)
                .then(&small, backup)
                .then_cache(cache.clone())
                .mark_responses(),
        )
        .layer(BackoffRetryLayer::new(&large, retry_config).seed(1))
        .layer(breaker.clone())
        .timeout(Duration::from_secs(30))
        .service(primary);

    let mut tally = Tally::default();
    let mut sent = 0;
    let mut ask = async |text: &str, degradable: bool, tally: &mut Tally| {
        sent += 1;
        let prompt = Arc::new(Prompt {
            text: text.to_string(),
            degradable,
        });
        match stack.clone().oneshot(prompt).await {
            Ok(reply) => match reply.served() {
                Served::Primary => tally.primary += 1,
                Served::Fallback { .. } => tally.fallback += 1,
                Served::Cache { .. } => tally.cache += 1,
                Served::Degraded { .. } => tally.degraded += 1,
                other @ Served::Checkpoint { .. } => {
                    panic!("no checkpoint layer in this stack, yet served by {other}")
                }
            },
            Err(error) => {
                assert!(error.is::<DeadLettered>(), "unaccounted error: {error}");
                tally.dead_lettered += 1;
            }
        }
    };

    // Healthy: the primary answers (and feeds the cache).
    for text in ["a", "b", "c"] {
        ask(text, true, &mut tally).await;
    }
    // The primary goes down: retries, then the backup, until the breaker opens.
    primary_up.store(false, Ordering::SeqCst);
    for text in ["d", "e", "f", "g"] {
        ask(text, true, &mut tally).await;
    }
    assert_eq!(breaker.handle().state(), BreakerState::Open);
    let calls_when_open = primary_calls.load(Ordering::SeqCst);
    // The backup goes down too: the cache answers what it knows...
    backup_up.store(false, Ordering::SeqCst);
    ask("a", true, &mut tally).await;
    // ...the template answers degradable prompts, and the rest is dead-lettered.
    ask("new question", true, &mut tally).await;
    ask("must not be lost", false, &mut tally).await;
    assert_eq!(
        primary_calls.load(Ordering::SeqCst),
        calls_when_open,
        "an open breaker keeps calls off the dead primary"
    );

    assert_eq!(
        tally,
        Tally {
            primary: 3,
            fallback: 4,
            cache: 1,
            degraded: 1,
            dead_lettered: 1
        }
    );
    let accounted =
        tally.primary + tally.fallback + tally.cache + tally.degraded + tally.dead_lettered;
    assert_eq!(accounted, sent);
    // Dead-letter sits inside degrade: a degraded answer's request is kept for replay too, so
    // the queue holds both requests no agent answered, and nothing else.
    let kept: Vec<_> = sink
        .records()
        .iter()
        .map(|record| record.request.clone())
        .collect();
    assert_eq!(kept, [&b"new question"[..], &b"must not be lost"[..]]);

    // The registry counted the same places, from the layers' events, under the agent's name.
    let counted = registry.counters("large").unwrap();
    assert_eq!(
        (
            counted.primary,
            counted.fallbacks,
            counted.cache_hits,
            counted.degraded,
            counted.dead_lettered,
        ),
        (3, 4, 1, 1, 2),
        "{counted:?}"
    );
    assert_eq!(registry.agents(), ["large", "small"]);
}
