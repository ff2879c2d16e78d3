//! Bad input: configuration. `BreakerConfig`, `RetryConfig` and `CacheConfig` (and, in
//! `llm_layers`, `RateLimitConfig`, `HedgeConfig` and the bulkhead and adaptive stack tables), built from
//! arbitrary values and deserialised from arbitrary text, arbitrary JSON over their field names
//! and hand-written mistakes: never a panic; every refusal is one `ConfigError` naming its
//! component and setting (or, for text that is not a config at all, a `serde_json::Error` that
//! says where); every accepted config round-trips through JSON exactly.
//!
//! cargo-fuzz needs a nightly toolchain; this is the stable route: proptest over arbitrary
//! input. Each property runs twice: with a fixed seed, so the cases that once passed are
//! replayed every time, and with a fresh random seed, printed, so new ground is covered and a
//! failure reproduces with `STEADFAST_PROPTEST_SEED=<seed>`.
#![cfg(all(
    feature = "serde",
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback"
))]

use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError, TestRunner};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use steadfast::cache::{CacheConfig, CacheConfigBuilder};
use steadfast::circuit_breaker::{BreakerConfig, BreakerConfigBuilder, SlidingWindow};
use steadfast::retry::{Jitter, RetryBudget, RetryConfig, RetryConfigBuilder};
use steadfast::{Agent, BoxError, ConfigError};

/// The seed every run replays.
const FIXED_SEED: u64 = 0x5EED_C0F1_6000_0001;

const BREAKER_SETTINGS: &[&str] = &[
    "consecutive_failures",
    "failure_rate_threshold",
    "window",
    "min_calls",
    "slow_call_threshold",
    "slow_call_rate_threshold",
    "initial_open_duration",
    "open_duration_multiplier",
    "max_open_duration",
    "half_open_probes",
    "success_threshold",
    "health_check_interval",
    "health_check_timeout",
    "recent_failures",
];

const RETRY_SETTINGS: &[&str] = &[
    "max_retries",
    "base",
    "multiplier",
    "max_backoff",
    "jitter",
    "max_retry_after",
    "deadline",
    "budget_ratio",
    "budget_min_per_sec",
    "budget_ttl",
];

const CACHE_SETTINGS: &[&str] = &["max_entries", "max_bytes", "ttl", "max_stale"];

/// Every field of the three configs, plus names none of them has.
const FIELDS: &[&str] = &[
    "consecutive_failures",
    "failure_rate_threshold",
    "window",
    "min_calls",
    "slow_call_threshold",
    "slow_call_rate_threshold",
    "initial_open_duration",
    "open_duration_multiplier",
    "max_open_duration",
    "half_open_probes",
    "success_threshold",
    "health_check_interval",
    "health_check_timeout",
    "recent_failures",
    "max_retries",
    "base",
    "multiplier",
    "max_backoff",
    "jitter",
    "max_retry_after",
    "deadline",
    "budget_ratio",
    "budget_min_per_sec",
    "budget_ttl",
    "max_entries",
    "max_bytes",
    "ttl",
    "max_stale",
    "count",
    "time",
    "",
    "tll",
];

/// Runs `property` over `cases` values of `strategy`, once with [`FIXED_SEED`] and once with
/// a random seed (or `STEADFAST_PROPTEST_SEED`), printing each seed.
fn check_property<S>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let random = match std::env::var("STEADFAST_PROPTEST_SEED") {
        Ok(seed) => seed.parse().expect("STEADFAST_PROPTEST_SEED is a u64"),
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    };
    for seed in [FIXED_SEED, random] {
        eprintln!("{name}: proptest seed {seed} (replay: STEADFAST_PROPTEST_SEED={seed})");
        let config = ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        if let Err(failure) = TestRunner::new(config).run(&strategy, &property) {
            panic!("{name} failed with proptest seed {seed}: {failure}");
        }
    }
}

/// A refusal names its component and one of that component's settings, and says what is
/// allowed.
fn names_its_setting(
    error: &ConfigError,
    component: &str,
    settings: &[&str],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(error.component(), component, "{}", error);
    prop_assert!(
        settings.contains(&error.setting()),
        "`{}` is no {} setting: {}",
        error.setting(),
        component,
        error
    );
    prop_assert!(!error.problem().is_empty(), "{}", error);
    let prefix = format!("invalid {component} setting `{}`", error.setting());
    prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
    Ok(())
}

/// `config` written as JSON reads back as the same config, and writes the same JSON again.
fn round_trips<T>(config: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let json = serde_json::to_string(config).expect("a config always serialises");
    let back: T = serde_json::from_str(&json)
        .map_err(|error| TestCaseError::fail(format!("{json} does not read back: {error}")))?;
    prop_assert_eq!(&back, config, "through {}", json);
    prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    Ok(())
}

/// Parses `text` as config `T` (through its builder `B`): an accepted config round-trips; a
/// refused one is either not a config at all (the builder does not parse either) or a
/// `ConfigError` naming its setting, which the message of `T`'s parse repeats.
fn parses_or_names_the_setting<T, B>(
    text: &str,
    component: &str,
    settings: &[&str],
) -> Result<bool, TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + TryFrom<B, Error = ConfigError>,
    B: DeserializeOwned,
{
    let parsed = serde_json::from_str::<T>(text);
    let builder = match serde_json::from_str::<B>(text) {
        Ok(builder) => builder,
        Err(not_a_config) => {
            let message = parsed.expect_err("the builder refused it").to_string();
            // The same message, unless the values were refused before the text was read to
            // its end (serde_json looks for trailing characters last): then it names one of
            // the settings.
            let names_a_setting = || {
                settings.iter().any(|setting| {
                    message.starts_with(&format!("invalid {component} setting `{setting}`"))
                })
            };
            prop_assert!(
                message == not_a_config.to_string() || names_a_setting(),
                "{} / {}",
                message,
                not_a_config
            );
            return Ok(false);
        }
    };
    match T::try_from(builder) {
        Ok(config) => {
            let parsed = parsed.map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(&parsed, &config);
            round_trips(&config)?;
            Ok(true)
        }
        Err(error) => {
            names_its_setting(&error, component, settings)?;
            let message = parsed.expect_err("the builder refused it").to_string();
            prop_assert!(
                message.contains(&error.to_string()),
                "{} not in {}",
                error,
                message
            );
            Ok(false)
        }
    }
}

/// Parses `text` as each config.
fn check(text: &str) -> Result<(), TestCaseError> {
    parses_or_names_the_setting::<BreakerConfig, BreakerConfigBuilder>(
        text,
        "breaker",
        BREAKER_SETTINGS,
    )?;
    parses_or_names_the_setting::<RetryConfig, RetryConfigBuilder>(text, "retry", RETRY_SETTINGS)?;
    parses_or_names_the_setting::<CacheConfig, CacheConfigBuilder>(text, "cache", CACHE_SETTINGS)?;
    Ok(())
}

/// A duration as text: digits, maybe a fraction, a unit or none (or a wrong one).
fn duration_text() -> impl Strategy<Value = String> {
    "[0-9]{0,24}(\\.[0-9]{0,6})? ?(ns|us|µs|ms|s|m|min|h|d|w|M|y|years|x|)( [0-9]{1,3}(ms|s|h))?"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..200).prop_map(Value::from),
        (-10.0f64..10.0).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        duration_text().prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(&["full", "equal", "decorrelated", "none"][..])
            .prop_map(|jitter| Value::String(jitter.into())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..3).prop_map(
                |entries| Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                )
            ),
        ]
    })
}

/// An object over the configs' field names with arbitrary values.
fn config_object() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(FIELDS), value()), 0..6).prop_map(|entries| {
        let object: Map<String, Value> = entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Value::Object(object).to_string()
    })
}

#[test]
fn arbitrary_text_is_never_a_panic() {
    check_property(
        "arbitrary_text_is_never_a_panic",
        256,
        "\\PC{0,64}",
        |text| check(&text),
    );
}

#[test]
fn arbitrary_values_for_every_field_are_accepted_valid_or_refused_naming_the_setting() {
    let accepted = AtomicUsize::new(0);
    check_property(
        "arbitrary_values_for_every_field",
        512,
        config_object(),
        |text| {
            for accepted_here in [
                parses_or_names_the_setting::<BreakerConfig, BreakerConfigBuilder>(
                    &text,
                    "breaker",
                    BREAKER_SETTINGS,
                )?,
                parses_or_names_the_setting::<RetryConfig, RetryConfigBuilder>(
                    &text,
                    "retry",
                    RETRY_SETTINGS,
                )?,
                parses_or_names_the_setting::<CacheConfig, CacheConfigBuilder>(
                    &text,
                    "cache",
                    CACHE_SETTINGS,
                )?,
            ] {
                accepted.fetch_add(usize::from(accepted_here), Ordering::Relaxed);
            }
            Ok(())
        },
    );
    // Guard the guard: were every input refused, the round-trip half would pass vacuously.
    assert!(
        accepted.load(Ordering::Relaxed) > 50,
        "only {} configs accepted",
        accepted.load(Ordering::Relaxed)
    );
}

#[test]
fn a_valid_config_with_damaged_bytes_is_never_a_panic() {
    check_property(
        "a_valid_config_with_damaged_bytes",
        256,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        |damage| {
            for valid in [
                serde_json::to_string(&BreakerConfig::default()).unwrap(),
                serde_json::to_string(&RetryConfig::default()).unwrap(),
                serde_json::to_string(&CacheConfig::default()).unwrap(),
            ] {
                let mut bytes = valid.into_bytes();
                for (at, byte) in &damage {
                    let at = at.index(bytes.len());
                    bytes[at] = *byte;
                }
                check(&String::from_utf8_lossy(&bytes))?;
            }
            Ok(())
        },
    );
}

/// Durations from none to the largest there is, with and without nanoseconds; mostly the
/// milliseconds to minutes that configs allow, so that most configs are accepted.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        6 => (10u64..60_000).prop_map(Duration::from_millis),
        2 => (0u64..=60, 0u32..1_000_000_000).prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
        1 => (any::<u64>(), 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
        1 => prop::sample::select(vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(31_557_600 * 1_000),
        ]),
    ]
}

/// Small counts, mostly at least one.
fn count(max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![8 => 1..=max, 1 => Just(0), 1 => any::<u32>()]
}

/// Reals around and far outside every range the configs allow.
fn real(typical: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => typical,
        1 => any::<f64>(),
        1 => prop::sample::select(&[
            0.0, -0.0, 1.0, 10.0, 1_000.0, f64::MIN_POSITIVE, 1.0 + f64::EPSILON,
            10.000_000_000_000_002, 4.08e17, 1e300, f64::INFINITY, f64::NAN,
        ][..]),
    ]
}

fn window() -> impl Strategy<Value = SlidingWindow> {
    prop_oneof![
        3 => (50u32..=12_000).prop_map(SlidingWindow::Count),
        1 => (0u32..50).prop_map(SlidingWindow::Count),
        1 => duration().prop_map(SlidingWindow::Time),
        2 => (1u64..=3_600).prop_map(|secs| SlidingWindow::Time(Duration::from_secs(secs))),
    ]
}

fn breaker_builder() -> impl Strategy<Value = BreakerConfigBuilder> {
    (
        (
            0u32..20,
            real(0.0..=1.0),
            window(),
            count(50),
            prop::option::of(duration()),
            real(0.0..=1.0),
        ),
        (
            prop_oneof![3 => (1u64..=1_000).prop_map(Duration::from_millis), 1 => duration()],
            real(1.0..=10.0),
            prop_oneof![3 => (1u64..=120).prop_map(Duration::from_secs), 1 => duration()],
            count(5),
            prop::option::of(count(5)),
            duration(),
            duration(),
            0usize..64,
        ),
    )
        .prop_map(
            |(
                (consecutive, rate, window, min_calls, slow, slow_rate),
                (initial, multiplier, max_open, probes, successes, interval, timeout, recent),
            )| {
                let mut builder = BreakerConfig::builder()
                    .consecutive_failures(consecutive)
                    .failure_rate_threshold(rate)
                    .window(window)
                    .min_calls(min_calls)
                    .slow_call_rate_threshold(slow_rate)
                    .initial_open_duration(initial)
                    .open_duration_multiplier(multiplier)
                    .max_open_duration(max_open)
                    .half_open_probes(probes)
                    .health_check_interval(interval)
                    .health_check_timeout(timeout)
                    .recent_failures(recent);
                if let Some(slow) = slow {
                    builder = builder.slow_call_threshold(slow);
                }
                if let Some(successes) = successes {
                    builder = builder.success_threshold(successes);
                }
                builder
            },
        )
}

fn retry_builder() -> impl Strategy<Value = RetryConfigBuilder> {
    (
        (0u32..=120, duration(), real(1.0..=10.0), duration()),
        (
            prop::sample::select(
                &[
                    Jitter::Full,
                    Jitter::Equal,
                    Jitter::Decorrelated,
                    Jitter::None,
                ][..],
            ),
            duration(),
            prop::option::of(duration()),
            real(0.0..=1_000.0),
            any::<u32>(),
            prop_oneof![duration(), (1u64..=60).prop_map(Duration::from_secs)],
        ),
    )
        .prop_map(
            |(
                (retries, base, multiplier, max_backoff),
                (jitter, max_retry_after, deadline, ratio, floor, ttl),
            )| {
                let builder = RetryConfig::builder()
                    .max_retries(retries)
                    .base(base)
                    .multiplier(multiplier)
                    .max_backoff(max_backoff)
                    .jitter(jitter)
                    .max_retry_after(max_retry_after)
                    .budget_ratio(ratio)
                    .budget_min_per_sec(floor)
                    .budget_ttl(ttl);
                match deadline {
                    Some(deadline) => builder.deadline(deadline),
                    None => builder,
                }
            },
        )
}

fn cache_builder() -> impl Strategy<Value = CacheConfigBuilder> {
    (
        prop_oneof![0usize..5, any::<usize>()],
        prop::option::of(prop_oneof![0usize..5, any::<usize>()]),
        duration(),
        duration(),
    )
        .prop_map(|(entries, bytes, ttl, stale)| {
            let builder = CacheConfig::builder()
                .max_entries(entries)
                .ttl(ttl)
                .max_stale(stale);
            match bytes {
                Some(bytes) => builder.max_bytes(bytes),
                None => builder,
            }
        })
}

#[test]
fn every_built_config_round_trips_exactly_and_every_refusal_names_its_setting() {
    let accepted = [0, 1, 2].map(|_| AtomicUsize::new(0));
    check_property(
        "every_built_config",
        512,
        (breaker_builder(), retry_builder(), cache_builder()),
        |(breaker, retry, cache)| {
            match breaker.build() {
                Ok(config) => {
                    accepted[0].fetch_add(1, Ordering::Relaxed);
                    round_trips(&config)?;
                }
                Err(error) => names_its_setting(&error, "breaker", BREAKER_SETTINGS)?,
            }
            match retry.build() {
                Ok(config) => {
                    accepted[1].fetch_add(1, Ordering::Relaxed);
                    round_trips(&config)?;
                }
                Err(error) => names_its_setting(&error, "retry", RETRY_SETTINGS)?,
            }
            match cache.build() {
                Ok(config) => {
                    accepted[2].fetch_add(1, Ordering::Relaxed);
                    round_trips(&config)?;
                }
                Err(error) => names_its_setting(&error, "cache", CACHE_SETTINGS)?,
            }
            Ok(())
        },
    );
    for (config, accepted) in ["breaker", "retry", "cache"].iter().zip(&accepted) {
        let accepted = accepted.load(Ordering::Relaxed);
        eprintln!("{accepted} {config} configs accepted of 1024");
        assert!(accepted > 20, "only {accepted} {config} configs accepted");
    }
}

#[test]
fn a_retry_budget_is_built_or_refused_naming_its_setting() {
    check_property(
        "a_retry_budget",
        256,
        (real(0.0..=1_000.0), any::<u32>(), duration()),
        |(ratio, floor, ttl)| {
            if let Err(error) = RetryBudget::new(ratio, floor, ttl) {
                names_its_setting(&error, "retry", &["budget_ratio", "budget_ttl"])?;
            }
            Ok(())
        },
    );
}

fn breaker_error(json: &str) -> String {
    serde_json::from_str::<BreakerConfig>(json)
        .unwrap_err()
        .to_string()
}

fn retry_error(json: &str) -> String {
    serde_json::from_str::<RetryConfig>(json)
        .unwrap_err()
        .to_string()
}

fn cache_error(json: &str) -> String {
    serde_json::from_str::<CacheConfig>(json)
        .unwrap_err()
        .to_string()
}

#[test]
fn an_invalid_value_names_the_setting_it_belongs_to() {
    fn refused<B, T>(json: &str) -> (String, String, Option<String>)
    where
        B: DeserializeOwned,
        T: TryFrom<B, Error = ConfigError>,
    {
        let builder: B = serde_json::from_str(json).expect("well-formed");
        let error = T::try_from(builder).err().expect("refused");
        (
            error.component().to_owned(),
            error.setting().to_owned(),
            error.value().map(str::to_owned),
        )
    }
    let expect = |component: &str, setting: &str, value: &str| {
        (
            component.to_owned(),
            setting.to_owned(),
            Some(value.to_owned()),
        )
    };
    let breaker = refused::<BreakerConfigBuilder, BreakerConfig>;
    let retry = refused::<RetryConfigBuilder, RetryConfig>;
    let cache = refused::<CacheConfigBuilder, CacheConfig>;
    for (got, want) in [
        (
            breaker(r#"{"failure_rate_threshold": 1.5}"#),
            expect("breaker", "failure_rate_threshold", "1.5"),
        ),
        (
            breaker(r#"{"half_open_probes": 0}"#),
            expect("breaker", "half_open_probes", "0"),
        ),
        (
            breaker(r#"{"max_open_duration": "10m"}"#),
            expect("breaker", "max_open_duration", "600s"),
        ),
        (
            breaker(r#"{"open_duration_multiplier": 4.08e17}"#),
            expect("breaker", "open_duration_multiplier", "408000000000000000"),
        ),
        (
            breaker(r#"{"open_duration_multiplier": 0.5}"#),
            expect("breaker", "open_duration_multiplier", "0.5"),
        ),
        (
            breaker(r#"{"window": {"count": 0}}"#),
            expect("breaker", "window", "0 calls"),
        ),
        (
            breaker(r#"{"window": {"count": 10}, "min_calls": 11}"#),
            expect("breaker", "min_calls", "11"),
        ),
        (
            retry(r#"{"multiplier": 0.1}"#),
            expect("retry", "multiplier", "0.1"),
        ),
        (
            retry(r#"{"multiplier": 1e300}"#),
            expect("retry", "multiplier", &1e300_f64.to_string()),
        ),
        (retry(r#"{"base": "0s"}"#), expect("retry", "base", "0s")),
        (
            retry(r#"{"deadline": "0s"}"#),
            expect("retry", "deadline", "0s"),
        ),
        (
            retry(r#"{"max_retries": 101}"#),
            expect("retry", "max_retries", "101"),
        ),
        (
            cache(r#"{"max_entries": 0}"#),
            expect("cache", "max_entries", "0"),
        ),
        (cache(r#"{"ttl": "0s"}"#), expect("cache", "ttl", "0s")),
    ] {
        assert_eq!(got, want);
    }
}

#[test]
fn growth_factors_past_ten_are_refused_however_they_arrive() {
    // 4.08e17 was once accepted as a breaker's open-time growth, 1e300 as a retry backoff's:
    // both are bounded to 1.0..=10.0 now, from a file and from the builder alike.
    assert!(
        breaker_error(r#"{"open_duration_multiplier": 4.08e17}"#).starts_with(
            "invalid breaker setting `open_duration_multiplier` = 408000000000000000:"
        )
    );
    assert!(
        retry_error(r#"{"multiplier": 1e300}"#).starts_with("invalid retry setting `multiplier`")
    );
    let error = BreakerConfig::builder()
        .open_duration_multiplier(4.08e17)
        .build()
        .unwrap_err();
    assert_eq!(
        (error.component(), error.setting()),
        ("breaker", "open_duration_multiplier")
    );
    let error = RetryConfig::builder()
        .multiplier(1e300)
        .build()
        .unwrap_err();
    assert_eq!(
        (error.component(), error.setting()),
        ("retry", "multiplier")
    );
    for edge in [1.0, 10.0] {
        assert!(
            BreakerConfig::builder()
                .open_duration_multiplier(edge)
                .build()
                .is_ok()
        );
        assert!(RetryConfig::builder().multiplier(edge).build().is_ok());
    }
    let just_over = 10.000_000_000_000_002; // the next f64 after 10
    assert!(
        BreakerConfig::builder()
            .open_duration_multiplier(just_over)
            .build()
            .is_err()
    );
    assert!(
        RetryConfig::builder()
            .multiplier(just_over)
            .build()
            .is_err()
    );
}

#[test]
fn a_misspelt_or_unknown_field_is_named() {
    // Not a setting at all: serde names the field and lists the right ones.
    for (error, field) in [
        (retry_error(r#"{"retries": 3}"#), "retries"),
        (cache_error(r#"{"tll": "5s"}"#), "tll"),
        (breaker_error(r#"{"window": {"size": 5}}"#), "size"),
    ] {
        assert!(
            error.contains(&format!("`{field}`")),
            "`{field}` not in: {error}"
        );
        assert!(error.contains("expected"), "{error}");
    }
}

#[test]
fn a_value_of_the_wrong_shape_is_named_with_its_position() {
    // serde_json reports type and duration errors with the offending value and the line and
    // column, not the field name.
    let wrong_type = retry_error("{\n  \"max_retries\": \"three\"\n}");
    assert!(
        wrong_type.contains("three") && wrong_type.contains("line 2"),
        "{wrong_type}"
    );
    let unit = breaker_error(r#"{"initial_open_duration": "5 parsecs"}"#);
    assert!(
        unit.contains("\"5 parsecs\", expected a duration") && unit.contains("column 37"),
        "{unit}"
    );
    let negative = cache_error(r#"{"max_entries": -1}"#);
    assert!(
        negative.contains("-1") && negative.contains("column"),
        "{negative}"
    );
    let bare_number = retry_error(r#"{"base": 30}"#);
    assert!(bare_number.contains("30"), "{bare_number}");
}

#[test]
fn durations_are_humantime_text() {
    let config: RetryConfig =
        serde_json::from_str(r#"{"base": "1500ms", "deadline": "1m 30s", "max_backoff": "2h"}"#)
            .unwrap();
    assert_eq!(config.base(), Duration::from_millis(1_500));
    assert_eq!(config.deadline(), Some(Duration::from_secs(90)));
    assert_eq!(config.max_backoff(), Duration::from_secs(7_200));
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["base"], "1s 500ms");
    assert_eq!(json["deadline"], "1m 30s");
    assert_eq!(json["max_backoff"], "2h");
    // humantime (2.4) reads fractions too, and writes them back in whole units.
    let fraction: RetryConfig = serde_json::from_str(r#"{"base": "1.5s"}"#).unwrap();
    assert_eq!(fraction.base(), Duration::from_millis(1_500));
    assert_eq!(serde_json::to_value(&fraction).unwrap()["base"], "1s 500ms");
    for not_a_duration in ["1,5s", "1.5", "-1s", "1.s", "0.5ns", ""] {
        let json = format!(r#"{{"base": "{not_a_duration}"}}"#);
        let error = retry_error(&json);
        assert!(
            error.contains("expected a duration"),
            "{not_a_duration}: {error}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_of_duration_max_builds_and_calls_through_it_do_not_panic() {
    let unbounded = RetryConfig::builder()
        .deadline(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(
        unbounded.deadline(),
        None,
        "Duration::MAX means no deadline"
    );
    round_trips(&unbounded).unwrap();
    let deadlines = [
        Duration::MAX,
        Duration::MAX.saturating_sub(Duration::from_nanos(1)),
        Duration::from_secs(u64::MAX),
        Duration::from_secs(1 << 40),
        Duration::from_secs(1_000 * 365 * 86_400),
    ];
    for deadline in deadlines {
        let config = RetryConfig::builder()
            .jitter(Jitter::None)
            .deadline(deadline)
            .build()
            .unwrap();
        round_trips(&config).unwrap();
        let layer = steadfast::retry::BackoffRetryLayer::new(&Agent::new("gpt"), config);
        // Fails twice, then answers: two waits under the far deadline.
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let flaky = tower::service_fn(move |n: u32| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if call < 2 {
                    Err::<u32, BoxError>("reset".into())
                } else {
                    Ok(n)
                }
            }
        });
        let started = tokio::time::Instant::now();
        let reply = tower::ServiceExt::oneshot(tower::Layer::layer(&layer, flaky), 7).await;
        assert_eq!(reply.unwrap(), 7, "{deadline:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{deadline:?}");
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1_500),
            "{deadline:?}"
        );

        // An agent that never answers is given up on after its retries, not at the deadline.
        let dead = tower::service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
        let error = tower::ServiceExt::oneshot(tower::Layer::layer(&layer, dead), 7)
            .await
            .unwrap_err();
        assert!(
            error.is::<steadfast::retry::RetriesExhausted>(),
            "{deadline:?}: {error}"
        );
    }
}

/// The LLM layers' configs: `RateLimitConfig` and `HedgeConfig` (serde, like the three above),
/// and the bulkhead and adaptive-concurrency tables, which only stack files read (an
/// `AdaptiveConfig` may hold an overload rule, which is code), so they are driven through
/// `StackConfig`.
#[cfg(feature = "config")]
mod llm_layers {
    use super::*;
    use steadfast::config::{ErrorKind, StackConfig};
    use steadfast::hedge::{HedgeConfig, HedgeConfigBuilder};
    use steadfast::rate_limit::{RateLimitConfig, RateLimitConfigBuilder};

    const RATE_LIMIT_SETTINGS: &[&str] = &[
        "requests_per_minute",
        "tokens_per_minute",
        "burst",
        "max_wait",
        "max_pause",
    ];

    const HEDGE_SETTINGS: &[&str] = &[
        "delay",
        "percentile",
        "min_delay",
        "max_delay",
        "min_samples",
        "window",
        "max_hedges",
        "budget_ratio",
        "budget_min_per_sec",
    ];

    /// Every key of the four tables (as files write them), plus names none of them has.
    const FIELDS: &[&str] = &[
        "requests_per_minute",
        "tokens_per_minute",
        "burst",
        "max_wait",
        "max_pause",
        "delay",
        "percentile",
        "fixed",
        "min_delay",
        "max_delay",
        "min_samples",
        "window",
        "max_hedges",
        "budget_ratio",
        "budget_min_per_sec",
        "to",
        "max_concurrent",
        "max_queue",
        "readiness",
        "adaptive",
        "initial_limit",
        "min_limit",
        "backoff",
        "latency_threshold",
        "rpm",
        "",
    ];

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(FIELDS), inner), 0..3).prop_map(
                    |entries| Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect()
                    )
                ),
            ]
        })
    }

    /// An object over the tables' keys with arbitrary values (mostly plausible ones).
    fn table() -> impl Strategy<Value = Map<String, Value>> {
        let plausible = prop_oneof![
            (1u64..100_000).prop_map(Value::from),
            (0.01f64..=1.0).prop_map(Value::from),
            (1.0f64..99.0).prop_map(Value::from),
            prop::sample::select(&["1s", "250ms", "2m", "0s", "1000000000y"][..])
                .prop_map(|text| Value::String(text.into())),
            prop::sample::select(&["shed_in_call", "wait_in_poll_ready"][..])
                .prop_map(|text| Value::String(text.into())),
        ];
        prop::collection::vec(
            (
                prop::sample::select(FIELDS),
                prop_oneof![2 => plausible, 1 => value()],
            ),
            0..5,
        )
        .prop_map(|entries| {
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        })
    }

    #[test]
    fn arbitrary_values_for_the_llm_layers_are_accepted_valid_or_refused_naming_the_setting() {
        let accepted = [0, 1].map(|_| AtomicUsize::new(0));
        check_property(
            "arbitrary_values_for_the_llm_layers",
            512,
            (table(), any::<bool>()),
            |(mut object, with_a_quota)| {
                // A rate limiter needs a quota: give half of the tables one, so that enough
                // are accepted for the round trip to be exercised.
                if with_a_quota {
                    object
                        .entry("requests_per_minute")
                        .or_insert_with(|| Value::from(60));
                }
                let text = Value::Object(object).to_string();
                let rate_limit = parses_or_names_the_setting::<
                    RateLimitConfig,
                    RateLimitConfigBuilder,
                >(&text, "rate_limit", RATE_LIMIT_SETTINGS)?;
                let hedge = parses_or_names_the_setting::<HedgeConfig, HedgeConfigBuilder>(
                    &text,
                    "hedge",
                    HEDGE_SETTINGS,
                )?;
                accepted[0].fetch_add(usize::from(rate_limit), Ordering::Relaxed);
                accepted[1].fetch_add(usize::from(hedge), Ordering::Relaxed);
                Ok(())
            },
        );
        for (config, accepted) in ["rate_limit", "hedge"].iter().zip(&accepted) {
            let accepted = accepted.load(Ordering::Relaxed);
            eprintln!("{accepted} {config} configs accepted of 1024");
            assert!(accepted > 20, "only {accepted} {config} configs accepted");
        }
    }

    /// A table of the stack file, read from JSON: accepted, or refused naming a field of that
    /// table (or the table itself) with its line; never a panic.
    fn table_is_read_or_refused_in_place(
        table: &str,
        object: &Value,
    ) -> Result<bool, TestCaseError> {
        let text = serde_json::json!({ "agents": { "b": {}, "a": { table: object } } }).to_string();
        match StackConfig::from_json(&text) {
            Ok(_) => Ok(true),
            Err(error) => {
                let at = format!("agents.a.{table}");
                prop_assert!(error.field().starts_with(&at), "{}: {}", text, error);
                prop_assert!(error.line().is_some(), "{}", error);
                prop_assert!(error.to_string().starts_with("<json>:1:"), "{}", error);
                Ok(false)
            }
        }
    }

    #[test]
    fn arbitrary_stack_tables_of_the_llm_layers_are_read_or_refused_naming_their_field() {
        let accepted = AtomicUsize::new(0);
        check_property(
            "arbitrary_stack_tables_of_the_llm_layers",
            256,
            (table(), table()),
            |(object, adaptive)| {
                let mut with_adaptive = object.clone();
                with_adaptive.insert("adaptive".into(), Value::Object(adaptive));
                for (table, object) in [
                    ("rate_limit", Value::Object(object.clone())),
                    ("hedge", Value::Object(object.clone())),
                    ("bulkhead", Value::Object(object)),
                    ("bulkhead", Value::Object(with_adaptive)),
                ] {
                    let read = table_is_read_or_refused_in_place(table, &object)?;
                    accepted.fetch_add(usize::from(read), Ordering::Relaxed);
                }
                Ok(())
            },
        );
        let accepted = accepted.load(Ordering::Relaxed);
        assert!(accepted > 20, "only {accepted} tables accepted");
    }

    fn rate_limit_builder() -> impl Strategy<Value = RateLimitConfigBuilder> {
        (
            prop::option::of(count(100_000)),
            prop::option::of(prop_oneof![4 => 1u64..10_000_000, 1 => any::<u64>(), 1 => Just(0)]),
            real(0.0..=1.0),
            duration(),
            duration(),
        )
            .prop_map(|(requests, tokens, burst, max_wait, max_pause)| {
                let mut builder = RateLimitConfig::builder()
                    .burst(burst)
                    .max_wait(max_wait)
                    .max_pause(max_pause);
                if let Some(requests) = requests {
                    builder = builder.requests_per_minute(requests);
                }
                if let Some(tokens) = tokens {
                    builder = builder.tokens_per_minute(tokens);
                }
                builder
            })
    }

    fn hedge_builder() -> impl Strategy<Value = HedgeConfigBuilder> {
        (
            prop_oneof![duration().prop_map(Ok), real(1.0..=99.9).prop_map(Err),],
            (duration(), duration(), count(100)),
            (duration(), count(6), real(0.0..=1_000.0), any::<u32>()),
        )
            .prop_map(
                |(delay, (min_delay, max_delay, samples), (window, hedges, ratio, floor))| {
                    let builder = HedgeConfig::builder()
                        .min_delay(min_delay)
                        .max_delay(max_delay)
                        .min_samples(samples)
                        .window(window)
                        .max_hedges(hedges)
                        .budget_ratio(ratio)
                        .budget_min_per_sec(floor);
                    match delay {
                        Ok(delay) => builder.delay(delay),
                        Err(percentile) => builder.percentile(percentile),
                    }
                },
            )
    }

    #[test]
    fn every_built_llm_layer_config_round_trips_exactly_and_every_refusal_names_its_setting() {
        let accepted = [0, 1].map(|_| AtomicUsize::new(0));
        check_property(
            "every_built_llm_layer_config",
            512,
            (rate_limit_builder(), hedge_builder()),
            |(rate_limit, hedge)| {
                match rate_limit.build() {
                    Ok(config) => {
                        accepted[0].fetch_add(1, Ordering::Relaxed);
                        round_trips(&config)?;
                    }
                    Err(error) => names_its_setting(&error, "rate_limit", RATE_LIMIT_SETTINGS)?,
                }
                match hedge.build() {
                    Ok(config) => {
                        accepted[1].fetch_add(1, Ordering::Relaxed);
                        round_trips(&config)?;
                    }
                    Err(error) => names_its_setting(&error, "hedge", HEDGE_SETTINGS)?,
                }
                Ok(())
            },
        );
        for (config, accepted) in ["rate_limit", "hedge"].iter().zip(&accepted) {
            let accepted = accepted.load(Ordering::Relaxed);
            eprintln!("{accepted} {config} configs accepted of 1024");
            assert!(accepted > 20, "only {accepted} {config} configs accepted");
        }
    }

    /// Hostile values in each table: (the file, the field named, a word of the message).
    const HOSTILE: &[(&str, &str, &str)] = &[
        // bulkhead
        (
            "[agents.a.bulkhead]\nmax_concurrent = 0\n",
            "agents.a.bulkhead.max_concurrent",
            "at least 1",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = -3\n",
            "agents.a.bulkhead.max_concurrent",
            "-3",
        ),
        (
            "[agents.a.bulkhead]\nmax_concurrent = 18446744073709551616\n",
            "",
            "",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"1000000000y\"\n",
            "agents.a.bulkhead.max_wait",
            "at most",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4\nmax_wait = \"-1s\"\n",
            "agents.a.bulkhead.max_wait",
            "-1s",
        ),
        (
            "[agents.a.bulkhead]\nmax_queue = 4000000000\nmax_wait = \"1s\"\n",
            "agents.a.bulkhead.max_queue",
            "at most",
        ),
        (
            "[agents.a.bulkhead]\nmax_inflight = 4\n",
            "agents.a.bulkhead.max_inflight",
            "unknown field",
        ),
        // adaptive
        (
            "[agents.a.bulkhead.adaptive]\nbackoff = nan\n",
            "agents.a.bulkhead.adaptive.backoff",
            "NaN",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nbackoff = -0.5\n",
            "agents.a.bulkhead.adaptive.backoff",
            "-0.5",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nbackoff = inf\n",
            "agents.a.bulkhead.adaptive.backoff",
            "inf",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nmin_limit = 0\n",
            "agents.a.bulkhead.adaptive.min_limit",
            "at least 1",
        ),
        (
            "[agents.a.bulkhead.adaptive]\ninitial_limit = -1\n",
            "agents.a.bulkhead.adaptive.initial_limit",
            "-1",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nlatency_threshold = \"1000000000y\"\n",
            "agents.a.bulkhead.adaptive.latency_threshold",
            "at most",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nlatency_threshold = \"0s\"\n",
            "agents.a.bulkhead.adaptive.latency_threshold",
            "over 0",
        ),
        (
            "[agents.a.bulkhead.adaptive]\nmax_limit = 9\n",
            "agents.a.bulkhead.adaptive.max_limit",
            "unknown field",
        ),
        // rate limit
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 0\n",
            "agents.a.rate_limit.requests_per_minute",
            "at least 1",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = -60\n",
            "agents.a.rate_limit.requests_per_minute",
            "-60",
        ),
        (
            "[agents.a.rate_limit]\ntokens_per_minute = 0\n",
            "agents.a.rate_limit.tokens_per_minute",
            "at least 1",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nburst = nan\n",
            "agents.a.rate_limit.burst",
            "NaN",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nburst = -1.0\n",
            "agents.a.rate_limit.burst",
            "greater than 0.0",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nmax_wait = \"1000000000y\"\n",
            "agents.a.rate_limit.max_wait",
            "at most one hour",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\nmax_pause = \"-5s\"\n",
            "agents.a.rate_limit.max_pause",
            "-5s",
        ),
        (
            "[agents.a.rate_limit]\nrequests_per_minute = 60\ntpm = 5\n",
            "agents.a.rate_limit.tpm",
            "unknown field",
        ),
        // hedge
        (
            "[agents.a.hedge]\ndelay = \"0s\"\n",
            "agents.a.hedge.delay",
            "greater than zero",
        ),
        (
            "[agents.a.hedge]\ndelay = \"1000000000y\"\n",
            "agents.a.hedge.delay",
            "at most a minute",
        ),
        (
            "[agents.a.hedge]\npercentile = nan\n",
            "agents.a.hedge.percentile",
            "NaN",
        ),
        (
            "[agents.a.hedge]\npercentile = -5.0\n",
            "agents.a.hedge.percentile",
            "-5",
        ),
        (
            "[agents.a.hedge]\nmax_hedges = 0\n",
            "agents.a.hedge.max_hedges",
            "1 to 4",
        ),
        (
            "[agents.a.hedge]\nmax_hedges = -1\n",
            "agents.a.hedge.max_hedges",
            "-1",
        ),
        (
            "[agents.a.hedge]\nbudget_ratio = nan\n",
            "agents.a.hedge.budget_ratio",
            "NaN",
        ),
        (
            "[agents.a.hedge]\nmax_delay = \"1000000000y\"\n",
            "agents.a.hedge.max_delay",
            "at most a minute",
        ),
        (
            "[agents.a.hedge]\nwindow = \"0s\"\n",
            "agents.a.hedge.window",
            "between 1 s and 10 minutes",
        ),
        (
            "[agents.a.hedge]\ndelay = \"1s\"\nhedge_to = [\"b\"]\n",
            "agents.a.hedge.hedge_to",
            "unknown field",
        ),
    ];

    #[test]
    fn hostile_values_in_the_llm_layers_tables_are_refused_naming_file_line_and_field() {
        let cases = HOSTILE;
        for &(text, field, says) in cases {
            let error = StackConfig::parse(text, steadfast::config::Format::Toml, "stack.toml")
                .expect_err(text);
            let message = error.to_string();
            if field.is_empty() {
                // Past what TOML integers hold: a syntax error, on its line.
                assert_eq!(error.line(), Some(2), "{message}");
                continue;
            }
            assert_eq!(error.field(), field, "{text}: {message}");
            assert!(
                matches!(error.kind(), ErrorKind::Invalid | ErrorKind::UnknownField),
                "{message}"
            );
            let line = error.line().expect("a line");
            assert!(
                message.starts_with(&format!("stack.toml:{line}:")),
                "{message}"
            );
            assert!(message.contains(&format!("field `{field}`")), "{message}");
            assert!(message.contains(says), "{text}: `{says}` not in {message}");
        }
    }

    #[test]
    fn hostile_values_in_rate_limit_and_hedge_json_name_the_setting() {
        for (json, setting) in [
            (r#"{"requests_per_minute": 0}"#, "requests_per_minute"),
            (r#"{"tokens_per_minute": 0}"#, "tokens_per_minute"),
            (r#"{"requests_per_minute": 1, "burst": 1e300}"#, "burst"),
            (r#"{"requests_per_minute": 1, "burst": 0.5}"#, "burst"),
            (
                r#"{"requests_per_minute": 1, "max_wait": "1000000000y"}"#,
                "max_wait",
            ),
        ] {
            let error = serde_json::from_str::<RateLimitConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("invalid rate_limit setting `{setting}`")),
                "{json}: {error}"
            );
        }
        for (json, setting) in [
            (r#"{"delay": {"fixed": "0s"}}"#, "delay"),
            (r#"{"delay": {"fixed": "1000000000y"}}"#, "delay"),
            (r#"{"delay": {"percentile": 1e300}}"#, "percentile"),
            (r#"{"delay": {"percentile": -1}}"#, "percentile"),
            (r#"{"max_hedges": 0}"#, "max_hedges"),
            (r#"{"max_hedges": 4294967295}"#, "max_hedges"),
            (r#"{"min_samples": 0}"#, "min_samples"),
            (r#"{"budget_ratio": -0.0001}"#, "budget_ratio"),
        ] {
            let error = serde_json::from_str::<HedgeConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!("invalid hedge setting `{setting}`")),
                "{json}: {error}"
            );
        }
        // Not settings at all, or not numbers: serde names them and where.
        for json in [
            r#"{"max_hedges": -1}"#,
            r#"{"requests_per_minute": -1}"#,
            r#"{"max_hedge": 1}"#,
            r#"{"delay": "2s"}"#,
        ] {
            let rate_limit = serde_json::from_str::<RateLimitConfig>(json);
            let hedge = serde_json::from_str::<HedgeConfig>(json);
            assert!(rate_limit.is_err() && hedge.is_err(), "{json}");
            assert!(hedge.unwrap_err().to_string().contains("column"), "{json}");
        }
        // Non-finite values arrive only from code (JSON has no NaN): refused naming the setting.
        let error = RateLimitConfig::builder()
            .requests_per_minute(60)
            .burst(f64::NAN)
            .build()
            .unwrap_err();
        assert_eq!(
            (error.component(), error.setting()),
            ("rate_limit", "burst")
        );
        let error = HedgeConfig::builder()
            .budget_ratio(f64::INFINITY)
            .build()
            .unwrap_err();
        assert_eq!(
            (error.component(), error.setting()),
            ("hedge", "budget_ratio")
        );
    }
}
