//! Redaction holds: a secret put anywhere the rules cover never reaches the stored bytes nor the
//! scrubbed error chain; hostile requests never panic.
//!
//! Each property runs twice: with a fixed seed (the same cases every run) and with a random one.
//! Both seeds are printed (`cargo test -- --nocapture`); a failure names its seed, and
//! `STEADFAST_PROPTEST_SEED=<seed>` replaces the random one to replay it.
#![cfg(feature = "dead-letter")]

use std::fmt::Write as _;
use std::hash::{BuildHasher, RandomState};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};
use steadfast_http::redact::{
    DEFAULT_REDACTED_HEADERS, DEFAULT_REDACTED_JSON_KEYS, DEFAULT_REDACTED_QUERY_PARAMS, Redactor,
};

const FIXED_SEED: u64 = 0x5EED_0017_2026;

/// Runs `test` over `cases` cases from `strategy` with the fixed seed, then a random one.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let random = std::env::var("STEADFAST_PROPTEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| RandomState::new().hash_one(name));
    for seed in [FIXED_SEED, random] {
        eprintln!("{name}: seed {seed} (replay: STEADFAST_PROPTEST_SEED={seed})");
        let mut runner = TestRunner::new(Config {
            cases,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(failure) = runner.run(strategy, &test) {
            panic!("{name} failed with seed {seed}: {failure}");
        }
    }
}

// ---- where a secret goes ------------------------------------------------------------------

/// RFC 3986 unreserved characters stay, everything else is escaped.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// What a lax client leaves raw in a query value (`;` included: the rule must still hold).
const LOOSE: &AsciiSet = &STRICT
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b',')
    .remove(b';')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'=');

#[derive(Debug, Clone)]
enum Position {
    /// A default credential header, the secret as its whole value.
    Header(&'static str),
    /// `Bearer <secret>` in `authorization` or `proxy-authorization`.
    Bearer(&'static str),
    /// `Basic base64(user:password)`, the secret as user or password.
    Basic { secret_is_user: bool },
    /// `?...<name>=<secret>...`, the name in any case and percent-encoding.
    Query {
        name: String,
        strict: bool,
        before: Vec<(String, String)>,
        after: Vec<(String, String)>,
        separators: Vec<bool>,
    },
    /// `https://<secret>[:pw]@host/`.
    UserinfoUser { with_password: bool },
    /// `https://user:<secret>@host/`.
    UserinfoPassword,
    /// `{..., "<key>": "<secret>"}` nested under objects and arrays.
    Json {
        key: String,
        escape_key: bool,
        escape_value: bool,
        path: Vec<bool>,
        content_type: bool,
    },
}

#[derive(Debug, Clone)]
struct Case {
    secret: String,
    position: Position,
}

/// Distinctive (so no filler contains it by chance), with characters that need escaping.
fn secret() -> impl Strategy<Value = String> {
    (
        "[A-Za-z0-9]{6}",
        "[-._~!$'()*,;:@/+= é&%]{0,6}",
        "[A-Za-z0-9]{6}",
    )
        .prop_map(|(head, middle, tail)| format!("{head}{middle}{tail}"))
}

/// `name` with each character in a random case, some percent-encoded (random hex case).
fn spelled(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(names).prop_flat_map(|name| {
        prop::collection::vec((any::<bool>(), 0..4u8), name.len()).prop_map(move |choices| {
            name.bytes()
                .zip(choices)
                .map(|(byte, (upper, encoding))| {
                    let byte = if upper {
                        byte.to_ascii_uppercase()
                    } else {
                        byte
                    };
                    match encoding {
                        0 => format!("%{byte:02X}"),
                        1 => format!("%{byte:02x}"),
                        _ => char::from(byte).to_string(),
                    }
                })
                .collect()
        })
    })
}

fn filler_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z]{1,6}", "[a-z0-9]{0,6}"), 0..3)
}

fn position() -> impl Strategy<Value = Position> {
    prop_oneof![
        prop::sample::select(DEFAULT_REDACTED_HEADERS).prop_map(Position::Header),
        prop::sample::select(&["authorization", "proxy-authorization"][..])
            .prop_map(Position::Bearer),
        any::<bool>().prop_map(|secret_is_user| Position::Basic { secret_is_user }),
        (
            spelled(DEFAULT_REDACTED_QUERY_PARAMS),
            any::<bool>(),
            filler_pairs(),
            filler_pairs(),
            prop::collection::vec(any::<bool>(), 8),
        )
            .prop_map(
                |(name, strict, before, after, separators)| Position::Query {
                    name,
                    strict,
                    before,
                    after,
                    separators,
                }
            ),
        any::<bool>().prop_map(|with_password| Position::UserinfoUser { with_password }),
        Just(Position::UserinfoPassword),
        (
            spelled(DEFAULT_REDACTED_JSON_KEYS).prop_map(|key| {
                // JSON keys are not percent-decoded: spell them in case only.
                percent_encoding::percent_decode_str(&key)
                    .decode_utf8_lossy()
                    .into_owned()
            }),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(any::<bool>(), 0..12),
            any::<bool>(),
        )
            .prop_map(|(key, escape_key, escape_value, path, content_type)| {
                Position::Json {
                    key,
                    escape_key,
                    escape_value,
                    path,
                    content_type,
                }
            }),
    ]
}

/// The request, and the forms of the secret as placed in it (which must not be stored).
fn build(case: &Case) -> (http::Request<BufferedBody>, Vec<String>) {
    let secret = &case.secret;
    let mut uri = "https://api.example.com/v1/chat".to_owned();
    let mut headers: Vec<(String, Vec<u8>)> = vec![("accept".into(), b"*/*".to_vec())];
    let mut body = r#"{"model":"m"}"#.to_owned();
    let mut content_type = true;
    let mut placed = vec![secret.clone()];
    match &case.position {
        Position::Header(name) => headers.push(((*name).into(), secret.as_bytes().to_vec())),
        Position::Bearer(name) => {
            headers.push(((*name).into(), format!("Bearer {secret}").into_bytes()));
        }
        Position::Basic { secret_is_user } => {
            let pair = if *secret_is_user {
                format!("{secret}:pw")
            } else {
                format!("user:{secret}")
            };
            let blob = STANDARD.encode(pair);
            headers.push(("authorization".into(), format!("Basic {blob}").into_bytes()));
            placed.push(blob);
        }
        Position::Query {
            name,
            strict,
            before,
            after,
            separators,
        } => {
            let value =
                utf8_percent_encode(secret, if *strict { STRICT } else { LOOSE }).to_string();
            let pairs: Vec<String> = before
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .chain([format!("{name}={value}")])
                .chain(after.iter().map(|(name, value)| format!("{name}={value}")))
                .collect();
            let mut query = String::new();
            for (index, pair) in pairs.iter().enumerate() {
                if index > 0 {
                    query.push(if separators[index % separators.len()] {
                        '&'
                    } else {
                        ';'
                    });
                }
                query.push_str(pair);
            }
            uri = format!("{uri}?{query}");
            placed.push(value);
        }
        Position::UserinfoUser { with_password } => {
            let user = utf8_percent_encode(secret, STRICT).to_string();
            let password = if *with_password { ":pw" } else { "" };
            uri = format!("https://{user}{password}@api.example.com/v1/chat");
            placed.push(user);
        }
        Position::UserinfoPassword => {
            let password = utf8_percent_encode(secret, STRICT).to_string();
            uri = format!("https://user:{password}@api.example.com/v1/chat");
            placed.push(password);
        }
        Position::Json {
            key,
            escape_key,
            escape_value,
            path,
            content_type: with_content_type,
        } => {
            content_type = *with_content_type;
            let key = if *escape_key {
                format!("\\u{:04x}{}", u32::from(key.as_bytes()[0]), &key[1..])
            } else {
                key.clone()
            };
            let value = serde_json::to_string(secret).unwrap();
            let value = if *escape_value {
                // The first six characters are ASCII letters or digits: write them as `\u00XX`.
                let inner = &value[1..value.len() - 1];
                let mut escaped = String::new();
                for c in inner[..6].chars() {
                    let _ = write!(escaped, "\\u{:04X}", u32::from(c));
                }
                format!("\"{escaped}{}\"", &inner[6..])
            } else {
                value
            };
            placed.push(value[1..value.len() - 1].to_owned());
            let mut json = format!(r#"{{"{key}": {value}}}"#);
            for (depth, in_array) in path.iter().enumerate() {
                json = if *in_array {
                    format!(r#"[1, {json}, "x"]"#)
                } else {
                    format!(r#"{{"f{depth}": true, "n": {json}, "g": [null]}}"#)
                };
            }
            body = json;
        }
    }
    let mut request = http::Request::post(uri.as_str());
    if content_type {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(BufferedBody::from(Bytes::from(body)))
        .unwrap_or_else(|error| panic!("test request {uri}: {error}"));
    (request, placed)
}

fn case() -> impl Strategy<Value = Case> {
    (secret(), position()).prop_map(|(secret, position)| Case { secret, position })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn a_secret_in_any_covered_position_is_neither_stored_nor_left_in_the_error_chain() {
    let encoder = HttpRequestEncoder::new();
    check("redaction holds", 384, &case(), |case| {
        let (request, placed) = build(&case);
        let (stored, secrets) = encoder
            .encode_with_secrets(&request)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        for form in &placed {
            prop_assert!(
                !contains(&stored, form),
                "{form:?} stored: {}",
                String::from_utf8_lossy(&stored)
            );
        }
        // What reqwest and a provider's echo would put in the chain.
        let chain = [
            format!("error sending request for url ({})", request.uri()),
            format!("invalid credentials: {}", case.secret),
            format!("upstream echoed {}", placed.last().unwrap()),
        ];
        for line in &chain {
            let scrubbed = secrets.scrub(line);
            for form in &placed {
                prop_assert!(
                    !contains(scrubbed.as_bytes(), form),
                    "{form:?} left in {scrubbed:?}"
                );
            }
        }
        // The stored request still replays.
        let replay =
            decode_request(&stored).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(replay.uri().path(), "/v1/chat");
        Ok(())
    });
}

// ---- hostile input ------------------------------------------------------------------------

fn hostile_query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("%".to_owned()),
            Just("%4".to_owned()),
            Just("%zz".to_owned()),
            Just("%%".to_owned()),
            Just("%C3%A9".to_owned()),
            Just("%FF%FE".to_owned()),
            Just("%E2%82%AC".to_owned()),
            Just("&".to_owned()),
            Just(";".to_owned()),
            Just("=".to_owned()),
            Just("+".to_owned()),
            Just("api%5Fkey=".to_owned()),
            "[a-zA-Z0-9._~-]{1,4}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

#[test]
fn hostile_requests_never_panic_and_stay_decodable() {
    let strategy = (
        hostile_query(),
        prop::collection::vec(
            (
                "[a-zA-Z0-9_%!#$&'*+.^`|~-]{1,12}",
                prop::collection::vec(any::<u8>(), 0..24),
            ),
            0..6,
        ),
        prop::collection::vec(any::<u8>(), 0..512),
        0..4usize,
    );
    let encoder = HttpRequestEncoder::new();
    check(
        "hostile requests",
        256,
        &strategy,
        |(query, headers, body, kind)| {
            let mut request = http::Request::post(format!("https://h/p?{query}"));
            let content_type = [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
                "",
            ][kind];
            if !content_type.is_empty() {
                request = request.header("content-type", content_type);
            }
            for (name, value) in &headers {
                // Only what `http` accepts can reach an encoder.
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_bytes(value),
                ) {
                    request = request.header(name, value);
                }
            }
            let Ok(request) = request.body(BufferedBody::from(Bytes::from(body))) else {
                return Ok(());
            };
            let (stored, secrets) = encoder
                .encode_with_secrets(&request)
                .map_err(|error| TestCaseError::fail(error.to_string()))?;
            let decoded = decode_request(&stored);
            prop_assert!(
                decoded.is_ok(),
                "{:?}: {}",
                decoded.err(),
                String::from_utf8_lossy(&stored)
            );
            let _ = secrets.scrub(&String::from_utf8_lossy(&stored));
            Ok(())
        },
    );
}

#[test]
fn huge_and_deep_bodies_are_bounded_not_stored_unchecked() {
    let redactor = Redactor::new();
    let headers = {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers
    };
    let uri: http::Uri = "/v1".parse().unwrap();

    // Over the size bound: a marker, without reading the body.
    let huge = format!(
        r#"{{"api_key":"sk-huge-secret","pad":"{}"}}"#,
        "x".repeat(33 * 1024 * 1024)
    );
    let parts = redactor.redact_parts(&uri, &headers, &Bytes::from(huge));
    assert!(parts.body.starts_with(b"[REDACTED: JSON body not stored"));
    assert!(!contains(&parts.body, "sk-huge-secret"));

    // Under the bound, large: checked in one pass.
    let large = format!(
        r#"{{"pad":"{}","api_key":"sk-large-secret"}}"#,
        "y".repeat(4 * 1024 * 1024)
    );
    let parts = redactor.redact_parts(&uri, &headers, &Bytes::from(large));
    assert!(parts.body.ends_with(br#""api_key":"[REDACTED]"}"#));

    // Deep: a marker at the bound, whatever follows; no recursion, so no stack to overflow even
    // when the bound is raised far past what a recursive parser survives.
    for (depth, bound) in [(1_000_000, 128), (200_000, 1_000_000)] {
        let deep = format!(
            r#"{}{{"token":"sk-deep-secret"}}{}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let parts =
            redactor
                .clone()
                .max_json_depth(bound)
                .redact_parts(&uri, &headers, &Bytes::from(deep));
        assert!(!contains(&parts.body, "sk-deep-secret"), "depth {depth}");
        if depth > bound {
            assert!(parts.body.starts_with(b"[REDACTED: JSON body not stored"));
        }
    }

    // Deep objects, unterminated.
    let open_objects = r#"{"a":"#.repeat(100_000);
    let parts = redactor.redact_parts(&uri, &headers, &Bytes::from(open_objects));
    assert!(parts.body.starts_with(b"[REDACTED: JSON body not stored"));
}

#[test]
fn invalid_utf8_and_non_ascii_names_never_panic() {
    let redactor = Redactor::new();
    let uri: http::Uri = "/v1?%E2%82%AC=1&%C3%A9t%C3%A9=2&%FF%FE=3&k%C3%A9y=4"
        .parse()
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-bin",
        http::HeaderValue::from_bytes(b"\xff\xfe\x80 Bearer \xc3").unwrap(),
    );
    headers.insert(
        "authorization",
        http::HeaderValue::from_bytes(b"Basic \xff\xfe==").unwrap(),
    );
    headers.insert(
        "cookie",
        http::HeaderValue::from_bytes(b"=;;=\xff; a").unwrap(),
    );
    for body in [
        &b"{\"\xff\":1}"[..],
        b"{\"\\ud800\":\"\\udfff\",\"token\":\"\\ud83d\"}",
        "{\"clé\":\"valeur\",\"TOKEN\":\"ünïcödé-secret\"}".as_bytes(),
        b"\xef\xbb\xbf[\x1e{\"password\":1e999}]",
    ] {
        let parts = redactor.redact_parts(&uri, &headers, &Bytes::copy_from_slice(body));
        let _ = parts.secrets.scrub("ünïcödé-secret \u{FFFD}");
        assert!(!contains(&parts.body, "ünïcödé-secret"));
    }
}
