//! The dead-letter store: durable appends per second, for 1 and 16 concurrent writers, SQLite
//! with `Synchronous::Full` and `Normal` in the same run. (The segment journal it replaced ran
//! beside them until its removal; its last figures are in docs/benchmarks.md.) Each append returns only once the store says the record is durable, so the
//! figures are what a `DeadLetterLayer` waits for; 16 writers show what group commit buys.
//!
//! `cargo bench -p steadfast-benches --bench dlq_store` (the `thrpt` line is appends per
//! second). Before criterion's rows it prints a summary measured in interleaved rounds (each
//! round runs every store once, so a machine whose load drifts, as a shared one does, skews
//! every store alike): the median and range of appends per second over the rounds. The stores
//! live under the target directory, on the disk the build uses (not a tmpfs, where an fsync
//! costs nothing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{Bytes, DeadLetterRecord, DeadLetterSink};
use steadfast_sqlite::{SqliteSink, Synchronous};

/// A 1 KiB request: a short prompt with its JSON envelope.
fn record(request: &Bytes) -> DeadLetterRecord {
    let mut record = DeadLetterRecord::new("bench", request.clone(), OutcomeKind::Transient);
    record.error_chain = vec!["503 Service Unavailable".into(), "model overloaded".into()];
    record.reason = "overloaded".into();
    record
}

/// A fresh directory for one store under the target directory.
fn store_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dlq-store-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `appends` appends spread over `writers` concurrent tasks; returns how long they took.
fn run(
    runtime: &tokio::runtime::Runtime,
    sink: &Arc<dyn DeadLetterSink>,
    writers: u64,
    appends: u64,
    request: &Bytes,
) -> Duration {
    runtime.block_on(async {
        let started = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let share = appends / writers + u64::from(writer < appends % writers);
            let (sink, request) = (sink.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..share {
                    sink.append(record(&request)).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer task");
        }
        started.elapsed()
    })
}

fn appends_per_second(c: &mut Criterion) {
    // Two workers, as on the machine the figures come from; the stores' own threads do the I/O.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let request = Bytes::from(format!(
        "{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "x".repeat(960)
    ));
    let mut group = c.benchmark_group("dlq_store");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    let stores: [(&str, Open); 2] = [
        ("sqlite_full", |dir| {
            Arc::new(SqliteSink::open(dir).expect("open the SQLite store"))
        }),
        ("sqlite_normal", |dir| {
            Arc::new(
                SqliteSink::options(dir)
                    .synchronous(Synchronous::Normal)
                    .open()
                    .expect("open the SQLite store"),
            )
        }),
    ];
    if !std::env::args().any(|arg| arg == "--test") {
        summary(&runtime, &stores, &request);
    }
    for writers in [1, 16] {
        for (name, open) in stores {
            let dir = store_dir(name);
            let sink = open(&dir);
            group.bench_function(format!("{name}_{writers}_writers"), |b| {
                b.iter_custom(|appends| run(&runtime, &sink, writers, appends, &request));
            });
            drop(sink);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    group.finish();
}

type Open = fn(&Path) -> Arc<dyn DeadLetterSink>;

/// Rounds of the interleaved summary.
const ROUNDS: usize = 7;

/// Appends per second of every store, 1 and 16 writers, measured in interleaved rounds; prints
/// the median and the range.
fn summary(runtime: &tokio::runtime::Runtime, stores: &[(&str, Open)], request: &Bytes) {
    let opened: Vec<_> = stores
        .iter()
        .map(|(name, open)| {
            let dir = store_dir(&format!("summary-{name}"));
            (*name, open(&dir), dir)
        })
        .collect();
    let writer_counts = [1u64, 16];
    // rates[store][writers] = appends per second, one per round
    let mut rates = vec![vec![Vec::new(); writer_counts.len()]; opened.len()];
    for _ in 0..ROUNDS {
        for (w, writers) in writer_counts.iter().enumerate() {
            for (s, (_, sink, _)) in opened.iter().enumerate() {
                let appends = 200 * writers;
                let took = run(runtime, sink, *writers, appends, request);
                rates[s][w].push(appends as f64 / took.as_secs_f64());
            }
        }
    }
    println!(
        "dlq_store summary: durable appends per second, median (min-max) of {ROUNDS} interleaved rounds"
    );
    println!("{:<16} {:>28} {:>28}", "store", "1 writer", "16 writers");
    for (s, (name, _, _)) in opened.iter().enumerate() {
        let cells: Vec<String> = rates[s]
            .iter_mut()
            .map(|rounds| {
                rounds.sort_by(f64::total_cmp);
                format!(
                    "{:.0} ({:.0}-{:.0})",
                    rounds[rounds.len() / 2],
                    rounds[0],
                    rounds[rounds.len() - 1]
                )
            })
            .collect();
        println!("{name:<16} {:>28} {:>28}", cells[0], cells[1]);
    }
    for (_, sink, dir) in opened {
        drop(sink);
        let _ = std::fs::remove_dir_all(dir);
    }
}

criterion_group!(benches, appends_per_second);
criterion_main!(benches);
