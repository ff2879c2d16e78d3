//! `steadfast checkpoints ...`: inspect and forget durable workflow checkpoints (the SQLite
//! store directory, or a PostgreSQL schema).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use steadfast::BoxError;
use steadfast::checkpoint::{Checkpoints, Retention, StoreError, WorkflowState, WorkflowSummary};
use steadfast_sqlite::{CHECKPOINT_FILE_NAME, SqliteError, SqliteOptions};

use crate::output::{age, clip, hex, table};
use crate::usage;

/// Where the checkpoints are: exactly one of `--dir` and `--postgres`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointsArgs {
    /// The checkpoint store's directory (it holds `checkpoints.sqlite3`). Safe to use while the
    /// application runs.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "postgres")]
    dir: Option<PathBuf>,
    /// A PostgreSQL URL (PostgresCheckpointStore), e.g. postgres://postgres@127.0.0.1:5432/test.
    #[arg(long, global = true, value_name = "URL")]
    postgres: Option<String>,
    /// The PostgreSQL schema (with --postgres).
    #[arg(long, global = true, default_value = "steadfast")]
    schema: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CheckpointsCommand,
}

#[derive(Debug, Subcommand)]
enum CheckpointsCommand {
    /// Every workflow, most recently updated first.
    List,
    /// One workflow: status, phase, interruption, state and steps.
    Show {
        /// The workflow id (as `list` prints it).
        workflow: String,
    },
    /// Delete a workflow, its state and its steps (its steps run again next time).
    Forget {
        /// The workflow id.
        workflow: String,
    },
    /// Delete old workflows: those not updated for --max-age, and all but the newest
    /// --max-workflows.
    Prune {
        /// e.g. 7d, 12h.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        max_age: Option<Duration>,
        /// Keep at most this many workflows.
        #[arg(long, value_name = "N")]
        max_workflows: Option<usize>,
    },
}

fn parse_age(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("`{text}` is not a duration ({error}); write it like 12h or 7d"))
}

async fn open(args: &CheckpointsArgs) -> Result<Checkpoints, BoxError> {
    match (&args.dir, &args.postgres) {
        (Some(dir), None) => {
            // Never creates a store: a mistyped path is an error, not a new empty store.
            let store = SqliteOptions::new(dir)
                .create(false)
                .open_checkpoints()
                .map_err(|error| -> BoxError {
                    match error {
                        SqliteError::Missing { .. } => format!(
                            "no checkpoint store at `{}`: check --dir (the directory the application opened, holding {CHECKPOINT_FILE_NAME})",
                            dir.display()
                        )
                        .into(),
                        other => other.into(),
                    }
                })?;
            Ok(Checkpoints::new(store))
        }
        (None, Some(url)) => Ok(Checkpoints::new(
            steadfast_postgres::PostgresCheckpointStore::connect(url, &args.schema).await?,
        )),
        _ => Err(usage(
            "say where the checkpoints are: --dir DIR (the SQLite store's directory) or --postgres URL",
        )),
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn since(time: SystemTime) -> Duration {
    SystemTime::now().duration_since(time).unwrap_or_default()
}

fn summary_json(w: &WorkflowSummary) -> Value {
    json!({
        "workflow": w.workflow,
        "status": w.status.as_str(),
        "phase": w.phase,
        "steps_done": w.steps_done,
        "steps_running": w.steps_running,
        "interrupted": w.interrupted,
        "created_unix_ms": millis(w.created_at),
        "updated_unix_ms": millis(w.updated_at),
        "age_seconds": since(w.updated_at).as_secs(),
    })
}

fn text_or_hex(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "utf8": text }),
        Err(_) => json!({ "hex": hex(bytes) }),
    }
}

fn state_json(state: &WorkflowState) -> Value {
    let mut value = summary_json(&state.summary);
    value["state"] = state.state.as_deref().map_or(Value::Null, text_or_hex);
    value["steps"] = state
        .steps
        .iter()
        .map(|s| {
            json!({
                "step": s.step,
                "status": s.status.as_str(),
                "response_bytes": s.response_len,
                "started_unix_ms": millis(s.started_at),
                "completed_unix_ms": s.completed_at.map(millis),
            })
        })
        .collect();
    value
}

fn list_table(workflows: &[WorkflowSummary]) -> String {
    let rows: Vec<[String; 7]> = workflows
        .iter()
        .map(|w| {
            [
                clip(&w.workflow, 40),
                w.status.as_str().to_owned(),
                clip(w.phase.as_deref().unwrap_or("-"), 24),
                w.steps_done.to_string(),
                w.steps_running.to_string(),
                age(since(w.updated_at)),
                clip(w.interrupted.as_deref().unwrap_or(""), 40),
            ]
        })
        .collect();
    table(
        &[
            "WORKFLOW",
            "STATUS",
            "PHASE",
            "DONE",
            "RUNNING",
            "AGE",
            "INTERRUPTED",
        ],
        &rows,
    )
}

fn show_text(state: &WorkflowState) -> String {
    let w = &state.summary;
    let mut out = String::new();
    let _ = writeln!(out, "workflow      {}", w.workflow);
    let _ = writeln!(out, "status        {}", w.status.as_str());
    let _ = writeln!(out, "phase         {}", w.phase.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "updated       {} ago", age(since(w.updated_at)));
    let _ = writeln!(
        out,
        "interrupted   {}",
        w.interrupted.as_deref().unwrap_or("-")
    );
    let rows: Vec<[String; 4]> = state
        .steps
        .iter()
        .map(|s| {
            [
                clip(&s.step, 40),
                s.status.as_str().to_owned(),
                s.response_len.to_string(),
                age(since(s.completed_at.unwrap_or(s.started_at))),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(&["STEP", "STATUS", "BYTES", "AGE"], &rows));
    match &state.state {
        Some(bytes) => {
            let _ = writeln!(out, "\nstate ({} bytes):", bytes.len());
            match std::str::from_utf8(bytes) {
                Ok(text) => out.push_str(text),
                Err(_) => out.push_str(&hex(bytes)),
            }
            out.push('\n');
        }
        None => out.push_str("\nno state saved\n"),
    }
    out
}

fn print_json(value: &Value) -> Result<(), BoxError> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A workflow id that is not stored is an error naming it (exit code 1).
fn not_found(error: StoreError) -> BoxError {
    match error {
        StoreError::InvalidKey(invalid) => usage(invalid.to_string()),
        other => other.into(),
    }
}

pub(crate) async fn run(args: CheckpointsArgs) -> Result<ExitCode, BoxError> {
    match &args.command {
        CheckpointsCommand::List => {
            let workflows = open(&args).await?.list().await?;
            if args.json {
                print_json(&workflows.iter().map(summary_json).collect())?;
            } else {
                print!("{}", list_table(&workflows));
            }
        }
        CheckpointsCommand::Show { workflow } => {
            let state = open(&args)
                .await?
                .resume(workflow)
                .await
                .map_err(not_found)?;
            if args.json {
                print_json(&state_json(&state))?;
            } else {
                print!("{}", show_text(&state));
            }
        }
        CheckpointsCommand::Forget { workflow } => {
            open(&args)
                .await?
                .forget(workflow)
                .await
                .map_err(not_found)?;
            if args.json {
                print_json(&json!({ "forgotten": workflow }))?;
            } else {
                println!("forgot workflow {workflow}: its steps run again next time");
            }
        }
        CheckpointsCommand::Prune {
            max_age,
            max_workflows,
        } => {
            if max_age.is_none() && max_workflows.is_none() {
                return Err(usage(
                    "prune needs --max-age AGE and/or --max-workflows N (what to keep)",
                ));
            }
            let retention = Retention {
                max_age: *max_age,
                max_workflows: *max_workflows,
            };
            let removed = open(&args).await?.prune(retention).await?;
            if args.json {
                print_json(&json!({ "pruned": removed }))?;
            } else {
                println!("pruned {removed} workflows");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
