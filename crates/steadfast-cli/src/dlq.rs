//! `steadfast dlq ...`: the dead-letter operations.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterId, DeadLetterRecord, DeadLetterSink, Replay};
use steadfast_amqp::{AmqpConfig, AmqpSink};
use steadfast_sqlite::{DB_FILE_NAME, SqliteError, SqliteSink};

use crate::http::Target;
use crate::output;

/// Where the dead letters are: exactly one of `--dir` and `--amqp`.
#[derive(Debug, Args)]
pub(crate) struct DlqArgs {
    /// The dead-letter store's directory, as given to `SqliteSink::open` (it holds
    /// `dlq.sqlite3`). Safe to use while the application writes to it.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "amqp")]
    dir: Option<PathBuf>,
    /// A RabbitMQ broker URL (AmqpSink), e.g. amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long, global = true, value_name = "URL")]
    amqp: Option<String>,
    /// The AMQP queue (with --amqp).
    #[arg(long, global = true, default_value = "steadfast.dead-letters")]
    queue: String,
    /// The AMQP exchange (with --amqp).
    #[arg(long, global = true, default_value = "steadfast.dead-letter")]
    exchange: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Depth, oldest age, recent rate and per-agent counts.
    Stats,
    /// The oldest dead letters.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One dead letter in full, request included.
    Show {
        /// Its id (26 characters, as `list` prints).
        id: String,
    },
    /// Send dead letters again, oldest first; remove those that succeed, keep the others with
    /// their replay count raised.
    Replay {
        /// POST each record's request body to this http:// URL; a 2xx answer is success.
        #[arg(long, value_name = "URL", required_unless_present = "dry_run")]
        to_http: Option<String>,
        /// Print what would be replayed; change nothing.
        #[arg(long, conflicts_with = "to_http")]
        dry_run: bool,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// At most this many requests per second (from 1/86400, one a day, to 1000000).
        #[arg(long, default_value_t = 10.0, value_parser = parse_rate)]
        rate: f64,
    },
    /// Delete every dead letter.
    Purge {
        /// Confirm: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

enum Store {
    Sqlite(SqliteSink),
    Amqp(AmqpSink, PathBuf),
}

impl Store {
    fn sink(&self) -> &dyn DeadLetterSink {
        match self {
            Store::Sqlite(sqlite) => sqlite,
            Store::Amqp(amqp, _) => amqp,
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Store::Amqp(_, spill) = self {
            // The CLI never appends, so its private spill is always empty.
            let _ = std::fs::remove_dir_all(spill);
        }
    }
}

async fn open(args: &DlqArgs) -> Result<Store, BoxError> {
    match (&args.dir, &args.amqp) {
        (Some(dir), None) => {
            // Never creates a store: a mistyped path is an error, not a new empty store. The
            // application may be writing to it at the same time (WAL): that is fine.
            let sqlite = SqliteSink::options(dir)
                .create(false)
                .open()
                .map_err(|error| -> BoxError {
                    match error {
                        SqliteError::Missing { .. } => format!(
                            "no dead-letter store at `{}`: check --dir (the directory the application opened, holding {DB_FILE_NAME})",
                            dir.display()
                        )
                        .into(),
                        SqliteError::NotADirectory { .. } => format!(
                            "`{}` is not a directory: --dir takes the directory that holds {DB_FILE_NAME}, not the file",
                            dir.display()
                        )
                        .into(),
                        other => other.into(),
                    }
                })?;
            Ok(Store::Sqlite(sqlite))
        }
        (None, Some(url)) => {
            let spill = std::env::temp_dir().join(format!("steadfast-cli-spill-{}", std::process::id()));
            let config = AmqpConfig::new(url.clone(), &spill)
                .queue(args.queue.clone())
                .exchange(args.exchange.clone())
                .connect_timeout(Duration::from_secs(5));
            let sink = AmqpSink::connect(config).await;
            if sink.is_err() {
                let _ = std::fs::remove_dir_all(&spill);
            }
            Ok(Store::Amqp(sink?, spill))
        }
        _ => Err("say where the dead letters are: --dir DIR (the SQLite store's directory) or --amqp URL (RabbitMQ)".into()),
    }
}

fn print_json(value: &serde_json::Value) -> Result<(), BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn run(args: DlqArgs) -> Result<ExitCode, BoxError> {
    match &args.command {
        DlqCommand::Stats => {
            let store = open(&args).await?;
            let stats = store.sink().stats().await?;
            if args.json {
                print_json(&output::stats_json(&stats))?;
            } else {
                print!("{}", output::stats_table(&stats));
            }
        }
        DlqCommand::List { limit } => {
            let store = open(&args).await?;
            let records = store.sink().list(*limit).await?;
            if args.json {
                print_json(&records.iter().map(output::record_json).collect())?;
            } else {
                print!("{}", output::list_table(&records));
            }
        }
        DlqCommand::Show { id } => {
            let id: DeadLetterId = id.parse()?;
            let store = open(&args).await?;
            let Some(record) = store.sink().get(id).await? else {
                return Err(format!("no dead letter with id {id} here").into());
            };
            if args.json {
                print_json(&output::record_json(&record))?;
            } else {
                print!("{}", output::show_text(&record));
            }
        }
        DlqCommand::Replay {
            to_http,
            dry_run,
            limit,
            rate,
        } => {
            return replay(
                &args,
                to_http.as_deref(),
                *dry_run,
                limit.unwrap_or(usize::MAX),
                *rate,
            )
            .await;
        }
        DlqCommand::Purge { yes } => {
            if !yes {
                return Err(
                    "purge deletes every dead letter and cannot be undone: add --yes to confirm"
                        .into(),
                );
            }
            let store = open(&args).await?;
            let purged = match &store {
                Store::Amqp(amqp, _) => amqp.purge().await?,
                // One transaction: all or nothing, however many records.
                Store::Sqlite(sqlite) => sqlite.purge().await?,
            };
            if args.json {
                print_json(&serde_json::json!({ "purged": purged }))?;
            } else {
                println!("purged {purged} dead letters");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(len: usize, quiet: bool) -> ProgressBar {
    if quiet || len < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta})") {
        bar.set_style(style);
    }
    bar
}

async fn replay(
    args: &DlqArgs,
    to_http: Option<&str>,
    dry_run: bool,
    limit: usize,
    rate: f64,
) -> Result<ExitCode, BoxError> {
    if dry_run {
        let store = open(args).await?;
        let records = store.sink().list(limit).await?;
        if args.json {
            print_json(&records.iter().map(output::record_json).collect())?;
        } else {
            print!("{}", output::list_table(&records));
            println!(
                "dry run: {} dead letters would be replayed; nothing was changed",
                records.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let url = to_http.ok_or("replay needs a target: --to-http URL, or --dry-run")?;
    let target = Target::parse(url)?;
    let store = open(args).await?;
    let sink = store.sink();
    let total = sink.stats().await?.depth.min(limit as u64);
    let bar = progress(usize::try_from(total).unwrap_or(usize::MAX), args.json);
    let service = tower::service_fn(move |record: DeadLetterRecord| {
        let target = target.clone();
        async move {
            let headers = [
                ("X-Steadfast-Dead-Letter-Id", record.id.to_string()),
                ("X-Steadfast-Agent", record.agent.clone()),
            ];
            target.post(&headers, &record.request).await
        }
    });
    let progress_bar = bar.clone();
    let report = Replay::new(sink)
        .limit(limit)
        .rate_per_second(rate)?
        .on_progress(move |record, result| {
            progress_bar.inc(1);
            if let Err(error) = result {
                progress_bar.set_message(format!("{} failed: {error}", record.id));
            }
        })
        .run(service, |record: &DeadLetterRecord| Ok(record.clone()))
        .await?;
    bar.finish_and_clear();
    if args.json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, error)| serde_json::json!({ "id": id.to_string(), "error": error }))
            .collect();
        print_json(&serde_json::json!({
            "attempted": report.attempted,
            "succeeded": report.succeeded,
            "failed": failed,
        }))?;
    } else {
        println!(
            "replayed {} dead letters: {} succeeded and were removed, {} failed again and were kept",
            report.attempted,
            report.succeeded,
            report.failed.len()
        );
        for (id, error) in &report.failed {
            println!("  {id}: {error}");
        }
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// `--rate`: a number of requests per second that `Replay` accepts; anything else is a usage
/// error (exit code 2) naming the value, never a panic and never "no limit".
fn parse_rate(text: &str) -> Result<f64, String> {
    use steadfast::dead_letter::{MAX_RATE_PER_SECOND, MIN_RATE_PER_SECOND};
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of requests per second"))?;
    if rate.is_finite() && (MIN_RATE_PER_SECOND..=MAX_RATE_PER_SECOND).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "{text} requests per second cannot be a schedule: give a number from {MIN_RATE_PER_SECOND:e} (one a day) to {MAX_RATE_PER_SECOND}"
        ))
    }
}
