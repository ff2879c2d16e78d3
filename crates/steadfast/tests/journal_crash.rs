//! Crash safety: a child process appends with fsync `Always` and prints each confirmed id; the
//! test SIGKILLs it at random points, several times over the same directory; on reopen every
//! confirmed id must be there.
//!
//! The child is this same test binary, re-run with `crash_child_writer` selected and the
//! directory in `STEADFAST_JOURNAL_CRASH_CHILD`.
#![cfg(all(feature = "dead-letter", unix))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{DeadLetterId, DeadLetterRecord, DeadLetterSink, JournalSink};

const CHILD_ENV: &str = "STEADFAST_JOURNAL_CRASH_CHILD";
const ROUNDS: usize = 6;

/// Appends from 4 concurrent tasks until `limit` (or forever), writing `confirmed <id>` to `out`
/// after each append the journal confirmed.
async fn write_and_confirm(
    dir: &std::path::Path,
    limit: Option<usize>,
    out: impl Write + Send + 'static,
) {
    let journal = JournalSink::open(dir).expect("child opens the journal");
    let out = std::sync::Arc::new(std::sync::Mutex::new(out));
    let mut tasks = Vec::new();
    for task in 0..4 {
        let (journal, out) = (journal.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while limit.is_none_or(|limit| n < limit) {
                let record = DeadLetterRecord::new(
                    format!("task-{task}"),
                    Bytes::from(format!("payload {task}/{n} {}", "z".repeat(n % 300))),
                    OutcomeKind::Transient,
                );
                let id = record.id;
                journal.append(record).await.expect("append");
                let mut out = out.lock().unwrap();
                writeln!(out, "confirmed {id}").unwrap();
                out.flush().unwrap();
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Collects the bounded run's output.
struct Pipe(mpsc::Sender<u8>);
impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for byte in buf {
            let _ = self.0.send(*byte);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// In the crash test this is the child. Run alone, it writes a bounded number of records and
/// checks that every confirmed one is readable after a reopen.
#[test]
fn crash_child_writer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        runtime.block_on(write_and_confirm(
            std::path::Path::new(&dir),
            None,
            std::io::stdout(),
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sender, receiver) = mpsc::channel::<u8>();
    runtime.block_on(write_and_confirm(dir.path(), Some(10), Pipe(sender)));
    let text = String::from_utf8(receiver.try_iter().collect()).unwrap();
    let confirmed = parse(&text);
    assert_eq!(confirmed.len(), 40);
    runtime.block_on(assert_present(dir.path(), &confirmed));
}

fn parse(text: &str) -> HashSet<DeadLetterId> {
    text.lines()
        .filter_map(|line| line.strip_prefix("confirmed "))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

async fn assert_present(dir: &std::path::Path, confirmed: &HashSet<DeadLetterId>) -> usize {
    let journal = JournalSink::open(dir).unwrap();
    let stored: HashSet<_> = journal
        .list(usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let missing: Vec<_> = confirmed.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} confirmed ids lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    stored.len()
}

#[test]
#[allow(clippy::disallowed_methods)] // a real process is killed at real moments
fn sigkill_at_random_points_loses_no_confirmed_id() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1;
    let initial_seed = seed;
    let mut confirmed = HashSet::new();
    let mut torn_tails = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child confirmed its first record (libtest prints its own lines
        // first), then kill it after a random while.
        let mut before_kill = Vec::new();
        let deadline = std::time::SystemTime::now() + Duration::from_secs(20);
        while let Ok(line) = received.recv_timeout(
            deadline
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
        ) {
            let confirmed_one = line.starts_with("confirmed ");
            before_kill.push(line);
            if confirmed_one {
                break;
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(10 + seed % 250));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let child_stderr = stderr_reader.join().unwrap();
        let mut text = String::new();
        for line in before_kill.into_iter().chain(received.try_iter()) {
            text.push_str(&line);
            text.push('\n');
        }
        let this_round = parse(&text);
        assert!(
            !this_round.is_empty(),
            "round {round}: the child confirmed nothing (seed {initial_seed}); its stderr:\n{child_stderr}"
        );
        confirmed.extend(this_round);

        let journal = JournalSink::open(dir.path()).unwrap();
        torn_tails += usize::from(journal.open_report().torn_tail.is_some());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(assert_present(dir.path(), &confirmed));
    // Records may be stored but unconfirmed (killed between fsync and print), never the reverse.
    assert!(stored >= confirmed.len());
    eprintln!(
        "{ROUNDS} kills, {} confirmed, {stored} stored, {torn_tails} torn tails cut (seed {initial_seed})",
        confirmed.len()
    );
}
