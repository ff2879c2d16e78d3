use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tower::{ServiceExt, service_fn};

use super::*;
use crate::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadFull, Readiness};
use crate::circuit_breaker::SlidingWindow;
use crate::classify::OutcomeKind;
use crate::error::BoxError;
use crate::rate_limit::RateLimited;
use crate::registry::Registry;
use crate::retry::Jitter;

const FULL: &str = r#"
# Every key of the schema at least once.
[agents.primary]
endpoint = "mock:primary"
health_check = "/health"
classifier = "default"
timeout = "800ms"
fallback = ["backup", "spare"]

[agents.primary.retry]
max_retries = 2
base = "1ms"
max_backoff = "4ms"
jitter = "none"
deadline = "1m30s"

[agents.primary.breaker]
consecutive_failures = 50
window = { count = 20 }
min_calls = 10
initial_open_duration = "250ms"

[agents.primary.rate_limit]
requests_per_minute = 600
tokens_per_minute = 100_000
burst = 0.5
max_wait = "2s"
max_pause = "30s"

[agents.primary.bulkhead]
max_concurrent = 8
max_queue = 4
max_wait = "250ms"
readiness = "shed_in_call"

[agents.primary.bulkhead.adaptive]
initial_limit = 4
min_limit = 2
backoff = 0.5
latency_threshold = "2s"

[agents.primary.cache]
max_entries = 10
ttl = "10s"
max_stale = "10m"

[agents.primary.dead_letter]
store = "memory"
capacity = 5
failures = ["transient", "agent_fault"]

[agents.backup]
endpoint = "mock:backup"
timeout = "600ms"
breaker = { consecutive_failures = 3 }

[agents.backup.hedge]
delay = "300ms"
min_delay = "5ms"
max_delay = "20s"
min_samples = 10
window = "5s"
max_hedges = 2
budget_ratio = 0.2
budget_min_per_sec = 2
to = ["spare"]

[agents.spare]
endpoint = "mock:spare"
"#;

fn err(text: &str) -> StackConfigError {
    StackConfig::parse(text, Format::Toml, "stack.toml").expect_err("the stack should be refused")
}

#[test]
fn a_full_file_reads_into_each_layers_config() {
    let config = StackConfig::from_toml(FULL).unwrap();
    let names: Vec<&str> = config.agents().iter().map(AgentConfig::name).collect();
    assert_eq!(names, ["backup", "primary", "spare"]);
    let primary = config.agent("primary").unwrap();
    assert_eq!(primary.endpoint(), Some("mock:primary"));
    assert_eq!(primary.health_check(), Some("/health"));
    assert_eq!(primary.timeout(), Some(Duration::from_millis(800)));
    assert_eq!(primary.fallback(), ["backup", "spare"]);
    let retry = primary.retry().unwrap();
    assert_eq!(retry.max_retries(), 2);
    assert_eq!(retry.jitter(), Jitter::None);
    assert_eq!(retry.deadline(), Some(Duration::from_secs(90)));
    let breaker = primary.breaker().unwrap();
    assert_eq!(breaker.window(), SlidingWindow::Count(20));
    assert_eq!(breaker.initial_open_duration(), Duration::from_millis(250));
    assert_eq!(
        breaker.half_open_probes(),
        3,
        "unset keys keep the defaults"
    );
    let rate_limit = primary.rate_limit().unwrap();
    assert_eq!(
        (
            rate_limit.requests_per_minute(),
            rate_limit.tokens_per_minute()
        ),
        (Some(600), Some(100_000))
    );
    assert_eq!(rate_limit.burst().to_bits(), 0.5_f64.to_bits());
    assert_eq!(
        (rate_limit.max_wait(), rate_limit.max_pause()),
        (Duration::from_secs(2), Duration::from_secs(30))
    );
    let bulkhead = primary.bulkhead().unwrap();
    assert_eq!(
        (bulkhead.max_concurrent_calls(), bulkhead.max_queue()),
        (8, 4)
    );
    assert_eq!(bulkhead.max_wait(), Some(Duration::from_millis(250)));
    assert_eq!(bulkhead.readiness(), Readiness::ShedInCall);
    assert_eq!(
        bulkhead.adaptive(),
        Some(
            &AdaptiveConfig::new()
                .initial_limit(4)
                .min_limit(2)
                .backoff(0.5)
                .latency_threshold(Duration::from_secs(2))
        )
    );
    assert_eq!(
        primary.cache().unwrap().max_stale(),
        Duration::from_secs(600)
    );
    let dead_letter = primary.dead_letter().unwrap();
    assert_eq!(
        dead_letter.store(),
        &DeadLetterStore::Memory { capacity: 5 }
    );
    assert!(dead_letter.policy().covers(OutcomeKind::AgentFault));
    assert!(!dead_letter.policy().covers(OutcomeKind::CallerFault));
    let spare = config.agent("spare").unwrap();
    assert_eq!(spare.classifier(), DEFAULT_CLASSIFIER);
    assert!(spare.breaker().is_none() && spare.retry().is_none() && spare.timeout().is_none());
    assert!(spare.bulkhead().is_none() && spare.rate_limit().is_none());
    // A table with no keys: a bulkhead with the defaults.
    let config = StackConfig::from_toml("[agents.a.bulkhead]\n").unwrap();
    let bulkhead = config.agent("a").unwrap().bulkhead().unwrap();
    assert_eq!(bulkhead, &BulkheadConfig::default());
    let config = StackConfig::from_toml(
        "[agents.a.bulkhead]\nmax_concurrent = 3\nreadiness = \"wait_in_poll_ready\"\n",
    )
    .unwrap();
    let bulkhead = config.agent("a").unwrap().bulkhead().unwrap();
    assert_eq!(bulkhead.readiness(), Readiness::WaitInPollReady);
    assert!(bulkhead.adaptive().is_none());
}

#[test]
fn a_hedge_table_reads_into_a_hedge_config_and_its_alternatives() {
    let config = StackConfig::from_toml(FULL).unwrap();
    let hedge = config.agent("backup").unwrap().hedge().unwrap();
    assert_eq!(
        hedge,
        &crate::hedge::HedgeConfig::builder()
            .delay(Duration::from_millis(300))
            .min_delay(Duration::from_millis(5))
            .max_delay(Duration::from_secs(20))
            .min_samples(10)
            .window(Duration::from_secs(5))
            .max_hedges(2)
            .budget_ratio(0.2)
            .budget_min_per_sec(2)
            .build()
            .unwrap()
    );
    assert_eq!(config.agent("backup").unwrap().hedge_to(), ["spare"]);
    assert!(config.agent("primary").unwrap().hedge().is_none());
    // A table with no keys: hedging to the same agent at the default p95.
    let config_p95 = StackConfig::from_toml(
        "[agents.a.hedge]
",
    )
    .unwrap();
    assert_eq!(
        config_p95.agent("a").unwrap().hedge(),
        Some(&crate::hedge::HedgeConfig::default())
    );
}

#[test]
fn wrong_types_name_line_and_field() {
    let error = err("[agents.a]\n\n[agents.a.retry]\nmax_retries = \"three\"\n");
    assert_eq!(error.kind(), ErrorKind::Invalid);
    assert_eq!(error.field(), "agents.a.retry.max_retries");
    assert_eq!(error.line(), Some(4));
    let text = error.to_string();
    assert!(text.starts_with("stack.toml:4:"), "{text}");
    assert!(text.contains("agents.a.retry.max_retries"), "{text}");
}

#[test]
fn unknown_fields_are_refused_with_their_name_and_line() {
    let error = err("[agents.a]\ntimeout = \"1s\"\nretires = 3\n");
    assert_eq!(error.kind(), ErrorKind::UnknownField);
    assert_eq!(error.field(), "agents.a.retires");
    assert_eq!(error.line(), Some(3));
    assert!(
        error.to_string().contains("unknown field `retires`"),
        "{error}"
    );

    // Inside a layer's table too, and at the top.
    let error = err("[agents.a.breaker]\nconsecutive_failures = 3\nopen_for = \"1s\"\n");
    assert_eq!(error.field(), "agents.a.breaker.open_for");
    assert_eq!(error.line(), Some(3));
    let error = err("version = 2\n[agents.a]\n");
    assert_eq!((error.field(), error.line()), ("version", Some(1)));
    // Keys of a later version: refused, not ignored.
    let error = err("[agents.a]\n[agents.a.chaos]\nerror_rate = 0.1\n");
    assert_eq!((error.field(), error.line()), ("agents.a.chaos", Some(2)));
}

#[test]
fn bad_durations_name_line_and_field() {
    for (value, what) in [("soon", "soon"), ("5 parsecs", "parsecs"), ("10", "unit")] {
        let error = err(&format!(
            "[agents.a.retry]\nmax_retries = 1\nbase = \"{value}\"\n"
        ));
        assert_eq!(error.field(), "agents.a.retry.base", "{error}");
        assert_eq!(error.line(), Some(3), "{error}");
        assert!(error.to_string().to_lowercase().contains(what), "{error}");
    }
    let error = err("[agents.a]\ntimeout = 5\n");
    assert_eq!((error.field(), error.line()), ("agents.a.timeout", Some(2)));
}

#[test]
fn durations_that_overflow_are_errors_not_panics() {
    // Past u64 seconds: humantime refuses it while parsing.
    let error = err("[agents.a]\n\ntimeout = \"99999999999999999999999s\"\n");
    assert_eq!((error.field(), error.line()), ("agents.a.timeout", Some(3)));
    assert!(error.to_string().contains("too large"), "{error}");
    // Representable, but no timeout: refused by the range check.
    let error = err("[agents.a]\ntimeout = \"500000000years\"\n");
    assert_eq!((error.field(), error.line()), ("agents.a.timeout", Some(2)));
    assert!(error.to_string().contains("at most 1h"), "{error}");
    let error = err("[agents.a]\ntimeout = \"0s\"\n");
    assert_eq!(error.field(), "agents.a.timeout");
    // A layer's own limit, reported on the setting's line (not the table's).
    let error = err(
        "[agents.a.breaker]\nconsecutive_failures = 3\nmax_open_duration = \"584542046090y\"\n",
    );
    assert_eq!(error.field(), "agents.a.breaker.max_open_duration");
    assert_eq!(error.line(), Some(3));
    assert!(error.to_string().contains("120 s"), "{error}");
}

#[test]
fn a_layers_own_rules_name_the_setting_line() {
    let error = err("[agents.a]\n\n[agents.a.retry]\nbase = \"1s\"\nmultiplier = 0.5\n");
    assert_eq!(error.field(), "agents.a.retry.multiplier");
    assert_eq!(error.line(), Some(5));
    assert!(error.to_string().contains("0.5"), "{error}");
    // A setting left at its default that conflicts: the table's line.
    let error = err("[agents.a]\n\n[agents.a.retry]\nbase = \"10s\"\n");
    assert_eq!(error.field(), "agents.a.retry.max_backoff");
    assert_eq!(error.line(), Some(3));
}

#[test]
fn fallback_chains_name_only_agents_the_file_defines() {
    let error = err("[agents.a]\nfallback = [\"b\",\n  \"gpt-5\"]\n\n[agents.b]\n");
    assert_eq!(error.kind(), ErrorKind::UnknownAgent);
    assert_eq!(error.field(), "agents.a.fallback[1]");
    assert_eq!(error.line(), Some(3));
    assert!(error.to_string().contains("no agent `gpt-5`"), "{error}");

    let error = err("[agents.a]\nfallback = [\"a\"]\n");
    assert!(error.to_string().contains("its own fallback"), "{error}");
    let error = err("[agents.a]\nfallback = [\"b\", \"b\"]\n[agents.b]\n");
    assert_eq!(error.field(), "agents.a.fallback[1]");
}

#[test]
fn syntax_errors_name_the_line() {
    let error = err("[agents.a]\ntimeout = \"1s\n");
    assert_eq!(error.kind(), ErrorKind::Syntax);
    assert_eq!(error.line(), Some(2));
    let error = err("[agents.a]\n[agents.a]\n");
    assert_eq!(error.kind(), ErrorKind::Syntax);
    assert_eq!(error.line(), Some(2));
}

#[test]
fn dead_letter_stores_take_only_their_own_settings() {
    let error = err("[agents.a.dead_letter]\nstore = \"memory\"\npath = \"var/dlq\"\n");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.dead_letter.path", Some(3))
    );
    let error = err("[agents.a.dead_letter]\nstore = \"amqp\"\n");
    assert_eq!(error.field(), "agents.a.dead_letter.url_env");
    let error = err("[agents.a.dead_letter]\nstore = \"s3\"\n");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.dead_letter.store", Some(2))
    );
    let error = err(
        "[agents.a.dead_letter]\nstore = \"memory\"\nfailures = [\"transient\", \"success\"]\n",
    );
    assert_eq!(error.field(), "agents.a.dead_letter.failures[1]");
    let error = err("[agents.a.dead_letter]\nstore = \"memory\"\ncapacity = 0\n");
    assert_eq!(error.field(), "agents.a.dead_letter.capacity");
}

#[test]
fn json_errors_name_line_and_field_too() {
    let bad =
        |text: &str| StackConfig::parse(text, Format::Json, "stack.json").expect_err("refused");
    let error =
        bad("{\"agents\": {\n  \"a\": {\n    \"retry\": {\"max_retries\": \"three\"}\n  }\n}}");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.retry.max_retries", Some(3))
    );
    assert!(error.to_string().starts_with("stack.json:3:"), "{error}");
    let error = bad("{\"agents\": {\n  \"a\": {\n    \"timout\": \"1s\"\n  }\n}}");
    assert_eq!(error.kind(), ErrorKind::UnknownField);
    assert_eq!(error.field(), "agents.a.timout");
    let error = bad("{\"agents\": {\n  \"a\": {\"fallback\": [\n    \"b\"]}\n}}");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.fallback[0]", Some(3))
    );
    let error = bad("{\"agents\": {\n  \"a\": {},\n  \"a\": {}\n}}");
    assert!(error.to_string().contains("defined twice"), "{error}");
    assert_eq!(error.line(), Some(3));
    let error =
        bad("{\"agents\": {\n  \"a\": {\"retry\": {\"base\": \"1s\",\n \"multiplier\": 50}}\n}}");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.retry.multiplier", Some(3))
    );
}

#[test]
fn missing_files_say_so() {
    let error = StackConfig::load("/nonexistent/stack.toml").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Read);
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/stack.toml: cannot read"),
        "{error}"
    );
}

/// Agents that count their calls; `failing` ones answer an error.
fn counted(
    calls: &Arc<std::sync::Mutex<Vec<String>>>,
    failing: &'static [&'static str],
) -> impl Fn(&AgentConfig) -> Result<BoxAgent<String, String>, BoxError> + Send + Sync + 'static {
    let calls = calls.clone();
    move |agent: &AgentConfig| {
        let name = agent.name().to_owned();
        let calls = calls.clone();
        let fails = failing.contains(&name.as_str());
        Ok(BoxAgent::new(service_fn(move |prompt: String| {
            calls.lock().unwrap().push(name.clone());
            let name = name.clone();
            async move {
                if fails {
                    Err::<String, BoxError>(format!("{name} is down").into())
                } else {
                    Ok(format!("{name}: {prompt}"))
                }
            }
        })))
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_file_builds_a_stack_that_retries_then_falls_back_in_order() {
    let config = StackConfig::from_toml(FULL).unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(counted(&calls, &["primary", "backup"]))
        .token_cost(|prompt: &String| prompt.len() as u64)
        .cache_key(|prompt: &String| Some(prompt.clone()))
        .dead_letter_encoder(|prompt: &String| {
            Ok::<_, BoxError>(bytes::Bytes::from(prompt.clone()))
        })
        .build()
        .unwrap();

    let reply = stacks
        .service("primary")
        .unwrap()
        .oneshot("hi".into())
        .await
        .unwrap();
    assert_eq!(reply, "spare: hi");
    // Three attempts of the primary (max_retries = 2), then the chain in the file's order.
    assert_eq!(
        *calls.lock().unwrap(),
        ["primary", "primary", "primary", "backup", "spare"]
    );
    let counters = registry.counters("primary").unwrap();
    assert_eq!((counters.retries, counters.fallbacks), (2, 1));
    assert!(registry.breaker("primary").is_some());
    assert!(registry.breaker("backup").is_some());
    assert!(
        registry.breaker("spare").is_none(),
        "no breaker table, no breaker"
    );
    assert!(stacks.get("primary").unwrap().dead_letters().is_some());
}

#[tokio::test(start_paused = true)]
async fn an_alternatives_open_breaker_is_skipped_and_dead_letters_are_kept() {
    let config = StackConfig::from_toml(FULL).unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(counted(&calls, &["primary", "backup", "spare"]))
        .token_cost(|prompt: &String| prompt.len() as u64)
        .cache_key(|_: &String| None::<String>)
        .dead_letter_encoder(|prompt: &String| {
            Ok::<_, BoxError>(bytes::Bytes::from(prompt.clone()))
        })
        .build()
        .unwrap();
    let primary = stacks.service("primary").unwrap();
    for _ in 0..3 {
        let error = primary.clone().oneshot("x".into()).await.unwrap_err();
        assert!(crate::error::find::<crate::dead_letter::DeadLettered>(error.as_ref()).is_some());
    }
    // backup's breaker opened after its 3rd failure (consecutive_failures = 3 in the file).
    let backups = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|name| *name == "backup")
        .count();
    assert_eq!(backups, 3);
    let error = primary.oneshot("x".into()).await.unwrap_err();
    assert!(crate::error::find::<crate::dead_letter::DeadLettered>(error.as_ref()).is_some());
    let backups = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|name| *name == "backup")
        .count();
    assert_eq!(backups, 3, "an open alternative is skipped");
    let sink = stacks
        .get("primary")
        .unwrap()
        .dead_letters()
        .unwrap()
        .clone();
    assert_eq!(sink.list(10).await.unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn timeouts_from_the_file_bound_each_attempt() {
    let config = StackConfig::from_toml("[agents.slow]\ntimeout = \"250ms\"\n").unwrap();
    let stacks = config
        .builder(&Registry::new())
        .agents(|_| {
            Ok(service_fn(|(): ()| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, BoxError>(())
            }))
        })
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = stacks
        .service("slow")
        .unwrap()
        .oneshot(())
        .await
        .unwrap_err();
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    assert_eq!(started.elapsed(), Duration::from_millis(250));
}

#[test]
fn build_errors_name_the_agents_line_and_field() {
    let text = "[agents.a]\nendpoint = \"ftp://nowhere\"\n\n[agents.b]\nclassifier = \"llm\"\n";
    let config = StackConfig::parse(text, Format::Toml, "stack.toml").unwrap();
    let error = config
        .builder(&Registry::new())
        .agents(|_| Ok(service_fn(|(): ()| async { Ok::<_, BoxError>(()) })))
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Build);
    assert_eq!(
        (error.field(), error.line()),
        ("agents.b.classifier", Some(5))
    );
    assert!(
        error.to_string().contains("unknown classifier kind `llm`"),
        "{error}"
    );

    let error = config
        .builder(&Registry::new())
        .classifiers(|_| Some(crate::DefaultClassifier))
        .agents(|agent| {
            if agent
                .endpoint()
                .is_some_and(|endpoint| endpoint.starts_with("ftp:"))
            {
                return Err("only http endpoints".into());
            }
            Ok(service_fn(|(): ()| async { Ok::<_, BoxError>(()) }))
        })
        .build()
        .unwrap_err();
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.endpoint", Some(2))
    );
    assert!(error.to_string().contains("only http endpoints"), "{error}");

    let config = StackConfig::from_toml("[agents.a.cache]\n").unwrap();
    let error = config
        .builder(&Registry::new())
        .agents(|_| Ok(service_fn(|(): ()| async { Ok::<_, BoxError>(()) })))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("cache_key"), "{error}");
}

#[test]
fn missing_hooks_are_build_errors() {
    let config = StackConfig::from_toml("[agents.a.dead_letter]\nstore = \"sqlite\"\n").unwrap();
    let build = || {
        config
            .builder::<(), ()>(&Registry::new())
            .agents(|_| Ok(service_fn(|(): ()| async { Ok::<_, BoxError>(()) })))
    };
    let error = build().build().unwrap_err();
    assert!(error.to_string().contains("dead_letter_stores"), "{error}");
    let opened = Arc::new(AtomicU32::new(0));
    let counter = opened.clone();
    let error = build()
        .dead_letter_stores(move |_, store| {
            counter.fetch_add(1, Ordering::SeqCst);
            assert_eq!(store, &DeadLetterStore::Sqlite { path: None });
            Ok(Some(Arc::new(crate::dead_letter::MemorySink::new(1))))
        })
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("dead_letter_encoder"), "{error}");
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[test]
fn files_ending_in_json_are_read_as_json_and_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.json");
    std::fs::write(
        &path,
        "{\"agents\": {\"a\": {\"timeout\": \"1s\"},\n  \"b\": {\"fallback\": [\"c\"]}}}",
    )
    .unwrap();
    let error = StackConfig::load(&path).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnknownAgent);
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:2:", path.display())),
        "{error}"
    );
    std::fs::write(&path, "{\"agents\": {\"a\": {\"timeout\": \"1s\"}}}").unwrap();
    let config = StackConfig::load(&path).unwrap();
    assert_eq!(config.origin(), path.display().to_string());
    assert_eq!(
        config.agent("a").unwrap().timeout(),
        Some(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn an_opener_may_take_over_any_store_memory_included() {
    let config = StackConfig::from_toml(
        "[agents.a]\n[agents.a.dead_letter]\nstore = \"memory\"\ncapacity = 1\n",
    )
    .unwrap();
    let shared = crate::dead_letter::MemorySink::new(10);
    let opener_sink = shared.clone();
    let stacks = config
        .builder(&Registry::new())
        .agents(|_| {
            Ok(service_fn(|prompt: String| async move {
                Err::<String, BoxError>(format!("cannot answer {prompt}").into())
            }))
        })
        .dead_letter_stores(move |agent, store| {
            assert_eq!((agent.name(), store.kind()), ("a", "memory"));
            Ok(Some(Arc::new(opener_sink.clone())))
        })
        .dead_letter_encoder(|prompt: &String| {
            Ok::<_, BoxError>(bytes::Bytes::from(prompt.clone()))
        })
        .build()
        .unwrap();
    for prompt in ["one", "two"] {
        let _ = stacks.service("a").unwrap().oneshot(prompt.into()).await;
    }
    // Both kept in the opener's sink: the file's capacity of 1 was not used.
    assert_eq!(shared.len(), 2);
}

/// The message itself (what an operator reads) names the file, the line and the field.
#[test]
fn every_kind_of_mistake_is_reported_with_file_line_and_field_in_the_message() {
    let cases = [
        // (file, line, field)
        (
            "[agents.a]\nretry = { max_retries = \"3\" }\n",
            2,
            "agents.a.retry.max_retries",
        ),
        (
            "[agents.a]\n\n[agents.a.breaker]\nconsecutive_failures = 3\nopen_for = \"1s\"\n",
            5,
            "agents.a.breaker.open_for",
        ),
        ("[agents.a]\ntimeout = \"fast\"\n", 2, "agents.a.timeout"),
        (
            "[agents.a]\nfallback = [\"b\"]\n",
            2,
            "agents.a.fallback[0]",
        ),
        (
            "[agents.a]\n\ntimeout = \"18446744073709551616s\"\n",
            3,
            "agents.a.timeout",
        ),
        (
            "[agents.a.retry]\ndeadline = \"600000000000000000000ms\"\n",
            2,
            "agents.a.retry.deadline",
        ),
        (
            "[agents.a.breaker]\nmax_open_duration = \"3m\"\n",
            2,
            "agents.a.breaker.max_open_duration",
        ),
    ];
    for (text, line, field) in cases {
        let message = err(text).to_string();
        assert!(
            message.starts_with(&format!("stack.toml:{line}:")),
            "{message}"
        );
        assert!(message.contains(&format!("field `{field}`")), "{message}");
    }
}

/// Each `(file, kind, field, line, words of the message)` is refused with that kind, field and
/// line, all three in the message too.
fn assert_refused(cases: &[(&str, ErrorKind, &str, usize, &str)]) {
    for &(text, kind, field, line, says) in cases {
        let error = err(text);
        let message = error.to_string();
        assert_eq!(error.kind(), kind, "{message}");
        assert_eq!(error.field(), field, "{message}");
        assert_eq!(error.line(), Some(line), "{message}");
        assert!(
            message.starts_with(&format!("stack.toml:{line}:")),
            "{message}"
        );
        assert!(message.contains(&format!("field `{field}`")), "{message}");
        assert!(message.contains(says), "{message}");
    }
}

#[test]
fn bulkhead_mistakes_name_line_and_field() {
    assert_refused(&[
        (
            "[agents.a]\n\n[agents.a.bulkhead]\nmax_concurrent = 0\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_concurrent",
            4,
            "at least 1",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = 2_000_000\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_concurrent",
            2,
            "at most 1048576",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = -1\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_concurrent",
            2,
            "-1",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = 2\nmax_concurent = 3\n",
            ErrorKind::UnknownField,
            "agents.a.bulkhead.max_concurent",
            3,
            "unknown field `max_concurent`",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"soon\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            3,
            "soon",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"10\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            3,
            "unit",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"99999999999999999999999s\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            3,
            "too large",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"0s\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            3,
            "must be over 0",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"500000000years\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            3,
            "at most 600s",
        ),
        // A queue with no wait: the wait is missing, so the table's line.
        (
            "[agents.a]\n[agents.a.bulkhead]\nmax_queue = 4\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.max_wait",
            2,
            "a queue needs a maximum wait",
        ),
        (
            "[agents.a.bulkhead]\nreadiness = \"shed\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.readiness",
            2,
            "wait_in_poll_ready",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 2\nmax_wait = \"1s\"\nreadiness = \"wait_in_poll_ready\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.readiness",
            4,
            "max_queue and max_wait do not apply",
        ),
    ]);
}

#[test]
fn hedge_mistakes_name_line_and_field() {
    assert_refused(&[
        (
            "[agents.a]\n\n[agents.a.hedge]\ndelay = \"0s\"\n",
            ErrorKind::Invalid,
            "agents.a.hedge.delay",
            4,
            "greater than zero",
        ),
        (
            "[agents.a.hedge]\ndelay = \"1000000000y\"\n",
            ErrorKind::Invalid,
            "agents.a.hedge.delay",
            2,
            "at most a minute",
        ),
        (
            "[agents.a.hedge]\ndelay = \"-1s\"\n",
            ErrorKind::Invalid,
            "agents.a.hedge.delay",
            2,
            "-1s",
        ),
        (
            "[agents.a.hedge]\npercentile = nan\n",
            ErrorKind::Invalid,
            "agents.a.hedge.percentile",
            2,
            "less than 100",
        ),
        (
            "[agents.a.hedge]\npercentile = 100.0\n",
            ErrorKind::Invalid,
            "agents.a.hedge.percentile",
            2,
            "less than 100",
        ),
        (
            "[agents.a.hedge]\ndelay = \"1s\"\npercentile = 95.0\n",
            ErrorKind::Invalid,
            "agents.a.hedge.percentile",
            3,
            "not both",
        ),
        (
            "[agents.a.hedge]\nmax_hedges = 0\n",
            ErrorKind::Invalid,
            "agents.a.hedge.max_hedges",
            2,
            "must be 1 to 4",
        ),
        (
            "[agents.a.hedge]\nmax_hedges = -1\n",
            ErrorKind::Invalid,
            "agents.a.hedge.max_hedges",
            2,
            "-1",
        ),
        (
            "[agents.a.hedge]\nmin_samples = 0\n",
            ErrorKind::Invalid,
            "agents.a.hedge.min_samples",
            2,
            "at least 1",
        ),
        (
            "[agents.a.hedge]\nbudget_ratio = -0.5\n",
            ErrorKind::Invalid,
            "agents.a.hedge.budget_ratio",
            2,
            "0.0 to 1000.0",
        ),
        (
            "[agents.a.hedge]\nwindow = \"1000000000y\"\n",
            ErrorKind::Invalid,
            "agents.a.hedge.window",
            2,
            "between 1 s and 10 minutes",
        ),
        (
            "[agents.a.hedge]\ndelay = \"1s\"\nhedges = 2\n",
            ErrorKind::UnknownField,
            "agents.a.hedge.hedges",
            3,
            "unknown field `hedges`",
        ),
    ]);
}

#[test]
fn hedge_alternatives_must_be_other_agents_of_the_file() {
    assert_refused(&[
        (
            "[agents.a.hedge]\ndelay = \"1s\"\nto = [\"b\"]\n",
            ErrorKind::UnknownAgent,
            "agents.a.hedge.to[0]",
            3,
            "no agent `b`",
        ),
        (
            "[agents.b]\n[agents.a.hedge]\nto = [\"b\", \"a\"]\n",
            ErrorKind::Invalid,
            "agents.a.hedge.to[1]",
            3,
            "cannot hedge to itself",
        ),
        (
            "[agents.b]\n[agents.a.hedge]\nto = [\"b\", \"b\"]\n",
            ErrorKind::Invalid,
            "agents.a.hedge.to[1]",
            3,
            "already earlier",
        ),
    ]);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_from_the_file_goes_to_the_alternative_at_the_delay_within_the_retry_budget() {
    let config = StackConfig::from_toml(
        "[agents.primary]\nretry = { max_retries = 1, budget_ratio = 1.0, budget_min_per_sec = 0 }\n\n[agents.primary.hedge]\ndelay = \"2s\"\nto = [\"backup\"]\n\n[agents.backup]\nbreaker = { consecutive_failures = 1 }\n",
    )
    .unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(slow_agents(&calls, Duration::from_secs(5)))
        .build()
        .unwrap();
    let primary = stacks.service("primary").unwrap();
    let started = tokio::time::Instant::now();
    let call = tokio::spawn(crate::hedge::answered_by(
        primary.clone().oneshot("a".into()),
    ));
    until_called(&calls, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    until_called(&calls, 2).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(2),
        "the hedge went at the delay"
    );
    assert_eq!(*calls.lock().unwrap(), ["primary", "backup"]);
    let (reply, answered) = call.await.unwrap();
    assert_eq!(
        reply.unwrap(),
        "primary: a",
        "the primary answered at 5 s, before the hedge's 7 s"
    );
    assert_eq!(answered.unwrap().agent(), "primary");
    assert_eq!(started.elapsed(), Duration::from_secs(5));

    // The backup's circuit open: no hedge goes to it.
    registry.breaker("backup").unwrap().force_open();
    let reply = primary.oneshot("b".into()).await.unwrap();
    assert_eq!(reply, "primary: b");
    assert_eq!(*calls.lock().unwrap(), ["primary", "backup", "primary"]);

    // A retry budget with nothing to spare: hedges draw from it, so none is sent.
    let config = StackConfig::from_toml(
        "[agents.primary]\nretry = { budget_ratio = 0.0, budget_min_per_sec = 0 }\n\n[agents.primary.hedge]\ndelay = \"2s\"\nto = [\"backup\"]\n\n[agents.backup]\n",
    )
    .unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&Registry::new())
        .agents(slow_agents(&calls, Duration::from_secs(5)))
        .build()
        .unwrap();
    let reply = stacks.service("primary").unwrap().oneshot("c".into()).await;
    assert_eq!(reply.unwrap(), "primary: c");
    assert_eq!(*calls.lock().unwrap(), ["primary"]);
}

#[test]
fn adaptive_bulkhead_mistakes_name_line_and_field() {
    // The nested table: its settings on their own lines too.
    assert_refused(&[
        (
            "[agents.a.bulkhead]\nmax_concurrent = 4\n\n[agents.a.bulkhead.adaptive]\nmin_limit = 0\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.min_limit",
            5,
            "at least 1",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = 4\nadaptive = { min_limit = 2, initial_limit = 9 }\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.initial_limit",
            3,
            "between min_limit (2) and max_concurrent (4)",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nbackoff = 1.0\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.backoff",
            2,
            "below 1",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nbackoff = nan\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.backoff",
            2,
            "NaN",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nlatency_threshold = \"fast\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.latency_threshold",
            2,
            "fast",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nlatency_threshold = \"0ms\"\n",
            ErrorKind::Invalid,
            "agents.a.bulkhead.adaptive.latency_threshold",
            2,
            "over 0",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nmin_limit = 1\nmax_limit = 9\n",
            ErrorKind::UnknownField,
            "agents.a.bulkhead.adaptive.max_limit",
            3,
            "unknown field `max_limit`",
        ),
    ]);
}

#[test]
fn bulkhead_mistakes_in_json_name_line_and_field() {
    let bad =
        |text: &str| StackConfig::parse(text, Format::Json, "stack.json").expect_err("refused");
    let error = bad(
        "{\"agents\": {\"a\": {\"bulkhead\": {\n  \"max_concurrent\": 4,\n  \"adaptive\": {\"min_limit\": 5}\n}}}}",
    );
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.bulkhead.adaptive.min_limit", Some(3))
    );
    let error = bad("{\"agents\": {\"a\": {\"bulkhead\": {\n  \"max_concurrent\": 0\n}}}}");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.bulkhead.max_concurrent", Some(2))
    );
    let error =
        bad("{\"agents\": {\"a\": {\"bulkhead\": {\n  \"max_wait\": \"2 fortnights\"\n}}}}");
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.bulkhead.max_wait", Some(2))
    );
}

/// Agents that take `hold` to answer (counting their calls) and answer with their name.
fn slow_agents(
    calls: &Arc<std::sync::Mutex<Vec<String>>>,
    hold: Duration,
) -> impl Fn(&AgentConfig) -> Result<BoxAgent<String, String>, BoxError> + Send + Sync + 'static {
    let calls = calls.clone();
    move |agent: &AgentConfig| {
        let name = agent.name().to_owned();
        let calls = calls.clone();
        Ok(BoxAgent::new(service_fn(move |prompt: String| {
            calls.lock().unwrap().push(name.clone());
            let name = name.clone();
            async move {
                tokio::time::sleep(hold).await;
                Ok::<_, BoxError>(format!("{name}: {prompt}"))
            }
        })))
    }
}

/// Lets spawned calls run until `calls` has seen `count` of them.
async fn until_called(calls: &Arc<std::sync::Mutex<Vec<String>>>, count: usize) {
    while calls.lock().unwrap().len() < count {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_bulkhead_of_two_refuses_the_third_concurrent_call_and_the_fallback_answers_it() {
    let config = StackConfig::from_toml(
        "[agents.primary]\nfallback = [\"backup\"]\nretry = { max_retries = 2, base = \"1ms\" }\nbreaker = { consecutive_failures = 1 }\n\n[agents.primary.bulkhead]\nmax_concurrent = 2\n\n[agents.backup]\n",
    )
    .unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(slow_agents(&calls, Duration::from_secs(1)))
        .build()
        .unwrap();
    let primary = stacks.service("primary").unwrap();
    let first = tokio::spawn(primary.clone().oneshot("a".into()));
    let second = tokio::spawn(primary.clone().oneshot("b".into()));
    until_called(&calls, 2).await;
    let handle = stacks.get("primary").unwrap().bulkhead().unwrap().clone();
    assert_eq!(handle.in_flight(), 2);

    let started = tokio::time::Instant::now();
    let third = primary.clone().oneshot("c".into()).await.unwrap();
    assert_eq!(third, "backup: c");
    // Refused at once (no queue), not retried against the full agent, answered by the backup.
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "the backup's own second"
    );
    assert_eq!(*calls.lock().unwrap(), ["primary", "primary", "backup"]);
    let counters = registry.counters("primary").unwrap();
    assert_eq!(
        (
            counters.bulkhead_rejected,
            counters.retries,
            counters.fallbacks
        ),
        (1, 0, 1)
    );
    // The breaker (one failure opens it) saw no failure: the refusal is local.
    assert_eq!(
        registry.breaker("primary").unwrap().state(),
        crate::circuit_breaker::BreakerState::Closed
    );

    assert_eq!(first.await.unwrap().unwrap(), "primary: a");
    assert_eq!(second.await.unwrap().unwrap(), "primary: b");
    // Permits given back: the next call reaches the primary again.
    assert_eq!(handle.in_flight(), 0);
    assert_eq!(primary.oneshot("d".into()).await.unwrap(), "primary: d");
    assert!(registry.bulkhead("primary").unwrap().same_bulkhead(&handle));
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_the_third_call_fails_with_bulkhead_full() {
    let config =
        StackConfig::from_toml("[agents.a]\ntimeout = \"5s\"\nbulkhead = { max_concurrent = 2 }\n")
            .unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(slow_agents(&calls, Duration::from_secs(1)))
        .build()
        .unwrap();
    let service = stacks.service("a").unwrap();
    let held: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|prompt| tokio::spawn(service.clone().oneshot(prompt.into())))
        .collect();
    until_called(&calls, 2).await;
    let error = service.clone().oneshot("z".into()).await.unwrap_err();
    assert!(
        crate::error::find::<BulkheadFull>(error.as_ref()).is_some(),
        "{error}"
    );
    assert_eq!(calls.lock().unwrap().len(), 2);
    for call in held {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_waits_up_to_max_wait_from_the_file() {
    let config = StackConfig::from_toml(
        "[agents.a.bulkhead]\nmax_concurrent = 1\nmax_queue = 1\nmax_wait = \"300ms\"\n",
    )
    .unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&Registry::new())
        .agents(slow_agents(&calls, Duration::from_secs(1)))
        .build()
        .unwrap();
    let service = stacks.service("a").unwrap();
    let held = tokio::spawn(service.clone().oneshot("x".into()));
    until_called(&calls, 1).await;
    let started = tokio::time::Instant::now();
    let error = service.clone().oneshot("y".into()).await.unwrap_err();
    assert!(crate::error::find::<BulkheadFull>(error.as_ref()).is_some());
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    held.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn calls_falling_back_to_an_agent_take_its_bulkheads_permits_too() {
    let config = StackConfig::from_toml(
        "[agents.primary]\nfallback = [\"backup\", \"spare\"]\n\n[agents.backup]\nbulkhead = { max_concurrent = 1 }\n\n[agents.spare]\n",
    )
    .unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let slow = slow_agents(&calls, Duration::from_secs(1));
    let log = calls.clone();
    let stacks = config
        .builder(&registry)
        .agents(move |agent| {
            if agent.name() == "primary" {
                let log = log.clone();
                return Ok(BoxAgent::new(service_fn(move |_: String| {
                    log.lock().unwrap().push("primary".into());
                    async { Err::<String, BoxError>("primary is down".into()) }
                })));
            }
            slow(agent)
        })
        .build()
        .unwrap();
    let primary = stacks.service("primary").unwrap();
    let first = tokio::spawn(primary.clone().oneshot("a".into()));
    until_called(&calls, 2).await;
    // The backup's one permit is held by the first call's fallback: the second goes on.
    assert_eq!(
        primary.clone().oneshot("b".into()).await.unwrap(),
        "spare: b"
    );
    assert_eq!(first.await.unwrap().unwrap(), "backup: a");
    assert_eq!(registry.counters("backup").unwrap().bulkhead_rejected, 1);
    // Its own callers share the same permits.
    let backup = stacks.get("backup").unwrap();
    assert!(
        registry
            .bulkhead("backup")
            .unwrap()
            .same_bulkhead(backup.bulkhead().unwrap())
    );
}

#[test]
fn rate_limit_mistakes_name_line_and_field() {
    assert_refused(&[
        (
            "[agents.a]\n\n[agents.a.rate_limit]\nrequests_per_minute = 0\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.requests_per_minute",
            4,
            "at least 1",
        ),
        // No quota at all: nothing to point at but the table.
        (
            "[agents.a]\n[agents.a.rate_limit]\nmax_wait = \"1s\"\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.requests_per_minute",
            2,
            "limits nothing",
        ),
        (
            "[agents.a.rate_limit]\ntokens_per_minute = 0\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.tokens_per_minute",
            2,
            "at least 1",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = -5\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.requests_per_minute",
            2,
            "-5",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nrpm = 60\n",
            ErrorKind::UnknownField,
            "agents.a.rate_limit.rpm",
            3,
            "unknown field `rpm`",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nmax_wait = \"soon\"\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.max_wait",
            3,
            "soon",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nmax_pause = \"2h\"\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.max_pause",
            3,
            "at most one hour",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nburst = 0.0\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.burst",
            3,
            "greater than 0.0",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nburst = nan\n",
            ErrorKind::Invalid,
            "agents.a.rate_limit.burst",
            3,
            "NaN",
        ),
    ]);
}

#[test]
fn a_token_quota_without_a_cost_function_fails_the_build_on_its_line() {
    let text =
        "[agents.a]\n\n[agents.a.rate_limit]\nrequests_per_minute = 60\ntokens_per_minute = 1000\n";
    let config = StackConfig::parse(text, Format::Toml, "stack.toml").unwrap();
    let build = || {
        config
            .builder::<String, String>(&Registry::new())
            .agents(|_| {
                Ok(service_fn(|prompt: String| async move {
                    Ok::<_, BoxError>(prompt)
                }))
            })
    };
    let error = build().build().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Build);
    assert_eq!(
        (error.field(), error.line()),
        ("agents.a.rate_limit.tokens_per_minute", Some(5))
    );
    assert!(error.to_string().contains("token_cost"), "{error}");
    assert!(
        build()
            .token_cost(|prompt: &String| prompt.len() as u64)
            .build()
            .is_ok()
    );
    // A request quota alone needs no cost function.
    let config =
        StackConfig::from_toml("[agents.a.rate_limit]\nrequests_per_minute = 60\n").unwrap();
    assert!(
        config
            .builder::<String, String>(&Registry::new())
            .agents(|_| {
                Ok(service_fn(|prompt: String| async move {
                    Ok::<_, BoxError>(prompt)
                }))
            })
            .build()
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_quota_from_the_file_refuses_the_third_call_and_the_fallback_answers_it() {
    let config = StackConfig::from_toml(
        "[agents.primary]\nfallback = [\"backup\"]\nbreaker = { consecutive_failures = 1 }\n\n[agents.primary.rate_limit]\nrequests_per_minute = 2\nmax_wait = \"0s\"\n\n[agents.backup]\n",
    )
    .unwrap();
    let registry = Registry::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&registry)
        .agents(counted(&calls, &[]))
        .build()
        .unwrap();
    let primary = stacks.service("primary").unwrap();
    for prompt in ["a", "b", "c"] {
        primary.clone().oneshot(prompt.into()).await.unwrap();
    }
    // Two a minute, all at once: the third went to the backup without reaching the primary.
    assert_eq!(*calls.lock().unwrap(), ["primary", "primary", "backup"]);
    assert_eq!(
        registry.breaker("primary").unwrap().state(),
        crate::circuit_breaker::BreakerState::Closed,
        "a refusal the agent never saw is no failure of it"
    );
    let quota = stacks.get("primary").unwrap().rate_limit().unwrap();
    assert_eq!(quota.available_requests(), Some(0));
    // Half a minute later one request has come back.
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(primary.oneshot("d".into()).await.unwrap(), "primary: d");

    // Without an alternative, the caller gets `RateLimited`.
    let config = StackConfig::from_toml(
        "[agents.a.rate_limit]\nrequests_per_minute = 1\nmax_wait = \"0s\"\n",
    )
    .unwrap();
    let stacks = config
        .builder(&Registry::new())
        .agents(counted(&calls, &[]))
        .build()
        .unwrap();
    let service = stacks.service("a").unwrap();
    service.clone().oneshot("x".into()).await.unwrap();
    let error = service.oneshot("y".into()).await.unwrap_err();
    let refused = crate::error::find::<RateLimited>(error.as_ref()).expect("RateLimited");
    assert_eq!(refused.wait(), Some(Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn a_token_quota_charges_the_applications_cost_function_and_waits_up_to_max_wait() {
    let config = StackConfig::from_toml(
        "[agents.a.rate_limit]\ntokens_per_minute = 100\nmax_wait = \"30s\"\n",
    )
    .unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&Registry::new())
        .agents(counted(&calls, &[]))
        .token_cost(|prompt: &String| prompt.len() as u64)
        .build()
        .unwrap();
    let service = stacks.service("a").unwrap();
    let started = tokio::time::Instant::now();
    service.clone().oneshot("x".repeat(60)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    // 40 tokens left; 60 more need 20 to refill at 100 a minute: 12 s.
    service.clone().oneshot("x".repeat(60)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(12));
    // 100 tokens need a whole minute, past max_wait: refused without a call.
    let error = service.oneshot("x".repeat(100)).await.unwrap_err();
    assert!(crate::error::find::<RateLimited>(error.as_ref()).is_some());
    assert_eq!(calls.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_usage_reader_gives_back_what_an_answer_did_not_use() {
    let config = StackConfig::from_toml(
        "[agents.a.rate_limit]\ntokens_per_minute = 100\nmax_wait = \"0s\"\n",
    )
    .unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stacks = config
        .builder(&Registry::new())
        .agents(counted(&calls, &[]))
        .token_cost(|prompt: &String| prompt.len() as u64)
        // Every answer used 10 tokens.
        .token_usage(|_: &String| Some(10))
        .build()
        .unwrap();
    let service = stacks.service("a").unwrap();
    // Estimated at 60 each, charged 10 each: all five go at once.
    for _ in 0..5 {
        service.clone().oneshot("x".repeat(60)).await.unwrap();
    }
    assert_eq!(calls.lock().unwrap().len(), 5);
}
