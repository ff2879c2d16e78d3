//! The stack file the demo ships (examples/stack.toml) reads, and any key added to it that the
//! schema does not know is refused on its own line, wherever it is added.
#![cfg(feature = "config")]

use proptest::prelude::*;
use steadfast::config::{ErrorKind, Format, StackConfig};

const SHIPPED: &str = include_str!("../../../examples/stack.toml");

fn parse(text: &str) -> Result<StackConfig, steadfast::config::StackConfigError> {
    StackConfig::parse(text, Format::Toml, "examples/stack.toml")
}

#[test]
fn the_shipped_stack_parses() {
    let config = parse(SHIPPED).unwrap();
    let primary = config.agent("primary").unwrap();
    assert_eq!(primary.fallback(), ["backup", "slow"]);
    assert_eq!(primary.classifier(), "llm");
    assert_eq!(primary.retry().unwrap().max_retries(), 2);
    assert!(primary.cache().is_some() && primary.dead_letter().is_some());
    assert_eq!(primary.bulkhead().unwrap().max_concurrent_calls(), 8);
    let quota = primary.rate_limit().unwrap();
    assert!(quota.requests_per_minute().is_some() && quota.tokens_per_minute().is_none());
    for name in ["backup", "slow"] {
        let agent = config.agent(name).unwrap();
        assert!(
            agent.breaker().is_some() && agent.timeout().is_some(),
            "{name}"
        );
    }
}

#[test]
fn the_shipped_stack_reads_the_same_as_json() {
    let value: toml::Value = toml::from_str(SHIPPED).unwrap();
    let json = serde_json::to_string(&value).unwrap();
    let from_json = StackConfig::from_json(&json).unwrap();
    let from_toml = parse(SHIPPED).unwrap();
    assert_eq!(
        format!("{:?}", from_json.agents()),
        format!("{:?}", from_toml.agents())
    );
}

fn with_line_inserted(at: usize, line: &str) -> String {
    let mut lines: Vec<&str> = SHIPPED.lines().collect();
    lines.insert(at, line);
    lines.join("\n")
}

/// Lines of the shipped file that hold a duration value (`key = "..."` with a unit).
fn duration_lines() -> Vec<(usize, String)> {
    SHIPPED
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let (key, value) = line.split_once(" = \"")?;
            let value = value.split('"').next()?;
            let is_duration = value.starts_with(|c: char| c.is_ascii_digit())
                && value.ends_with(|c: char| c.is_ascii_alphabetic());
            is_duration.then(|| (index, key.trim().to_owned()))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn an_unknown_key_anywhere_is_refused_on_its_line(
        at in 0..=SHIPPED.lines().count(),
        key in "zz_[a-z]{1,8}",
    ) {
        let text = with_line_inserted(at, &format!("{key} = 1"));
        let error = parse(&text).expect_err("an unknown key must be refused");
        prop_assert_eq!(error.kind(), ErrorKind::UnknownField);
        prop_assert_eq!(error.line(), Some(at + 1), "{}", error);
        prop_assert!(error.field().ends_with(&key), "{}", error);
        let message = error.to_string();
        let expected_prefix = format!("examples/stack.toml:{}:", at + 1);
        prop_assert!(message.starts_with(&expected_prefix), "{}", message);
    }

    #[test]
    fn a_duration_without_a_unit_is_refused_on_its_line(
        which in any::<prop::sample::Index>(),
        number in 1u64..1_000_000,
    ) {
        let lines = duration_lines();
        prop_assert!(lines.len() >= 10, "the shipped file has its durations");
        let (index, key) = &lines[which.index(lines.len())];
        let mut text: Vec<String> = SHIPPED.lines().map(str::to_owned).collect();
        text[*index] = format!("{key} = \"{number}\"");
        let error = parse(&text.join("\n")).expect_err("a duration needs a unit");
        prop_assert_eq!(error.line(), Some(index + 1), "{}", error);
        prop_assert!(error.field().ends_with(key.as_str()), "{}", error);
        prop_assert!(error.to_string().contains("unit"), "{}", error);
    }
}
