//! `steadfast checkpoints list|show|forget|prune` against a store written by the library.

use std::process::{Command, Output};

use steadfast::checkpoint::{CheckpointStore, Checkpoints, StepKey};
use steadfast_sqlite::SqliteCheckpointStore;

fn steadfast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(args)
        .output()
        .expect("the steadfast binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn populated() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteCheckpointStore::open(tmp.path()).unwrap();
    let key = StepKey::new("essay-1", "plan").unwrap();
    store
        .claim(&key, "me", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    store
        .complete(&key, "me", b"the plan".to_vec())
        .await
        .unwrap();
    let checkpoints = Checkpoints::new(store);
    checkpoints
        .save("essay-1", "planned", b"{\"milestone\":1}".to_vec())
        .await
        .unwrap();
    checkpoints
        .save("essay-2", "writing", Vec::new())
        .await
        .unwrap();
    checkpoints
        .interrupt("essay-2", "SIGTERM received")
        .await
        .unwrap();
    tmp
}

#[tokio::test]
async fn list_prints_an_aligned_table_and_json() {
    let tmp = populated().await;
    let dir = tmp.path().to_str().unwrap();
    let output = steadfast(&["checkpoints", "--dir", dir, "list"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("WORKFLOW  STATUS  PHASE    DONE  RUNNING"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    let interrupted_column = lines[0].find("INTERRUPTED").unwrap();
    let essay2 = lines.iter().find(|l| l.starts_with("essay-2")).unwrap();
    assert_eq!(essay2.find("SIGTERM"), Some(interrupted_column), "{text}");

    let json: serde_json::Value =
        serde_json::from_slice(&steadfast(&["checkpoints", "--dir", dir, "list", "--json"]).stdout)
            .unwrap();
    let essay1 = json
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workflow"] == "essay-1")
        .unwrap();
    assert_eq!(essay1["steps_done"], 1);
    assert_eq!(essay1["phase"], "planned");
}

#[tokio::test]
async fn show_forget_and_their_errors_have_the_documented_exit_codes() {
    let tmp = populated().await;
    let dir = tmp.path().to_str().unwrap();
    let shown = steadfast(&["checkpoints", "--dir", dir, "show", "essay-1", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(json["steps"][0]["step"], "plan");
    assert_eq!(json["steps"][0]["response_bytes"], 8);
    assert_eq!(json["state"]["utf8"], "{\"milestone\":1}");

    let missing = steadfast(&["checkpoints", "--dir", dir, "show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no checkpointed workflow `nope`"));
    assert_eq!(steadfast(&["checkpoints", "list"]).status.code(), Some(2));
    assert_eq!(
        steadfast(&["checkpoints", "--dir", dir, "prune"])
            .status
            .code(),
        Some(2)
    );
    let nowhere = tmp.path().join("nowhere");
    let absent = steadfast(&["checkpoints", "--dir", nowhere.to_str().unwrap(), "list"]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(!nowhere.exists(), "the CLI never creates a store");

    assert!(
        steadfast(&["checkpoints", "--dir", dir, "forget", "essay-1"])
            .status
            .success()
    );
    assert_eq!(
        steadfast(&["checkpoints", "--dir", dir, "forget", "essay-1"])
            .status
            .code(),
        Some(1)
    );
    let pruned = steadfast(&[
        "checkpoints",
        "--dir",
        dir,
        "prune",
        "--max-workflows",
        "0",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!(json["pruned"], 1);
}

#[test]
fn the_workflow_demo_refuses_the_traffic_demos_fleet_and_config_options() {
    for extra in [["--replicas", "2"], ["--config", "stack.toml"]] {
        let mut args = vec!["demo", "--workflow", "x"];
        args.extend(extra);
        assert_eq!(steadfast(&args).status.code(), Some(2), "{args:?}");
    }
}
