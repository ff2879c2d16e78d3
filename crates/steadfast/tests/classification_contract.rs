//! Acceptance tests of the issue "One agent scope, an open classification contract, one event
//! path":
//!
//! 1. a retry layer's `DeadlineExceeded` (and a fallback chain's `AllFailed`) is never retried
//!    by a retry layer around it: nested retries multiply no attempts;
//! 2. an error type defined here, outside steadfast, classifies itself ([`ClassifyError`]) once
//!    registered, and every layer reacts to it per its outcome, with no edit to `classify.rs`;
//! 3. a request the classifier notes as not idempotent is not retried after a response
//!    timeout, but is after a failure marked `unprocessed`;
//! 4. after a scripted mix of calls through the whole stack under one registry, every counter
//!    of `registry.snapshot()` equals its agent's metric series, and nothing reports under a
//!    default name.
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]

#[path = "support/counters.rs"]
mod snapshot_counters;
#[path = "support/metrics.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::classify::{self, Classify, ClassifyError, DefaultClassifier, Outcome, OutcomeKind};
use steadfast::dead_letter::{
    Bytes, DeadLetterFailed, DeadLetterLayer, DeadLetterPolicy, DeadLettered, MemorySink, Monitor,
};
use steadfast::degrade::DegradeLayer;
use steadfast::error::find;
use steadfast::events::{Event, EventReceiver};
use steadfast::fallback::{AllFailed, Alternative, FallbackLayer};
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance};
use steadfast::retry::{RetryBudget, attempts_of};
use support::TestRecorder;
use tokio::time::{Instant, sleep};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

/// Counts the calls an agent received.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicU32>);

impl Calls {
    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    fn note(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

fn retry_config(max_retries: u32, deadline: Option<Duration>) -> RetryConfig {
    let builder = RetryConfig::builder()
        .max_retries(max_retries)
        .base(Duration::from_millis(100))
        .multiplier(2.0)
        .jitter(Jitter::None);
    match deadline {
        Some(deadline) => builder.deadline(deadline),
        None => builder,
    }
    .build()
    .unwrap()
}

fn drain(events: &mut EventReceiver) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Nested deadlines and chains are not retried

/// An agent that fails after `after`, counting its calls.
fn failing_after(after: Duration, calls: &Calls) -> BoxCloneSyncService<(), (), BoxError> {
    let calls = calls.clone();
    BoxCloneSyncService::new(service_fn(move |()| {
        calls.note();
        async move {
            sleep(after).await;
            Err::<(), BoxError>("overloaded".into())
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn an_inner_deadline_that_cut_an_attempt_is_not_retried_by_an_outer_retry() {
    let registry = Registry::new();
    let (gateway, gpt) = (registry.agent("gateway"), registry.agent("gpt"));
    let calls = Calls::default();
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gateway, retry_config(3, None)))
        .layer(BackoffRetryLayer::new(
            &gpt,
            retry_config(5, Some(Duration::from_secs(1))),
        ))
        .service(failing_after(Duration::from_secs(2), &calls));

    let started = Instant::now();
    let error = stack.oneshot(()).await.unwrap_err();

    let deadline = find::<DeadlineExceeded>(error.as_ref()).expect("the inner deadline");
    assert_eq!((deadline.agent(), deadline.attempts()), ("gpt", 1));
    // The outer layer made no attempt of its own: one call, cut at the inner deadline.
    assert_eq!(calls.count(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let (outer, inner) = (gateway.counters(), gpt.counters());
    assert_eq!((outer.retries, outer.retries_exhausted), (0, 0));
    assert_eq!((inner.retries, inner.deadlines_exceeded), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn an_inner_deadline_that_refused_a_wait_is_not_retried_by_an_outer_retry() {
    let registry = Registry::new();
    let (gateway, gpt) = (registry.agent("gateway"), registry.agent("gpt"));
    let calls = Calls::default();
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gateway, retry_config(3, None)))
        .layer(BackoffRetryLayer::new(
            &gpt,
            retry_config(5, Some(Duration::from_secs(1))),
        ))
        .service(failing_after(Duration::from_millis(400), &calls));

    let started = Instant::now();
    let error = stack.oneshot(()).await.unwrap_err();

    // 0.4 s, wait 0.1 s, 0.4 s: the next wait (0.2 s) would end past the 1 s deadline.
    let deadline = find::<DeadlineExceeded>(error.as_ref()).expect("the inner deadline");
    assert_eq!(deadline.attempts(), 2);
    assert_eq!(attempts_of(error.as_ref()), 2);
    assert_eq!(calls.count(), 2);
    assert_eq!(started.elapsed(), Duration::from_millis(900));
    assert_eq!(gateway.counters().retries, 0);
    let inner = gpt.counters();
    assert_eq!((inner.retries, inner.deadlines_exceeded), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_retry_around_a_fallback_does_not_run_a_failed_chain_again() {
    let registry = Registry::new();
    let (gateway, gpt, claude) = (
        registry.agent("gateway"),
        registry.agent("gpt"),
        registry.agent("claude"),
    );
    let (primary_calls, backup_calls) = (Calls::default(), Calls::default());
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gateway, retry_config(3, None)))
        .layer(FallbackLayer::new(&gpt).then(&claude, failing_after(Duration::ZERO, &backup_calls)))
        .service(failing_after(Duration::ZERO, &primary_calls));

    let error = stack.oneshot(()).await.unwrap_err();

    let all_failed = error.downcast_ref::<AllFailed>().expect("AllFailed");
    assert_eq!(all_failed.attempts().len(), 2);
    assert_eq!((primary_calls.count(), backup_calls.count()), (1, 1));
    assert_eq!(gateway.counters().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_around_a_fallback_does_not_retry_the_deadline_its_chain_ended_in() {
    let registry = Registry::new();
    let (gateway, gpt, claude) = (
        registry.agent("gateway"),
        registry.agent("gpt"),
        registry.agent("claude"),
    );
    // The alternative's breaker is open: the chain cannot try it and ends in the primary's
    // own error, its retry layer's `DeadlineExceeded`.
    let claude_breaker = CircuitBreakerLayer::new(&claude, BreakerConfig::default());
    claude_breaker.handle().force_open();
    let (primary_calls, backup_calls) = (Calls::default(), Calls::default());
    let backup = claude_breaker.layer(failing_after(Duration::ZERO, &backup_calls));
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gateway, retry_config(3, None)))
        .layer(FallbackLayer::new(&gpt).then(&claude, backup))
        .layer(BackoffRetryLayer::new(
            &gpt,
            retry_config(5, Some(Duration::from_secs(1))),
        ))
        .service(failing_after(Duration::from_secs(2), &primary_calls));

    let started = Instant::now();
    let error = stack.oneshot(()).await.unwrap_err();

    assert!(
        error.downcast_ref::<DeadlineExceeded>().is_some(),
        "{error}"
    );
    assert_eq!((primary_calls.count(), backup_calls.count()), (1, 0));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(gateway.counters().retries, 0);
    assert_eq!(gpt.counters().deadlines_exceeded, 1);
}

// ---------------------------------------------------------------------------------------------
// 2. An error type of our own classifies itself

/// A provider's "quota exhausted, come back later", as its client library reports it.
#[derive(Debug, thiserror::Error)]
#[error("quota exhausted; retry in {retry_after:?}")]
struct QuotaExhausted {
    retry_after: Duration,
}

impl ClassifyError for QuotaExhausted {
    fn outcome(&self) -> Outcome {
        Outcome::rate_limited("quota").with_retry_after(self.retry_after)
    }
}

/// The provider refused the prompt itself: the caller's fault.
#[derive(Debug, thiserror::Error)]
#[error("prompt rejected by the content policy")]
struct PromptRejected;

impl ClassifyError for PromptRejected {
    fn outcome(&self) -> Outcome {
        Outcome::caller_fault("prompt rejected")
    }
}

/// What an SDK wraps errors in: it says nothing about their meaning.
#[derive(Debug, thiserror::Error)]
#[error("the call failed")]
struct CallFailed(#[source] BoxError);

/// Implements the trait but is never registered.
#[derive(Debug, thiserror::Error)]
#[error("never registered")]
struct NeverRegistered;

impl ClassifyError for NeverRegistered {
    fn outcome(&self) -> Outcome {
        Outcome::caller_fault("never registered")
    }
}

fn register_our_errors() {
    classify::register::<QuotaExhausted>();
    classify::register::<PromptRejected>();
}

fn quota(secs: u64) -> BoxError {
    Box::new(CallFailed(Box::new(QuotaExhausted {
        retry_after: Duration::from_secs(secs),
    })))
}

fn rejected() -> BoxError {
    Box::new(CallFailed(Box::new(PromptRejected)))
}

/// An agent that fails with `error()` for its first `failures` calls, then echoes.
fn fails_then_echoes(
    failures: u32,
    error: fn() -> BoxError,
    calls: &Calls,
) -> BoxCloneSyncService<String, String, BoxError> {
    let calls = calls.clone();
    BoxCloneSyncService::new(service_fn(move |prompt: String| {
        let call = calls.note();
        async move {
            if call < failures {
                Err(error())
            } else {
                Ok(prompt)
            }
        }
    }))
}

#[test]
fn a_registered_error_is_read_anywhere_in_the_chain_and_wins_over_the_classifier() {
    register_our_errors();
    let outcome = classify::error_outcome(quota(2).as_ref()).unwrap();
    assert_eq!(outcome.kind(), OutcomeKind::RateLimited);
    assert_eq!(outcome.retry_after(), Some(Duration::from_secs(2)));
    // The default classifier (every `Err` is transient) takes the error at its word.
    let classified =
        Classify::<String, String>::classify(&DefaultClassifier, &(), Err(&rejected()));
    assert_eq!(classified, Outcome::caller_fault("prompt rejected"));
    // An error type that was never registered is not consulted.
    let unknown: BoxError = Box::new(NeverRegistered);
    assert_eq!(classify::error_outcome(unknown.as_ref()), None);
    assert_eq!(
        Classify::<String, String>::classify(&DefaultClassifier, &(), Err(&unknown)).kind(),
        OutcomeKind::Transient
    );
}

#[tokio::test(start_paused = true)]
async fn retry_waits_as_long_as_our_rate_limit_asks_and_never_retries_our_caller_fault() {
    register_our_errors();
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let gpt = registry.agent("gpt");

    let calls = Calls::default();
    let agent = BackoffRetryLayer::new(&gpt, retry_config(2, None)).layer(fails_then_echoes(
        1,
        || quota(2),
        &calls,
    ));
    let started = Instant::now();
    assert_eq!(agent.oneshot("hi".into()).await.unwrap(), "hi");
    // The wait the error asked for, not the 100 ms backoff.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(calls.count(), 2);
    assert_eq!(
        drain(&mut events),
        [Event::RetryScheduled {
            agent: Arc::from("gpt"),
            attempt: 2,
            delay: Duration::from_secs(2),
            reason: Some("quota"),
        }]
    );

    let calls = Calls::default();
    let agent = BackoffRetryLayer::new(&gpt, retry_config(2, None))
        .layer(fails_then_echoes(1, rejected, &calls));
    let error = agent.oneshot("hi".into()).await.unwrap_err();
    assert!(find::<PromptRejected>(error.as_ref()).is_some());
    assert_eq!(calls.count(), 1);
    assert_eq!(drain(&mut events), []);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_ignores_our_caller_fault_and_opens_on_our_rate_limit() {
    register_our_errors();
    let gpt = Agent::new("gpt");
    let breaker = CircuitBreakerLayer::new(
        &gpt,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .build()
            .unwrap(),
    );
    let bad_prompts = breaker.layer(fails_then_echoes(u32::MAX, rejected, &Calls::default()));
    for _ in 0..10 {
        assert!(bad_prompts.clone().oneshot("x".into()).await.is_err());
    }
    let counts = breaker.handle().counts();
    assert_eq!((counts.caller_faults, counts.failures), (10, 0));
    assert_eq!(breaker.handle().state(), BreakerState::Closed);

    let throttled = breaker.layer(fails_then_echoes(u32::MAX, || quota(1), &Calls::default()));
    for _ in 0..3 {
        assert!(throttled.clone().oneshot("x".into()).await.is_err());
    }
    assert_eq!(breaker.handle().counts().failures, 3);
    assert_eq!(breaker.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn fallback_answers_our_rate_limit_and_sends_our_caller_fault_only_where_it_is_handled() {
    register_our_errors();
    let registry = Registry::new();
    let (gpt, claude, big) = (
        registry.agent("gpt"),
        registry.agent("claude"),
        registry.agent("big-context"),
    );
    let backup = |name: &'static str, calls: &Calls| {
        let calls = calls.clone();
        service_fn(move |prompt: String| {
            calls.note();
            async move { Ok::<_, BoxError>(format!("{name}: {prompt}")) }
        })
    };

    // A rate limit goes to the alternative.
    let claude_calls = Calls::default();
    let agent = FallbackLayer::new(&gpt)
        .then(&claude, backup("claude", &claude_calls))
        .layer(fails_then_echoes(u32::MAX, || quota(1), &Calls::default()));
    assert_eq!(agent.oneshot("hi".into()).await.unwrap(), "claude: hi");
    assert_eq!(claude_calls.count(), 1);

    // A caller fault does not, unless the alternative says it handles it.
    let (claude_calls, big_calls) = (Calls::default(), Calls::default());
    let agent = FallbackLayer::new(&gpt)
        .then(&claude, backup("claude", &claude_calls))
        .layer(fails_then_echoes(u32::MAX, rejected, &Calls::default()));
    let error = agent.oneshot("hi".into()).await.unwrap_err();
    assert!(find::<PromptRejected>(error.as_ref()).is_some());
    assert!(error.downcast_ref::<AllFailed>().is_none());
    assert_eq!(claude_calls.count(), 0);

    let agent = FallbackLayer::new(&gpt)
        .then(&claude, backup("claude", &claude_calls))
        .then_alternative(
            Alternative::new(&big, backup("big-context", &big_calls))
                .handles_caller_fault(|outcome| outcome.reason() == Some("prompt rejected")),
        )
        .layer(fails_then_echoes(u32::MAX, rejected, &Calls::default()));
    assert_eq!(agent.oneshot("hi".into()).await.unwrap(), "big-context: hi");
    assert_eq!((claude_calls.count(), big_calls.count()), (0, 1));
    assert_eq!(gpt.counters().fallbacks, 2);
}

#[tokio::test(start_paused = true)]
async fn dead_letter_records_our_errors_by_their_outcome_and_policy() {
    register_our_errors();
    let gpt = Agent::new("gpt");
    let encode = |prompt: &String| Ok::<_, BoxError>(Bytes::from(prompt.clone()));

    let sink = MemorySink::new(10);
    let layer = DeadLetterLayer::new(&gpt, sink.clone()).encoder(encode);
    let throttled: fn() -> BoxError = || quota(1);
    for (prompt, error) in [("throttled", throttled), ("bad", rejected)] {
        let agent = layer.layer(fails_then_echoes(u32::MAX, error, &Calls::default()));
        let result = agent.oneshot(prompt.into()).await;
        assert!(result.unwrap_err().is::<DeadLettered>());
    }
    let mut kept: Vec<_> = sink
        .records()
        .into_iter()
        .map(|record| (record.request, record.outcome, record.reason))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kept,
        [
            (
                Bytes::from("bad"),
                OutcomeKind::CallerFault,
                "prompt rejected".to_owned()
            ),
            (
                Bytes::from("throttled"),
                OutcomeKind::RateLimited,
                "quota".to_owned()
            ),
        ]
    );

    // A policy that leaves caller faults out returns ours untouched and keeps nothing.
    let sink = MemorySink::new(10);
    let agent = DeadLetterLayer::new(&gpt, sink.clone())
        .encoder(encode)
        .policy(DeadLetterPolicy::default().without(OutcomeKind::CallerFault))
        .layer(fails_then_echoes(u32::MAX, rejected, &Calls::default()));
    let error = agent.oneshot("bad".into()).await.unwrap_err();
    assert!(error.downcast_ref::<CallFailed>().is_some());
    assert!(sink.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency: what may be sent twice

/// An HTTP-like call: only its method matters here.
#[derive(Clone, Debug)]
struct HttpCall {
    method: &'static str,
}

const GET: HttpCall = HttpCall { method: "GET" };
const POST: HttpCall = HttpCall { method: "POST" };

#[derive(Clone, Debug, PartialEq)]
enum Reply {
    Ok,
    /// A 500: the server may have done part of the work.
    ServerError,
    /// A 503 with `Retry-After`: refused before any work was done.
    Unavailable(Duration),
}

/// Notes whether the method is idempotent, and says that a 503 with `Retry-After` never
/// reached the application (so even a `POST` may be sent again).
#[derive(Clone, Copy, Debug)]
struct MethodAware;

impl Classify<HttpCall, Reply> for MethodAware {
    type Memo = bool;

    fn note(&self, call: &HttpCall) -> bool {
        matches!(call.method, "GET" | "HEAD" | "PUT" | "DELETE")
    }

    fn classify(&self, _idempotent: &bool, result: Result<&Reply, &BoxError>) -> Outcome {
        match result {
            Ok(Reply::Ok) => Outcome::success(),
            Ok(Reply::ServerError) => Outcome::transient("500"),
            Ok(Reply::Unavailable(retry_after)) => Outcome::transient("503")
                .unprocessed()
                .with_retry_after(*retry_after),
            Err(_) => Outcome::transient("error"),
        }
    }

    fn is_idempotent(&self, idempotent: &bool) -> bool {
        *idempotent
    }
}

/// An HTTP agent answering each call from `replies` (the last one repeats).
fn http_agent(
    replies: &'static [Reply],
    calls: &Calls,
) -> BoxCloneSyncService<HttpCall, Reply, BoxError> {
    let calls = calls.clone();
    BoxCloneSyncService::new(service_fn(move |_: HttpCall| {
        let call = calls.note() as usize;
        let reply = replies[call.min(replies.len() - 1)].clone();
        async move { Ok::<_, BoxError>(reply) }
    }))
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_response_timed_out_is_not_retried_but_a_get_is() {
    let gpt = Agent::new("gpt").classifier(MethodAware);
    let calls = Calls::default();
    let hangs = {
        let calls = calls.clone();
        service_fn(move |_: HttpCall| {
            calls.note();
            async {
                sleep(Duration::from_secs(3600)).await;
                Ok::<_, BoxError>(Reply::Ok)
            }
        })
    };
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(&gpt, retry_config(2, None)))
        .timeout(Duration::from_secs(1))
        .service(hangs);

    // The POST may have reached the agent: sending it again could act twice.
    let started = Instant::now();
    let error = stack.clone().oneshot(POST).await.unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(calls.count(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(gpt.counters().retries, 0);

    // The same timeout on a GET is retried.
    let error = stack.oneshot(GET).await.unwrap_err();
    assert!(error.is::<RetriesExhausted>(), "{error}");
    assert_eq!(calls.count(), 1 + 3);
    assert_eq!(gpt.counters().retries, 2);
}

#[tokio::test(start_paused = true)]
async fn a_post_refused_before_any_work_is_retried_after_the_wait_it_asked_for() {
    static REFUSED_THEN_OK: [Reply; 2] = [Reply::Unavailable(Duration::from_secs(2)), Reply::Ok];
    let gpt = Agent::new("gpt").classifier(MethodAware);
    let mut events = gpt.events().subscribe();
    let calls = Calls::default();
    let agent = BackoffRetryLayer::new(&gpt, retry_config(2, None))
        .layer(http_agent(&REFUSED_THEN_OK, &calls));

    let started = Instant::now();
    assert_eq!(agent.oneshot(POST).await.unwrap(), Reply::Ok);
    assert_eq!(calls.count(), 2);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        drain(&mut events),
        [Event::RetryScheduled {
            agent: Arc::from("gpt"),
            attempt: 2,
            delay: Duration::from_secs(2),
            reason: Some("503"),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_answered_with_a_server_error_is_returned_as_is() {
    static FAILED_THEN_OK: [Reply; 2] = [Reply::ServerError, Reply::Ok];
    let gpt = Agent::new("gpt").classifier(MethodAware);
    let calls = Calls::default();
    let agent = BackoffRetryLayer::new(&gpt, retry_config(2, None))
        .layer(http_agent(&FAILED_THEN_OK, &calls));
    assert_eq!(
        agent.clone().oneshot(POST).await.unwrap(),
        Reply::ServerError
    );
    assert_eq!(calls.count(), 1);
    // A GET is retried past it.
    assert_eq!(agent.oneshot(GET).await.unwrap(), Reply::Ok);
    assert_eq!(calls.count(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. One event path: the status page and the metrics agree

/// What the primary does on each attempt of a request (the last entry repeats).
#[derive(Clone, Copy, Debug)]
enum Attempt {
    Ok,
    Overloaded,
    Quota,
    Rejected,
    Hangs,
}

#[derive(Debug)]
struct Ask {
    key: &'static str,
    degradable: bool,
    script: &'static [Attempt],
    attempts: AtomicUsize,
}

type Request = Arc<Ask>;
type Answer = Attributed<String>;

fn ask(key: &'static str, degradable: bool, script: &'static [Attempt]) -> Request {
    Arc::new(Ask {
        key,
        degradable,
        script,
        attempts: AtomicUsize::new(0),
    })
}

/// Where a call ended, as the caller sees it.
fn ended(result: &Result<Answer, BoxError>) -> &'static str {
    match result {
        Ok(reply) => reply.served().source(),
        Err(error) if error.is::<DeadLettered>() => "dead_lettered",
        Err(error) if error.is::<DeadLetterFailed>() => "lost",
        Err(error) => panic!("unaccounted error: {error}"),
    }
}

/// The registry after a scripted mix of calls through Degrade > DeadLetter >
/// Fallback (claude, then the cache) > Retry > CircuitBreaker > Timeout > gpt, and a DLQ check.
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn scripted_mix() -> Registry {
    use Attempt::{Hangs, Ok as Up, Overloaded, Quota, Rejected};
    register_our_errors();
    let registry = Registry::new();
    let (gpt, claude) = (registry.agent("gpt"), registry.agent("claude"));
    let claude_up = Arc::new(AtomicBool::new(true));
    let backup = {
        let up = claude_up.clone();
        CircuitBreakerLayer::new(&claude, BreakerConfig::default()).layer(service_fn(
            move |request: Request| {
                let up = up.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok::<Answer, BoxError>(Attributed::new(format!("claude: {}", request.key)))
                    } else {
                        Err("claude is down".into())
                    }
                }
            },
        ))
    };
    let primary = service_fn(|request: Request| {
        let attempt = request.attempts.fetch_add(1, Ordering::SeqCst);
        let script = request.script;
        let step = script[attempt.min(script.len() - 1)];
        async move {
            match step {
                Up => Ok::<Answer, BoxError>(Attributed::new(format!("gpt: {}", request.key))),
                Overloaded => Err("529 overloaded".into()),
                Quota => Err(quota(1)),
                Rejected => Err(rejected()),
                Hangs => {
                    sleep(Duration::from_secs(3600)).await;
                    Err("never".into())
                }
            }
        }
    });
    let sink = MemorySink::new(100);
    let budget = RetryBudget::new(0.2, 10, Duration::from_secs(10)).unwrap();
    // Only consecutive failures trip it (the rate rule would trip at the second attempt of
    // "h", when half the calls so far failed), so that "h" runs out of retries first.
    let breaker = CircuitBreakerLayer::new(
        &gpt,
        BreakerConfig::builder()
            .consecutive_failures(4)
            .failure_rate_threshold(1.0)
            .build()
            .unwrap(),
    );
    let cache = ResponseCache::new(
        CacheConfig::builder().build().unwrap(),
        |request: &Request| Some(request.key),
    );
    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(&gpt, |degradable: &bool, _: &BoxError| {
                degradable.then(|| Attributed::new("busy, try again soon".to_owned()))
            })
            .view(|request: &Request| request.degradable)
            .mark_responses(),
        )
        .layer(
            DeadLetterLayer::new(&gpt, sink.clone())
                .encoder(|request: &Request| Ok::<_, BoxError>(Bytes::from(request.key))),
        )
        .layer(
            FallbackLayer::new(&gpt)
                .then(&claude, backup)
                .then_cache(cache)
                .mark_responses(),
        )
        .layer(
            BackoffRetryLayer::new(&gpt, retry_config(2, Some(Duration::from_secs(3))))
                .budget(budget.clone()),
        )
        .layer(breaker.clone())
        .timeout(Duration::from_secs(5))
        .service(primary);
    let call = async |request: Request| ended(&stack.clone().oneshot(request).await);

    // Healthy (and feeding the cache); a blip retried; a rate limit retried after its wait.
    for key in ["a", "b", "c"] {
        assert_eq!(call(ask(key, false, &[Up])).await, "primary");
    }
    assert_eq!(call(ask("d", false, &[Overloaded, Up])).await, "primary");
    assert_eq!(call(ask("e", false, &[Quota, Up])).await, "primary");
    // A rejected prompt: no retry, no alternative, kept as poison.
    assert_eq!(call(ask("x", false, &[Rejected])).await, "dead_lettered");
    // The retry budget is spent: claude answers at once.
    while budget.try_withdraw() {}
    assert_eq!(call(ask("f", false, &[Overloaded])).await, "fallback");
    // The retry deadline cuts a hanging attempt: claude answers.
    assert_eq!(call(ask("g", false, &[Hangs])).await, "fallback");
    // Down for good: the retries run out, the breaker opens, claude answers.
    assert_eq!(call(ask("h", false, &[Overloaded])).await, "fallback");
    assert_eq!(breaker.handle().state(), BreakerState::Open);
    // Claude goes down too: the cache, the template, the queue, and a sink that fails.
    claude_up.store(false, Ordering::SeqCst);
    assert_eq!(call(ask("a", false, &[Up])).await, "cache");
    assert_eq!(call(ask("new", true, &[Up])).await, "degraded");
    assert_eq!(call(ask("lost", false, &[Up])).await, "dead_lettered");
    sink.fail_next_append("disk full");
    assert_eq!(call(ask("lost too", false, &[Up])).await, "lost");

    Monitor::new(sink.clone(), "main")
        .register(&registry)
        .check()
        .await
        .unwrap();
    registry
}

/// The counters of an agent's metric series, by the registry counter they match.
fn metric_counters(recorder: &TestRecorder, agent: &str) -> BTreeMap<&'static str, u64> {
    let counter = |name: &str| recorder.counter(&format!("{name}{{agent={agent}}}"));
    let served = |source: &str| {
        recorder.counter(&format!(
            "steadfast_served_total{{agent={agent},source={source}}}"
        ))
    };
    let retries_prefix = format!("steadfast_retries_total{{agent={agent},reason=");
    BTreeMap::from([
        (
            "retries",
            recorder
                .series()
                .iter()
                .filter(|series| series.starts_with(&retries_prefix))
                .map(|series| recorder.counter(series))
                .sum(),
        ),
        (
            "retries_exhausted",
            counter("steadfast_retries_exhausted_total"),
        ),
        (
            "retry_budget_exhausted",
            counter("steadfast_retry_budget_exhausted_total"),
        ),
        (
            "deadlines_exceeded",
            counter("steadfast_retry_deadline_exceeded_total"),
        ),
        ("primary", served("primary")),
        ("fallbacks", served("fallback")),
        ("cache_hits", served("cache")),
        ("degraded", served("degraded")),
        ("dead_lettered", counter("steadfast_dead_letters_total")),
        (
            "dead_letter_failures",
            counter("steadfast_dead_letter_failures_total"),
        ),
        (
            "bulkhead_rejected",
            counter("steadfast_bulkhead_rejected_total"),
        ),
        (
            "concurrency_limit_lowered",
            counter("steadfast_concurrency_limit_lowered_total"),
        ),
    ])
}

#[test]
#[allow(clippy::float_cmp)] // gauges holding small whole numbers, compared exactly
fn the_status_snapshot_equals_the_metrics_of_each_agent_and_nothing_reports_as_agent() {
    let recorder = TestRecorder::default();
    let registry = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(scripted_mix())
    });

    let snapshot = registry.snapshot();
    let names: Vec<&str> = snapshot
        .agents
        .iter()
        .map(|agent| agent.name.as_str())
        .collect();
    assert_eq!(names, ["claude", "gpt"]);

    // The scripted mix reached every counter, so the comparison below means something.
    let gpt = &snapshot.agents[1];
    assert_eq!(
        snapshot_counters::by_name(&gpt.counters),
        BTreeMap::from([
            ("retries", 4),
            ("retries_exhausted", 1),
            ("retry_budget_exhausted", 1),
            ("deadlines_exceeded", 1),
            ("primary", 5),
            ("fallbacks", 3),
            ("cache_hits", 1),
            ("degraded", 1),
            ("dead_lettered", 3),
            ("dead_letter_failures", 1),
            ("dlq_depth", 3),
            ("bulkhead_rejected", 0),
            ("concurrency_limit_lowered", 0),
        ])
    );

    for agent in &snapshot.agents {
        let name = &agent.name;
        // The DLQ depth has no per-agent series: it is checked against the queue's below.
        let mut status = snapshot_counters::by_name(&agent.counters);
        status.remove("dlq_depth");
        assert_eq!(
            status,
            metric_counters(&recorder, name),
            "agent `{name}`: status counters vs metrics"
        );
        let breaker = agent.breaker.as_ref().expect("both agents have a breaker");
        let calls = |outcome: &str| {
            recorder.counter(&format!(
                "steadfast_calls_total{{agent={name},outcome={outcome}}}"
            ))
        };
        let counts = breaker.counts;
        assert_eq!(
            (
                counts.successes,
                counts.failures,
                counts.caller_faults,
                counts.rejected
            ),
            (
                calls("success"),
                calls("transient") + calls("rate_limited") + calls("agent_fault"),
                calls("caller_fault"),
                calls("rejected")
            ),
            "agent `{name}`: breaker counts vs steadfast_calls_total"
        );
        assert_eq!(
            recorder.gauge(&format!(
                "steadfast_breaker_state{{agent={name},state={}}}",
                breaker.state.as_str()
            )),
            1.0,
            "agent `{name}`: breaker state vs steadfast_breaker_state"
        );
    }
    // One queue: its depth gauge is the sum of the agents' depths.
    let depths: u64 = snapshot.agents.iter().map(|a| a.counters.dlq_depth).sum();
    assert_eq!(
        recorder.gauge("steadfast_dlq_depth{dlq=main}"),
        depths as f64
    );

    // Every series labelled with an agent names one the registry holds; none is "agent".
    let labelled: Vec<String> = recorder
        .series()
        .into_iter()
        .filter(|series| series.contains("agent="))
        .collect();
    assert!(!labelled.is_empty());
    for series in labelled {
        let agent = series
            .split(['{', ',', '}'])
            .find_map(|label| label.strip_prefix("agent="))
            .unwrap();
        assert_ne!(agent, "agent", "{series}");
        assert!(names.contains(&agent), "{series} is not a registry agent");
    }
    assert!(registry.counters("agent").is_none());
}
