//! `steadfast`: operate steadfast from the command line.
//!
//! ```text
//! steadfast demo --duration 30 --seed 1
//! steadfast dlq --dir var/dlq stats
//! steadfast checkpoints --dir var/checkpoints list
//! steadfast demo --workflow essay-1 --checkpoints var/checkpoints
//! steadfast dlq --amqp amqp://guest:guest@127.0.0.1:5672/%2f list --limit 20 --json
//! OPENAI_API_KEY=sk-... steadfast dlq --dir var/dlq replay --credential-env OPENAI_API_KEY --rate 5
//! ```
//!
//! Exit codes: 0 success; 1 error (the message says what is wrong; for `demo`, also a request
//! its summary could not account for); 2 usage error (a bad or missing argument, from clap or
//! from our own checks: a rate that is no schedule, a malformed id, an unset credential
//! variable, purge without --yes); 3 a replay left records that failed again.
#![forbid(unsafe_code)]

mod checkpoints;
mod demo;
mod dlq;
mod output;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Resilience middleware for agent clients: operations.
#[derive(Debug, Parser)]
#[command(
    name = "steadfast",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run three mock LLM agents with scripted outages and watch the stack keep answering.
    Demo(Box<demo::DemoArgs>),
    /// Inspect, replay and purge dead letters (an SQLite store directory or a RabbitMQ queue).
    Dlq(dlq::DlqArgs),
    /// Inspect and forget durable workflow checkpoints (an SQLite store directory or PostgreSQL).
    Checkpoints(checkpoints::CheckpointsArgs),
}

/// The exit codes, as `--help` prints them (and the docs list them).
const EXIT_CODES: &str = "Exit codes: 0 success; 1 error; 2 usage error (a bad or missing argument); \
3 a replay left records that failed again (they are kept).";

/// A command line that cannot be run as given: exit code 2, as clap's own usage errors.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as a `BoxError`, for `?`.
pub(crate) fn usage(message: impl Into<String>) -> steadfast::BoxError {
    Box::new(UsageError(message.into()))
}

/// Exit code 2 for usage errors (clap's and ours), 1 for every other error.
fn exit_code_for(error: &steadfast::BoxError) -> ExitCode {
    if error.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Demo(args) => runtime.block_on(demo::run(*args)),
        Command::Dlq(args) => runtime.block_on(dlq::run(args)),
        Command::Checkpoints(args) => runtime.block_on(checkpoints::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            exit_code_for(&error)
        }
    }
}
