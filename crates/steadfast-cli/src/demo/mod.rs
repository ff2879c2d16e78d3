//! `steadfast demo`: three mock LLM agents on 127.0.0.1, traffic through the full stack, a live
//! view, and a summary in which every request is accounted for.
//!
//! ```text
//! steadfast demo                       # 30 s, live panel, dead letters in a temp dir
//! steadfast demo --duration 6 --seed 7 # what CI runs (plain lines when not on a terminal)
//! steadfast demo --amqp amqp://guest:guest@127.0.0.1:5672/%2f
//! ```
//!
//! The primary has an outage in the middle of the run (503s, some 429 with `Retry-After`): its
//! breaker opens, the health check keeps it open until `/health` answers again, then probes
//! close it. Meanwhile chat requests are answered by the backup, the slow agent (when it beats
//! its timeout), the cache, or a degraded template; batch jobs nobody could answer are
//! dead-lettered.

mod agents;
mod fleet;
mod notify;
mod stack;
mod streaming;
mod traffic;
mod view;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use clap::Args;
use steadfast::config::{DeadLetterStore, Format, StackConfig};
use steadfast::dead_letter::{DeadLetterSink, MemorySink, Monitor};
use steadfast::{BoxError, Registry};
use steadfast_amqp::{AmqpConfig, AmqpSink};
use steadfast_http::status::StatusRoutes;
use steadfast_sqlite::SqliteSink;
use tokio::time::Instant;

use self::agents::AgentKind;

/// How long in-flight requests may take to finish once the run is over (a request's worst case
/// is the primary's retry deadline plus both alternatives' timeouts, about 3 s).
const DRAIN: Duration = Duration::from_secs(10);

/// Dead letters above which the monitor raises its alert (once) on the event bus.
const DLQ_ALERT_DEPTH: u64 = 10;

/// Arguments of `steadfast demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long to send traffic, in seconds ("30", "6", "1.5" or "6s").
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    duration: Duration,
    /// Seed of the agents' scripts and the traffic, so runs repeat.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    callers: u16,
    /// Requests per second per caller (0.1 to 100).
    #[arg(long, default_value = "4", value_parser = parse_rate)]
    rate: f64,
    /// Dead-letter store directory (SQLite; default: a new directory under the system temp dir).
    #[arg(long, value_name = "DIR", conflicts_with = "amqp")]
    journal: Option<PathBuf>,
    /// Dead-letter to RabbitMQ at this URL instead, e.g. amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long, value_name = "URL")]
    amqp: Option<String>,
    /// The AMQP queue dead letters go to (with --amqp).
    #[arg(long, requires = "amqp", default_value = "steadfast.demo.dead-letters")]
    queue: String,
    /// The AMQP exchange (with --amqp).
    #[arg(long, requires = "amqp", default_value = "steadfast.demo")]
    exchange: String,
    /// Port of the status routes on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    status_port: u16,
    /// Print plain lines even when stdout is a terminal.
    #[arg(long)]
    plain: bool,
    /// The stack to run, as a TOML (or .json) stack file (default: the built-in
    /// examples/stack.toml). `--journal` and `--amqp` override its dead-letter store.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print only a JSON summary at the end (no header, timeline or panel).
    #[arg(long, conflicts_with = "plain")]
    json: bool,
    /// Run this many replicas of one application sharing breaker state through Redis (2 or
    /// more: the fleet demo, see docs/fleet.md; 1: the single-process demo).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    replicas: u16,
    /// The Redis the replicas share (with --replicas; default: STEADFAST_REDIS_URL, or
    /// redis://127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// The durable workflow demo (`--workflow ID`): see `demo/workflow.rs`.
    #[command(flatten)]
    workflow: workflow::WorkflowArgs,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    let number = value.strip_suffix('s').unwrap_or(value);
    match number.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.5..=3_600.0).contains(&seconds) => {
            Ok(Duration::from_secs_f64(seconds))
        }
        _ => Err(format!(
            "`{value}` is not a duration between 0.5 and 3600 seconds (e.g. 30 or 6s)"
        )),
    }
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.1..=100.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{value}` is not a rate between 0.1 and 100 requests per second"
        )),
    }
}

/// Where dead letters went, for the summary.
struct DeadLetters {
    sink: Arc<dyn DeadLetterSink>,
    location: String,
    /// The AMQP sink's spill directory, removed at the end when nothing is left in it.
    spill: Option<(AmqpSink, PathBuf)>,
}

/// `url` with its password replaced by `***`, for what the demo prints.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The stack file: `--config FILE`, or the built-in examples/stack.toml.
fn load_stack(args: &DemoArgs) -> Result<StackConfig, BoxError> {
    Ok(match &args.config {
        Some(path) => StackConfig::load(path)?,
        None => StackConfig::parse(
            stack::SHIPPED_STACK,
            Format::Toml,
            stack::SHIPPED_STACK_ORIGIN,
        )?,
    })
}

/// Opens where dead letters go: `--amqp` or `--journal` when given, else the entry agent's
/// `dead_letter` store in the stack file.
async fn open_sink(args: &DemoArgs, config: &StackConfig) -> Result<DeadLetters, BoxError> {
    let store = config
        .agent(stack::ENTRY_AGENT)
        .and_then(|agent| agent.dead_letter())
        .map(|dead_letter| dead_letter.store().clone())
        .ok_or_else(|| {
            format!(
                "{}: the demo needs a dead-letter store for agent `{}` ([agents.{}.dead_letter])",
                config.origin(),
                stack::ENTRY_AGENT,
                stack::ENTRY_AGENT
            )
        })?;
    let (mut queue, mut exchange) = (args.queue.clone(), args.exchange.clone());
    let amqp_url = match (&args.amqp, &args.journal, &store) {
        (Some(url), _, _) => Some(url.clone()),
        (
            None,
            None,
            DeadLetterStore::Amqp {
                url_env,
                queue: file_queue,
                exchange: file_exchange,
                ..
            },
        ) => {
            queue = file_queue.clone().unwrap_or(queue);
            exchange = file_exchange.clone().unwrap_or(exchange);
            Some(std::env::var(url_env).map_err(|_| {
                format!(
                    "{}: the dead-letter store reads the broker URL from ${url_env}, which is not set",
                    config.origin()
                )
            })?)
        }
        _ => None,
    };
    if let Some(url) = amqp_url {
        let spill =
            std::env::temp_dir().join(format!("steadfast-demo-spill-{}", std::process::id()));
        let amqp = AmqpConfig::new(url.clone(), &spill)
            .exchange(exchange.clone())
            .queue(queue.clone())
            .connect_timeout(Duration::from_secs(5));
        let shown = redact_url(&url);
        let sink = match AmqpSink::connect(amqp).await {
            Ok(sink) => sink,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&spill);
                return Err(format!("cannot reach RabbitMQ at {shown}: {error}").into());
            }
        };
        return Ok(DeadLetters {
            sink: Arc::new(sink.clone()),
            location: format!(
                "RabbitMQ queue {queue}; inspect: steadfast dlq --amqp {shown} --queue {queue} --exchange {exchange} list",
            ),
            spill: Some((sink, spill)),
        });
    }
    let dir = match (&args.journal, &store) {
        (Some(dir), _) => dir.clone(),
        (None, DeadLetterStore::Memory { capacity }) => {
            return Ok(DeadLetters {
                sink: Arc::new(MemorySink::new(*capacity)),
                location: "memory (gone when the demo ends)".to_owned(),
                spill: None,
            });
        }
        (None, DeadLetterStore::Sqlite { path: Some(path) }) => path.clone(),
        _ => std::env::temp_dir().join(format!(
            "steadfast-demo-{}-{}",
            std::process::id(),
            args.seed
        )),
    };
    let store = SqliteSink::open(&dir).map_err(|error| {
        format!(
            "cannot open the dead-letter store `{}`: {error}",
            dir.display()
        )
    })?;
    Ok(DeadLetters {
        sink: Arc::new(store),
        location: format!(
            "store {0}; inspect: steadfast dlq --dir {0} list",
            dir.display()
        ),
        spill: None,
    })
}

/// Serves the status routes on 127.0.0.1; returns the UI's URL.
async fn serve_status(registry: &Registry, port: u16) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|error| format!("cannot serve the status routes on 127.0.0.1:{port}: {error}"))?;
    let addr = listener.local_addr()?;
    let router = StatusRoutes::new(registry.clone()).router::<()>();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("warning: the status routes stopped: {error}");
        }
    });
    Ok(format!("http://{addr}/status/ui"))
}

/// Starts the three mock agents (scripted from `started`) and builds the stack over them.
async fn start_agents_and_stack(
    args: &DemoArgs,
    config: &StackConfig,
    registry: &Registry,
    dead_letters: &DeadLetters,
    started: Instant,
) -> Result<(Vec<agents::MockAgent>, stack::Built), BoxError> {
    let mut mock_agents = Vec::new();
    for kind in AgentKind::ALL {
        mock_agents.push(agents::start(kind, args.seed, started, args.duration).await?);
    }
    let mocks: Vec<(&'static str, std::net::SocketAddr)> = mock_agents
        .iter()
        .map(|agent| (agent.kind.name(), agent.addr))
        .collect();
    let built = stack::build(
        config,
        &mocks,
        args.seed,
        registry,
        dead_letters.sink.clone(),
    )?;
    streaming::start(args.seed, started, started + args.duration).await?;
    Ok((mock_agents, built))
}

fn print_header(
    args: &DemoArgs,
    stack_file: &str,
    mock_agents: &[agents::MockAgent],
    status_url: &str,
    dlq: &str,
) {
    println!(
        "steadfast demo: seed {}, {:.1} s, {} callers at {} req/s each",
        args.seed,
        args.duration.as_secs_f64(),
        args.callers,
        args.rate
    );
    for agent in mock_agents {
        println!(
            "  mock agent {:<8} http://{}",
            agent.kind.name(),
            agent.addr
        );
    }
    println!("  stack: {stack_file}");
    println!("  status UI: {status_url}");
    println!("  dead letters: {dlq}");
}

/// The final summary, as text or (`--json`) one JSON object; `true` when every request is
/// accounted for. The streaming lane is summed up after the text.
fn print_summary(
    args: &DemoArgs,
    sources: &view::Sources,
    dlq_location: &str,
    initial_depth: u64,
    drained: bool,
) -> Result<bool, BoxError> {
    if args.json {
        let (summary, holds) =
            view::summary_json(sources, args.seed, dlq_location, initial_depth, drained);
        println!("{}", serde_json::to_string_pretty(&summary)?);
        Ok(holds)
    } else {
        let holds = view::summary(sources, args.seed, dlq_location, initial_depth);
        streaming::print_summary();
        Ok(holds)
    }
}

/// The live panel on a terminal, plain lines otherwise (none with `--json`); then the end of
/// the streaming lane.
fn spawn_viewer(
    interactive: bool,
    print_lines: bool,
    sources: &Arc<view::Sources>,
    registry: &Registry,
    events: steadfast::events::EventReceiver,
    notifications: tokio::sync::mpsc::Receiver<steadfast::notify::Notification>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (sources, registry) = (sources.clone(), registry.clone());
    // Once the view stops (the main traffic has drained), the streaming lane's last streams
    // are waited for, so the summary counts them all.
    tokio::spawn(async move {
        if interactive {
            view::live(sources, registry, events, notifications, stopped).await;
        } else {
            view::plain(
                sources,
                registry,
                events,
                notifications,
                stopped,
                print_lines,
            )
            .await;
        }
        streaming::finish(DRAIN).await;
    })
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode, BoxError> {
    if args.workflow.requested() {
        return workflow::run(&args.workflow, args.journal.clone(), args.json).await;
    }
    if args.replicas > 1 {
        return fleet::run(&args).await;
    }
    run_one(args).await
}

/// The single-process demo.
async fn run_one(args: DemoArgs) -> Result<ExitCode, BoxError> {
    let config = load_stack(&args)?;
    let registry = Registry::new();
    let dead_letters = open_sink(&args, &config).await?;
    let status_url = serve_status(&registry, args.status_port).await?;

    let interactive =
        !args.plain && !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    // The agents' scripts and the traffic share one clock; on a terminal, the header stays
    // readable for a moment before the panel takes the screen.
    let header_pause = if interactive {
        Duration::from_millis(1_500)
    } else {
        Duration::ZERO
    };
    let started = Instant::now() + header_pause;
    let (mock_agents, built) =
        start_agents_and_stack(&args, &config, &registry, &dead_letters, started).await?;
    if !args.json {
        print_header(
            &args,
            config.origin(),
            &mock_agents,
            &status_url,
            &dead_letters.location,
        );
    }
    tokio::time::sleep_until(started).await;

    let initial_depth = dead_letters
        .sink
        .stats()
        .await
        .map_or(0, |stats| stats.depth);
    let tally = Arc::new(traffic::Tally::default());
    let sources = Arc::new(view::Sources {
        started,
        duration: args.duration,
        tally: tally.clone(),
        breakers: built.breakers.clone(),
        opened: built.breakers.iter().map(|_| AtomicU64::new(0)).collect(),
        bulkheads: built.bulkheads.clone(),
        registry: registry.clone(),
        monitor: Monitor::new(dead_letters.sink.clone(), "primary").register(&registry),
        dlq_alert_depth: DLQ_ALERT_DEPTH,
        dlq_depth: AtomicU64::new(0),
        dlq_alerted: AtomicBool::new(false),
        status_url,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let events = registry.events().subscribe();
    let (dispatcher, notifications) = notify::start(&registry, args.duration);
    let viewer = spawn_viewer(
        interactive,
        !args.json,
        &sources,
        &registry,
        events,
        notifications,
        stopped,
    );

    let until = started + args.duration;
    let traffic = traffic::drive(
        built.stack,
        tally,
        usize::from(args.callers),
        args.rate,
        args.seed,
        until,
    );
    let drained = tokio::time::timeout(args.duration + DRAIN, traffic)
        .await
        .is_ok();
    let _ = stop.send(true);
    let _ = viewer.await;
    dispatcher.abort();
    for agent in &mock_agents {
        agent.task.abort();
    }
    if !drained && !args.json {
        println!(
            "warning: requests were still in flight {} s after the run ended",
            DRAIN.as_secs()
        );
    }

    sources.refresh_depth(&registry).await;
    if let Some((sink, spill)) = &dead_letters.spill {
        // Records spilled while the broker was unreachable stay for the next run to drain.
        if sink.drain().await.is_ok() && sink.spilled().await.is_ok_and(|left| left == 0) {
            let _ = std::fs::remove_dir_all(spill);
        }
    }
    let holds = print_summary(
        &args,
        &sources,
        &dead_letters.location,
        initial_depth,
        drained,
    )?;
    Ok(if holds && drained {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_broker_urls_hide_the_password() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
    }

    #[test]
    fn durations_parse_with_or_without_a_unit() {
        assert_eq!(parse_seconds("6"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_seconds("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1_500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("NaN").is_err());
    }

    /// The default value of `steadfast demo`'s flag `id`.
    fn default_of(id: &str) -> String {
        let command = <DemoArgs as clap::Args>::augment_args(clap::Command::new("demo"));
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap();
        arg.get_default_values()[0].to_string_lossy().into_owned()
    }

    /// The shipped file's primary is behind a bulkhead no default run can fill (8 callers, one
    /// call in flight each) and a request quota far above what the demo sends, that does not
    /// pause on the scripted 429s (so the outage still reaches the breaker).
    #[test]
    fn the_shipped_primary_has_a_bulkhead_and_a_rate_limit_the_default_run_never_reaches() {
        let config = steadfast::config::StackConfig::parse(
            stack::SHIPPED_STACK,
            steadfast::config::Format::Toml,
            stack::SHIPPED_STACK_ORIGIN,
        )
        .unwrap();
        let primary = config.agent(stack::ENTRY_AGENT).unwrap();
        let bulkhead = primary.bulkhead().unwrap();
        let callers: u32 = default_of("callers").parse().unwrap();
        assert_eq!(bulkhead.max_concurrent_calls(), callers);
        assert_eq!(bulkhead.max_queue(), 0);
        let quota = primary.rate_limit().unwrap();
        assert!(
            quota.tokens_per_minute().is_none(),
            "no cost function in the demo"
        );
        let rate: f64 = default_of("rate").parse().unwrap();
        // Every request tried three times (max_retries = 2), at the default pace, fits in a
        // quarter of the quota.
        let sent_per_minute = f64::from(callers) * rate * 60.0 * 3.0;
        assert!(
            f64::from(quota.requests_per_minute().unwrap()) > 4.0 * sent_per_minute,
            "{sent_per_minute}"
        );
        assert_eq!(quota.max_pause(), Duration::ZERO);
    }

    #[test]
    fn rates_outside_what_the_demo_can_drive_are_refused() {
        assert_eq!(parse_rate("4"), Ok(4.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("1000").is_err());
    }
}
