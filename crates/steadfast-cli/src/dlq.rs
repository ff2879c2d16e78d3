//! `steadfast dlq ...`: the dead-letter operations.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterId, DeadLetterRecord, DeadLetterSink, Replay};
use steadfast_amqp::{AmqpConfig, AmqpSink};
use steadfast_http::replay::{Credentials, HttpReplayer, ReplayError};
use steadfast_sqlite::{DB_FILE_NAME, SqliteError, SqliteSink};

use crate::{output, usage};

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
    /// Send dead letters to their agent again, oldest first, with their stored method, headers
    /// and body; remove those answered with a 2xx, keep the others with their replay count
    /// raised.
    Replay(Box<ReplayArgs>),
    /// Delete every dead letter.
    Purge {
        /// Confirm: purging cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// `steadfast dlq replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// Send to this origin instead of each record's stored URL: the stored path and query are
    /// appended to it (http:// or https://). Records that are not stored HTTP requests are
    /// POSTed to it as they are.
    #[arg(long = "to", visible_alias = "to-http", value_name = "URL")]
    to: Option<String>,
    /// Put back the credential redaction removed from the environment variable NAME (never
    /// stored): sent as `Authorization: Bearer <value>`, or in --credential-header.
    #[arg(long, value_name = "NAME")]
    credential_env: Option<String>,
    /// The header --credential-env goes in (e.g. x-api-key: the value is sent as it is).
    #[arg(
        long,
        value_name = "HEADER",
        requires = "credential_env",
        default_value = "authorization"
    )]
    credential_header: String,
    /// Put back headers from a file of `Name: value` lines (# comments), never stored.
    #[arg(long, value_name = "PATH")]
    header_file: Option<PathBuf>,
    /// Also trust the CA certificate(s) in this PEM file (a private CA, a test certificate).
    #[arg(long, value_name = "PATH")]
    ca_cert: Vec<PathBuf>,
    /// Print what would be sent (method, URL, header names, body size); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only records of this agent.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// Only records with this reason (as `show` prints it).
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
    /// Only records at least this old (e.g. 90s, 10m, 1h30m).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<Duration>,
    /// Only records at most this old.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    newer_than: Option<Duration>,
    /// At most this many records.
    #[arg(long)]
    limit: Option<usize>,
    /// At most this many requests per second (from 1/86400, one a day, to 1000000).
    #[arg(long, default_value_t = 10.0, value_parser = parse_rate, allow_negative_numbers = true)]
    rate: f64,
    /// At most this many requests in flight at once (1 to 1024).
    #[arg(long, default_value_t = 1, value_parser = parse_concurrency, allow_negative_numbers = true)]
    concurrency: usize,
    /// Give up on one request after this long (e.g. 30s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_age)]
    timeout: Duration,
}

impl ReplayArgs {
    fn selects(&self, record: &DeadLetterRecord) -> bool {
        self.agent
            .as_ref()
            .is_none_or(|agent| &record.agent == agent)
            && self
                .reason
                .as_ref()
                .is_none_or(|reason| &record.reason == reason)
            && self.older_than.is_none_or(|age| record.age() >= age)
            && self.newer_than.is_none_or(|age| record.age() <= age)
    }

    /// The client, with credentials read now; every problem is a usage error naming the option.
    fn replayer(&self) -> Result<HttpReplayer, BoxError> {
        let setup = |error: ReplayError| usage(error.to_string());
        let mut credentials = Credentials::new();
        if let Some(variable) = &self.credential_env {
            credentials = credentials
                .header_from_env(&self.credential_header, variable)
                .map_err(setup)?;
        }
        if let Some(path) = &self.header_file {
            credentials = credentials.header_file(path).map_err(setup)?;
        }
        let mut builder = HttpReplayer::builder()
            .credentials(credentials)
            .timeout(self.timeout);
        if let Some(url) = &self.to {
            builder = builder.target(url).map_err(setup)?;
        }
        for path in &self.ca_cert {
            builder = builder.ca_cert_file(path).map_err(setup)?;
        }
        Ok(builder.build()?)
    }
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
            let spill =
                std::env::temp_dir().join(format!("steadfast-cli-spill-{}", std::process::id()));
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
        _ => Err(usage(
            "say where the dead letters are: --dir DIR (the SQLite store's directory) or --amqp URL (RabbitMQ)",
        )),
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
            let id: DeadLetterId = id
                .parse()
                .map_err(|error| usage(format!("{error} (give an id as `list` prints it)")))?;
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
        DlqCommand::Replay(replay_args) => return replay(&args, replay_args).await,
        DlqCommand::Purge { yes } => {
            if !yes {
                return Err(usage(
                    "purge deletes every dead letter and cannot be undone: add --yes to confirm",
                ));
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

async fn replay(args: &DlqArgs, replay: &ReplayArgs) -> Result<ExitCode, BoxError> {
    let replayer = replay.replayer()?;
    let store = open(args).await?;
    let sink = store.sink();
    let limit = replay.limit.unwrap_or(usize::MAX);
    // Every selected record is prepared before anything is sent: a record the replay could
    // not address (no host and no --to) stops the command with nothing changed, instead of
    // counting as "failed again".
    let mut selected = sink.list(usize::MAX).await?;
    selected.retain(|record| replay.selects(record));
    selected.truncate(limit);
    let mut planned = Vec::with_capacity(selected.len());
    for record in &selected {
        let prepared = replayer
            .prepare(record)
            .map_err(|error| usage(error.to_string()))?;
        planned.push((record, prepared));
    }
    if replay.dry_run {
        if args.json {
            print_json(&serde_json::json!({
                "dry_run": true,
                "selected": planned.len(),
                "requests": planned
                    .iter()
                    .map(|(record, prepared)| output::prepared_json(record, prepared))
                    .collect::<Vec<_>>(),
            }))?;
        } else {
            print!("{}", output::prepared_table(&planned));
            println!(
                "dry run: {} dead letters would be replayed; nothing was sent or changed",
                planned.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ids: std::collections::HashSet<DeadLetterId> =
        selected.iter().map(|record| record.id).collect();
    let bar = progress(ids.len(), args.json);
    let progress_bar = bar.clone();
    let report = Replay::new(sink)
        .filter(move |record| ids.contains(&record.id))
        .rate_per_second(replay.rate)?
        .concurrency(replay.concurrency)?
        .on_progress(move |record, result| {
            progress_bar.inc(1);
            if let Err(error) = result {
                progress_bar.set_message(format!("{} failed: {error}", record.id));
            }
        })
        .run(replayer, |record: &DeadLetterRecord| Ok(record.clone()))
        .await?;
    bar.finish_and_clear();
    if args.json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, error)| serde_json::json!({ "id": id.to_string(), "error": error }))
            .collect();
        print_json(&serde_json::json!({
            "dry_run": false,
            "selected": selected.len(),
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

/// `--older-than`, `--newer-than`, `--timeout`: a duration such as `90s`, `10m` or `1h30m`.
fn parse_age(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("`{text}` is not a duration ({error}); write it like 90s, 10m or 1h30m")
    })
}

/// `--concurrency`: 1 to `MAX_CONCURRENCY` requests in flight.
fn parse_concurrency(text: &str) -> Result<usize, String> {
    use steadfast::dead_letter::MAX_CONCURRENCY;
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of requests in flight from 1 to {MAX_CONCURRENCY}"
        )),
    }
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
