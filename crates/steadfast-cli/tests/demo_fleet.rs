//! `steadfast demo --replicas 2` against the real Redis at `STEADFAST_REDIS_URL` (default
//! redis://127.0.0.1:6379; the test FAILS when it is unreachable): the second replica learns the
//! outage from the first, and every breaker closes again.

use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_outage_through_redis() {
    let url = std::env::var("STEADFAST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args([
            "demo",
            "--replicas",
            "2",
            "--duration",
            "5",
            "--redis-url",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the fleet demo ends within its duration")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?} (is Redis at {url} up?)\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.contains("replica-2") && line.contains("learned from the fleet")),
        "replica-2 learns the outage from replica-1:\n{stdout}"
    );
    // Replica-1 may have tripped alone, or the two replicas' failures added up to the
    // threshold together: either way replica-2 learned it from the fleet.
    assert!(
        stdout.contains("of 2 replica(s) learned the outage") && !stdout.contains("fleet: 0 of"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Every breaker closed again: true"),
        "{stdout}"
    );
}
