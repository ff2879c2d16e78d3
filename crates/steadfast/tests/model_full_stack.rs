//! Model-based property test of the whole stack of DESIGN §1, outer to inner:
//! Degrade > DeadLetter > Fallback > Retry > CircuitBreaker > Timeout > agent, every layer made
//! from one agent scope (the primary's), as DESIGN §1 shows.
//!
//! proptest generates a sequence of steps: calls whose primary attempts follow a script (ok,
//! transient error, caller fault, slower than the timeout), whose backup answers or fails, and
//! which may or may not be degraded; and pauses of the clock. Each case runs the real stack on
//! its own paused-clock runtime and, step by step, a small reference model written from the
//! docs (circuit-breaker.md, retry.md, fallback-and-degrade.md, dead-letter.md). They must agree
//! on: where each request ended (primary, fallback, cache, degraded, dead-lettered: exactly one),
//! the primary attempts and the backup call of each request and their order, the time each
//! request took (the timeouts and backoff waits), the breaker's state after every step, the
//! cache's answers and their age, the dead-letter queue (exactly the requests no agent
//! answered, in order), and the registry: only the two agents, each counter its layers' events
//! fill (retries, exhausted retries, fallbacks, cache hits, degraded, dead-lettered) and the
//! primary's answers equal to what the model counted.
//!
//! Configs are chosen so the model stays simple and exact: the breaker trips only on 3
//! consecutive failures (the rate rule is unreachable), probes one call at a time and closes on
//! its success, and opens for 1 s, then 2 s, then 3 s (the cap); retries wait 100 ms then
//! 200 ms (no jitter) and the budget never binds; the backup has no breaker and does not take
//! caller faults.
#![cfg(all(
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback",
    feature = "degrade",
    feature = "dead-letter"
))]

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use steadfast::cache::{CacheConfig, ResponseCache};
use steadfast::circuit_breaker::SlidingWindow;
use steadfast::dead_letter::{Bytes, DeadLetterLayer, DeadLettered, MemorySink};
use steadfast::degrade::DegradeLayer;
use steadfast::error::find;
use steadfast::fallback::{AllFailed, FallbackLayer};
use steadfast::prelude::*;
use steadfast::provenance::{Attributed, Provenance, Served};
use steadfast::registry::CountersSnapshot;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a "slow" attempt would take: well past the timeout.
const SLOW: Duration = Duration::from_secs(60);
const MAX_RETRIES: u32 = 2;
const BASE: Duration = Duration::from_millis(100);
const TRIP_AFTER: u32 = 3;
const INITIAL_OPEN: Duration = Duration::from_secs(1);
const MAX_OPEN: Duration = Duration::from_secs(3);
/// The agent every layer of the stack is made from: `AllFailed` lists the primary under it.
const AGENT: &str = "primary";

// ---------------------------------------------------------------------------------------------
// Steps

/// What the primary does on one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    Ok,
    Transient,
    CallerFault,
    /// Answers only after [`SLOW`]: the timeout cuts it at [`TIMEOUT`].
    Slow,
}

#[derive(Clone, Debug)]
struct CallSpec {
    /// Cache key: a few keys so that cached answers get reused.
    key: u8,
    degradable: bool,
    /// The primary's attempt `n` follows `primary[n]`.
    primary: [Attempt; MAX_RETRIES as usize + 1],
    backup_ok: bool,
}

#[derive(Clone, Debug)]
enum Step {
    Call(CallSpec),
    /// Moves the paused clock on by this many milliseconds.
    Advance(u64),
}

fn attempt() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        4 => Just(Attempt::Ok),
        4 => Just(Attempt::Transient),
        1 => Just(Attempt::CallerFault),
        1 => Just(Attempt::Slow),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let call = (
        0u8..3,
        any::<bool>(),
        [attempt(), attempt(), attempt()],
        any::<bool>(),
    )
        .prop_map(|(key, degradable, primary, backup_ok)| {
            Step::Call(CallSpec {
                key,
                degradable,
                primary,
                backup_ok,
            })
        });
    // Multiples of 100 ms, like every other duration here, so that pauses land exactly on the
    // end of an open period as well as before and after it.
    let advance = (1u64..=90).prop_map(|tenths| Step::Advance(tenths * 100));
    prop_oneof![4 => call, 1 => advance]
}

// ---------------------------------------------------------------------------------------------
// The scripted agents

/// The request: carries its own script, so clones made by retry and fallback share it.
#[derive(Debug)]
struct Prompt {
    id: u32,
    spec: CallSpec,
    primary_calls: AtomicU32,
}
type Request = Arc<Prompt>;
type Reply = Attributed<String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callee {
    Primary,
    Backup,
}

/// Every agent call, in order: `(request id, agent)`.
type CallLog = Arc<Mutex<Vec<(u32, Callee)>>>;

/// The primary's transient error (a 529).
#[derive(Debug)]
struct Overloaded;
impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("529 overloaded")
    }
}
impl Error for Overloaded {}

/// The primary's caller fault (a 400).
#[derive(Debug)]
struct BadPrompt;
impl fmt::Display for BadPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("400 bad prompt")
    }
}
impl Error for BadPrompt {}

/// The primary's classifier, given once to its agent and so used by every layer: a
/// `BadPrompt` anywhere in the chain is the caller's fault, and any other error is transient.
/// Errors that classify themselves (the timeout's `Elapsed`, `CircuitOpen`, `AllFailed`) never
/// reach it.
#[allow(clippy::needless_pass_by_value)] // the `Classify` closure signature
fn classify(result: Result<&Reply, &BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::success(),
        Err(error) if find::<BadPrompt>(&**error).is_some() => Outcome::caller_fault("bad prompt"),
        Err(_) => Outcome::transient("overloaded"),
    }
}

// ---------------------------------------------------------------------------------------------
// The reference model

/// The breaker as the docs describe it, for this config (3 consecutive failures, one probe,
/// open 1 s, 2 s, then 3 s (the cap), state changes only on calls).
#[derive(Debug)]
struct ModelBreaker {
    state: BreakerState,
    consecutive: u32,
    trips: u32,
    open_until: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Success,
    Failure,
    CallerFault,
}

impl ModelBreaker {
    /// Whether a call at `now` is admitted (and so reaches the agent).
    fn admit(&mut self, now: Duration) -> bool {
        match self.state {
            BreakerState::Open if now < self.open_until => false,
            BreakerState::Open => {
                self.state = BreakerState::HalfOpen; // this call is the probe
                true
            }
            _ => true,
        }
    }

    fn record(&mut self, kind: Kind, now: Duration) {
        match (self.state, kind) {
            // A caller fault says nothing about the agent, closed or half-open.
            (_, Kind::CallerFault) => {}
            (BreakerState::Closed, Kind::Success) => self.consecutive = 0,
            (BreakerState::Closed, Kind::Failure) => {
                self.consecutive += 1;
                if self.consecutive >= TRIP_AFTER {
                    self.open(now);
                }
            }
            (BreakerState::HalfOpen, Kind::Success) => {
                self.state = BreakerState::Closed;
                self.consecutive = 0;
                self.trips = 0;
            }
            (BreakerState::HalfOpen, Kind::Failure) => self.open(now),
            (state, kind) => unreachable!("{kind:?} recorded while {state:?}"),
        }
    }

    fn open(&mut self, now: Duration) {
        self.trips += 1;
        let open_for = INITIAL_OPEN
            .saturating_mul(1 << (self.trips - 1).min(16))
            .min(MAX_OPEN);
        self.open_until = now + open_for;
        self.state = BreakerState::Open;
    }
}

/// Where a request ended, with what the model can predict of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Primary,
    Fallback,
    /// The primary answer of request `from`, this old.
    Cache {
        from: u32,
        age: Duration,
    },
    Degraded,
    DeadLettered,
}

#[derive(Debug)]
struct Expected {
    end: End,
    /// The agent calls of this request, in order.
    calls: Vec<Callee>,
    elapsed: Duration,
    /// Whether the final failure (if any) was the caller's fault.
    caller_fault: bool,
}

#[derive(Debug)]
struct Model {
    now: Duration,
    breaker: ModelBreaker,
    /// Cache key -> (request whose primary answer is stored, when).
    cache: HashMap<u8, (u32, Duration)>,
    /// What the queue must hold: (request id, whether the failure was the caller's fault).
    dead_letters: Vec<(u32, bool)>,
    /// Retries the retry layer scheduled, and the calls whose retries ran out.
    retries: u64,
    retries_exhausted: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            now: Duration::ZERO,
            breaker: ModelBreaker {
                state: BreakerState::Closed,
                consecutive: 0,
                trips: 0,
                open_until: Duration::ZERO,
            },
            cache: HashMap::new(),
            dead_letters: Vec::new(),
            retries: 0,
            retries_exhausted: 0,
        }
    }

    fn call(&mut self, id: u32, spec: &CallSpec) -> Expected {
        let started = self.now;
        let mut calls = Vec::new();
        // Retry > CircuitBreaker > Timeout > primary.
        let mut final_kind = Kind::Failure;
        let mut attempts = 0;
        loop {
            if !self.breaker.admit(self.now) {
                break; // `CircuitOpen`: an agent fault, never retried
            }
            let attempt = spec.primary[attempts];
            attempts += 1;
            calls.push(Callee::Primary);
            let kind = match attempt {
                Attempt::Ok => Kind::Success,
                Attempt::Transient => Kind::Failure,
                Attempt::CallerFault => Kind::CallerFault,
                Attempt::Slow => {
                    self.now += TIMEOUT;
                    Kind::Failure
                }
            };
            self.breaker.record(kind, self.now);
            final_kind = kind;
            if kind != Kind::Failure {
                break;
            }
            if attempts > MAX_RETRIES as usize {
                self.retries_exhausted += 1;
                break;
            }
            // Retry `attempts` waits base x 2^(attempts - 1), no jitter.
            self.retries += 1;
            self.now += BASE * (1 << (attempts - 1));
        }
        // Fallback: the backup (not for caller faults), then the cache.
        let answered = match final_kind {
            Kind::Success => {
                self.cache.insert(spec.key, (id, self.now));
                Some(End::Primary)
            }
            Kind::CallerFault => None,
            Kind::Failure => {
                calls.push(Callee::Backup);
                if spec.backup_ok {
                    Some(End::Fallback)
                } else {
                    self.cache.get(&spec.key).map(|&(from, stored)| End::Cache {
                        from,
                        age: self
                            .now
                            .checked_sub(stored)
                            .expect("the model clock only moves on"),
                    })
                }
            }
        };
        // DeadLetter keeps what no agent answered; Degrade answers it if it may.
        let end = answered.unwrap_or_else(|| {
            self.dead_letters
                .push((id, final_kind == Kind::CallerFault));
            if spec.degradable {
                End::Degraded
            } else {
                End::DeadLettered
            }
        });
        Expected {
            end,
            calls,
            elapsed: self
                .now
                .checked_sub(started)
                .expect("the model clock only moves on"),
            caller_fault: final_kind == Kind::CallerFault,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real stack

#[derive(Default, Debug, PartialEq, Eq)]
struct Tally {
    primary: u32,
    fallback: u32,
    cache: u32,
    degraded: u32,
    dead_lettered: u32,
}

impl Tally {
    fn count(&mut self, end: &End) {
        match end {
            End::Primary => self.primary += 1,
            End::Fallback => self.fallback += 1,
            End::Cache { .. } => self.cache += 1,
            End::Degraded => self.degraded += 1,
            End::DeadLettered => self.dead_lettered += 1,
        }
    }

    fn total(&self) -> u32 {
        self.primary + self.fallback + self.cache + self.degraded + self.dead_lettered
    }
}

fn parse_id(text: &str, prefix: &str) -> Option<u32> {
    text.strip_prefix(prefix)?.parse().ok()
}

#[allow(clippy::too_many_lines)] // one case, read top to bottom
async fn run_case(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let log: CallLog = Arc::default();
    let primary = {
        let log = log.clone();
        service_fn(move |prompt: Request| {
            let n = prompt.primary_calls.fetch_add(1, Ordering::SeqCst) as usize;
            log.lock().unwrap().push((prompt.id, Callee::Primary));
            let attempt = prompt.spec.primary.get(n).copied();
            async move {
                let answer = Attributed::new(format!("primary#{}", prompt.id));
                match attempt {
                    Some(Attempt::Ok) => Ok::<Reply, BoxError>(answer),
                    Some(Attempt::Transient) => Err(Overloaded.into()),
                    Some(Attempt::CallerFault) => Err(BadPrompt.into()),
                    Some(Attempt::Slow) => {
                        tokio::time::sleep(SLOW).await;
                        Ok(answer)
                    }
                    None => Err(format!("unscripted primary attempt {}", n + 1).into()),
                }
            }
        })
    };
    let backup = {
        let log = log.clone();
        service_fn(move |prompt: Request| {
            log.lock().unwrap().push((prompt.id, Callee::Backup));
            let ok = prompt.spec.backup_ok;
            async move {
                if ok {
                    Ok::<Reply, BoxError>(Attributed::new(format!("backup#{}", prompt.id)))
                } else {
                    Err(Overloaded.into())
                }
            }
        })
    };

    let sink = MemorySink::new(1_000);
    let cache = ResponseCache::new(
        CacheConfig::builder()
            .ttl(Duration::from_secs(3_600))
            .max_stale(Duration::from_secs(3_600))
            .build()
            .unwrap(),
        |prompt: &Request| Some(prompt.spec.key),
    );
    // The agent is named once, with its classifier; every layer of its stack is made from it.
    let registry = Registry::new();
    let agent = registry.agent(AGENT).classifier(classify);
    let backup_agent = registry.agent("backup");
    let breaker = CircuitBreakerLayer::new(
        &agent,
        BreakerConfig::builder()
            .consecutive_failures(TRIP_AFTER)
            // The rate rule would need 10,000 calls, all failed: out of reach of a case.
            .failure_rate_threshold(1.0)
            .window(SlidingWindow::Count(10_000))
            .min_calls(10_000)
            .initial_open_duration(INITIAL_OPEN)
            .open_duration_multiplier(2.0)
            .max_open_duration(MAX_OPEN)
            .half_open_probes(1)
            .build()
            .unwrap(),
    );
    let retry = BackoffRetryLayer::new(
        &agent,
        RetryConfig::builder()
            .max_retries(MAX_RETRIES)
            .base(BASE)
            .multiplier(2.0)
            .max_backoff(Duration::from_secs(10))
            .jitter(Jitter::None)
            // A budget that never binds: at most 2 retries per request.
            .budget_ratio(1_000.0)
            .budget_min_per_sec(100_000)
            .build()
            .unwrap(),
    );

    let stack = ServiceBuilder::new()
        .layer(
            DegradeLayer::new(&agent, |view: &(u32, bool), _: &BoxError| {
                let (id, degradable) = *view;
                degradable.then(|| Attributed::new(format!("degraded#{id}")))
            })
            .view(|prompt: &Request| (prompt.id, prompt.spec.degradable))
            .mark_responses(),
        )
        .layer(
            DeadLetterLayer::new(&agent, sink.clone()).encoder(|prompt: &Request| {
                Ok::<_, BoxError>(Bytes::from(prompt.id.to_string().into_bytes()))
            }),
        )
        .layer(
            FallbackLayer::new(&agent)
                .then(&backup_agent, backup)
                .then_cache(cache)
                .mark_responses(),
        )
        .layer(retry)
        .layer(breaker.clone())
        .timeout(TIMEOUT)
        .service(primary);

    let handle = breaker.handle();
    let mut model = Model::new();
    let mut tally = Tally::default();
    let mut expected_tally = Tally::default();
    let mut expected_log = Vec::new();
    let mut sent = 0;
    for (index, step) in steps.into_iter().enumerate() {
        match step {
            Step::Advance(millis) => {
                let by = Duration::from_millis(millis);
                tokio::time::advance(by).await;
                model.now += by;
            }
            Step::Call(spec) => {
                sent += 1;
                let id = u32::try_from(index).unwrap();
                let expected = model.call(id, &spec);
                expected_tally.count(&expected.end);
                expected_log.extend(expected.calls.iter().map(|&agent| (id, agent)));
                let prompt = Arc::new(Prompt {
                    id,
                    spec,
                    primary_calls: AtomicU32::new(0),
                });

                let started = Instant::now();
                let result = stack.clone().oneshot(prompt.clone()).await;
                let elapsed = started.elapsed();

                let end = match &result {
                    Ok(reply) => match reply.served() {
                        Served::Primary => {
                            prop_assert_eq!(&reply.value, &format!("primary#{id}"));
                            End::Primary
                        }
                        Served::Fallback { name } => {
                            prop_assert_eq!(&*name, "backup");
                            prop_assert_eq!(&reply.value, &format!("backup#{id}"));
                            End::Fallback
                        }
                        Served::Cache { age } => {
                            let from = parse_id(&reply.value, "primary#");
                            prop_assert!(from.is_some(), "cache served {:?}", reply.value);
                            End::Cache {
                                from: from.unwrap(),
                                age,
                            }
                        }
                        Served::Degraded { .. } => {
                            prop_assert_eq!(&reply.value, &format!("degraded#{id}"));
                            End::Degraded
                        }
                        other @ Served::Checkpoint { .. } => {
                            prop_assert!(
                                false,
                                "no checkpoint layer in this stack, yet served by {}",
                                other
                            );
                            unreachable!()
                        }
                    },
                    Err(error) => {
                        prop_assert!(
                            error.is::<DeadLettered>(),
                            "request {} ended in an unaccounted error: {}",
                            id,
                            error
                        );
                        // Fallback order and caller faults, from the error the queue kept.
                        let all_failed = find::<AllFailed>(&**error);
                        if expected.caller_fault {
                            prop_assert!(find::<BadPrompt>(&**error).is_some());
                            prop_assert!(
                                all_failed.is_none(),
                                "a caller fault went to an alternative: {}",
                                error
                            );
                        } else {
                            prop_assert!(all_failed.is_some(), "not AllFailed: {}", error);
                            let tried: Vec<&str> = all_failed
                                .unwrap()
                                .attempts()
                                .iter()
                                .map(|(name, _)| &**name)
                                .collect();
                            prop_assert_eq!(tried, [AGENT, "backup", "cache"]);
                        }
                        End::DeadLettered
                    }
                };
                tally.count(&end);

                prop_assert_eq!(&end, &expected.end, "request {}: where it ended", id);
                prop_assert_eq!(
                    prompt.primary_calls.load(Ordering::SeqCst) as usize,
                    expected
                        .calls
                        .iter()
                        .filter(|&&a| a == Callee::Primary)
                        .count(),
                    "request {}: primary attempts",
                    id
                );
                prop_assert_eq!(elapsed, expected.elapsed, "request {}: time taken", id);
            }
        }
        prop_assert_eq!(
            handle.state(),
            model.breaker.state,
            "breaker state after step {}",
            index
        );
    }

    // Every request ends in exactly one place, and the places are the model's.
    prop_assert_eq!(tally.total(), sent);
    prop_assert_eq!(&tally, &expected_tally);
    // Agents were called exactly as the model says: the primary's attempts, then the backup,
    // never the backup for a caller fault.
    prop_assert_eq!(&*log.lock().unwrap(), &expected_log);
    // The queue holds exactly the requests no agent answered, in order, a caller fault
    // recorded as one.
    let records = sink.records();
    let kept: Vec<(u32, bool)> = records
        .iter()
        .map(|record| {
            let id = std::str::from_utf8(&record.request)
                .unwrap()
                .parse()
                .unwrap();
            (id, record.outcome == OutcomeKind::CallerFault)
        })
        .collect();
    prop_assert_eq!(&kept, &model.dead_letters);
    // The registry knows the two agents and nothing else, and counted, from the layers'
    // events, what the model counted.
    prop_assert_eq!(registry.agents(), ["backup", AGENT]);
    let counted = registry.counters(AGENT).unwrap();
    let expected = (
        u64::from(expected_tally.primary),
        u64::from(expected_tally.fallback),
        u64::from(expected_tally.cache),
        u64::from(expected_tally.degraded),
        // Dead-letter sits inside degrade: a degraded answer's request was kept too.
        model.dead_letters.len() as u64,
        model.retries,
        model.retries_exhausted,
    );
    prop_assert_eq!(
        (
            counted.primary,
            counted.fallbacks,
            counted.cache_hits,
            counted.degraded,
            counted.dead_lettered,
            counted.retries,
            counted.retries_exhausted,
        ),
        expected,
        "registry counters (primary, fallbacks, cache hits, degraded, dead-lettered, retries, \
         exhausted)"
    );
    prop_assert_eq!(
        (
            counted.retry_budget_exhausted,
            counted.deadlines_exceeded,
            counted.dead_letter_failures
        ),
        (0, 0, 0)
    );
    prop_assert_eq!(
        registry.counters("backup").unwrap(),
        CountersSnapshot::default()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn full_stack_agrees_with_the_reference_model_on_every_request(
        steps in vec(step(), 1..=30),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(run_case(steps))?;
    }
}
