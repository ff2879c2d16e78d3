use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::error::BoxError;
use crate::provenance::{Attributed, Provenance, Served};

#[derive(Clone, Debug)]
struct Prompt {
    workflow: &'static str,
    step: &'static str,
    secs: u64,
    fail: bool,
}

fn prompt(step: &'static str) -> Prompt {
    Prompt {
        workflow: "wf",
        step,
        secs: 1,
        fail: false,
    }
}

type Agent = tower::util::BoxCloneSyncService<Prompt, Attributed<String>, BoxError>;

fn stack(store: &MemoryCheckpointStore, calls: &Arc<AtomicUsize>, lease: Duration) -> Agent {
    let calls = calls.clone();
    let llm = service_fn(move |p: Prompt| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(p.secs)).await;
            if p.fail {
                return Err::<Attributed<String>, BoxError>("model overloaded".into());
            }
            Ok(Attributed::new(format!("{}#{n}", p.step)))
        }
    });
    let codec = FnCodec::new(
        |r: &Attributed<String>| Ok::<_, BoxError>(r.value.clone().into_bytes()),
        |b: &[u8]| Ok::<_, BoxError>(Attributed::new(String::from_utf8(b.to_vec())?)),
    );
    let layer = CheckpointLayer::new(
        &crate::Agent::new("llm"),
        store.clone(),
        |p: &Prompt| StepKey::new(p.workflow, p.step).ok(),
        codec,
    )
    .lease(lease)
    .wait(Duration::from_secs(600))
    .mark_responses();
    tower::util::BoxCloneSyncService::new(layer.layer(llm))
}

#[tokio::test(start_paused = true)]
async fn completed_step_is_answered_from_the_store_without_calling_the_agent() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let agent = stack(&store, &calls, DEFAULT_LEASE);
    let first = agent.clone().oneshot(prompt("plan")).await.unwrap();
    assert_eq!(first.served(), Served::Primary);
    let again = agent.oneshot(prompt("plan")).await.unwrap();
    assert_eq!(again.value, first.value);
    assert_eq!(again.served().source(), "checkpoint");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_step_releases_its_claim_and_stores_nothing() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let agent = stack(&store, &calls, DEFAULT_LEASE);
    let mut failing = prompt("plan");
    failing.fail = true;
    let error = agent.clone().oneshot(failing).await.unwrap_err();
    assert_eq!(error.to_string(), "model overloaded");
    let key = StepKey::new("wf", "plan").unwrap();
    assert_eq!(store.answer(&key).await.unwrap(), None);
    // Released: the next caller runs the step at once, without waiting for a lease.
    let started = tokio::time::Instant::now();
    agent.oneshot(prompt("plan")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_of_one_step_call_the_agent_once_and_agree() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let agent = stack(&store, &calls, DEFAULT_LEASE);
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(agent.clone().oneshot(prompt("write"))))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap().value);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_will_not_wait_gets_in_progress() {
    let store = MemoryCheckpointStore::new();
    let key = StepKey::new("wf", "plan").unwrap();
    assert_eq!(
        store
            .claim(&key, "other", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Claimed
    );
    let layer = CheckpointLayer::new(
        &crate::Agent::new("llm"),
        store.clone(),
        |p: &Prompt| StepKey::new(p.workflow, p.step).ok(),
        FnCodec::new(
            |r: &String| Ok::<_, BoxError>(r.clone().into_bytes()),
            |b: &[u8]| Ok::<_, BoxError>(String::from_utf8(b.to_vec())?),
        ),
    )
    .wait(Duration::ZERO);
    let mut agent = layer.layer(service_fn(|_p: Prompt| async {
        Ok::<String, BoxError>("never".into())
    }));
    let error = agent
        .ready()
        .await
        .unwrap()
        .call(prompt("plan"))
        .await
        .unwrap_err();
    let in_progress = error.downcast_ref::<InProgress>().expect("typed");
    assert_eq!(in_progress.key(), &key);
    assert_eq!(
        crate::classify::error_outcome(error.as_ref()).map(|o| o.kind()),
        Some(crate::OutcomeKind::Transient)
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_owners_step_runs_again_once_its_lease_expires() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let key = StepKey::new("wf", "review").unwrap();
    // A claimer that died: it claimed for 5 s and never renews or completes.
    store
        .claim(&key, "dead", Duration::from_secs(5))
        .await
        .unwrap();
    let agent = stack(&store, &calls, DEFAULT_LEASE);
    let started = tokio::time::Instant::now();
    let answer = agent.oneshot(prompt("review")).await.unwrap();
    assert_eq!(answer.value, "review#0");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(7));
    assert!(
        store
            .complete(&key, "dead", b"late".to_vec())
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_owner_keeps_its_step_however_long_the_call_takes() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    // Lease 3 s, call 20 s: renewed every second, so the waiter never takes over.
    let agent = stack(&store, &calls, Duration::from_secs(3));
    let mut slow = prompt("write");
    slow.secs = 20;
    let owner = tokio::spawn(agent.clone().oneshot(slow.clone()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiter = tokio::spawn(agent.oneshot(slow));
    let (a, b) = (
        owner.await.unwrap().unwrap(),
        waiter.await.unwrap().unwrap(),
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(a.value, b.value);
    assert_eq!(b.served().source(), "checkpoint");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_releases_its_claim() {
    let store = MemoryCheckpointStore::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let agent = stack(&store, &calls, Duration::from_secs(60));
    let mut slow = prompt("plan");
    slow.secs = 30;
    let cancelled = tokio::time::timeout(Duration::from_secs(1), agent.clone().oneshot(slow)).await;
    assert!(cancelled.is_err());
    tokio::task::yield_now().await;
    let key = StepKey::new("wf", "plan").unwrap();
    assert_eq!(
        store
            .claim(&key, "next", Duration::from_secs(1))
            .await
            .unwrap(),
        Claim::Claimed
    );
}

#[tokio::test]
async fn workflow_state_saves_resumes_lists_and_forgets() {
    let checkpoints = Checkpoints::new(MemoryCheckpointStore::new());
    let missing = checkpoints.resume("nope").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { ref workflow } if workflow == "nope"));
    assert!(matches!(
        checkpoints.forget("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        checkpoints.save("", "plan", b"x".to_vec()).await,
        Err(StoreError::InvalidKey(_))
    ));

    checkpoints
        .save("wf-1", "planned", b"{\"n\":1}".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("wf-2", "writing", b"{}".to_vec())
        .await
        .unwrap();
    let state = checkpoints.resume("wf-1").await.unwrap();
    assert_eq!(state.summary.phase.as_deref(), Some("planned"));
    assert_eq!(state.state.as_deref(), Some(&b"{\"n\":1}"[..]));
    checkpoints.finish("wf-2").await.unwrap();
    assert_eq!(checkpoints.open_workflows().await.unwrap(), ["wf-1"]);
    assert_eq!(checkpoints.list().await.unwrap().len(), 2);
    checkpoints.forget("wf-1").await.unwrap();
    assert!(checkpoints.resume("wf-1").await.is_err());
}

#[tokio::test]
async fn retention_keeps_the_newest_workflows() {
    let checkpoints = Checkpoints::new(MemoryCheckpointStore::new());
    for id in ["a", "b", "c"] {
        checkpoints.save(id, "p", Vec::new()).await.unwrap();
        std::thread::yield_now();
    }
    assert_eq!(
        checkpoints
            .prune(Retention::keep_all().max_age(Duration::from_secs(3600)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        checkpoints
            .prune(Retention::keep_all().max_workflows(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(checkpoints.list().await.unwrap().len(), 1);
}
