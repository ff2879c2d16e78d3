//! Reading a stack file: parse (with the position of any error), then validate each layer's
//! table with the layer's own rules, then check the references between agents.

use std::path::Path;
use std::sync::Arc;

use crate::bulkhead::{AdaptiveConfig, BulkheadConfig, BulkheadConfigBuilder};
use crate::cache::CacheConfigBuilder;
use crate::circuit_breaker::BreakerConfigBuilder;
use crate::classify::OutcomeKind;
use crate::dead_letter::DeadLetterPolicy;
use crate::error::ConfigError;
use crate::hedge::HedgeConfig;
use crate::rate_limit::RateLimitConfigBuilder;
use crate::retry::RetryConfigBuilder;

use super::error::{ErrorKind, StackConfigError};
use super::locate::{FieldPath, Format, Segment, line_column, locate};
use super::schema::{
    AgentConfig, DEFAULT_CLASSIFIER, DEFAULT_MEMORY_CAPACITY, DeadLetterConfig, DeadLetterStore,
    MAX_TIMEOUT, RawAgent, RawBulkhead, RawDeadLetter, RawHedge, RawStack, Source, StackConfig,
    StoreKind,
};

/// The longest agent name accepted (it becomes a metrics label and a dead letter's field).
pub const MAX_AGENT_NAME: usize = 128;

impl StackConfig {
    /// Reads the stack in the file at `path`: JSON when its name ends in `.json`, TOML
    /// otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<StackConfig, StackConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            StackConfigError::new(
                ErrorKind::Read,
                &origin,
                "",
                format!("cannot read: {error}"),
            )
            .with_source(error.into())
        })?;
        let format = if path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
        {
            Format::Json
        } else {
            Format::Toml
        };
        StackConfig::parse(&text, format, &origin)
    }

    /// Reads a stack from TOML text (errors name the origin `<toml>`).
    pub fn from_toml(text: &str) -> Result<StackConfig, StackConfigError> {
        StackConfig::parse(text, Format::Toml, "<toml>")
    }

    /// Reads a stack from JSON text (errors name the origin `<json>`).
    pub fn from_json(text: &str) -> Result<StackConfig, StackConfigError> {
        StackConfig::parse(text, Format::Json, "<json>")
    }

    /// Reads a stack from `text` in `format`; errors name `origin` (a file name, say).
    pub fn parse(
        text: &str,
        format: Format,
        origin: &str,
    ) -> Result<StackConfig, StackConfigError> {
        let source = Arc::new(Source {
            origin: origin.to_owned(),
            text: text.to_owned(),
            format,
        });
        let raw = match format {
            Format::Toml => parse_toml(&source)?,
            Format::Json => parse_json(&source)?,
        };
        validate(&raw, source)
    }
}

impl Source {
    /// An error about the field at `path`, located in the text.
    pub(crate) fn error(
        &self,
        kind: ErrorKind,
        path: &FieldPath,
        message: impl Into<String>,
    ) -> StackConfigError {
        StackConfigError::new(kind, &self.origin, path.to_string(), message).at(locate(
            &self.text,
            self.format,
            path,
        ))
    }
}

/// The kind of a serde error, and the field it names: an unknown field's name is only in the
/// message (`unknown field `x`, expected ...`), while the path stops at its table.
fn classify_message(message: &str, path: FieldPath) -> (ErrorKind, FieldPath) {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let named = path.0.last() == Some(&Segment::Key(field.to_owned()));
        return (
            ErrorKind::UnknownField,
            if named { path } else { path.key(field) },
        );
    }
    (ErrorKind::Invalid, path)
}

/// humantime-serde reports every bad duration as "expected a duration"; humantime itself says
/// what was wrong (no unit, an unknown unit, a number too large), so ask it again.
fn explain_duration(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid value: string \"") else {
        return message.to_owned();
    };
    let Some((value, _)) = rest.rsplit_once("\", expected a duration") else {
        return message.to_owned();
    };
    match humantime_serde::re::humantime::parse_duration(value) {
        Err(reason) => format!("invalid duration \"{value}\": {reason}"),
        Ok(_) => message.to_owned(),
    }
}

fn parse_toml(source: &Source) -> Result<RawStack, StackConfigError> {
    let syntax = |error: toml::de::Error| {
        let location = error
            .span()
            .map(|span| line_column(&source.text, span.start));
        StackConfigError::new(
            ErrorKind::Syntax,
            &source.origin,
            "",
            error.message().to_owned(),
        )
        .at(location)
    };
    let deserializer = toml::Deserializer::parse(&source.text).map_err(syntax)?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = FieldPath::from_serde(error.path());
        let inner = error.into_inner();
        let (kind, field) = classify_message(inner.message(), path);
        let location = inner
            .span()
            .map(|span| line_column(&source.text, span.start))
            .or_else(|| locate(&source.text, Format::Toml, &field));
        let message = explain_duration(inner.message());
        StackConfigError::new(kind, &source.origin, field.to_string(), message).at(location)
    })
}

fn parse_json(source: &Source) -> Result<RawStack, StackConfigError> {
    let mut deserializer = serde_json::Deserializer::from_str(&source.text);
    let raw: RawStack = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = FieldPath::from_serde(error.path());
        let inner = error.into_inner();
        // serde_json appends " at line L column C" to its messages; the position is reported
        // separately.
        let full = inner.to_string();
        let message = explain_duration(
            full.rsplit_once(" at line ")
                .map_or(full.as_str(), |(message, _)| message),
        );
        let (kind, field) = if inner.is_syntax() || inner.is_eof() {
            (ErrorKind::Syntax, path)
        } else {
            classify_message(&message, path)
        };
        let location = (inner.line() > 0).then(|| (inner.line(), inner.column()));
        StackConfigError::new(kind, &source.origin, field.to_string(), message).at(location)
    })?;
    deserializer.end().map_err(|error| {
        StackConfigError::new(
            ErrorKind::Syntax,
            &source.origin,
            "",
            "trailing characters after the stack",
        )
        .at(Some((error.line(), error.column())))
    })?;
    Ok(raw)
}

/// A layer's [`ConfigError`] as an error on the setting's own line. A setting of a nested
/// table (`adaptive.min_limit`) is a path below the layer's table.
fn layer_error(source: &Source, table: &FieldPath, error: &ConfigError) -> StackConfigError {
    let mut message = error.problem().to_owned();
    if let Some(value) = error.value() {
        message = format!("{value}: {message}");
    }
    let field = error
        .setting()
        .split('.')
        .fold(table.clone(), |path, key| path.key(key));
    source
        .error(ErrorKind::Invalid, &field, message)
        .with_source(Box::new(error.clone()))
}

/// `[agents.NAME.hedge]` through `HedgeConfigBuilder` (the same rules and messages as code).
fn hedge_config(raw: &RawHedge) -> Result<HedgeConfig, ConfigError> {
    let mut builder = HedgeConfig::builder();
    match (raw.delay, raw.percentile) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "hedge",
                "percentile",
                "give `delay` (a fixed delay) or `percentile` (of recent latencies), not both",
            ));
        }
        (Some(delay), None) => builder = builder.delay(delay),
        (None, Some(percentile)) => builder = builder.percentile(percentile),
        (None, None) => {}
    }
    if let Some(delay) = raw.min_delay {
        builder = builder.min_delay(delay);
    }
    if let Some(delay) = raw.max_delay {
        builder = builder.max_delay(delay);
    }
    if let Some(samples) = raw.min_samples {
        builder = builder.min_samples(samples);
    }
    if let Some(window) = raw.window {
        builder = builder.window(window);
    }
    if let Some(hedges) = raw.max_hedges {
        builder = builder.max_hedges(hedges);
    }
    if let Some(ratio) = raw.budget_ratio {
        builder = builder.budget_ratio(ratio);
    }
    if let Some(floor) = raw.budget_min_per_sec {
        builder = builder.budget_min_per_sec(floor);
    }
    builder.build()
}

/// `[agents.NAME.bulkhead]` through `BulkheadConfigBuilder`, so the file obeys the same rules
/// (and gets the same messages) as code.
fn bulkhead_config(raw: &RawBulkhead) -> Result<BulkheadConfig, ConfigError> {
    let mut builder = BulkheadConfigBuilder::default();
    if let Some(max_concurrent) = raw.max_concurrent {
        builder = builder.max_concurrent(max_concurrent);
    }
    if let Some(max_queue) = raw.max_queue {
        builder = builder.max_queue(max_queue);
    }
    if let Some(max_wait) = raw.max_wait {
        builder = builder.max_wait(max_wait);
    }
    if let Some(readiness) = raw.readiness {
        builder = builder.readiness(readiness);
    }
    if let Some(raw) = &raw.adaptive {
        let mut adaptive = AdaptiveConfig::new();
        if let Some(limit) = raw.initial_limit {
            adaptive = adaptive.initial_limit(limit);
        }
        if let Some(limit) = raw.min_limit {
            adaptive = adaptive.min_limit(limit);
        }
        if let Some(backoff) = raw.backoff {
            adaptive = adaptive.backoff(backoff);
        }
        if let Some(threshold) = raw.latency_threshold {
            adaptive = adaptive.latency_threshold(threshold);
        }
        builder = builder.adaptive(adaptive);
    }
    builder.build()
}

fn validate(raw: &RawStack, source: Arc<Source>) -> Result<StackConfig, StackConfigError> {
    let root = FieldPath::default().key("agents");
    let names: Vec<&str> = raw.agents.0.iter().map(|(name, _)| name.as_str()).collect();
    let mut agents = Vec::with_capacity(raw.agents.0.len());
    for (name, agent) in &raw.agents.0 {
        agents.push(validate_agent(
            &source,
            &root.key(name),
            name,
            agent,
            &names,
        )?);
    }
    Ok(StackConfig { agents, source })
}

fn validate_agent(
    source: &Source,
    at: &FieldPath,
    name: &str,
    raw: &RawAgent,
    names: &[&str],
) -> Result<AgentConfig, StackConfigError> {
    if name.is_empty() || name.len() > MAX_AGENT_NAME || name.chars().any(char::is_control) {
        return Err(source.error(
            ErrorKind::Invalid,
            at,
            format!(
                "an agent's name must be 1 to {MAX_AGENT_NAME} bytes with no control characters"
            ),
        ));
    }
    if let Some(timeout) = raw.timeout
        && (timeout.is_zero() || timeout > MAX_TIMEOUT)
    {
        return Err(source.error(
            ErrorKind::Invalid,
            &at.key("timeout"),
            format!("{timeout:?}: must be more than 0 and at most 1h"),
        ));
    }
    if raw.classifier.as_deref() == Some("") {
        return Err(source.error(
            ErrorKind::Invalid,
            &at.key("classifier"),
            "must name a classifier kind (leave it out for `default`)",
        ));
    }
    let breaker = raw
        .breaker
        .clone()
        .map(BreakerConfigBuilder::build)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("breaker"), &error))?;
    let retry = raw
        .retry
        .clone()
        .map(RetryConfigBuilder::build)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("retry"), &error))?;
    let rate_limit = raw
        .rate_limit
        .clone()
        .map(RateLimitConfigBuilder::build)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("rate_limit"), &error))?;
    let bulkhead = raw
        .bulkhead
        .as_ref()
        .map(bulkhead_config)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("bulkhead"), &error))?;
    let hedge = raw
        .hedge
        .as_ref()
        .map(hedge_config)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("hedge"), &error))?;
    let hedge_to = raw.hedge.as_ref().map_or(&[][..], |hedge| &hedge.to[..]);
    check_chain(
        source,
        &at.key("hedge").key("to"),
        name,
        hedge_to,
        names,
        "hedge to itself (leave `to` out to hedge to the same agent)",
    )?;
    let cache = raw
        .cache
        .clone()
        .map(CacheConfigBuilder::build)
        .transpose()
        .map_err(|error| layer_error(source, &at.key("cache"), &error))?;
    check_fallback(source, at, name, &raw.fallback, names)?;
    let dead_letter = raw
        .dead_letter
        .as_ref()
        .map(|dead_letter| validate_dead_letter(source, &at.key("dead_letter"), dead_letter))
        .transpose()?;
    Ok(AgentConfig {
        name: name.to_owned(),
        endpoint: raw.endpoint.clone(),
        health_check: raw.health_check.clone(),
        classifier: raw
            .classifier
            .clone()
            .unwrap_or_else(|| DEFAULT_CLASSIFIER.to_owned()),
        timeout: raw.timeout,
        breaker,
        retry,
        rate_limit,
        bulkhead,
        hedge,
        hedge_to: hedge_to.to_vec(),
        fallback: raw.fallback.clone(),
        cache,
        dead_letter,
    })
}

/// Every agent of a `fallback` list is defined, is not the agent itself, and appears once.
fn check_fallback(
    source: &Source,
    at: &FieldPath,
    name: &str,
    fallback: &[String],
    names: &[&str],
) -> Result<(), StackConfigError> {
    check_chain(
        source,
        &at.key("fallback"),
        name,
        fallback,
        names,
        "be its own fallback",
    )
}

/// Every agent of the list at `chain` (a fallback chain, a hedge's `to`) is defined, is not
/// agent `name` itself (it cannot `itself`), and appears once.
fn check_chain(
    source: &Source,
    chain: &FieldPath,
    name: &str,
    fallback: &[String],
    names: &[&str],
    itself: &str,
) -> Result<(), StackConfigError> {
    for (index, alternative) in fallback.iter().enumerate() {
        let problem = if !names.contains(&alternative.as_str()) {
            Some((
                ErrorKind::UnknownAgent,
                format!(
                    "no agent `{alternative}` is defined (agents: {})",
                    names.join(", ")
                ),
            ))
        } else if alternative == name {
            Some((
                ErrorKind::Invalid,
                format!("agent `{name}` cannot {itself}"),
            ))
        } else if fallback[..index].contains(alternative) {
            Some((
                ErrorKind::Invalid,
                format!("`{alternative}` is already earlier in the chain"),
            ))
        } else {
            None
        };
        if let Some((kind, message)) = problem {
            return Err(source.error(kind, &chain.index(index), message));
        }
    }
    Ok(())
}

fn validate_dead_letter(
    source: &Source,
    at: &FieldPath,
    raw: &RawDeadLetter,
) -> Result<DeadLetterConfig, StackConfigError> {
    let invalid =
        |field: &str, message: String| source.error(ErrorKind::Invalid, &at.key(field), message);
    // Settings of another kind of store are refused rather than ignored: a `path` under
    // `store = "memory"` means the author expected a durable store.
    let given = [
        ("capacity", raw.capacity.is_some(), StoreKind::Memory),
        ("path", raw.path.is_some(), StoreKind::Sqlite),
        ("url_env", raw.url_env.is_some(), StoreKind::Amqp),
        ("queue", raw.queue.is_some(), StoreKind::Amqp),
        ("exchange", raw.exchange.is_some(), StoreKind::Amqp),
    ];
    for (field, is_given, kind) in given {
        if is_given && kind != raw.store {
            return Err(invalid(
                field,
                format!(
                    "is a setting of `store = \"{}\"`, not of this store",
                    kind_name(kind)
                ),
            ));
        }
    }
    let store = match raw.store {
        StoreKind::Memory => {
            let capacity = raw.capacity.unwrap_or(DEFAULT_MEMORY_CAPACITY);
            if capacity == 0 {
                return Err(invalid(
                    "capacity",
                    "0: a memory store must hold at least one record".into(),
                ));
            }
            DeadLetterStore::Memory { capacity }
        }
        StoreKind::Sqlite => DeadLetterStore::Sqlite {
            path: raw.path.clone(),
        },
        StoreKind::Amqp => {
            let Some(url_env) = raw.url_env.clone().filter(|name| !name.is_empty()) else {
                return Err(invalid(
                    "url_env",
                    "an amqp store needs `url_env`: the environment variable holding the broker URL (the URL carries a password, so it is never written in the file)".into(),
                ));
            };
            DeadLetterStore::Amqp {
                url_env,
                queue: raw.queue.clone(),
                exchange: raw.exchange.clone(),
            }
        }
    };
    let policy = match &raw.failures {
        None => DeadLetterPolicy::default(),
        Some(kinds) => {
            let mut policy = DeadLetterPolicy::none();
            for (index, kind) in kinds.iter().enumerate() {
                if *kind == OutcomeKind::Success {
                    return Err(source.error(
                        ErrorKind::Invalid,
                        &at.key("failures").index(index),
                        "`success` is not a failure; list transient, rate_limited, agent_fault or caller_fault",
                    ));
                }
                policy = policy.with(*kind);
            }
            policy
        }
    };
    Ok(DeadLetterConfig { store, policy })
}

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Memory => "memory",
        StoreKind::Sqlite => "sqlite",
        StoreKind::Amqp => "amqp",
    }
}
