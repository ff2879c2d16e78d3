//! Bad input: configuration files. `BreakerConfig`, `RetryConfig` and `CacheConfig` deserialised
//! from arbitrary text, arbitrary JSON over their field names and hand-written mistakes: never
//! a panic, always a `serde_json::Error` that says what is wrong.
//!
//! cargo-fuzz needs a nightly toolchain; this is the stable route: proptest over arbitrary
//! input, a modest number of cases per run.
#![cfg(all(
    feature = "serde",
    feature = "circuit-breaker",
    feature = "retry",
    feature = "fallback"
))]

use proptest::prelude::*;
use serde_json::{Map, Value};
use steadfast::cache::CacheConfig;
use steadfast::circuit_breaker::BreakerConfig;
use steadfast::retry::RetryConfig;

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

/// Parses `text` as each config. Accepted configs must round-trip; rejected ones must explain.
fn check(text: &str) {
    fn one<T>(text: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        match serde_json::from_str::<T>(text) {
            Ok(config) => {
                let again = serde_json::to_string(&config).unwrap();
                assert_eq!(
                    serde_json::from_str::<T>(&again).unwrap(),
                    config,
                    "{again}"
                );
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
    one::<BreakerConfig>(text);
    one::<RetryConfig>(text);
    one::<CacheConfig>(text);
}

/// A duration as text: digits, maybe a fraction, a unit or none (or a wrong one).
fn duration_text() -> impl Strategy<Value = String> {
    "[0-9]{0,24}(\\.[0-9]{0,6})? ?(ns|us|µs|ms|s|m|min|h|d|x|)"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-10.0f64..10.0).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        duration_text().prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_never_a_panic(text in "\\PC{0,64}") {
        check(&text);
    }

    #[test]
    fn arbitrary_values_for_every_field_are_accepted_valid_or_rejected_with_a_message(
        text in config_object()
    ) {
        check(&text);
    }

    #[test]
    fn a_valid_config_with_damaged_bytes_is_never_a_panic(
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
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
            check(&String::from_utf8_lossy(&bytes));
        }
    }
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
fn an_invalid_value_names_the_field_it_belongs_to() {
    for (error, field) in [
        (
            breaker_error(r#"{"failure_rate_threshold": 1.5}"#),
            "failure_rate_threshold",
        ),
        (
            breaker_error(r#"{"half_open_probes": 0}"#),
            "half_open_probes",
        ),
        (
            breaker_error(r#"{"max_open_duration": "10m"}"#),
            "max_open_duration",
        ),
        (retry_error(r#"{"multiplier": 0.1}"#), "multiplier"),
        (retry_error(r#"{"base": "0s"}"#), "base"),
        (cache_error(r#"{"max_entries": 0}"#), "max_entries"),
        (cache_error(r#"{"ttl": "0s"}"#), "ttl"),
        // Misspelt fields are named, with the list of the right ones.
        (retry_error(r#"{"retries": 3}"#), "retries"),
        (cache_error(r#"{"tll": "5s"}"#), "tll"),
        (breaker_error(r#"{"window": {"size": 5}}"#), "size"),
    ] {
        assert!(error.contains(field), "`{field}` not in: {error}");
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
        unit.contains("5 parsecs") && unit.contains("500ms"),
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
