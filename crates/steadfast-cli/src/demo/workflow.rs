//! `steadfast demo --workflow ID`: a three-step LLM workflow (plan, write, review) through
//! `Checkpoint > DeadLetter > Shutdown > agent`, with an emergency shutdown on SIGTERM/SIGINT.
//!
//! ```text
//! steadfast demo --workflow essay-1 --checkpoints var/checkpoints   # kill it mid-run (Ctrl-C, kill -9) ...
//! steadfast demo --workflow essay-1 --checkpoints var/checkpoints   # ... and it resumes
//! ```
//!
//! Each step's answer is stored before the next step starts; a rerun answers completed steps
//! from the store and calls the (mock) LLM only for the rest; the summary says how many LLM
//! calls the resume saved. With `--workflows N`, N workflows (`ID-1` ... `ID-N`) run at once
//! (load for the SIGTERM runbook). With `--checkpoints-postgres URL`, several processes (replicas)
//! can run the same workflow: each step runs once in the whole fleet.
//!
//! Output (`--json`: one JSON object per line): a line per step (`"event": "step"`, with
//! `"served": "agent"` or `"checkpoint"`), after a SIGTERM the recovery notification
//! (`"event": "recovery_notification"`), and a summary (`"event": "summary"`). Exit code: 0 when
//! every workflow finished, 1 when an emergency shutdown left work (the documented code of
//! `Emergency`), 2 for usage errors.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use serde_json::json;
use steadfast::checkpoint::{CheckpointLayer, CheckpointStore, Checkpoints, FnCodec, StepKey};
use steadfast::dead_letter::{Bytes, DeadLetterLayer, DeadLetterSink, DeadLettered};
use steadfast::notify::{Notification, Notifier, NotifyFuture};
use steadfast::provenance::{Attributed, Provenance};
use steadfast::shutdown::{Emergency, EmergencyReport, Shutdown, ShutdownLayer};
use steadfast::{Agent, BoxError};
use steadfast_sqlite::{SqliteCheckpointStore, SqliteSink};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The three steps, in order.
pub(crate) const STEPS: [&str; 3] = ["plan", "write", "review"];

/// `steadfast demo --workflow ...`.
#[derive(Debug, Args)]
pub(crate) struct WorkflowArgs {
    /// Run the three-step workflow demo (plan, write, review) with this workflow id instead of
    /// the traffic demo; run it again with the same id to resume.
    #[arg(long, value_name = "ID", conflicts_with_all = ["replicas", "config", "amqp"])]
    workflow: Option<String>,
    /// Checkpoint store directory (SQLite, `checkpoints.sqlite3`; dead letters go beside it
    /// unless --journal says otherwise). Default: `steadfast-demo-checkpoints` in the temp dir.
    #[arg(long, value_name = "DIR", requires = "workflow")]
    checkpoints: Option<PathBuf>,
    /// Keep checkpoints in PostgreSQL instead (replicas sharing it run each step once).
    #[arg(
        long,
        value_name = "URL",
        requires = "workflow",
        conflicts_with = "checkpoints"
    )]
    checkpoints_postgres: Option<String>,
    /// The PostgreSQL schema (with --checkpoints-postgres).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "steadfast_demo",
        requires = "checkpoints_postgres"
    )]
    checkpoints_schema: String,
    /// How long the mock LLM takes per call (e.g. 1s, 300ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, requires = "workflow")]
    step_delay: Duration,
    /// Run this many workflows at once (ids ID-1 ... ID-N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256), requires = "workflow")]
    workflows: u16,
    /// After SIGTERM/SIGINT, how long calls in flight may finish before they are cancelled and
    /// dead-lettered.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, requires = "workflow")]
    drain_timeout: Duration,
    /// How long a step stays claimed by a process that died before the next run may repeat it.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration, requires = "workflow")]
    lease: Duration,
}

impl WorkflowArgs {
    /// Whether the workflow demo was asked for.
    pub(crate) fn requested(&self) -> bool {
        self.workflow.is_some()
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("`{text}` is not a duration ({error}); write it like 1s or 300ms"))
}

/// One step's request: the workflow, the step and its prompt.
#[derive(Clone, Debug)]
struct StepRequest {
    workflow: String,
    step: &'static str,
    prompt: String,
}

type Stack = BoxCloneSyncService<StepRequest, Attributed<String>, BoxError>;

/// What the run saw, for the summary.
#[derive(Default)]
struct Tally {
    agent_calls: Mutex<BTreeMap<&'static str, u64>>,
    from_checkpoint: AtomicU64,
    completed: AtomicU64,
    dead_lettered: AtomicU64,
    other_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, error: String) {
        self.other_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(error);
    }
}

/// Prints each line at once (a test or an operator watches them as they come).
fn emit(json_mode: bool, value: &serde_json::Value, text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = if json_mode {
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{text}")
    };
    let _ = out.flush();
}

/// The mock LLM: answers after `delay` with a text derived from the prompt (so a resumed run
/// ends with the same final answer), counting its calls per step.
fn mock_llm(
    delay: Duration,
    tally: Arc<Tally>,
) -> impl tower::Service<StepRequest, Response = Attributed<String>, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync {
    service_fn(move |request: StepRequest| {
        *tally
            .agent_calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(request.step)
            .or_default() += 1;
        async move {
            tokio::time::sleep(delay).await;
            let digest = request
                .prompt
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
            Ok(Attributed::new(format!(
                "{} of {} [{:08x}]",
                request.step,
                request.workflow,
                digest & 0xffff_ffff
            )))
        }
    })
}

/// Prints the recovery notification as it is sent.
struct PrintNotifier {
    json: bool,
}

impl Notifier for PrintNotifier {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn notify<'a>(&'a self, notification: &'a Notification) -> NotifyFuture<'a> {
        emit(
            self.json,
            &json!({
                "event": "recovery_notification",
                "kind": notification.kind.as_str(),
                "title": notification.title,
                "body": notification.body,
            }),
            &format!("\n{}\n{}", notification.title, notification.body),
        );
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The checkpoint store asked for, where it is (for people), and the default dead-letter dir.
async fn open_store(
    args: &WorkflowArgs,
) -> Result<(Arc<dyn CheckpointStore>, String, PathBuf), BoxError> {
    if let Some(url) = &args.checkpoints_postgres {
        let store =
            steadfast_postgres::PostgresCheckpointStore::connect(url, &args.checkpoints_schema)
                .await?;
        let location = format!(
            "{} (schema {})",
            super::redact_url(url),
            args.checkpoints_schema
        );
        let dlq = std::env::temp_dir().join(format!("steadfast-demo-dlq-{}", std::process::id()));
        return Ok((Arc::new(store), location, dlq));
    }
    let dir = args
        .checkpoints
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("steadfast-demo-checkpoints"));
    let store = SqliteCheckpointStore::open(&dir)?;
    Ok((Arc::new(store), dir.display().to_string(), dir))
}

/// `Checkpoint > DeadLetter > Shutdown > mock LLM`.
fn build_stack(
    args: &WorkflowArgs,
    store: Arc<dyn CheckpointStore>,
    dead_letters: SqliteSink,
    shutdown: &Shutdown,
    tally: Arc<Tally>,
) -> Stack {
    let agent = Agent::new("writer-llm");
    let codec = FnCodec::new(
        |answer: &Attributed<String>| Ok::<_, BoxError>(answer.value.clone().into_bytes()),
        |bytes: &[u8]| Ok::<_, BoxError>(Attributed::new(String::from_utf8(bytes.to_vec())?)),
    );
    let encode = |request: &StepRequest| {
        Ok::<_, BoxError>(Bytes::from(
            json!({"workflow": request.workflow, "step": request.step, "prompt": request.prompt})
                .to_string(),
        ))
    };
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                CheckpointLayer::new(
                    &agent,
                    store,
                    |request: &StepRequest| StepKey::new(&request.workflow, request.step).ok(),
                    codec,
                )
                .lease(args.lease)
                .poll_interval(Duration::from_millis(50))
                .mark_responses(),
            )
            .layer(DeadLetterLayer::new(&agent, dead_letters).encoder(encode))
            .layer(ShutdownLayer::new(&agent, shutdown))
            .service(mock_llm(args.step_delay, tally)),
    )
}

/// The command that resumes: the same one (every completed step is answered from the store).
fn resume_command(args: &WorkflowArgs, id: &str) -> String {
    use std::fmt::Write as _;
    let mut resume = if args.workflows == 1 {
        "steadfast demo --workflow {workflow}".to_owned()
    } else {
        format!(
            "steadfast demo --workflow {id} --workflows {}",
            args.workflows
        )
    };
    if let Some(dir) = &args.checkpoints {
        let _ = write!(resume, " --checkpoints {}", dir.display());
    }
    if let Some(url) = &args.checkpoints_postgres {
        let _ = write!(
            resume,
            " --checkpoints-postgres {} --checkpoints-schema {}",
            super::redact_url(url),
            args.checkpoints_schema
        );
    }
    if args.workflows > 1 {
        resume.push_str("   # resumes {workflow}");
    }
    resume
}

pub(crate) async fn run(
    args: &WorkflowArgs,
    journal: Option<PathBuf>,
    json_mode: bool,
) -> Result<ExitCode, BoxError> {
    let Some(id) = args.workflow.clone() else {
        return Err(crate::usage(
            "--workflow ID is required for the workflow demo",
        ));
    };
    StepKey::new(&id, "plan").map_err(|error| crate::usage(error.to_string()))?;
    let (store, location, default_dlq) = open_store(args).await?;
    let dlq_dir = journal.unwrap_or(default_dlq);
    let dead_letters = SqliteSink::open(&dlq_dir)?;
    let checkpoints = Checkpoints::from_shared(store.clone());
    let tally = Arc::new(Tally::default());
    let shutdown = Shutdown::new();
    let stack = build_stack(args, store, dead_letters.clone(), &shutdown, tally.clone());

    let ids: Vec<String> = if args.workflows == 1 {
        vec![id.clone()]
    } else {
        (1..=args.workflows).map(|n| format!("{id}-{n}")).collect()
    };
    let emergency = Emergency::new(&shutdown)
        .on_signals()
        .drain_timeout(args.drain_timeout)
        .checkpoints(checkpoints.clone())
        .resume_command(resume_command(args, &id))
        .notify(PrintNotifier { json: json_mode });
    let trigger = emergency.trigger();
    let emergency = tokio::spawn(emergency.run());

    emit(
        json_mode,
        &json!({"event": "start", "workflows": ids, "store": location, "dead_letters": dlq_dir.display().to_string()}),
        &format!(
            "workflow demo: {} workflow(s) {}, checkpoints in {location}, dead letters in {}",
            ids.len(),
            ids.join(", "),
            dlq_dir.display()
        ),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for workflow in ids {
        tasks.spawn(run_one(
            stack.clone(),
            checkpoints.clone(),
            workflow,
            tally.clone(),
            json_mode,
        ));
    }
    let mut finals = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (workflow, answer) = joined?;
        if answer.is_some()
            && let Err(error) = checkpoints.finish(&workflow).await
        {
            tally.error(error.to_string());
        }
        finals.insert(workflow, answer);
    }
    let report = if trigger.fired().is_some() {
        Some(emergency.await?)
    } else {
        emergency.abort();
        None
    };
    let depth = dead_letters.stats().await.map(|s| s.depth).ok();
    let (summary, text, code) = summarise(&tally, &finals, report.as_ref(), depth);
    emit(json_mode, &summary, &text);
    Ok(ExitCode::from(code))
}

/// The summary as JSON and as a sentence, and the exit code.
fn summarise(
    tally: &Tally,
    finals: &BTreeMap<String, Option<String>>,
    report: Option<&EmergencyReport>,
    dead_letter_depth: Option<u64>,
) -> (serde_json::Value, String, u8) {
    let agent_calls = tally
        .agent_calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let other_errors = tally
        .other_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let saved = tally.from_checkpoint.load(Ordering::Relaxed);
    let dead_lettered = tally.dead_lettered.load(Ordering::Relaxed);
    let code: u8 = match report {
        Some(report) => report.exit_code(),
        None => u8::from(!other_errors.is_empty() || finals.values().any(Option::is_none)),
    };
    let summary = json!({
        "event": "summary",
        "workflows": finals.iter().map(|(id, answer)| json!({
            "id": id,
            "status": if answer.is_some() { "finished" } else { "open" },
            "final_answer": answer,
        })).collect::<Vec<_>>(),
        "agent_calls": agent_calls,
        "from_checkpoint": saved,
        "llm_calls_saved": saved,
        "completed": tally.completed.load(Ordering::Relaxed),
        "dead_lettered": dead_lettered,
        "dead_letter_depth": dead_letter_depth,
        "other_errors": other_errors,
        "emergency": report.map(|r| json!({
            "trigger": r.trigger.to_string(),
            "in_flight_at_start": r.drain.in_flight_at_start,
            "cancelled": r.drain.cancelled,
            "still_running": r.drain.still_running,
            "drain_secs": r.drain.waited.as_secs_f64(),
            "open_workflows": r.open_workflows,
            "saved": r.saved,
            "errors": r.errors,
        })),
        "exit_code": code,
    });
    let total_calls: u64 = agent_calls.values().sum();
    let text = format!(
        "\nsummary: {} of {} workflow(s) finished; LLM calls made {total_calls} ({}), answered from checkpoints {saved}: the resume saved {saved} LLM call(s); {dead_lettered} dead-lettered; exit code {code}",
        finals.values().filter(|a| a.is_some()).count(),
        finals.len(),
        agent_calls
            .iter()
            .map(|(step, n)| format!("{step} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    (summary, text, code)
}

/// Runs one workflow's steps in order; its final answer, or `None` if a step failed.
async fn run_one(
    stack: Stack,
    checkpoints: Checkpoints,
    workflow: String,
    tally: Arc<Tally>,
    json_mode: bool,
) -> (String, Option<String>) {
    let mut previous = format!("an essay on resilient agents ({workflow})");
    for step in STEPS {
        let request = StepRequest {
            workflow: workflow.clone(),
            step,
            prompt: format!("{step}: {previous}"),
        };
        match stack.clone().oneshot(request).await {
            Ok(answer) => {
                let served = answer.served();
                let from_checkpoint = served.source() == "checkpoint";
                if from_checkpoint {
                    tally.from_checkpoint.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.completed.fetch_add(1, Ordering::Relaxed);
                }
                emit(
                    json_mode,
                    &json!({"event": "step", "workflow": workflow, "step": step, "served": if from_checkpoint { "checkpoint" } else { "agent" }, "answer": answer.value}),
                    &format!(
                        "{workflow}/{step}: {} -> {}",
                        if from_checkpoint {
                            "from checkpoint (LLM call saved)"
                        } else {
                            "LLM answered, stored"
                        },
                        answer.value
                    ),
                );
                previous = answer.value;
                // The application's own state beside the step answers: what `steadfast
                // checkpoints show` prints as the phase and state.
                let state = json!({"last_step": step, "last_answer": previous}).to_string();
                if let Err(error) = checkpoints.save(&workflow, step, state).await {
                    tally.error(format!("{workflow}: saving the phase: {error}"));
                }
            }
            Err(error) => {
                if let Some(dead) = steadfast::error::find::<DeadLettered>(error.as_ref()) {
                    tally.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    emit(
                        json_mode,
                        &json!({"event": "dead_lettered", "workflow": workflow, "step": step, "id": dead.id().to_string(), "error": error.to_string()}),
                        &format!(
                            "{workflow}/{step}: dead-lettered as {} ({error})",
                            dead.id()
                        ),
                    );
                } else {
                    tally.error(format!(
                        "{workflow}/{step}: {}",
                        steadfast::error::chain(error.as_ref()).join(": ")
                    ));
                }
                return (workflow, None);
            }
        }
    }
    (workflow, Some(previous))
}
