//! steadfast::fanout: thresholds, required agents, deadlines and cancellation of stragglers.
#![cfg(feature = "fanout")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use steadfast::classify::FailedResponse;
use steadfast::fanout::{FailureReason, Fanout, FanoutAgent, FanoutError, FanoutFailure};
use steadfast::{Agent, BoxError, ConfigError, Outcome};
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

/// An agent of its own, with the default classifier.
fn named(name: &'static str) -> Agent {
    Agent::new(name)
}

/// Sets its flag when dropped: tells whether a straggler's call was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Answers `reply` after `delay` (paused clock).
fn agent(
    delay: u64,
    reply: Result<&'static str, &'static str>,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(move |_: u32| async move {
        tokio::time::sleep(Duration::from_secs(delay)).await;
        reply.map(str::to_string).map_err(BoxError::from)
    })
}

/// Never answers within the test; records when its call is dropped.
fn straggler(
    dropped: &Arc<AtomicBool>,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    let dropped = dropped.clone();
    service_fn(move |_: u32| {
        let flag = DropFlag(dropped.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            drop(flag);
            Ok::<_, BoxError>("too late".to_string())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn succeeds_with_required_answers_and_half_the_agents_and_reports_failures() {
    let fanout = Fanout::builder()
        .optional(&named("critic"), agent(1, Err("critic overloaded")))
        .required(&named("planner"), agent(2, Ok("plan")))
        .optional(&named("reviewer"), agent(3, Ok("review")))
        .optional(&named("tester"), agent(4, Ok("tests")))
        .build()
        .unwrap();
    let started = Instant::now();
    let report = fanout.call(7).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "decided at the 2nd answer of 4"
    );
    let answered: Vec<&str> = report.answered.iter().map(|a| &*a.agent).collect();
    assert_eq!(answered, ["planner", "reviewer"]);
    assert_eq!(
        report.answer_of("planner").map(String::as_str),
        Some("plan")
    );
    assert_eq!(&*report.failed[0].agent, "critic");
    assert!(
        matches!(&report.failed[0].reason, FailureReason::Error(e) if e.to_string() == "critic overloaded")
    );
    assert_eq!(
        report.cancelled.iter().map(|n| &**n).collect::<Vec<_>>(),
        ["tester"]
    );
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_slow_required_agent_even_when_the_ratio_is_met() {
    let fanout = Fanout::builder()
        .optional(&named("a"), agent(1, Ok("a")))
        .optional(&named("b"), agent(1, Ok("b")))
        .required(&named("slow"), agent(10, Ok("slow")))
        .build()
        .unwrap();
    let started = Instant::now();
    let report = fanout.call(0).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(report.answered.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn required_failure_fails_at_once_and_cancels_the_stragglers() {
    let dropped = Arc::new(AtomicBool::new(false));
    let fanout = Fanout::builder()
        .required(&named("planner"), agent(1, Err("planner down")))
        .optional(&named("slow"), straggler(&dropped))
        .optional(&named("fast"), agent(0, Ok("fast")))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the straggler's call was dropped"
    );
    assert_eq!(
        *error.failure(),
        FanoutFailure::RequiredFailed {
            agent: "planner".into()
        }
    );
    assert_eq!(
        error.answered().iter().map(|n| &**n).collect::<Vec<_>>(),
        ["fast"]
    );
    assert_eq!(
        error.cancelled().iter().map(|n| &**n).collect::<Vec<_>>(),
        ["slow"]
    );
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        "planner down"
    );
}

#[tokio::test(start_paused = true)]
async fn quorum_of_replicas_decides_and_cancels_the_last_replica() {
    let dropped = Arc::new(AtomicBool::new(false));
    let fanout = Fanout::builder()
        .optional(&named("replica-1"), agent(1, Ok("42")))
        .optional(&named("replica-2"), straggler(&dropped))
        .optional(&named("replica-3"), agent(2, Ok("42")))
        .quorum(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let report = fanout.call(0).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(report.answered.len(), 2);
    assert_eq!(&*report.cancelled[0], "replica-2");
}

#[tokio::test(start_paused = true)]
async fn each_agent_gets_its_own_deadline() {
    let fanout = Fanout::builder()
        .agent(FanoutAgent::required(
            &named("quick"),
            agent(0, Ok("quick")),
        ))
        .agent(
            FanoutAgent::optional(&named("hasty"), agent(5, Ok("hasty")))
                .deadline(Duration::from_secs(2)),
        )
        .deadline(Duration::from_secs(30))
        .success_ratio(1.0)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        *error.failure(),
        FanoutFailure::BelowThreshold {
            answered: 1,
            needed: 2
        }
    );
    assert!(
        matches!(error.failed()[0].reason, FailureReason::TimedOut(d) if d == Duration::from_secs(2))
    );
}

#[tokio::test(start_paused = true)]
async fn fails_as_soon_as_the_threshold_is_out_of_reach() {
    let dropped = Arc::new(AtomicBool::new(false));
    let fanout = Fanout::builder()
        .optional(&named("a"), agent(1, Err("a down")))
        .optional(&named("b"), agent(2, Err("b down")))
        .optional(&named("c"), straggler(&dropped))
        .quorum(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(
        *error.failure(),
        FanoutFailure::BelowThreshold {
            answered: 0,
            needed: 2
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("`a`: a down") && message.contains("`b`: b down"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn works_as_a_tower_service_with_a_downcastable_error() {
    let fanout = Fanout::builder()
        .required(&named("only"), agent(0, Err("down")))
        .build()
        .unwrap();
    let error = fanout.clone().oneshot(0).await.unwrap_err();
    assert!(error.downcast_ref::<FanoutError>().is_some());
}

#[test]
fn rejects_configurations_that_cannot_work() {
    /// The setting and value a refused fan-out names (its component is always `fanout`).
    fn refused<Res>(built: Result<Fanout<u32, Res>, ConfigError>) -> (String, Option<String>) {
        let error = built.map(|_| ()).expect_err("refused");
        assert_eq!(error.component(), "fanout", "{error}");
        assert!(!error.problem().is_empty(), "{error}");
        assert!(
            error.to_string().contains(error.setting()),
            "the message names the setting: {error}"
        );
        (error.setting().to_owned(), error.value().map(str::to_owned))
    }
    let pair = || {
        Fanout::<u32, String>::builder()
            .required(&named("a"), agent(0, Ok("a")))
            .optional(&named("b"), agent(0, Ok("b")))
    };
    let expect = |setting: &str, value: &str| (setting.to_owned(), Some(value.to_owned()));
    assert_eq!(
        refused(pair().success_ratio(0.0).build()),
        expect("success_ratio", "0")
    );
    assert_eq!(
        refused(pair().success_ratio(1.5).build()),
        expect("success_ratio", "1.5")
    );
    assert_eq!(
        refused(pair().success_ratio(f64::NAN).build()),
        expect("success_ratio", "NaN")
    );
    assert_eq!(refused(pair().quorum(3).build()), expect("quorum", "3"));
    assert_eq!(refused(pair().quorum(0).build()), expect("quorum", "0"));
    assert!(pair().quorum(2).build().is_ok());
    assert!(pair().success_ratio(1.0).build().is_ok());
    assert_eq!(
        refused(Fanout::<u32, String>::builder().build()),
        ("agents".to_owned(), None)
    );
    let duplicate = Fanout::builder()
        .required(&named("a"), agent(0, Ok("a")))
        .optional(&named("a"), agent(0, Ok("a")))
        .build();
    assert_eq!(refused(duplicate), expect("agents", "a"));
    let zero = Fanout::builder()
        .required(&named("a"), agent(0, Ok("a")))
        .deadline(Duration::ZERO)
        .build();
    assert_eq!(refused(zero), expect("deadline", "0s"));
    let own_zero = Fanout::builder()
        .agent(FanoutAgent::required(&named("a"), agent(0, Ok("a"))).deadline(Duration::ZERO))
        .build();
    assert_eq!(refused(own_zero), expect("deadline", "0s"));
}

/// An answer starting with "503" is a failure, as an HTTP classifier would say of a 503.
fn status_aware(result: Result<&String, &BoxError>) -> Outcome {
    match result {
        Ok(reply) if reply.starts_with("503") => Outcome::transient("status 503"),
        Ok(_) => Outcome::success(),
        Err(_) => Outcome::transient("error"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_ok_answer_the_agents_classifier_calls_a_failure_is_a_failed_agent() {
    let fanout = Fanout::builder()
        .required(&named("planner"), agent(1, Ok("plan")))
        .optional(
            &named("critic").classifier(status_aware),
            agent(1, Ok("503 overloaded")),
        )
        .optional(&named("lenient"), agent(2, Ok("503 overloaded")))
        .success_ratio(1.0)
        .build()
        .unwrap();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(
        *error.failure(),
        FanoutFailure::BelowThreshold {
            answered: 1,
            needed: 3
        },
        "decided as soon as `critic`'s answer was judged a failure"
    );
    assert_eq!(&*error.failed()[0].agent, "critic");
    let FailureReason::Error(cause) = &error.failed()[0].reason else {
        panic!("an error, not a timeout: {:?}", error.failed()[0].reason);
    };
    let failed = cause
        .downcast_ref::<FailedResponse>()
        .expect("a FailedResponse");
    assert_eq!(failed.outcome(), Outcome::transient("status 503"));
    assert_eq!(
        error.cancelled().iter().map(|n| &**n).collect::<Vec<_>>(),
        ["lenient"],
        "`lenient` takes any answer, but was still running"
    );

    // Judged by each agent's own classifier: the default one takes the same answer.
    let fanout = Fanout::builder()
        .required(&named("planner"), agent(1, Ok("plan")))
        .optional(&named("lenient"), agent(2, Ok("503 overloaded")))
        .success_ratio(1.0)
        .build()
        .unwrap();
    let report = fanout.call(0).await.unwrap();
    assert_eq!(
        report.answer_of("lenient").map(String::as_str),
        Some("503 overloaded")
    );
}

#[tokio::test(start_paused = true)]
async fn a_required_agents_failed_answer_fails_the_fanout_at_once() {
    let fanout = Fanout::builder()
        .required(
            &named("planner").classifier(status_aware),
            agent(1, Ok("503 overloaded")),
        )
        .optional(&named("critic"), agent(5, Ok("critique")))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        *error.failure(),
        FanoutFailure::RequiredFailed {
            agent: "planner".into()
        }
    );
    let source = std::error::Error::source(&error).expect("the failed answer");
    assert!(source.is::<FailedResponse>(), "{source}");
    // A failed fan-out is an agent fault: an outer retry would call every agent again.
    let boxed: BoxError = Box::new(error);
    assert_eq!(
        steadfast::classify::error_outcome(boxed.as_ref()),
        Some(Outcome::agent_fault("fan-out failed"))
    );
}

#[cfg(feature = "degrade")]
#[tokio::test(start_paused = true)]
async fn optional_agents_are_not_called_while_degraded() {
    use std::sync::atomic::AtomicUsize;
    use steadfast::degrade::{DegradationLevel, Level};

    let critic_calls = Arc::new(AtomicUsize::new(0));
    let counted = critic_calls.clone();
    let critic = service_fn(move |_: u32| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("critique".to_string()) }
    });
    let level = DegradationLevel::new();
    let fanout = Fanout::builder()
        .required(&named("planner"), agent(1, Ok("plan")))
        .optional(&named("critic"), critic)
        .success_ratio(1.0)
        .skip_optional_at(level.clone(), Level::Minimal)
        .build()
        .unwrap();

    let report = fanout.call(0).await.unwrap();
    assert_eq!(report.answered.len(), 2);
    assert!(report.skipped.is_empty());

    level.set(Level::Minimal);
    let report = fanout.call(0).await.unwrap();
    assert_eq!(
        report.answered.len(),
        1,
        "the ratio counts only the agents called"
    );
    assert_eq!(
        report.skipped.iter().map(|n| &**n).collect::<Vec<_>>(),
        ["critic"]
    );
    assert_eq!(critic_calls.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "degrade")]
#[tokio::test(start_paused = true)]
async fn quorum_out_of_reach_after_skipping_fails_without_waiting() {
    use steadfast::degrade::{DegradationLevel, Level};

    let level = DegradationLevel::new();
    level.set(Level::Emergency);
    let fanout = Fanout::builder()
        .optional(&named("replica-1"), agent(5, Ok("a")))
        .optional(&named("replica-2"), agent(5, Ok("a")))
        .quorum(2)
        .skip_optional_at(level, Level::Reduced)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(
        *error.failure(),
        FanoutFailure::BelowThreshold {
            answered: 0,
            needed: 2
        }
    );
    assert_eq!(error.skipped().len(), 2);
}
