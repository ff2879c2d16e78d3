//! The durable workflow demo as child processes (`steadfast demo --workflow ...`): SIGKILLed
//! after step 2 is stored, the rerun calls the LLM only for step 3 and ends with the same
//! answer; two replicas sharing PostgreSQL run each step once; SIGTERM under load exits with
//! the documented code within the drain deadline, losing no call, and the recovery
//! notification lists the open workflows.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;
use steadfast::checkpoint::{CheckpointStore, StepStatus};
use steadfast_sqlite::SqliteCheckpointStore;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn demo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steadfast"));
    command
        .arg("demo")
        .args(args)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

fn spawn(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = demo(args).spawn().expect("the steadfast binary starts");
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

/// Reads JSON lines until one satisfies `until`; returns every line read.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let done = until(&value);
            seen.push(value);
            if done {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("no expected line within 60 s; saw {seen:#?}"));
    seen
}

/// Runs to the end; the summary line and the exit code.
async fn run_to_end(args: &[&str]) -> (Value, Vec<Value>, i32) {
    let (mut child, mut lines) = spawn(args);
    let seen = read_until(&mut lines, |v| v["event"] == "summary").await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    (
        seen.last().unwrap().clone(),
        seen,
        status.code().unwrap_or(-1),
    )
}

fn calls(summary: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(summary["agent_calls"].clone()).unwrap()
}

fn final_answer(summary: &Value) -> String {
    summary["workflows"][0]["final_answer"]
        .as_str()
        .unwrap_or_else(|| panic!("no final answer in {summary}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_step_two_the_rerun_calls_the_llm_only_for_step_three() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let dir = dir.to_str().unwrap();
    let args = [
        "--workflow",
        "essay",
        "--checkpoints",
        dir,
        "--step-delay",
        "300ms",
        "--lease",
        "1s",
    ];

    let (mut child, mut lines) = spawn(&args);
    read_until(&mut lines, |v| v["event"] == "step" && v["step"] == "write").await;
    child.kill().await.unwrap(); // SIGKILL: no drain, no cleanup; step 3 may be claimed.

    let (summary, _, code) = run_to_end(&args).await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        calls(&summary),
        BTreeMap::from([("review".into(), 1)]),
        "{summary}"
    );
    assert_eq!(summary["llm_calls_saved"], 2);

    // The same answer as a run that was never interrupted.
    let other = tmp.path().join("uninterrupted");
    let (reference, _, _) = run_to_end(&[
        "--workflow",
        "essay",
        "--checkpoints",
        other.to_str().unwrap(),
        "--step-delay",
        "10ms",
    ])
    .await;
    assert_eq!(calls(&reference).values().sum::<u64>(), 3);
    assert_eq!(final_answer(&summary), final_answer(&reference));
}

fn postgres_url() -> String {
    std::env::var("STEADFAST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn unique_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_step_two_with_postgres_the_rerun_calls_the_llm_only_for_step_three() {
    let url = postgres_url();
    let schema = unique_schema("sf_cli_kill");
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("dlq");
    let args = [
        "--workflow",
        "essay",
        "--checkpoints-postgres",
        &url,
        "--checkpoints-schema",
        &schema,
        "--journal",
        journal.to_str().unwrap(),
        "--step-delay",
        "300ms",
        "--lease",
        "1s",
    ];
    let (mut child, mut lines) = spawn(&args);
    read_until(&mut lines, |v| v["event"] == "step" && v["step"] == "write").await;
    child.kill().await.unwrap();

    let (summary, _, code) = run_to_end(&args).await;
    assert_eq!(code, 0, "{summary}");
    assert_eq!(
        calls(&summary),
        BTreeMap::from([("review".into(), 1)]),
        "{summary}"
    );
    assert_eq!(summary["llm_calls_saved"], 2);
    let store = steadfast_postgres::PostgresCheckpointStore::connect(&url, &schema)
        .await
        .unwrap();
    store.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_postgres_run_each_step_of_one_workflow_once() {
    let url = std::env::var("STEADFAST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "sf_cli_{}_{}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos()
    );
    let tmp = tempfile::tempdir().unwrap();
    let replica = |n: &str| {
        let journal = tmp.path().join(n);
        vec![
            "--workflow".to_owned(),
            "shared".to_owned(),
            "--checkpoints-postgres".to_owned(),
            url.clone(),
            "--checkpoints-schema".to_owned(),
            schema.clone(),
            "--step-delay".to_owned(),
            "400ms".to_owned(),
            "--journal".to_owned(),
            journal.display().to_string(),
        ]
    };
    let (a, b) = (replica("a"), replica("b"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let ((first, _, code_a), (second, _, code_b)) = tokio::join!(run_to_end(&a), run_to_end(&b));
    assert_eq!((code_a, code_b), (0, 0), "{first}\n{second}");
    let mut total = calls(&first);
    for (step, n) in calls(&second) {
        *total.entry(step).or_default() += n;
    }
    assert_eq!(
        total,
        BTreeMap::from([
            ("plan".into(), 1),
            ("review".into(), 1),
            ("write".into(), 1)
        ]),
        "each step once in the fleet: {first}\n{second}"
    );
    assert_eq!(final_answer(&first), final_answer(&second));

    let store = steadfast_postgres::PostgresCheckpointStore::connect(&url, &schema)
        .await
        .unwrap();
    store.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_one_within_the_drain_deadline_and_loses_no_call() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let (mut child, mut lines) = spawn(&[
        "--workflow",
        "load",
        "--workflows",
        "8",
        "--checkpoints",
        dir.to_str().unwrap(),
        "--step-delay",
        "700ms",
        "--drain-timeout",
        "1s",
    ]);
    // Under load: the first steps are stored, the second ones are in flight.
    let mut seen = read_until(&mut lines, |v| v["event"] == "step").await;
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    seen.extend(read_until(&mut lines, |v| v["event"] == "summary").await);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();

    let summary = seen.last().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "work was left: the documented exit code is 1; {summary}"
    );
    assert!(
        took < Duration::from_secs(1) + Duration::from_secs(2),
        "exited {took:?} after SIGTERM"
    );
    assert_eq!(
        summary["other_errors"],
        serde_json::json!([]),
        "no call lost: {summary}"
    );

    // Every call the LLM received either completed (and was checkpointed) or was dead-lettered.
    let made: u64 = calls(summary).values().sum();
    let completed = summary["completed"].as_u64().unwrap();
    let dead = summary["dead_lettered"].as_u64().unwrap();
    let emergency = &summary["emergency"];
    let cancelled = emergency["cancelled"].as_u64().unwrap();
    assert_eq!(made, completed + cancelled, "{summary}");
    assert!(
        dead >= cancelled,
        "cancelled calls are dead-lettered: {summary}"
    );
    assert_eq!(summary["dead_letter_depth"].as_u64(), Some(dead));
    assert_eq!(emergency["still_running"], 0);

    // The checkpoint store holds exactly the completed steps.
    let store = SqliteCheckpointStore::open(&dir).unwrap();
    let mut done = 0;
    for workflow in store.list().await.unwrap() {
        let state = store.resume(&workflow.workflow).await.unwrap();
        done += state
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Done)
            .count() as u64;
    }
    assert_eq!(done, completed, "{summary}");

    // The recovery notification names every workflow left open, and how to resume.
    let open: Vec<String> = serde_json::from_value(emergency["open_workflows"].clone()).unwrap();
    let expected_open: Vec<&str> = summary["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["status"] == "open")
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(open.len(), expected_open.len());
    assert!(!open.is_empty());
    let notification = seen
        .iter()
        .find(|v| v["event"] == "recovery_notification")
        .expect("a recovery notification");
    let body = notification["body"].as_str().unwrap();
    for workflow in &expected_open {
        assert!(body.contains(workflow), "{workflow} missing from {body}");
    }
    assert!(
        body.contains("steadfast demo --workflow load --workflows 8"),
        "{body}"
    );
    assert!(Path::new(&dir).join("dlq.sqlite3").exists());
}
