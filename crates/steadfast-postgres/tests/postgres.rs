//! The PostgreSQL checkpoint store against the real server at `STEADFAST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`). Unreachable means failed, never
//! skipped. Every test works in a schema of its own, dropped at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::BoxError;
use steadfast::checkpoint::{
    CheckpointLayer, CheckpointStore, Checkpoints, Claim, FnCodec, Retention, StepKey, StoreError,
};
use steadfast_postgres::PostgresCheckpointStore;
use tower::{Layer, ServiceExt, service_fn};

fn url() -> String {
    std::env::var("STEADFAST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "sf_cp_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect(schema: &str) -> PostgresCheckpointStore {
    PostgresCheckpointStore::connect(&url(), schema)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {} is unreachable: {error}", url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_claim_each_step_exactly_once() {
    let schema = unique_schema();
    let (a, b) = tokio::join!(connect(&schema), connect(&schema));
    for round in 0..30 {
        let key = StepKey::new("race", format!("step-{round}")).unwrap();
        let (x, y) = tokio::join!(
            a.claim(&key, "a", Duration::from_secs(60)),
            b.claim(&key, "b", Duration::from_secs(60))
        );
        let claims = [x.unwrap(), y.unwrap()];
        assert_eq!(
            claims.iter().filter(|c| **c == Claim::Claimed).count(),
            1,
            "round {round}: {claims:?}"
        );
    }
    a.drop_schema().await.unwrap();
}

#[tokio::test]
async fn only_the_owner_completes_and_an_expired_lease_is_taken_over() {
    let schema = unique_schema();
    let store = connect(&schema).await;
    let key = StepKey::new("wf", "plan").unwrap();
    assert_eq!(
        store
            .claim(&key, "dead", Duration::from_millis(50))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        store
            .claim(&key, "other", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Busy { .. }
    ));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        store
            .claim(&key, "alive", Duration::from_secs(60))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert!(matches!(
        store.complete(&key, "dead", b"late".to_vec()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    store
        .renew(&key, "alive", Duration::from_secs(60))
        .await
        .unwrap();
    store
        .complete(&key, "alive", b"plan".to_vec())
        .await
        .unwrap();
    match store
        .claim(&key, "later", Duration::from_secs(60))
        .await
        .unwrap()
    {
        Claim::Done(answer) => assert_eq!(answer.response, b"plan"),
        other => panic!("{other:?}"),
    }
    store.drop_schema().await.unwrap();
}

#[tokio::test]
async fn workflow_state_round_trips_with_not_found_and_retention() {
    let schema = unique_schema();
    let store = connect(&schema).await;
    let checkpoints = Checkpoints::new(store.clone());
    assert!(matches!(
        checkpoints.resume("ghost").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        checkpoints.forget("ghost").await,
        Err(StoreError::NotFound { .. })
    ));
    checkpoints
        .save("wf-a", "planned", b"1".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("wf-a", "writing", b"2".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("wf-b", "planned", Vec::new())
        .await
        .unwrap();
    checkpoints.interrupt("wf-a", "SIGTERM").await.unwrap();
    checkpoints.finish("wf-b").await.unwrap();
    let a = checkpoints.resume("wf-a").await.unwrap();
    assert_eq!(a.summary.phase.as_deref(), Some("writing"));
    assert_eq!(a.state.as_deref(), Some(&b"2"[..]));
    assert_eq!(a.summary.interrupted.as_deref(), Some("SIGTERM"));
    assert_eq!(checkpoints.open_workflows().await.unwrap(), ["wf-a"]);
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
        1
    );
    assert_eq!(checkpoints.list().await.unwrap().len(), 1);
    store.drop_schema().await.unwrap();
}

/// What the mock agent saw: calls per step, over both replicas.
type Counts = Arc<Mutex<HashMap<String, u32>>>;

fn replica(
    store: PostgresCheckpointStore,
    counts: &Counts,
) -> impl tower::Service<String, Response = String, Error = BoxError, Future: Send> + Clone {
    let counts = counts.clone();
    let agent = service_fn(move |step: String| {
        *counts.lock().unwrap().entry(step.clone()).or_default() += 1;
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, BoxError>(format!("{step}: done"))
        }
    });
    CheckpointLayer::new(
        &steadfast::Agent::new("llm"),
        store,
        |step: &String| StepKey::new("shared-workflow", step).ok(),
        FnCodec::new(
            |r: &String| Ok::<_, BoxError>(r.clone().into_bytes()),
            |b: &[u8]| Ok::<_, BoxError>(String::from_utf8(b.to_vec())?),
        ),
    )
    .lease(Duration::from_secs(5))
    .poll_interval(Duration::from_millis(20))
    .layer(agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_one_workflow_run_each_step_once_and_agree() {
    let schema = unique_schema();
    let counts: Counts = Arc::default();
    let (a, b) = tokio::join!(connect(&schema), connect(&schema));
    let run = |service: _| async move {
        let mut answers = Vec::new();
        for step in ["plan", "write", "review"] {
            answers.push(
                ServiceExt::<String>::oneshot(Clone::clone(&service), step.to_string())
                    .await
                    .unwrap(),
            );
        }
        answers
    };
    let (first, second) = tokio::join!(
        run(replica(a.clone(), &counts)),
        run(replica(b.clone(), &counts))
    );
    assert_eq!(first, ["plan: done", "write: done", "review: done"]);
    assert_eq!(first, second);
    let counts = counts.lock().unwrap().clone();
    assert_eq!(
        counts,
        HashMap::from([
            ("plan".to_string(), 1),
            ("write".to_string(), 1),
            ("review".to_string(), 1)
        ])
    );
    a.drop_schema().await.unwrap();
}
