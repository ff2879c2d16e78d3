//! `steadfast`: operate steadfast from the command line.
//!
//! ```text
//! steadfast demo --duration 30 --seed 1
//! steadfast dlq --dir var/dlq stats
//! steadfast dlq --amqp amqp://guest:guest@127.0.0.1:5672/%2f list --limit 20 --json
//! steadfast dlq --dir var/dlq replay --to-http http://127.0.0.1:8080/agent --rate 5
//! ```
//!
//! Exit codes: 0 success, 1 error (the message says what is wrong; for `demo`, also a request
//! its summary could not account for), 3 a replay left records that failed again.
#![forbid(unsafe_code)]

mod demo;
mod dlq;
mod http;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Resilience middleware for agent clients: operations.
#[derive(Debug, Parser)]
#[command(name = "steadfast", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run three mock LLM agents with scripted outages and watch the stack keep answering.
    Demo(demo::DemoArgs),
    /// Inspect, replay and purge dead letters (an SQLite store directory or a RabbitMQ queue).
    Dlq(dlq::DlqArgs),
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
        Command::Demo(args) => runtime.block_on(demo::run(args)),
        Command::Dlq(args) => runtime.block_on(dlq::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
