//! Hostile error bodies never panic and classify in bounded time: random bytes, deep nesting,
//! numbers out of range, invalid UTF-8, and 10 MB bodies cut at `llm::MAX_ERROR_BODY`.
//!
//! Each property runs with a fixed seed (reproducible in CI) and again with proptest's random
//! seed (which proptest prints and persists on failure).

use std::time::Duration;

use tokio::time::Instant;

use http::{HeaderMap, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use steadfast::OutcomeKind;
use steadfast_http::{classify_http_response, llm, reason};

/// Generous for a debug build on a shared 2-core machine; a 64 KiB parse takes well under 5 ms.
const BOUND: Duration = Duration::from_secs(2);

fn classify_timed(status: u16, body: &[u8]) -> steadfast::Outcome {
    let status = StatusCode::from_u16(status).unwrap();
    let started = Instant::now();
    let outcome = classify_http_response(status, &HeaderMap::new(), Some(body));
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND, "{} bytes took {elapsed:?}", body.len());
    outcome
}

fn error_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(400u16),
        Just(404),
        Just(422),
        Just(429),
        Just(500),
        Just(503),
        Just(529)
    ]
}

/// JSON-ish bodies built from the pieces providers use, nested and shuffled.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"{\"error\":"[..]),
        Just(&b"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\""[..]),
        Just(&b"\"message\":\"Please try again in "[..]),
        Just(&b"1e999999"[..]),
        Just(&b"-0.0000000000000000000001e-400"[..]),
        Just(&b"18446744073709551616"[..]),
        Just(&b"\"estimated_time\":1e308"[..]),
        Just(&b"\"retryDelay\":\"99999999999999999999s\""[..]),
        Just(&b"\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\""[..]),
        Just(&b"\xff\xfe\xc3\x28"[..]),
        Just(&b"[[[[[[[["[..]),
        Just(&b"}]},"[..]),
        Just(&b"\"\\ud800\""[..]),
        Just(&b"\"code\":\"rate_limit_exceeded\""[..]),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

fn runner(seed: u8) -> TestRunner {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

#[test]
fn random_bytes_with_a_fixed_seed_never_panic() {
    let strategy = (
        error_status(),
        proptest::collection::vec(any::<u8>(), 0..4096),
    );
    runner(7)
        .run(&strategy, |(status, body)| {
            let _ = classify_timed(status, &body);
            Ok(())
        })
        .unwrap();
}

#[test]
fn jsonish_bodies_with_a_fixed_seed_never_panic() {
    runner(11)
        .run(&(error_status(), jsonish()), |(status, body)| {
            let _ = classify_timed(status, &body);
            let _ = llm::body_retry_after(&body);
            Ok(())
        })
        .unwrap();
}

proptest! {
    #[test]
    fn random_bytes_never_panic(status in error_status(), body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = classify_timed(status, &body);
    }

    #[test]
    fn jsonish_bodies_never_panic(status in error_status(), body in jsonish()) {
        let _ = classify_timed(status, &body);
    }

    #[test]
    fn arbitrary_messages_never_panic(status in error_status(), message in ".{0,300}") {
        let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}});
        let _ = classify_timed(status, body.to_string().as_bytes());
        let _ = llm::wait_hint(&message);
    }
}

#[test]
fn nesting_deeper_than_serde_allows_is_refused_not_overflowed() {
    for depth in [127, 128, 129, 10_000, 100_000] {
        let mut body = Vec::new();
        body.extend(std::iter::repeat_n(b'[', depth));
        body.extend(std::iter::repeat_n(b']', depth));
        let outcome = classify_timed(503, &body);
        assert_eq!(outcome.kind(), OutcomeKind::Transient, "{depth}");
        let mut body = Vec::new();
        for _ in 0..depth {
            body.extend_from_slice(b"{\"error\":");
        }
        body.extend_from_slice(b"\"x\"");
        body.extend(std::iter::repeat_n(b'}', depth));
        let _ = classify_timed(400, &body);
    }
}

#[test]
fn numbers_out_of_range_are_ignored() {
    for body in [
        &br#"{"error":"Model x is currently loading","estimated_time":1e308}"#[..],
        br#"{"error":"Model x is currently loading","estimated_time":-5}"#,
        br#"{"error":"Model x is currently loading","estimated_time":1e999}"#,
        br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1e400s"}]}}"#,
        br#"{"error":{"message":"Please try again in 99999999999999999999999999999h","code":"rate_limit_exceeded"}}"#,
    ] {
        let outcome = classify_timed(503, body);
        // No wait that overflows a Duration or goes negative is ever attached.
        assert!(
            outcome.retry_after().is_none_or(|wait| wait < Duration::from_secs(u64::MAX / 2)),
            "{outcome}"
        );
    }
}

#[test]
fn invalid_utf8_is_read_lossily_and_never_panics() {
    let mut body = b"{\"error\":\"server busy, please try again. \xff\xfe\"}".to_vec();
    let outcome = classify_timed(503, &body);
    // Not JSON (invalid UTF-8 in a string), so read as text: the phrase is still there.
    assert_eq!(outcome.reason(), Some(reason::OVERLOADED));
    body.insert(0, 0xc3);
    let _ = classify_timed(503, &body);
}

#[test]
fn a_10_mb_body_is_cut_at_the_bound_and_read_no_further() {
    let filler = vec![b'a'; 10 * 1024 * 1024];
    // The deciding phrase after the bound is never seen: the status decides.
    let mut late = br#"{"error":{"message":""#.to_vec();
    late.extend_from_slice(&filler);
    late.extend_from_slice(br#" prompt is too long","type":"invalid_request_error"}}"#);
    let outcome = classify_timed(400, &late);
    assert_eq!(outcome.reason(), Some(reason::STATUS_4XX));
    // A phrase inside the bound of a cut (hence unparsable) body is read as text.
    let mut early =
        br#"{"error":"server busy, please try again.  maximum pending requests exceeded "#.to_vec();
    early.extend_from_slice(&filler);
    early.extend_from_slice(br#""}"#);
    let outcome = classify_timed(503, &early);
    assert_eq!(outcome.reason(), Some(reason::OVERLOADED));
    assert!(llm::MAX_ERROR_BODY < late.len());
}
