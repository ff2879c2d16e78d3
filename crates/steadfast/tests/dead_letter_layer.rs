//! DeadLetterLayer: what is stored, what the caller gets back, and what happens when the sink
//! fails.
#![cfg(feature = "dead-letter")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use steadfast::classify::{Outcome, OutcomeKind};
use steadfast::dead_letter::{
    DeadLetterFailed, DeadLetterLayer, DeadLetterPolicy, DeadLettered, MemorySink, SinkError,
};
use steadfast::{Agent, BoxError};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[allow(clippy::ptr_arg, clippy::unnecessary_wraps)]
fn encode(prompt: &String) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(prompt.clone()))
}

#[tokio::test]
async fn a_success_passes_through_and_stores_nothing() {
    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&Agent::new("echo"), sink.clone()).encoder(encode))
        .service(service_fn(|p: String| async move { Ok::<_, BoxError>(p) }));
    assert_eq!(agent.oneshot("hi".into()).await.unwrap(), "hi");
    assert!(sink.is_empty());
}

#[tokio::test]
async fn a_failure_is_stored_before_dead_lettered_is_returned() {
    let sink = MemorySink::new(10);
    let gpt = Agent::new("gpt");
    let agent = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(&gpt, sink.clone())
                .encoder(encode)
                .trace_id(|| Some("trace-7".into())),
        )
        .service(service_fn(|_: String| async {
            Err::<String, BoxError>("overloaded".into())
        }));

    let err = agent.oneshot("prompt".into()).await.unwrap_err();
    let dead = err.downcast_ref::<DeadLettered>().expect("DeadLettered");
    assert_eq!(dead.agent(), "gpt");
    assert_eq!(dead.original().to_string(), "overloaded");
    assert_eq!(
        std::error::Error::source(dead).unwrap().to_string(),
        "overloaded"
    );

    let records = sink.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.id, dead.id());
    assert_eq!(record.agent, "gpt");
    assert_eq!(record.request, Bytes::from("prompt"));
    assert_eq!(record.outcome, OutcomeKind::Transient);
    assert_eq!(record.error_chain, vec!["overloaded".to_string()]);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.trace_id.as_deref(), Some("trace-7"));
    assert_eq!(record.replay_count, 0);
    let counted = gpt.counters();
    assert_eq!(
        (counted.dead_lettered, counted.dead_letter_failures),
        (1, 0)
    );
}

#[tokio::test]
async fn a_failing_sink_returns_both_errors_and_never_swallows_either() {
    let sink = MemorySink::new(10);
    sink.fail_next_append("disk on fire");
    let gpt = Agent::new("gpt");
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&gpt, sink.clone()).encoder(encode))
        .service(service_fn(|_: String| async {
            Err::<String, BoxError>("overloaded".into())
        }));

    let err = agent.oneshot("prompt".into()).await.unwrap_err();
    let failed = err
        .downcast_ref::<DeadLetterFailed>()
        .expect("DeadLetterFailed");
    assert_eq!(failed.original().to_string(), "overloaded");
    assert!(failed.sink_error().to_string().contains("disk on fire"));
    assert!(err.to_string().contains("overloaded") && err.to_string().contains("disk on fire"));
    assert!(err.downcast_ref::<DeadLettered>().is_none());
    assert!(sink.is_empty());
    // Counted as a loss, not as a dead letter.
    let counted = gpt.counters();
    assert_eq!(
        (counted.dead_lettered, counted.dead_letter_failures),
        (0, 1)
    );
}

#[tokio::test]
async fn a_full_memory_sink_refuses_rather_than_dropping_old_records() {
    let sink = MemorySink::new(1);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&Agent::new("gpt"), sink.clone()).encoder(encode))
        .service(service_fn(|_: String| async {
            Err::<String, BoxError>("down".into())
        }));

    let first = agent.clone().oneshot("one".into()).await.unwrap_err();
    assert!(first.is::<DeadLettered>());
    let second = agent.oneshot("two".into()).await.unwrap_err();
    let failed = second.downcast_ref::<DeadLetterFailed>().unwrap();
    assert!(matches!(
        failed.sink_error(),
        SinkError::Full { capacity: 1 }
    ));
    assert_eq!(sink.records()[0].request, Bytes::from("one"));
}

#[tokio::test]
async fn caller_faults_are_dead_lettered_as_poison_by_default_and_can_be_excluded() {
    let classifier = |result: Result<&String, &BoxError>| match result {
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::caller_fault("bad prompt"),
    };
    let failing = || service_fn(|_: String| async { Err::<String, BoxError>("400".into()) });
    let gpt = Agent::new("gpt").classifier(classifier);

    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&gpt, sink.clone()).encoder(encode))
        .service(failing());
    assert!(
        agent
            .oneshot("x".into())
            .await
            .unwrap_err()
            .is::<DeadLettered>()
    );
    assert_eq!(sink.records()[0].outcome, OutcomeKind::CallerFault);
    assert_eq!(sink.records()[0].reason, "bad prompt");

    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(&gpt, sink.clone())
                .encoder(encode)
                .policy(DeadLetterPolicy::default().without(OutcomeKind::CallerFault)),
        )
        .service(failing());
    let err = agent.oneshot("x".into()).await.unwrap_err();
    assert_eq!(err.to_string(), "400");
    assert!(sink.is_empty());
}

#[tokio::test]
async fn a_response_classified_as_failure_is_dead_lettered() {
    let sink = MemorySink::new(10);
    let classifier = |result: Result<&u16, &BoxError>| match result {
        Ok(503) => Outcome::transient("503"),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    };
    let gpt = Agent::new("gpt").classifier(classifier);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&gpt, sink.clone()).encoder(encode))
        .service(service_fn(|_: String| async { Ok::<u16, BoxError>(503) }));
    let err = agent.oneshot("x".into()).await.unwrap_err();
    assert!(err.is::<DeadLettered>());
    assert_eq!(sink.records()[0].reason, "503");
}

#[tokio::test]
async fn an_encoder_failure_is_reported_with_the_original_error() {
    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(&Agent::new("gpt"), sink.clone())
                .encoder(|_: &String| Err::<Bytes, BoxError>("not serialisable".into())),
        )
        .service(service_fn(|_: String| async {
            Err::<String, BoxError>("down".into())
        }));
    let err = agent.oneshot("x".into()).await.unwrap_err();
    let failed = err.downcast_ref::<DeadLetterFailed>().unwrap();
    assert!(matches!(failed.sink_error(), SinkError::Encode(_)));
    assert_eq!(failed.original().to_string(), "down");
}

#[tokio::test]
async fn the_default_encoder_stores_the_debug_text() {
    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&Agent::new("gpt"), sink.clone()))
        .service(service_fn(|_: (u8, &'static str)| async {
            Err::<(), BoxError>("down".into())
        }));
    let _ = agent.oneshot((7, "x")).await;
    assert_eq!(sink.records()[0].request, Bytes::from("(7, \"x\")"));
}

#[cfg(feature = "retry")]
#[tokio::test]
async fn attempts_come_from_the_retry_error() {
    use steadfast::retry::RetriesExhausted;
    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&Agent::new("gpt"), sink.clone()).encoder(encode))
        .service(service_fn(|_: String| async {
            Err::<String, BoxError>(Box::new(RetriesExhausted::new("gpt", 4, "last".into())))
        }));
    let _ = agent.oneshot("x".into()).await;
    assert_eq!(sink.records()[0].attempts, 4);
    assert_eq!(sink.records()[0].error_chain.len(), 2);
}

#[tokio::test]
async fn the_encoder_runs_only_on_failure() {
    static ENCODED: AtomicUsize = AtomicUsize::new(0);
    let sink = MemorySink::new(10);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let agent = ServiceBuilder::new()
        .layer(
            DeadLetterLayer::new(&Agent::new("gpt"), sink.clone()).encoder(|p: &String| {
                ENCODED.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(Bytes::from(p.clone()))
            }),
        )
        .service(service_fn(move |p: String| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok::<_, BoxError>(p)
                } else {
                    Err("down".into())
                }
            }
        }));
    agent.clone().oneshot("ok".into()).await.unwrap();
    assert_eq!(ENCODED.load(Ordering::SeqCst), 0);
    let _ = agent.oneshot("bad".into()).await;
    assert_eq!(ENCODED.load(Ordering::SeqCst), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn the_json_encoder_stores_a_request_replay_can_decode() {
    use steadfast::dead_letter::json_encoder;
    let sink = MemorySink::new(10);
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&Agent::new("gpt"), sink.clone()).encoder(json_encoder()))
        .service(service_fn(|_: Vec<String>| async {
            Err::<(), BoxError>("down".into())
        }));
    let _ = agent.oneshot(vec!["a".to_string(), "b".to_string()]).await;
    let stored: Vec<String> = serde_json::from_slice(&sink.records()[0].request).unwrap();
    assert_eq!(stored, ["a", "b"]);
}

/// `list` showed ATTEMPTS 1 while the error said "every answer ... failed (3 attempts": behind
/// a fallback chain every answer tried counts, each with its own retries.
#[cfg(all(feature = "retry", feature = "fallback"))]
#[tokio::test]
async fn attempts_behind_a_fallback_chain_count_every_answer_and_its_retries() {
    use steadfast::fallback::{AllFailed, FallbackLayer};
    use steadfast::retry::RetriesExhausted;
    let sink = MemorySink::new(10);
    let assistant = Agent::new("assistant");
    let down = |name: &'static str| {
        service_fn(move |_: String| async move {
            Err::<String, BoxError>(format!("{name} down").into())
        })
    };
    let primary = service_fn(|_: String| async {
        Err::<String, BoxError>(Box::new(RetriesExhausted::new(
            "gpt",
            3,
            "overloaded".into(),
        )))
    });
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&assistant, sink.clone()).encoder(encode))
        .layer(
            FallbackLayer::new(&assistant)
                .then(&Agent::new("claude"), down("claude"))
                .then(&Agent::new("local"), down("local")),
        )
        .service(primary);
    let error = agent.oneshot("x".into()).await.unwrap_err();
    let all = steadfast::error::find::<AllFailed>(error.as_ref()).expect("AllFailed");
    assert_eq!(all.attempts().len(), 3);
    assert!(sink.records()[0].error_chain[0].contains("(3 attempts"));
    // 3 calls to the primary (its retries) + 1 to each alternative.
    assert_eq!(sink.records()[0].attempts, 5);
}

#[cfg(feature = "fallback")]
#[tokio::test]
async fn attempts_without_retries_equal_the_answers_the_error_names() {
    use steadfast::fallback::FallbackLayer;
    let sink = MemorySink::new(10);
    let assistant = Agent::new("assistant");
    let down = |name: &'static str| {
        service_fn(move |_: String| async move {
            Err::<String, BoxError>(format!("{name} down").into())
        })
    };
    let agent = ServiceBuilder::new()
        .layer(DeadLetterLayer::new(&assistant, sink.clone()).encoder(encode))
        .layer(
            FallbackLayer::new(&assistant)
                .then(&Agent::new("b"), down("b"))
                .then(&Agent::new("c"), down("c"))
                .then(&Agent::new("d"), down("d")),
        )
        .service(down("a"));
    let _ = agent.oneshot("x".into()).await.unwrap_err();
    let record = &sink.records()[0];
    assert!(
        record.error_chain[0].contains("(4 attempts"),
        "{:?}",
        record.error_chain
    );
    assert_eq!(record.attempts, 4);
}
