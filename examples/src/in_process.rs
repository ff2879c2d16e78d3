//! A flaky in-process agent behind the full stack:
//! degrade > fallback (backup agent, then cache) > retry > circuit breaker > timeout > agent.
//!
//! The agent is a [`service_fn`] that does some work (it counts the words of a prompt). A
//! seeded [`ChaosLayer`] in front of it fails some calls, slows a few past the timeout, and
//! takes the agent down for an outage window in the middle of the run. The retry layer hides
//! the scattered faults; during the outage the breaker opens, so the primary fails fast and
//! the fallback layer asks a (flaky too) backup agent, then the cache of earlier answers; what
//! none of them can answer gets a degraded answer. Once the outage is over a probe closes the
//! breaker. Every answer says who gave it ([`Served`]), so every request is accounted for.
//!
//! The dead-letter layer (between degrade and fallback) joins this stack when it lands.
//!
//! ```text
//! cargo run -p steadfast-examples --example in_process
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::chaos::{ChaosConfig, ChaosHandle, ChaosLayer, Outage};
use steadfast::degrade::DegradeLayer;
use steadfast::events::Event;
use steadfast::fallback::FallbackLayer;
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use steadfast::retry::count_attempts;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// An answer and who gave it.
pub type Answer = Attributed<String>;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Seed of the chaos layer (which calls fail) and of the retry jitter.
    pub seed: u64,
    /// Requests sent, one after another.
    pub requests: u32,
    /// Pause between requests.
    pub pace: Duration,
    /// When the outage starts, from the first request.
    pub outage_after: Duration,
    /// How long the agent stays down.
    pub outage_for: Duration,
}

impl Default for Settings {
    /// 60 requests every 20 ms (about 1.5 s with the waits), an outage from 300 ms to 700 ms.
    fn default() -> Self {
        Settings {
            seed: 42,
            requests: 60,
            pace: Duration::from_millis(20),
            outage_after: Duration::from_millis(300),
            outage_for: Duration::from_millis(400),
        }
    }
}

/// What happened, request by request and in total.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Requests sent.
    pub sent: u32,
    /// Answered by the primary at its first attempt.
    pub answered_first_time: u32,
    /// Answered by the primary after one or more retries.
    pub answered_after_retry: u32,
    /// Answered by the backup agent.
    pub answered_by_backup: u32,
    /// Answered from the cache of earlier answers.
    pub answered_from_cache: u32,
    /// Given a degraded answer.
    pub degraded: u32,
    /// Failed outright (with a degrade layer that always answers: none).
    pub failed: u32,
    /// Requests whose primary call was refused by the open breaker.
    pub primary_failed_fast: u32,
    /// Calls the backup agent's code ran.
    pub backup_calls: u64,
    /// Attempts made by the retry layer, over all requests.
    pub attempts: u64,
    /// Calls the agent's own code ran (the work done).
    pub agent_calls: u64,
    /// Attempts the breaker let through to the agent (completed calls).
    pub breaker_calls: u64,
    /// Attempts the breaker refused.
    pub breaker_rejected: u64,
    /// Faults the chaos layer injected: errors, outage failures, delays past the timeout.
    pub injected_errors: u64,
    /// Calls failed by the outage.
    pub injected_outage_failures: u64,
    /// Calls slowed down.
    pub injected_delays: u64,
    /// Times the breaker opened.
    pub breaker_opened: u32,
    /// Times it closed again.
    pub breaker_closed: u32,
    /// The breaker's state at the end.
    pub final_state: BreakerState,
    /// One line per request and per breaker transition, in order.
    pub timeline: Vec<String>,
}

impl Summary {
    /// Answers by who gave them, plus failures: must equal [`sent`](Self::sent).
    pub fn accounted(&self) -> u32 {
        self.answered_first_time
            + self.answered_after_retry
            + self.answered_by_backup
            + self.answered_from_cache
            + self.degraded
            + self.failed
    }
}

/// Runs the example: builds the stack, sends [`Settings::requests`] prompts and accounts for
/// each. Takes about `requests * pace` plus the retry waits.
pub async fn run(settings: Settings) -> Result<Summary, BoxError> {
    let registry = Registry::new();
    let mut events = registry.events().subscribe();
    let agent_calls = Arc::new(AtomicU64::new(0));
    let backup_calls = Arc::new(AtomicU64::new(0));
    let (stack, chaos, breaker) = stack(
        &settings,
        &registry,
        agent_calls.clone(),
        backup_calls.clone(),
    )?;

    let mut summary = Summary::empty();
    let started = Instant::now();
    for index in 0..settings.requests {
        // Sixteen topics, asked again and again: the cache can answer a topic seen before the
        // outage, not one first asked during it.
        let prompt = format!("summarise report {} please", index % 16);
        let sent_at = Instant::now();
        let (result, attempts) = count_attempts(stack.clone().oneshot(prompt)).await;
        let at = crate::millis(sent_at - started);
        summary.record(index, at, sent_at.elapsed(), result, attempts.unwrap_or(1));
        while let Some(event) = events.try_recv() {
            summary.record_event(&event, crate::millis(started.elapsed()));
        }
        tokio::time::sleep(settings.pace).await;
    }
    while let Some(event) = events.try_recv() {
        summary.record_event(&event, crate::millis(started.elapsed()));
    }

    let counts = breaker.counts();
    summary.breaker_calls = counts.calls;
    summary.breaker_rejected = counts.rejected;
    let injected = chaos.injected();
    summary.injected_errors = injected.errors;
    summary.injected_outage_failures = injected.outage_failures;
    summary.injected_delays = injected.delays;
    summary.agent_calls = agent_calls.load(Ordering::Relaxed);
    summary.backup_calls = backup_calls.load(Ordering::Relaxed);
    summary.final_state = breaker.state();
    Ok(summary)
}

/// The stack, outer to inner: degrade > fallback (backup, cache) > retry > breaker > timeout >
/// chaos > the agent (which counts its calls in `agent_calls`); with the chaos switch and the
/// breaker's handle.
fn stack(
    settings: &Settings,
    registry: &Registry,
    agent_calls: Arc<AtomicU64>,
    backup_calls: Arc<AtomicU64>,
) -> Result<
    (
        impl Service<String, Response = Answer, Error = BoxError, Future: Send> + Clone,
        ChaosHandle,
        BreakerHandle,
    ),
    BoxError,
> {
    let chaos_config = ChaosConfig::builder()
        .seed(settings.seed)
        .error_rate(0.1)
        .latency_rate(0.05)
        .latency(Duration::from_millis(300))
        .outage(Outage::after(settings.outage_after, settings.outage_for))
        .build()?;
    // Each agent is named once; every layer acting for it takes the scope.
    let summarizer = registry.agent("summarizer");
    let backup_agent = registry.agent("backup");

    let chaos = ChaosLayer::new(&summarizer, &chaos_config);
    let chaos_handle = chaos.handle();

    let breaker = CircuitBreakerLayer::new(
        &summarizer,
        BreakerConfig::builder()
            .consecutive_failures(3)
            .initial_open_duration(Duration::from_millis(150))
            .max_open_duration(Duration::from_millis(400))
            .half_open_probes(1)
            .build()?,
    );
    let breaker_handle = breaker.handle();

    let retry = BackoffRetryLayer::new(
        &summarizer,
        RetryConfig::builder()
            .max_retries(2)
            .base(Duration::from_millis(10))
            .max_backoff(Duration::from_millis(50))
            .deadline(Duration::from_millis(500))
            .build()?,
    )
    .seed(settings.seed);

    let agent = service_fn(move |prompt: String| {
        agent_calls.fetch_add(1, Ordering::Relaxed);
        async move {
            // The "work": a model that summarises a prompt by counting its words.
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, BoxError>(Answer::new(format!(
                "{} words",
                prompt.split_whitespace().count()
            )))
        }
    });

    // A smaller backup model, flaky too (its own seeded chaos fails half its calls).
    let backup_chaos = ChaosConfig::builder()
        .seed(settings.seed.wrapping_add(1))
        .error_rate(0.5)
        .build()?;
    let backup = ServiceBuilder::new()
        .chaos(ChaosLayer::new(&backup_agent, &backup_chaos))
        .service(service_fn(move |prompt: String| {
            backup_calls.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok::<_, BoxError>(Answer::new(format!(
                    "about {} words (backup)",
                    prompt.split_whitespace().count()
                )))
            }
        }));
    let cache = ResponseCache::new(
        CacheConfig::builder()
            .max_entries(100)
            .ttl(Duration::from_secs(10))
            .max_stale(Duration::from_secs(60))
            .build()?,
        |prompt: &String| Some(prompt.clone()),
    );
    let fallback = FallbackLayer::new(&summarizer)
        .then(&backup_agent, backup)
        .then_cache(cache)
        .mark_responses();
    let degrade = DegradeLayer::new(&summarizer, |topic: &String, _error: &BoxError| {
        Some(Answer::new(format!(
            "cannot summarise {topic} right now, try again in a minute"
        )))
    })
    .view(|prompt: &String| {
        // "summarise report 14 please" -> "report 14"
        prompt
            .split_whitespace()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    })
    .mark_responses();

    // Outer to inner. The dead-letter layer goes between degrade and fallback when it lands.
    let stack = ServiceBuilder::new()
        .degrade(degrade)
        .fallback(fallback)
        .backoff_retry(retry)
        .circuit_breaker(breaker)
        .timeout(Duration::from_millis(100))
        .chaos(chaos)
        .service(agent);
    Ok((stack, chaos_handle, breaker_handle))
}

impl Summary {
    fn empty() -> Self {
        Summary {
            sent: 0,
            answered_first_time: 0,
            answered_after_retry: 0,
            answered_by_backup: 0,
            answered_from_cache: 0,
            degraded: 0,
            failed: 0,
            primary_failed_fast: 0,
            backup_calls: 0,
            attempts: 0,
            agent_calls: 0,
            breaker_calls: 0,
            breaker_rejected: 0,
            injected_errors: 0,
            injected_outage_failures: 0,
            injected_delays: 0,
            breaker_opened: 0,
            breaker_closed: 0,
            final_state: BreakerState::Closed,
            timeline: Vec::new(),
        }
    }

    fn record(
        &mut self,
        index: u32,
        at: u128,
        took: Duration,
        result: Result<Answer, BoxError>,
        attempts: u32,
    ) {
        self.sent += 1;
        self.attempts += u64::from(attempts);
        let line = match result {
            Ok(answer) => {
                let served = answer.served();
                let text = &answer.value;
                match served {
                    Served::Primary if attempts == 1 => {
                        self.answered_first_time += 1;
                        format!("{at:>5} ms  #{index:<3} primary     {text}")
                    }
                    Served::Primary => {
                        self.answered_after_retry += 1;
                        format!(
                            "{at:>5} ms  #{index:<3} primary     {text} (after {attempts} attempts, {} ms)",
                            crate::millis(took)
                        )
                    }
                    Served::Fallback { .. } => {
                        self.answered_by_backup += 1;
                        format!("{at:>5} ms  #{index:<3} backup      {text}")
                    }
                    Served::Cache { age } => {
                        self.answered_from_cache += 1;
                        format!(
                            "{at:>5} ms  #{index:<3} cache       {text} (cached {} ms ago)",
                            crate::millis(age)
                        )
                    }
                    Served::Degraded { reason } => {
                        self.degraded += 1;
                        format!("{at:>5} ms  #{index:<3} degraded    {text} ({reason})")
                    }
                    other @ Served::Checkpoint { .. } => {
                        self.failed += 1;
                        format!("{at:>5} ms  #{index:<3} UNEXPECTED  {text} (served by {other})")
                    }
                }
            }
            Err(error) => {
                self.failed += 1;
                format!("{at:>5} ms  #{index:<3} FAILED      {error}")
            }
        };
        self.timeline.push(line);
    }

    fn record_event(&mut self, event: &Event, at: u128) {
        let text = match event {
            Event::CircuitOpened {
                reason, open_for, ..
            } => {
                self.breaker_opened += 1;
                format!(
                    "circuit OPENED ({reason:?}) for {} ms",
                    open_for.map_or(0, crate::millis)
                )
            }
            Event::CircuitHalfOpen { .. } => "circuit half-open: probing".to_string(),
            Event::CircuitClosed { .. } => {
                self.breaker_closed += 1;
                "circuit CLOSED: the agent recovered".to_string()
            }
            _ => return,
        };
        self.timeline.push(format!("{at:>5} ms  ----  {text}"));
    }
}
