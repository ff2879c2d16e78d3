//! Several processes on one store, and processes killed (SIGKILL) in the middle of group
//! commits, removals and purges: the file always opens cleanly, passes SQLite's integrity
//! check, and holds every record a process was told is stored and none it was told is gone.
//!
//! The other process is this same test binary, re-run with only `child_process` selected and
//! its job in `STEADFAST_SQLITE_CHILD` (`<job> <dir>`); it prints one line per confirmed
//! operation (`confirmed <id>`, `removed <id>`, `purged <n>`), after the store answered `Ok`.
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{Bytes, DeadLetterId, DeadLetterRecord, DeadLetterSink};
use steadfast_sqlite::SqliteSink;

const CHILD_ENV: &str = "STEADFAST_SQLITE_CHILD";
/// How long a test waits for a child's next line before failing (a hung child, not a slow one).
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints `line` and flushes at once, so the parent sees it even if this process is killed
/// right after.
fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out.lock().unwrap();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn payload(task: usize, n: usize) -> Bytes {
    // Sizes vary (up to ~12 KB) so commits span several pages and checkpoints happen.
    Bytes::from(format!(
        "payload {task}/{n} {}",
        "z".repeat((n * 37) % 12_000)
    ))
}

/// The child's jobs.
async fn child_job(job: &str, dir: &Path) {
    let sink = SqliteSink::open(dir).expect("the child opens the store");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    // libtest has printed `test child_process ... ` without a newline: end that line first.
    say(&out, "");
    say(&out, "ready");
    match job {
        // 16 tasks appending until killed: the kill lands in group commits.
        "append-forever" | "append-2000" => {
            let limit = if job == "append-2000" {
                2000
            } else {
                usize::MAX
            };
            let mut tasks = Vec::new();
            for task in 0..16 {
                let (sink, out) = (sink.clone(), out.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    while n * 16 < limit {
                        let record = DeadLetterRecord::new(
                            format!("child-{task}"),
                            payload(task, n),
                            OutcomeKind::Transient,
                        );
                        let id = record.id;
                        sink.append(record).await.expect("append");
                        say(&out, &format!("confirmed {id}"));
                        n += 1;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        // Every stored record removed one by one, 8 at a time, until killed or empty.
        "remove-all" => {
            let ids: Vec<_> = sink
                .list(usize::MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            let ids = Arc::new(Mutex::new(ids));
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (sink, out, ids) = (sink.clone(), out.clone(), ids.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Some(id) = ids.lock().unwrap().pop() else {
                            break;
                        };
                        assert!(sink.remove(id).await.expect("remove"), "{id} was stored");
                        say(&out, &format!("removed {id}"));
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        // One purge of everything.
        "purge" => {
            say(&out, "purging");
            let purged = sink.purge().await.expect("purge");
            say(&out, &format!("purged {purged}"));
        }
        other => panic!("unknown child job `{other}`"),
    }
    say(&out, "done");
}

/// In the tests below, this is the other process. Run alone (no job), it does nothing.
#[test]
fn child_process() {
    let Ok(job) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (job, dir) = job.split_once(' ').expect("`<job> <dir>`");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(child_job(job, Path::new(dir)));
}

/// A running child and the lines it printed.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Peer {
    fn start(job: &str, dir: &Path) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{job} {}", dir.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Peer {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Reads lines until one equals `wanted` (libtest prints its own lines first); returns
    /// every line read, `wanted` included.
    fn wait_for(&mut self, wanted: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => {
                    let found = line == wanted || line.starts_with(&format!("{wanted} "));
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(error) => panic!(
                    "the child never printed ({error}) `{wanted}`; it printed {seen:?}; its stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// SIGKILLs the child; returns every line it printed (before and after `seen`).
    fn kill(mut self, seen: Vec<String>) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // The reader thread ends at EOF, so this collects everything the child wrote.
        seen.into_iter().chain(self.lines.iter()).collect()
    }

    /// Waits for the child to exit by itself; it must succeed.
    fn finish(mut self, seen: Vec<String>) -> Vec<String> {
        let status = self.child.wait().unwrap();
        let lines: Vec<_> = seen.into_iter().chain(self.lines.iter()).collect();
        assert!(
            status.success(),
            "the child failed ({status}); its stderr:\n{}",
            self.stderr()
        );
        lines
    }

    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

fn ids(lines: &[String], prefix: &str) -> BTreeSet<DeadLetterId> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix(prefix))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

/// A random number source for kill times, seeded from the clock and printed.
struct Seeded(u64);

impl Seeded {
    fn new(test: &str) -> Seeded {
        let seed = std::env::var("STEADFAST_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos(),
                ) | 1
            });
        eprintln!("{test}: seed {seed} (STEADFAST_CRASH_SEED={seed} to repeat)");
        Seeded(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Lets the child run for a random while before it is killed. A real process dies at a real
/// moment: this is the random point of the kill, not a synchronisation.
#[allow(clippy::disallowed_methods)]
fn run_for(millis: u64) {
    std::thread::sleep(Duration::from_millis(millis));
}

/// A store for filling before a test: `NORMAL` commits, because only the child's operations are
/// under test and the parent is not killed.
fn setup_sink(dir: &Path) -> SqliteSink {
    SqliteSink::options(dir)
        .synchronous(steadfast_sqlite::Synchronous::Normal)
        .open()
        .unwrap()
}

/// Opens the store after a kill: it must open, pass `PRAGMA integrity_check`, and list.
fn reopen(dir: &Path, runtime: &tokio::runtime::Runtime) -> Vec<DeadLetterRecord> {
    let sink = SqliteSink::open(dir).expect("the store opens after a kill");
    let check: String = rusqlite::Connection::open(sink.path())
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    runtime.block_on(sink.list(usize::MAX)).unwrap()
}

#[test]
fn sigkill_during_group_commits_loses_no_confirmed_record() {
    let runtime = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut random = Seeded::new("sigkill_during_group_commits_loses_no_confirmed_record");
    let mut confirmed = BTreeSet::new();
    for round in 0..6 {
        let mut child = Peer::start("append-forever", dir.path());
        let seen = child.wait_for("confirmed");
        run_for(5 + random.below(300));
        let lines = child.kill(seen);
        let this_round = ids(&lines, "confirmed ");
        assert!(!this_round.is_empty(), "round {round}: nothing confirmed");
        confirmed.extend(this_round);

        let stored: BTreeSet<_> = reopen(dir.path(), &runtime)
            .into_iter()
            .map(|r| r.id)
            .collect();
        let lost: Vec<_> = confirmed.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} confirmed records lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        // Stored but never confirmed: killed between the commit and the print (at most one
        // per writing task).
        eprintln!(
            "round {round}: {} confirmed so far, {} stored",
            confirmed.len(),
            stored.len()
        );
    }
}

#[test]
fn sigkill_during_removals_keeps_every_record_not_confirmed_removed() {
    let runtime = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut random =
        Seeded::new("sigkill_during_removals_keeps_every_record_not_confirmed_removed");
    for round in 0..4 {
        let appended: BTreeSet<_> = runtime.block_on(async {
            let sink = setup_sink(dir.path());
            let mut appended = BTreeSet::new();
            for n in 0..2000 {
                let record = DeadLetterRecord::new("app", payload(0, n), OutcomeKind::AgentFault);
                appended.insert(record.id);
                sink.append(record).await.unwrap();
            }
            appended
        });
        let mut child = Peer::start("remove-all", dir.path());
        let seen = child.wait_for("removed");
        run_for(random.below(200));
        let lines = child.kill(seen);
        let removed = ids(&lines, "removed ");

        let stored: BTreeSet<_> = reopen(dir.path(), &runtime)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert!(stored.is_subset(&appended), "round {round}");
        assert!(
            stored.is_disjoint(&removed),
            "round {round}: a confirmed removal came back"
        );
        // Gone without a confirmation: removals committed just before the kill, at most one
        // in flight per removing task (8).
        let unconfirmed = appended.len() - stored.len() - removed.len();
        assert!(
            unconfirmed <= 8,
            "round {round}: {unconfirmed} records vanished unconfirmed"
        );
        eprintln!(
            "round {round}: {} removed and confirmed, {unconfirmed} removed unconfirmed, {} kept",
            removed.len(),
            stored.len()
        );
        runtime.block_on(async {
            SqliteSink::open(dir.path()).unwrap().purge().await.unwrap();
        });
    }
}

#[test]
fn sigkill_during_a_purge_leaves_all_or_nothing() {
    let runtime = support::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut random = Seeded::new("sigkill_during_a_purge_leaves_all_or_nothing");
    let mut outcomes = (0, 0);
    for round in 0..5 {
        let appended = runtime.block_on(async {
            let sink = setup_sink(dir.path());
            for n in 0..5000 {
                let record = DeadLetterRecord::new("app", payload(1, n), OutcomeKind::Transient);
                sink.append_record(record).await.unwrap();
            }
            sink.stats().await.unwrap().depth
        });
        let mut child = Peer::start("purge", dir.path());
        let seen = child.wait_for("purging");
        run_for(random.below(40));
        let lines = child.kill(seen);
        let purged_confirmed = lines.iter().any(|line| line.starts_with("purged "));

        let depth = reopen(dir.path(), &runtime).len() as u64;
        assert!(
            depth == 0 || depth == appended,
            "round {round}: a purge is one transaction, yet {depth} of {appended} are left"
        );
        if purged_confirmed {
            assert_eq!(depth, 0, "round {round}: a confirmed purge came back");
        }
        if depth == 0 {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
            runtime.block_on(async {
                SqliteSink::open(dir.path()).unwrap().purge().await.unwrap();
            });
        }
    }
    eprintln!(
        "purges committed before the kill: {}, not: {}",
        outcomes.0, outcomes.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_append_and_read_one_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SqliteSink::open(dir.path()).unwrap();
    let mut child = Peer::start("append-2000", dir.path());
    let seen = tokio::task::block_in_place(|| child.wait_for("ready"));
    // This process appends while the child does.
    let mut mine = BTreeSet::new();
    for n in 0..300 {
        let record = DeadLetterRecord::new("parent", payload(99, n), OutcomeKind::RateLimited);
        mine.insert(record.id);
        sink.append(record.clone()).await.unwrap();
        assert_eq!(sink.get(record.id).await.unwrap(), Some(record));
        if n % 25 == 0 {
            // Stats count the table: the child's appends so far show.
            let stats = sink.stats().await.unwrap();
            assert!(stats.depth > n as u64);
        }
    }
    let lines = tokio::task::block_in_place(|| child.finish(seen));
    let theirs = ids(&lines, "confirmed ");
    assert_eq!(theirs.len(), 2000);

    let stats = sink.stats().await.unwrap();
    assert_eq!(stats.depth, 2300);
    assert_eq!(stats.appended_last_minute, 2300);
    assert_eq!(stats.by_agent["parent"], 300);
    assert_eq!(
        stats
            .by_agent
            .iter()
            .filter(|(agent, _)| agent.starts_with("child-"))
            .map(|(_, count)| count)
            .sum::<u64>(),
        2000
    );
    let stored: BTreeSet<_> = sink
        .list(usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored, mine.union(&theirs).copied().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_while_another_process_appends_removes_only_what_it_counts() {
    let dir = tempfile::tempdir().unwrap();
    let operator = SqliteSink::open(dir.path()).unwrap();
    let mut child = Peer::start("append-2000", dir.path());
    let mut lines = tokio::task::block_in_place(|| child.wait_for("ready"));
    let (mut purged, mut purges) = (0, 0);
    // Purge after every 20 appends the child confirms, and list and remove in between, until
    // the child is done.
    while !lines.iter().any(|line| line == "done") {
        tokio::task::block_in_place(|| {
            for _ in 0..20 {
                match child.lines.recv_timeout(LINE_TIMEOUT) {
                    Ok(line) => {
                        let done = line == "done";
                        lines.push(line);
                        if done {
                            break;
                        }
                    }
                    Err(error) => panic!("the child stopped printing ({error}): {lines:?}"),
                }
            }
        });
        purged += operator.purge().await.unwrap();
        purges += 1;
        if let Some(first) = operator.list(1).await.unwrap().pop()
            && operator.remove(first.id).await.unwrap()
        {
            purged += 1;
        }
    }
    let lines = tokio::task::block_in_place(|| child.finish(lines));
    let appended = ids(&lines, "confirmed ").len() as u64;
    assert_eq!(appended, 2000);
    let left = operator.stats().await.unwrap().depth;
    assert!(purges > 5, "{purges} purges");
    assert_eq!(
        purged + left,
        appended,
        "{purges} purges removed {purged}, {left} left: every confirmed append is accounted for"
    );
}
