//! What the demo shows: a live panel on a terminal, plain timestamped lines otherwise, and the
//! final summary with its accounting identity.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use steadfast::bulkhead::BulkheadHandle;
use steadfast::circuit_breaker::BreakerHandle;
use steadfast::dead_letter::Monitor;
use steadfast::events::{Event, EventReceiver};
use steadfast::notify::Notification;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::traffic::{Counts, Tally};

/// Events kept on the live panel.
const TIMELINE: usize = 12;

/// What every view reads.
pub(crate) struct Sources {
    pub(crate) started: Instant,
    pub(crate) duration: Duration,
    pub(crate) tally: Arc<Tally>,
    pub(crate) breakers: Vec<BreakerHandle>,
    /// Circuit-opened events seen per breaker (same order as `breakers`).
    pub(crate) opened: Vec<AtomicU64>,
    /// The bulkheads the file gave agents (the entry agent's first).
    pub(crate) bulkheads: Vec<BulkheadHandle>,
    /// Where each agent's refusals are counted.
    pub(crate) registry: steadfast::Registry,
    /// Registered with the registry, without a threshold of its own (see `refresh_depth`).
    pub(crate) monitor: Monitor,
    /// Dead letters above which the first crossing goes on the event bus.
    pub(crate) dlq_alert_depth: u64,
    pub(crate) dlq_depth: AtomicU64,
    pub(crate) dlq_alerted: AtomicBool,
    pub(crate) status_url: String,
}

impl Sources {
    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Calls the bulkhead of `bulkhead`'s agent refused so far.
    fn refused(&self, bulkhead: &BulkheadHandle) -> u64 {
        self.registry
            .counters(bulkhead.agent())
            .map_or(0, |counters| counters.bulkhead_rejected)
    }

    /// Refreshes the DLQ depth from the sink (the monitor sets the registry's per-agent depths
    /// too) and puts the first crossing of the depth threshold on the event bus.
    pub(crate) async fn refresh_depth(&self, registry: &steadfast::Registry) {
        let Ok((stats, _)) = self.monitor.check().await else {
            return;
        };
        self.dlq_depth.store(stats.depth, Ordering::Relaxed);
        // The monitor would raise its alert at every check over the threshold; the timeline
        // shows the first crossing only.
        if stats.depth > self.dlq_alert_depth && !self.dlq_alerted.swap(true, Ordering::Relaxed) {
            registry.emit(Event::DlqOverThreshold {
                queue: Arc::from("primary"),
                depth: stats.depth,
                threshold: self.dlq_alert_depth,
            });
        }
    }

    /// Counts breaker openings (a breaker's own `trips` resets when it closes).
    fn note(&self, event: &Event) {
        if let Event::CircuitOpened { agent, .. } = event
            && let Some(index) = self.breakers.iter().position(|b| b.name() == &**agent)
        {
            self.opened[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn opened(&self, index: usize) -> u64 {
        self.opened
            .get(index)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}

/// Whether an event goes on the timeline (breaker and health transitions, DLQ alerts); retries
/// and fallbacks are too many to list and show up in the counters instead.
fn on_timeline(event: &Event) -> bool {
    matches!(
        event,
        Event::CircuitOpened { .. }
            | Event::CircuitHalfOpen { .. }
            | Event::CircuitClosed { .. }
            | Event::AgentUnhealthy { .. }
            | Event::AgentRecovered { .. }
            | Event::DlqOverThreshold { .. }
    )
}

/// One status line: totals so far and each breaker.
pub(crate) fn status_line(sources: &Sources) -> String {
    let counts = sources.tally.counts();
    let mut line = format!(
        "sent {} | primary {} | fallback {} | cached {} | degraded {} | dead-lettered {} | other {} | dlq depth {} |",
        counts.sent,
        counts.primary,
        counts.fallback(),
        counts.cached,
        counts.degraded,
        counts.dead_lettered,
        counts.other,
        sources.dlq_depth.load(Ordering::Relaxed),
    );
    for breaker in &sources.breakers {
        let _ = write!(line, " {} {}", breaker.name(), breaker.state());
    }
    if let Some(streams) = super::streaming::status() {
        let _ = write!(line, " {streams}");
    }
    line
}

/// Plain lines for logs: each timeline event as it happens and a status line every few seconds,
/// until `stop` fires.
/// With `echo` false (`--json`) nothing is printed, but events are still noted for the summary.
pub(crate) async fn plain(
    sources: Arc<Sources>,
    registry: steadfast::Registry,
    mut events: EventReceiver,
    mut notifications: mpsc::Receiver<Notification>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    echo: bool,
) {
    let period = Duration::from_secs(if sources.duration > Duration::from_secs(20) {
        5
    } else {
        2
    });
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            event = events.recv() => match event.inspect(|event| sources.note(event)) {
                Some(event) if echo && on_timeline(&event) => println!("[{:6.2}s] event  {event}", sources.elapsed()),
                Some(_) => {}
                None => break,
            },
            Some(notification) = notifications.recv() => {
                if echo {
                    println!("[{:6.2}s] notify {}", sources.elapsed(), notification_line(&notification));
                }
            }
            _ = ticker.tick() => {
                sources.refresh_depth(&registry).await;
                if echo {
                    println!("[{:6.2}s] status {}", sources.elapsed(), status_line(&sources));
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Events published before the stop, not yet printed.
    while let Some(event) = events.try_recv() {
        sources.note(&event);
        if echo && on_timeline(&event) {
            println!("[{:6.2}s] event  {event}", sources.elapsed());
        }
    }
}

/// A notification as one timeline line: `alert: <title>` or `recovery: <title>`.
fn notification_line(notification: &Notification) -> String {
    format!("{}: {}", notification.kind.as_str(), notification.title)
}

/// The live panel: redrawn every 500 ms until `stop` fires.
pub(crate) async fn live(
    sources: Arc<Sources>,
    registry: steadfast::Registry,
    mut events: EventReceiver,
    mut notifications: mpsc::Receiver<Notification>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut timeline: VecDeque<String> = VecDeque::with_capacity(TIMELINE);
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            event = events.recv() => match event.inspect(|event| sources.note(event)) {
                Some(event) if on_timeline(&event) => {
                    if timeline.len() == TIMELINE {
                        timeline.pop_front();
                    }
                    timeline.push_back(format!("{:6.2}s  {event}", sources.elapsed()));
                }
                Some(_) => {}
                None => break,
            },
            Some(notification) = notifications.recv() => {
                if timeline.len() == TIMELINE {
                    timeline.pop_front();
                }
                timeline.push_back(format!(
                    "{:6.2}s  notification sent: {}",
                    sources.elapsed(),
                    notification_line(&notification)
                ));
            }
            _ = ticker.tick() => {
                sources.refresh_depth(&registry).await;
                let panel = panel(&sources, &timeline);
                let mut stdout = std::io::stdout().lock();
                // Home the cursor and clear the screen, then draw.
                let _ = write!(stdout, "\x1b[H\x1b[2J{panel}");
                let _ = stdout.flush();
            }
            _ = stop.changed() => break,
        }
    }
}

fn panel(sources: &Sources, timeline: &VecDeque<String>) -> String {
    let counts = sources.tally.counts();
    let elapsed = sources.elapsed().min(sources.duration.as_secs_f64());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "steadfast demo  {elapsed:5.1}s / {:.0}s   status UI: {}\n",
        sources.duration.as_secs_f64(),
        sources.status_url
    );
    let _ = writeln!(
        out,
        "  {:<8} {:<10} {:>7} {:>9} {:>9} {:>6}",
        "agent", "breaker", "calls", "failures", "rejected", "opened"
    );
    for (index, breaker) in sources.breakers.iter().enumerate() {
        let c = breaker.counts();
        let _ = writeln!(
            out,
            "  {:<8} {:<10} {:>7} {:>9} {:>9} {:>6}",
            breaker.name(),
            breaker.state().to_string(),
            c.calls,
            c.failures,
            c.rejected,
            sources.opened(index)
        );
    }
    let _ = writeln!(
        out,
        "\n  sent {}   primary {}   fallback {} (backup {}, slow {})   cached {}   degraded {}   dead-lettered {}   other {}",
        counts.sent,
        counts.primary,
        counts.fallback(),
        counts.fallback_backup,
        counts.fallback_slow,
        counts.cached,
        counts.degraded,
        counts.dead_lettered,
        counts.other,
    );
    if let Some(streams) = super::streaming::status() {
        let _ = writeln!(out, "  {streams}");
    }
    let _ = writeln!(
        out,
        "  in flight {}   DLQ depth {}\n\n  events",
        counts.sent.saturating_sub(counts.finished()),
        sources.dlq_depth.load(Ordering::Relaxed),
    );
    for line in timeline {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The summary as one JSON object (`demo --json`); `true` when every request is accounted for.
pub(crate) fn summary_json(
    sources: &Sources,
    seed: u64,
    dlq_location: &str,
    initial_depth: u64,
    drained: bool,
) -> (serde_json::Value, bool) {
    let counts = sources.tally.counts();
    let breakers: Vec<serde_json::Value> = sources
        .breakers
        .iter()
        .enumerate()
        .map(|(index, breaker)| {
            let c = breaker.counts();
            serde_json::json!({
                "name": breaker.name(),
                "state": breaker.state().to_string(),
                "opened": sources.opened(index),
                "calls": c.calls,
                "failures": c.failures,
                "rejected": c.rejected,
            })
        })
        .collect();
    let bulkheads: Vec<serde_json::Value> = sources
        .bulkheads
        .iter()
        .map(|bulkhead| {
            serde_json::json!({
                "name": bulkhead.agent(),
                "limit": bulkhead.limit(),
                "refused": sources.refused(bulkhead),
            })
        })
        .collect();
    let depth = sources.dlq_depth.load(Ordering::Relaxed);
    let (_, holds) = identity(&counts);
    let summary = serde_json::json!({
        "seed": seed,
        "duration_seconds": sources.duration.as_secs_f64(),
        "sent": counts.sent,
        "primary": counts.primary,
        "fallback": { "backup": counts.fallback_backup, "slow": counts.fallback_slow },
        "cached": counts.cached,
        "degraded": counts.degraded,
        "dead_lettered": counts.dead_lettered,
        "other": counts.other,
        "unfinished": counts.sent.saturating_sub(counts.finished()),
        "errors": sources.tally.errors(),
        "breakers": breakers,
        "bulkheads": bulkheads,
        "dlq": {
            "depth": depth,
            "added": depth.saturating_sub(initial_depth),
            "location": dlq_location,
        },
        "status_url": sources.status_url,
        "drained": drained,
        "accounting_ok": holds,
    });
    (summary, holds)
}

/// The accounting identity: every request sent has exactly one outcome.
pub(crate) fn identity(counts: &Counts) -> (String, bool) {
    let holds = counts.sent == counts.finished() && counts.other == 0;
    let line = format!(
        "accounting: sent={} primary={} fallback={} cached={} degraded={} dead_lettered={} other={} -> {}",
        counts.sent,
        counts.primary,
        counts.fallback(),
        counts.cached,
        counts.degraded,
        counts.dead_lettered,
        counts.other,
        if holds { "OK" } else { "MISMATCH" }
    );
    (line, holds)
}

/// The summary printed at the end; `true` when every request is accounted for.
pub(crate) fn summary(
    sources: &Sources,
    seed: u64,
    dlq_location: &str,
    initial_depth: u64,
) -> bool {
    let counts = sources.tally.counts();
    let percent = |n: u64| {
        if counts.sent == 0 {
            0.0
        } else {
            n as f64 * 100.0 / counts.sent as f64
        }
    };
    println!();
    println!(
        "summary: {} requests in {:.1} s (seed {seed})",
        counts.sent,
        sources.duration.as_secs_f64()
    );
    let rows = [
        ("primary", counts.primary, String::new()),
        (
            "fallback",
            counts.fallback(),
            format!(
                "(backup {}, slow {})",
                counts.fallback_backup, counts.fallback_slow
            ),
        ),
        ("cached", counts.cached, "(stale-if-error)".to_string()),
        (
            "degraded",
            counts.degraded,
            "(template, marked degraded)".to_string(),
        ),
        (
            "dead-lettered",
            counts.dead_lettered,
            format!("({dlq_location})"),
        ),
        ("other", counts.other, "(unexpected: errors)".to_string()),
    ];
    for (name, count, note) in rows {
        let row = format!("  {name:<14}{count:>6}  {:5.1}%  {note}", percent(count));
        println!("{}", row.trim_end());
    }
    let unfinished = counts.sent.saturating_sub(counts.finished());
    if unfinished > 0 {
        println!("  {unfinished} requests never finished before the drain deadline");
    }
    for error in sources.tally.errors() {
        println!("  error: {error}");
    }
    for (index, breaker) in sources.breakers.iter().enumerate() {
        let c = breaker.counts();
        println!(
            "  breaker {:<8} {:<10} opened {}x  calls {}  failures {}  rejected {}",
            breaker.name(),
            breaker.state().to_string(),
            sources.opened(index),
            c.calls,
            c.failures,
            c.rejected
        );
    }
    for bulkhead in &sources.bulkheads {
        println!(
            "  bulkhead {:<7} limit {}  refused {} (answered by the fallback chain)",
            bulkhead.agent(),
            bulkhead.limit(),
            sources.refused(bulkhead)
        );
    }
    let depth = sources.dlq_depth.load(Ordering::Relaxed);
    let added = depth.saturating_sub(initial_depth);
    if added == counts.dead_lettered + counts.degraded {
        // Every final failure is dead-lettered; chat requests then get a degraded answer.
        println!(
            "  dlq depth {depth}: {added} new = {} batch jobs dead-lettered + {} chat requests kept for replay behind their degraded answer",
            counts.dead_lettered, counts.degraded
        );
    } else {
        println!("  dlq depth {depth} ({added} new this run)");
    }
    let (line, holds) = identity(&counts);
    println!("{line}");
    holds
}
