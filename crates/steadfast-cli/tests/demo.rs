//! `steadfast demo` as CI runs it: a short seeded run with stdout piped (plain lines), whose
//! summary must account for every request.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

/// The run lasts 6 s; the rest is start-up and the drain of in-flight requests.
const LIMIT: Duration = Duration::from_secs(20);

/// The `key=value` numbers of the summary's accounting line.
fn accounting(stdout: &str) -> (HashMap<String, u64>, String) {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("accounting: "))
        .unwrap_or_else(|| panic!("no accounting line in:\n{stdout}"))
        .to_string();
    let numbers = line
        .trim_start_matches("accounting: ")
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| {
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("`{value}` of `{key}` is not a count in `{line}`"));
            (key.to_string(), value)
        })
        .collect();
    (numbers, line)
}

/// Runs `steadfast demo ARGS` with stdout piped, bounded by [`LIMIT`]; returns stdout.
async fn demo(args: &[&std::ffi::OsStr]) -> String {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("the demo ends within its duration plus the drain")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_seeded_run_opens_and_recovers_the_breaker_and_accounts_for_every_request() {
    let journal = tempfile::tempdir().unwrap();
    let stdout = demo(&[
        "--duration".as_ref(),
        "6".as_ref(),
        "--seed".as_ref(),
        "7".as_ref(),
        "--journal".as_ref(),
        journal.path().as_os_str(),
    ])
    .await;

    // Plain lines (stdout is a pipe): no terminal control sequences, timestamped events.
    assert!(!stdout.contains('\x1b'), "{stdout}");
    assert!(
        stdout.contains("/status/ui"),
        "the status UI's URL is printed:\n{stdout}"
    );
    assert!(
        stdout.contains("] event  circuit of `primary` open"),
        "{stdout}"
    );
    assert!(
        stdout.contains("] event  circuit of `primary` half-open"),
        "{stdout}"
    );
    assert!(
        stdout.contains("] event  circuit of `primary` closed"),
        "{stdout}"
    );
    let opened = stdout.find("circuit of `primary` open").unwrap();
    let closed = stdout.find("circuit of `primary` closed").unwrap();
    assert!(
        opened < closed,
        "the breaker recovers after it opened:\n{stdout}"
    );
    // The critical agent pages once when it goes down and once when it has recovered.
    let paged = stdout
        .find("] notify alert: agent `primary` is down")
        .unwrap_or_else(|| panic!("no alert was sent:\n{stdout}"));
    let recovered = stdout
        .find("] notify recovery: agent `primary` recovered")
        .unwrap_or_else(|| panic!("no recovery was sent:\n{stdout}"));
    assert!(paged < recovered, "{stdout}");
    assert_eq!(
        stdout.matches("] notify alert: agent `primary`").count(),
        1,
        "{stdout}"
    );

    let (counts, line) = accounting(&stdout);
    assert!(line.ends_with("-> OK"), "{line}");
    let count = |key: &str| {
        counts
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no `{key}` in `{line}`"))
    };
    let outcomes = [
        "primary",
        "fallback",
        "cached",
        "degraded",
        "dead_lettered",
        "other",
    ];
    let sum: u64 = outcomes.iter().map(|key| count(key)).sum();
    assert_eq!(count("sent"), sum, "every request has one outcome: {line}");
    assert_eq!(count("other"), 0, "{line}");
    assert!(count("sent") > 50, "8 callers at 4 req/s for 6 s: {line}");
    assert!(count("primary") > 0, "{line}");
    assert!(
        count("fallback") + count("degraded") > 0,
        "the outage is covered: {line}"
    );

    // Every final failure is durable in the store: the batch jobs dead-lettered and the chat
    // requests answered with a degraded template.
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(["dlq", "--dir"])
        .arg(journal.path())
        .arg("stats")
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    let depth: u64 = stats
        .lines()
        .find_map(|line| line.strip_prefix("depth"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no depth in:\n{stats}"));
    assert_eq!(
        depth,
        count("dead_lettered") + count("degraded"),
        "{stats}\n{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_to_rabbitmq_with_amqp() {
    let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let queue = format!("steadfast.demo.test-{}", std::process::id());
    let exchange = format!("{queue}.x");
    let stdout = demo(&[
        "--duration".as_ref(),
        "3".as_ref(),
        "--seed".as_ref(),
        "11".as_ref(),
        "--amqp".as_ref(),
        url.as_ref(),
        "--queue".as_ref(),
        queue.as_ref(),
        "--exchange".as_ref(),
        exchange.as_ref(),
    ])
    .await;
    assert!(
        !stdout.contains("guest:guest"),
        "the password is never printed:\n{stdout}"
    );
    let (counts, line) = accounting(&stdout);
    assert!(line.ends_with("-> OK"), "{line}");

    let spill = tempfile::tempdir().unwrap();
    let config = steadfast_amqp::AmqpConfig::new(url, spill.path())
        .queue(queue.clone())
        .exchange(exchange.clone());
    let sink = steadfast_amqp::AmqpSink::connect(config).await.unwrap();
    let depth = sink.queue_depth().await.unwrap();
    sink.delete_topology().await.unwrap();
    assert_eq!(
        depth,
        counts["dead_lettered"] + counts["degraded"],
        "{line}"
    );
}

/// The built-in stack with its dead-letter store swapped for an in-memory one.
fn stack_with_memory_store() -> String {
    let shipped = include_str!("../../../examples/stack.toml");
    let mut text = String::new();
    for line in shipped.lines() {
        if line.starts_with("store = ") {
            text.push_str("store = \"memory\"\ncapacity = 500\n");
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(
        text.contains("store = \"memory\""),
        "the shipped file names its store"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_comes_from_the_file_given_with_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-stack.toml");
    std::fs::write(&path, stack_with_memory_store()).unwrap();
    let stdout = demo(&[
        "--duration".as_ref(),
        "3".as_ref(),
        "--seed".as_ref(),
        "3".as_ref(),
        "--plain".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
    ])
    .await;
    assert!(
        stdout.contains(&format!("stack: {}", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("dead letters: memory"), "{stdout}");
    let (_, line) = accounting(&stdout);
    assert!(line.ends_with("-> OK"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stack_file_is_refused_naming_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.toml");
    let text = stack_with_memory_store().replace(
        "fallback = [\"backup\", \"slow\"]",
        "fallback = [\"backup\", \"gpt-5\"]",
    );
    let line = text
        .lines()
        .position(|line| line.contains("gpt-5"))
        .expect("the edit applied")
        + 1;
    std::fs::write(&path, text).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(["demo", "--duration", "1", "--plain", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:{line}:", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("field `agents.primary.fallback[1]`"),
        "{stderr}"
    );
    assert!(stderr.contains("no agent `gpt-5`"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing starts before the file is read"
    );
}

/// `demo --json`: one JSON object on stdout (no header, no timeline), whose counts add up and
/// match the store, and whose dead letters `dlq list --json` shows with their attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_is_one_object_whose_counts_add_up() {
    let journal = tempfile::tempdir().unwrap();
    let stdout = demo(&[
        "--duration".as_ref(),
        "3".as_ref(),
        "--seed".as_ref(),
        "7".as_ref(),
        "--json".as_ref(),
        "--journal".as_ref(),
        journal.path().as_os_str(),
    ])
    .await;
    let summary: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not one JSON object ({error}):\n{stdout}"));
    let count = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {summary}"))
    };
    let fallback = summary["fallback"]["backup"].as_u64().unwrap()
        + summary["fallback"]["slow"].as_u64().unwrap();
    let outcomes = count("primary")
        + fallback
        + count("cached")
        + count("degraded")
        + count("dead_lettered")
        + count("other");
    assert_eq!(count("sent"), outcomes, "{summary}");
    assert_eq!(summary["accounting_ok"], true, "{summary}");
    assert_eq!(
        summary["dlq"]["added"],
        count("dead_lettered") + count("degraded")
    );
    assert!(
        summary["breakers"].as_array().unwrap().len() >= 2,
        "{summary}"
    );
    // Eight callers, one call in flight each: the primary's bulkhead of 8 never refuses.
    assert_eq!(
        summary["bulkheads"],
        serde_json::json!([{"name": "primary", "limit": 8, "refused": 0}]),
        "{summary}"
    );

    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_steadfast"))
        .args(["dlq", "--json", "--dir"])
        .arg(journal.path())
        .args(["list", "--limit", "1000"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len() as u64,
        summary["dlq"]["depth"].as_u64().unwrap()
    );
    for record in listed {
        // Each record's attempts count what its error chain says was tried.
        let attempts = record["attempts"].as_u64().unwrap();
        assert!(attempts >= 1, "{record}");
        let first = record["error_chain"][0].as_str().unwrap_or_default();
        if let Some(rest) = first.split_once("failed (").map(|(_, rest)| rest) {
            let answers: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(attempts >= answers, "{attempts} < {answers}: {record}");
        }
    }
}

/// `--callers 64`: more calls at the primary at once than its bulkhead of 8 admits; the calls
/// past it are refused at once and answered further down the chain, and every request is
/// still accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_callers_overflow_the_primarys_bulkhead_and_are_answered_by_the_chain() {
    let journal = tempfile::tempdir().unwrap();
    let stdout = demo(&[
        "--duration".as_ref(),
        "6".as_ref(),
        "--seed".as_ref(),
        "7".as_ref(),
        "--callers".as_ref(),
        "64".as_ref(),
        "--json".as_ref(),
        "--journal".as_ref(),
        journal.path().as_os_str(),
    ])
    .await;
    let summary: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not one JSON object ({error}):\n{stdout}"));
    assert_eq!(summary["accounting_ok"], true, "{summary}");
    assert_eq!(summary["other"], 0, "{summary}");
    let bulkhead = &summary["bulkheads"][0];
    assert_eq!(
        (&bulkhead["name"], &bulkhead["limit"]),
        (&serde_json::json!("primary"), &serde_json::json!(8)),
        "{summary}"
    );
    let refused = bulkhead["refused"].as_u64().unwrap();
    assert!(
        refused > 0,
        "64 callers never overflowed 8 permits: {summary}"
    );
    // Each refused call went on to the alternatives, the cache or the degrade/dead-letter end.
    let past_primary = summary["fallback"]["backup"].as_u64().unwrap()
        + summary["fallback"]["slow"].as_u64().unwrap()
        + summary["cached"].as_u64().unwrap()
        + summary["degraded"].as_u64().unwrap()
        + summary["dead_lettered"].as_u64().unwrap();
    assert!(past_primary >= refused, "{summary}");
}
