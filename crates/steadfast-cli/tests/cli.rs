//! The `steadfast dlq` command on a real SQLite store (held open by an "application" while the
//! command runs), a real HTTP target and the real RabbitMQ.

use std::process::{Command, Output};

use bytes::Bytes;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{DeadLetterRecord, DeadLetterSink};
use steadfast_sqlite::SqliteSink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn steadfast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A store holding one record per body, and the application's handle on it (kept open while
/// the command runs, as a running application would).
async fn store_with(dir: &std::path::Path, bodies: &[&str]) -> (SqliteSink, Vec<DeadLetterRecord>) {
    let store = SqliteSink::open(dir).unwrap();
    let mut records = Vec::new();
    for body in bodies {
        let mut record =
            DeadLetterRecord::new("gpt", Bytes::from(body.to_string()), OutcomeKind::Transient);
        record.error_chain = vec!["model overloaded".into()];
        store.append(record.clone()).await.unwrap();
        records.push(record);
    }
    (store, records)
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let output = steadfast(&["dlq", "--dir", "/definitely/not/here", "stats"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("/definitely/not/here") && stderr.contains("--dir"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let output = steadfast(&[
        "dlq",
        "--amqp",
        "amqp://guest:secret@127.0.0.1:1/%2f",
        "stats",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot reach RabbitMQ") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"));
}

#[test]
fn a_file_instead_of_the_directory_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dlq.sqlite3");
    std::fs::write(&file, b"").unwrap();
    let output = steadfast(&["dlq", "--dir", file.to_str().unwrap(), "stats"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("not a directory") && stderr.contains("dlq.sqlite3"),
        "{stderr}"
    );

    // An existing directory without a store: the command does not create one.
    let empty = tempfile::tempdir().unwrap();
    let output = steadfast(&["dlq", "--dir", empty.path().to_str().unwrap(), "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("no dead-letter store"));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_list_and_show_read_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    // The application holds the store open (and keeps appending below): reads must work.
    let (app, records) = store_with(dir.path(), &["first", "second"]).await;
    let path = dir.path().to_str().unwrap();

    let output = steadfast(&["dlq", "--dir", path, "stats", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["depth"], 2);
    assert_eq!(stats["by_agent"]["gpt"], 2);

    let output = steadfast(&["dlq", "--dir", path, "list"]);
    let table = text(&output.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&records[0].id.to_string()) && table.contains("model overloaded"));

    let id = records[1].id.to_string();
    let output = steadfast(&["dlq", "--dir", path, "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["request"]["utf8"], "second");

    let output = steadfast(&["dlq", "--dir", path, "show", "not-an-id"]);
    assert_eq!(output.status.code(), Some(2)); // a malformed argument is a usage error
    assert!(text(&output.stderr).contains("not-an-id"));

    // A record the application appends now is seen by the next command.
    let later = DeadLetterRecord::new("claude", Bytes::from("third"), OutcomeKind::RateLimited);
    app.append(later).await.unwrap();
    let output = steadfast(&["dlq", "--dir", path, "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["depth"], 3);
    assert_eq!(stats["by_agent"]["claude"], 1);
}

/// An HTTP endpoint that answers 200 to bodies starting with "ok" and 500 otherwise.
async fn http_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(str::to_string)
                            })
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            let status = if body.starts_with("ok") {
                                "200 OK"
                            } else {
                                "500 Internal Server Error"
                            };
                            let answer = format!(
                                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                            break;
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}/replay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_http_removes_successes_and_keeps_failures_while_the_app_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = store_with(dir.path(), &["ok one", "bad two", "ok three"]).await;
    let path = dir.path().to_str().unwrap();
    let url = http_target().await;

    let output = steadfast(&[
        "dlq",
        "--dir",
        path,
        "replay",
        "--dry-run",
        "--to-http",
        &url,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("3 dead letters would be replayed"));

    let output = steadfast(&[
        "dlq",
        "--dir",
        path,
        "replay",
        "--to-http",
        &url,
        "--rate",
        "100",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("2 succeeded"),
        "{}",
        text(&output.stdout)
    );

    // The application's own handle sees what the command did.
    let left = app.list(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].request, Bytes::from("bad two"));
    assert_eq!(left[0].replay_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_needs_a_target_and_purge_needs_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = store_with(dir.path(), &["a", "b"]).await;
    let path = dir.path().to_str().unwrap();

    // The records are not stored HTTP requests: without --to there is nowhere to send them,
    // and nothing is changed.
    let output = steadfast(&["dlq", "--dir", path, "replay"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("--to"));
    assert!(
        app.list(10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.replay_count == 0)
    );

    let output = steadfast(&["dlq", "--dir", path, "purge"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--yes"));

    let output = steadfast(&["dlq", "--dir", path, "purge", "--yes", "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let purged: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(purged["purged"], 2);
    assert_eq!(app.stats().await.unwrap().depth, 0);
    // The application goes on appending after the purge.
    app.append(DeadLetterRecord::new(
        "gpt",
        Bytes::from("c"),
        OutcomeKind::Transient,
    ))
    .await
    .unwrap();
    assert_eq!(app.stats().await.unwrap().depth, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_purge_work_over_amqp() {
    let url = std::env::var("STEADFAST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let spill = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (queue, exchange) = (
        format!("steadfast-test.cli.{nanos}.q"),
        format!("steadfast-test.cli.{nanos}.x"),
    );
    let config = steadfast_amqp::AmqpConfig::new(url.clone(), spill.path())
        .queue(queue.clone())
        .exchange(exchange.clone());
    let sink = steadfast_amqp::AmqpSink::connect(config)
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ must run at {url}: {e}"));
    for n in 0..3 {
        sink.append(DeadLetterRecord::new(
            "gpt",
            Bytes::from(format!("p{n}")),
            OutcomeKind::Transient,
        ))
        .await
        .unwrap();
    }
    let base = [
        "dlq",
        "--amqp",
        url.as_str(),
        "--queue",
        queue.as_str(),
        "--exchange",
        exchange.as_str(),
    ];

    let output = steadfast(&[&base[..], &["stats", "--json"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["depth"], 3);

    let output = steadfast(&[&base[..], &["list", "--json"]].concat());
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);

    let output = steadfast(&[&base[..], &["purge", "--yes"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("purged 3"));
    assert_eq!(sink.queue_depth().await.unwrap(), 0);
    sink.delete_topology().await.unwrap();
}

#[test]
fn help_documents_the_exit_codes_and_an_unknown_option_exits_2() {
    let output = steadfast(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    assert!(
        help.contains("Exit codes: 0 success; 1 error; 2 usage error"),
        "{help}"
    );
    let output = steadfast(&["dlq", "--dir", "/tmp", "list", "--no-such-option"]);
    assert_eq!(output.status.code(), Some(2));
}
