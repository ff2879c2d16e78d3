//! Shared by the integration tests: records with every field set, a runtime, and proptest
//! runs with a fixed, logged seed plus a random one.
#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::time::{Duration, UNIX_EPOCH};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use steadfast::classify::OutcomeKind;
use steadfast::dead_letter::{Bytes, DeadLetterRecord};

/// A record with every field set to something that tells records apart.
pub fn record(n: usize) -> DeadLetterRecord {
    let mut record = DeadLetterRecord::new(
        if n.is_multiple_of(2) { "gpt" } else { "claude" },
        Bytes::from(format!("request {n} {}", "x".repeat(n % 50))),
        OutcomeKind::ALL[n % OutcomeKind::ALL.len()],
    );
    record.time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + n as u64);
    record.reason = format!("reason {n}");
    record.error_chain = vec![format!("error {n}"), "caused by: reset".into()];
    record.attempts = 1 + (n % 7) as u32;
    record.trace_id = (!n.is_multiple_of(3)).then(|| format!("trace-{n}"));
    record.replay_count = (n % 4) as u32;
    record
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `test` on `cases` values of `strategy` twice: with a fixed seed (the same cases every
/// run) and with a random seed, both printed so a failure can be replayed by setting
/// `STEADFAST_PROPTEST_SEED`.
pub fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    const FIXED_SEED: u64 = 0x5EED_0FD1_5C00;
    let random_seed = std::env::var("STEADFAST_PROPTEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            u64::from(
                std::time::SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .subsec_nanos(),
            ) ^ u64::from(std::process::id()) << 32
        });
    for seed in [FIXED_SEED, random_seed] {
        eprintln!(
            "{name}: {cases} cases with seed {seed} (STEADFAST_PROPTEST_SEED={seed} to repeat)"
        );
        let config = Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(failure) = runner.run(&strategy, &test) {
            panic!("{name} failed with seed {seed}: {failure}");
        }
    }
}
