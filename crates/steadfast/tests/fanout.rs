//! steadfast::fanout: thresholds, required agents, deadlines and cancellation of stragglers.
#![cfg(feature = "fanout")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::fanout::{
    ConfigError, FailureReason, Fanout, FanoutAgent, FanoutError, FanoutFailure,
};
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

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
        .optional("critic", agent(1, Err("critic overloaded")))
        .required("planner", agent(2, Ok("plan")))
        .optional("reviewer", agent(3, Ok("review")))
        .optional("tester", agent(4, Ok("tests")))
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
        .optional("a", agent(1, Ok("a")))
        .optional("b", agent(1, Ok("b")))
        .required("slow", agent(10, Ok("slow")))
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
        .required("planner", agent(1, Err("planner down")))
        .optional("slow", straggler(&dropped))
        .optional("fast", agent(0, Ok("fast")))
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
        error.failure,
        FanoutFailure::RequiredFailed {
            agent: "planner".into()
        }
    );
    assert_eq!(
        error.answered.iter().map(|n| &**n).collect::<Vec<_>>(),
        ["fast"]
    );
    assert_eq!(
        error.cancelled.iter().map(|n| &**n).collect::<Vec<_>>(),
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
        .optional("replica-1", agent(1, Ok("42")))
        .optional("replica-2", straggler(&dropped))
        .optional("replica-3", agent(2, Ok("42")))
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
        .agent(FanoutAgent::required("quick", agent(0, Ok("quick"))))
        .agent(
            FanoutAgent::optional("hasty", agent(5, Ok("hasty"))).deadline(Duration::from_secs(2)),
        )
        .deadline(Duration::from_secs(30))
        .success_ratio(1.0)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        error.failure,
        FanoutFailure::BelowThreshold {
            answered: 1,
            needed: 2
        }
    );
    assert!(
        matches!(error.failed[0].reason, FailureReason::TimedOut(d) if d == Duration::from_secs(2))
    );
}

#[tokio::test(start_paused = true)]
async fn fails_as_soon_as_the_threshold_is_out_of_reach() {
    let dropped = Arc::new(AtomicBool::new(false));
    let fanout = Fanout::builder()
        .optional("a", agent(1, Err("a down")))
        .optional("b", agent(2, Err("b down")))
        .optional("c", straggler(&dropped))
        .quorum(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(
        error.failure,
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
        .required("only", agent(0, Err("down")))
        .build()
        .unwrap();
    let error = fanout.clone().oneshot(0).await.unwrap_err();
    assert!(error.downcast_ref::<FanoutError>().is_some());
}

#[test]
fn rejects_configurations_that_cannot_work() {
    let build = |ratio: Option<f64>, quorum: Option<usize>| {
        let mut builder = Fanout::<u32, String>::builder()
            .required("a", agent(0, Ok("a")))
            .optional("b", agent(0, Ok("b")));
        if let Some(ratio) = ratio {
            builder = builder.success_ratio(ratio);
        }
        if let Some(quorum) = quorum {
            builder = builder.quorum(quorum);
        }
        builder.build().map(|_| ())
    };
    assert_eq!(build(Some(0.0), None), Err(ConfigError::Ratio(0.0)));
    assert_eq!(build(Some(1.5), None), Err(ConfigError::Ratio(1.5)));
    assert_eq!(
        build(None, Some(3)),
        Err(ConfigError::Quorum {
            quorum: 3,
            agents: 2
        })
    );
    assert_eq!(
        build(None, Some(0)),
        Err(ConfigError::Quorum {
            quorum: 0,
            agents: 2
        })
    );
    assert_eq!(build(None, Some(2)), Ok(()));
    assert_eq!(
        Fanout::<u32, String>::builder().build().map(|_| ()),
        Err(ConfigError::NoAgents)
    );
    let duplicate = Fanout::builder()
        .required("a", agent(0, Ok("a")))
        .optional("a", agent(0, Ok("a")))
        .build()
        .map(|_| ());
    assert_eq!(duplicate, Err(ConfigError::DuplicateName("a".into())));
    let zero = Fanout::builder()
        .required("a", agent(0, Ok("a")))
        .deadline(Duration::ZERO)
        .build()
        .map(|_| ());
    assert_eq!(zero, Err(ConfigError::ZeroDeadline("a".into())));
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
        .required("planner", agent(1, Ok("plan")))
        .optional("critic", critic)
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
        .optional("replica-1", agent(5, Ok("a")))
        .optional("replica-2", agent(5, Ok("a")))
        .quorum(2)
        .skip_optional_at(level, Level::Reduced)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = fanout.call(0).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(
        error.failure,
        FanoutFailure::BelowThreshold {
            answered: 0,
            needed: 2
        }
    );
    assert_eq!(error.skipped.len(), 2);
}
