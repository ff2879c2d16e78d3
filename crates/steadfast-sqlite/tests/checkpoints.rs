//! The SQLite checkpoint store against real files: exclusive claims across handles (as two
//! processes would hold), durability across reopen, lease take-over, workflow state, retention,
//! and the checkpoint layer resuming a workflow from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::checkpoint::{
    CheckpointLayer, CheckpointStore, Checkpoints, Claim, FnCodec, Retention, StepKey, StepStatus,
    StoreError, WorkflowStatus,
};
use steadfast_sqlite::{CHECKPOINT_FILE_NAME, SqliteCheckpointStore, SqliteError, SqliteSink};
use tower::{Layer, ServiceExt, service_fn};

fn key(step: &str) -> StepKey {
    StepKey::new("wf-1", step).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_from_two_handles_give_the_step_to_exactly_one() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SqliteCheckpointStore::open(tmp.path()).unwrap();
    let b = SqliteCheckpointStore::open(tmp.path()).unwrap();
    for round in 0..20 {
        let step = StepKey::new("race", format!("step-{round}")).unwrap();
        let (x, y) = tokio::join!(
            a.claim(&step, "a", Duration::from_secs(60)),
            b.claim(&step, "b", Duration::from_secs(60))
        );
        let claimed = [x.unwrap(), y.unwrap()]
            .into_iter()
            .filter(|c| *c == Claim::Claimed)
            .count();
        assert_eq!(claimed, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_stored_answer_survives_reopening_and_only_its_owner_may_store_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteCheckpointStore::open(tmp.path()).unwrap();
    assert_eq!(
        store
            .claim(&key("plan"), "me", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        store
            .claim(&key("plan"), "you", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Busy { .. }
    ));
    assert!(matches!(
        store.complete(&key("plan"), "you", b"x".to_vec()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    store
        .renew(&key("plan"), "me", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .complete(&key("plan"), "me", b"the plan".to_vec())
        .await
        .unwrap();
    drop(store);

    let reopened = SqliteCheckpointStore::open(tmp.path()).unwrap();
    match reopened
        .claim(&key("plan"), "later", Duration::from_secs(60))
        .await
        .unwrap()
    {
        Claim::Done(answer) => assert_eq!(answer.response, b"the plan"),
        other => panic!("expected the stored answer, got {other:?}"),
    }
    let state = reopened.resume("wf-1").await.unwrap();
    assert_eq!(state.steps.len(), 1);
    assert_eq!(state.steps[0].status, StepStatus::Done);
    assert_eq!(state.steps[0].response_len, 8);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_owner_loses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteCheckpointStore::open(tmp.path()).unwrap();
    store
        .claim(&key("write"), "dead", Duration::from_millis(10))
        .await
        .unwrap();
    // Wall-clock leases (shared by processes): wait them out for real.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store
            .claim(&key("write"), "alive", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        store
            .renew(&key("write"), "dead", Duration::from_secs(60))
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    store.release(&key("write"), "alive").await.unwrap();
    assert_eq!(
        store
            .claim(&key("write"), "next", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Claimed
    );
}

#[tokio::test]
async fn workflow_state_round_trips_with_typed_not_found_and_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints::new(SqliteCheckpointStore::open(tmp.path()).unwrap());
    assert!(matches!(
        checkpoints.resume("ghost").await,
        Err(StoreError::NotFound { ref workflow }) if workflow == "ghost"
    ));
    assert!(matches!(
        checkpoints.forget("ghost").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        checkpoints.finish("ghost").await,
        Err(StoreError::NotFound { .. })
    ));

    checkpoints
        .save("wf-a", "planned", b"{\"m\":1}".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("wf-a", "writing", b"{\"m\":2}".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("wf-b", "planned", Vec::new())
        .await
        .unwrap();
    checkpoints.interrupt("wf-a", "SIGTERM").await.unwrap();
    let a = checkpoints.resume("wf-a").await.unwrap();
    assert_eq!(a.summary.phase.as_deref(), Some("writing"));
    assert_eq!(a.state.as_deref(), Some(&b"{\"m\":2}"[..]));
    assert_eq!(a.summary.interrupted.as_deref(), Some("SIGTERM"));
    checkpoints.finish("wf-b").await.unwrap();
    assert_eq!(checkpoints.open_workflows().await.unwrap(), ["wf-a"]);
    let listed = checkpoints.list().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed.iter().find(|w| w.workflow == "wf-b").unwrap().status,
        WorkflowStatus::Finished
    );

    assert_eq!(
        checkpoints
            .prune(Retention::keep_all().max_age(Duration::from_secs(3600)))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    checkpoints
        .save("wf-c", "planned", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        checkpoints
            .prune(Retention::keep_all().max_workflows(1))
            .await
            .unwrap(),
        2
    );
    assert_eq!(checkpoints.open_workflows().await.unwrap(), ["wf-c"]);
    checkpoints.forget("wf-c").await.unwrap();
    assert!(checkpoints.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn another_applications_file_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    drop(SqliteSink::open(tmp.path()).unwrap());
    std::fs::rename(
        tmp.path().join("dlq.sqlite3"),
        tmp.path().join(CHECKPOINT_FILE_NAME),
    )
    .unwrap();
    let error = SqliteCheckpointStore::open(tmp.path()).unwrap_err();
    assert!(
        matches!(error, SqliteError::ForeignDatabase { .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_resumes_a_workflow_from_its_completed_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let run = |calls: Arc<AtomicUsize>| {
        let store = SqliteCheckpointStore::open(tmp.path()).unwrap();
        let llm = service_fn(move |step: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, BoxError>(format!("{step} done")) }
        });
        CheckpointLayer::new(
            &steadfast::Agent::new("llm"),
            store,
            |step: &String| StepKey::new("wf-resume", step).ok(),
            FnCodec::new(
                |r: &String| Ok::<_, BoxError>(r.clone().into_bytes()),
                |b: &[u8]| Ok::<_, BoxError>(String::from_utf8(b.to_vec())?),
            ),
        )
        .layer(llm)
    };
    let first = run(calls.clone());
    for step in ["plan", "write"] {
        first.clone().oneshot(step.to_string()).await.unwrap();
    }
    drop(first);
    assert_eq!(calls.swap(0, Ordering::SeqCst), 2);

    let second = run(calls.clone());
    let mut answers = Vec::new();
    for step in ["plan", "write", "review"] {
        answers.push(second.clone().oneshot(step.to_string()).await.unwrap());
    }
    assert_eq!(answers, ["plan done", "write done", "review done"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "only review ran again");
}
