//! One test (or a few) per rule of the module docs, then the JSON scanner against serde_json.

use super::secrets::{MAX_SECRET_VALUES, replace_values_one_by_one};
use super::*;
use proptest::prelude::*;

fn redact(uri: &str, headers: &[(&str, &str)], body: &str) -> RedactedParts {
    redact_with(&Redactor::new(), uri, headers, body.as_bytes())
}

fn redact_with(
    redactor: &Redactor,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RedactedParts {
    let uri: Uri = uri.parse().expect("test URI");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            http::HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
        );
    }
    redactor.redact_parts(&uri, &map, &Bytes::copy_from_slice(body))
}

fn header<'a>(parts: &'a RedactedParts, name: &str) -> &'a [u8] {
    parts
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .map(|(_, value)| value.as_slice())
        .expect("header present")
}

fn body_text(parts: &RedactedParts) -> &str {
    std::str::from_utf8(&parts.body).expect("UTF-8 body")
}

// ---- headers ------------------------------------------------------------------------------

#[test]
fn every_default_header_is_redacted_and_others_are_kept() {
    for name in DEFAULT_REDACTED_HEADERS {
        let parts = redact(
            "/v1",
            &[(name, "s3cret-value-1"), ("accept", "application/json")],
            "",
        );
        assert_eq!(header(&parts, name), b"[REDACTED]", "{name}");
        assert_eq!(header(&parts, "accept"), b"application/json");
    }
}

#[test]
fn header_names_match_in_any_case_with_underscores_and_percent_escapes() {
    let redactor = Redactor::new().redact_header("X-Team-Secret");
    for name in [
        "x-team-secret",
        "x_team_secret",
        "x%2Dteam-secret",
        "X-API_KEY",
    ] {
        assert!(redactor.is_sensitive_header(name), "{name}");
    }
    let parts = redact_with(
        &redactor,
        "/",
        &[("x_api_key", "k-123456"), ("x-team-secret", "hunter22")],
        b"",
    );
    assert_eq!(header(&parts, "x_api_key"), b"[REDACTED]");
    assert_eq!(header(&parts, "x-team-secret"), b"[REDACTED]");
    assert!(!redactor.is_sensitive_header("x-request-id"));
}

#[test]
fn bearer_tokens_are_collected_bare() {
    let parts = redact("/", &[("authorization", "Bearer sk-proj-abc123")], "");
    assert_eq!(
        parts.secrets.scrub("401 for token sk-proj-abc123."),
        "401 for token [REDACTED]."
    );
}

#[test]
fn basic_credentials_are_collected_as_base64_pair_user_and_password() {
    let blob = STANDARD.encode("alice:correct-horse");
    let parts = redact("/", &[("authorization", &format!("Basic {blob}"))], "");
    let text = format!("sent {blob}; user alice, password correct-horse, alice:correct-horse");
    assert_eq!(
        parts.secrets.scrub(&text),
        "sent [REDACTED]; user [REDACTED], password [REDACTED], [REDACTED]"
    );
}

#[test]
fn aws_sigv4_authorization_parameters_and_session_token_are_collected() {
    let authorization = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/\
                         bedrock/aws4_request, SignedHeaders=host;x-amz-date, \
                         Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe";
    let parts = redact(
        "/model/invoke",
        &[
            ("authorization", authorization),
            ("x-amz-security-token", "FwoGZXIvYXdzEBYaDH"),
            ("x-auth-token", "gAAAAABk-openstack"),
        ],
        "",
    );
    assert_eq!(header(&parts, "x-amz-security-token"), b"[REDACTED]");
    assert_eq!(header(&parts, "x-auth-token"), b"[REDACTED]");
    let text = "key AKIAIOSFODNN7EXAMPLE sig fe5f80f77d5fa3beca038a248ff027d0445342fe \
                token FwoGZXIvYXdzEBYaDH auth gAAAAABk-openstack";
    assert_eq!(
        parts.secrets.scrub(text),
        "key [REDACTED] sig [REDACTED] token [REDACTED] auth [REDACTED]"
    );
}

#[test]
fn each_cookie_value_is_collected() {
    let parts = redact(
        "/",
        &[("cookie", "theme=dark-mode; session=\"sess-0123456\"")],
        "",
    );
    assert_eq!(header(&parts, "cookie"), b"[REDACTED]");
    assert_eq!(
        parts.secrets.scrub("session sess-0123456 expired"),
        "session [REDACTED] expired"
    );
}

// ---- query ---------------------------------------------------------------------------------

#[test]
fn every_default_query_param_is_redacted() {
    for name in DEFAULT_REDACTED_QUERY_PARAMS {
        let parts = redact(&format!("/v1?model=m&{name}=value-123"), &[], "");
        assert_eq!(
            parts.uri,
            format!("/v1?model=m&{name}=[REDACTED]"),
            "{name}"
        );
    }
}

#[test]
fn query_names_match_in_any_case_and_percent_encoding() {
    for name in [
        "API_KEY",
        "Api_Key",
        "api%5Fkey",
        "api%5fkey",
        "%61pi_key",
        "%41%50%49%5F%4B%45%59",
        "X-Amz-Signature",
        "x-amz-security-token",
        "X-Amz-Credential",
        "Token",
        "CODE",
    ] {
        let parts = redact(&format!("/v1?a=1&{name}=value-123&b=2"), &[], "");
        assert_eq!(
            parts.uri,
            format!("/v1?a=1&{name}=[REDACTED]&b=2"),
            "{name}"
        );
    }
}

#[test]
fn semicolons_separate_names_and_a_sensitive_value_runs_to_the_next_ampersand() {
    let parts = redact("/v1?a=1;api_key=value-123;b=2&c=3", &[], "");
    assert_eq!(parts.uri, "/v1?a=1;api_key=[REDACTED]&c=3");
    // Whichever way a server split it, neither reading of the value survives elsewhere.
    assert_eq!(
        parts.secrets.scrub("value-123;b=2 or value-123"),
        "[REDACTED] or [REDACTED]"
    );
    let parts = redact("/v1?token=abcd1234;x=1", &[], "");
    assert_eq!(parts.uri, "/v1?token=[REDACTED]");
}

#[test]
fn empty_and_nameless_parameters_are_kept() {
    let parts = redact("/v1?key=&token&=x&&a=1&;", &[], "");
    assert_eq!(parts.uri, "/v1?key=&token&=x&&a=1&;");
    assert!(parts.secrets.is_empty());
}

#[test]
fn malformed_escapes_and_non_ascii_names_do_not_panic() {
    for query in [
        "%",
        "%4",
        "%zz=1",
        "api%5=1",
        "key%=v",
        "%FF%FE=1",
        "%C3%A9t%C3%A9=1",
        "k%00ey=1",
        "key=%",
        "key=%G1-secret",
    ] {
        let parts = redact(&format!("/v1?{query}"), &[], "");
        assert!(parts.uri.starts_with("/v1?"), "{query}");
    }
    let parts = redact("/v1?key=%G1-secret", &[], "");
    assert_eq!(parts.uri, "/v1?key=[REDACTED]");
}

#[test]
fn query_values_are_collected_raw_decoded_and_encoded() {
    let parts = redact("/v1?key=sk%2Fab+cd%3D", &[], "");
    let text = "raw sk%2Fab+cd%3D decoded sk/ab+cd= form sk/ab cd= lower sk%2fab%2Bcd%3d";
    assert_eq!(
        parts.secrets.scrub(text),
        "raw [REDACTED] decoded [REDACTED] form [REDACTED] lower [REDACTED]"
    );
}

// ---- userinfo ------------------------------------------------------------------------------

#[test]
fn userinfo_is_removed_and_collected_with_its_basic_form() {
    let parts = redact(
        "https://bob:p%40ss-word@api.example.com:8443/v1?q=1",
        &[],
        "",
    );
    assert_eq!(parts.uri, "https://api.example.com:8443/v1?q=1");
    let basic = STANDARD.encode("bob:p@ss-word");
    let text = format!("bob:p%40ss-word p@ss-word p%40ss-word {basic}");
    assert_eq!(
        parts.secrets.scrub(&text),
        "[REDACTED] [REDACTED] [REDACTED] [REDACTED]"
    );
}

#[test]
fn a_user_without_password_is_removed_too() {
    let parts = redact("https://ghp_token12345@example.com/", &[], "");
    assert_eq!(parts.uri, "https://example.com/");
    let basic = STANDARD.encode("ghp_token12345:");
    assert_eq!(
        parts.secrets.scrub(&format!("{basic} ghp_token12345")),
        "[REDACTED] [REDACTED]"
    );
}

#[test]
fn a_user_name_inside_the_host_does_not_break_the_stored_authority() {
    let parts = redact(
        "https://example:pw-123456@example.com/example?q=example",
        &[],
        "",
    );
    assert_eq!(parts.uri, "https://example.com/[REDACTED]?q=[REDACTED]");
}

// ---- JSON ----------------------------------------------------------------------------------

#[test]
fn json_keys_are_redacted_at_any_depth_in_any_case_keeping_the_rest_byte_for_byte() {
    let body = r#"{ "model": "m",
        "API_KEY": "sk-1",
        "nested": {"deeper": [ {"Password" : "pw-2"}, [{"x": {"secret": "s-3"}}] ]},
        "list": [1, {"accessToken": "not-a-default"}, {"access_token": "at-4"}],
        "apikey": 12345, "token": {"a": ["b-5", 6.5e3]}, "client_secret": null,
        "authorization": [], "refresh_token": true }"#;
    let parts = redact("/", &[("content-type", "application/json")], body);
    let expected = r#"{ "model": "m",
        "API_KEY": "[REDACTED]",
        "nested": {"deeper": [ {"Password" : "[REDACTED]"}, [{"x": {"secret": "[REDACTED]"}}] ]},
        "list": [1, {"accessToken": "not-a-default"}, {"access_token": "[REDACTED]"}],
        "apikey": "[REDACTED]", "token": "[REDACTED]", "client_secret": "[REDACTED]",
        "authorization": "[REDACTED]", "refresh_token": "[REDACTED]" }"#;
    assert_eq!(body_text(&parts), expected);
    assert!(parts.body_changed);
    assert_eq!(
        parts.secrets.scrub("sk-1 pw-2 s-3 at-4 12345 b-5 6.5e3"),
        // Three-byte values are below the scrubbing minimum; they were redacted in place.
        "[REDACTED] [REDACTED] s-3 [REDACTED] [REDACTED] b-5 [REDACTED]"
    );
    // `s-3` and `b-5`, each as written and JSON-unescaped.
    assert_eq!(parts.secrets.too_short(), 4);
}

#[test]
fn escaped_keys_and_values_are_matched_and_collected_decoded() {
    let body = r#"{"api\u005Fkey":"sk-\u0041BC\n", "\u0074oken": "t\"ok-en"}"#;
    let parts = redact("/", &[], body);
    assert_eq!(
        body_text(&parts),
        r#"{"api\u005Fkey":"[REDACTED]", "\u0074oken": "[REDACTED]"}"#
    );
    assert_eq!(
        parts
            .secrets
            .scrub("sk-ABC\n and sk-\\u0041BC\\n and t\"ok-en"),
        // Values are trimmed of ASCII blanks before they are collected.
        "[REDACTED]\n and [REDACTED] and [REDACTED]"
    );
}

#[test]
fn ndjson_is_read_value_by_value() {
    let body = "{\"api_key\":\"sk-one\"}\n{\"api_key\":\"sk-two\"}\n";
    let parts = redact("/", &[("content-type", "application/x-ndjson")], body);
    assert_eq!(
        body_text(&parts),
        "{\"api_key\":\"[REDACTED]\"}\n{\"api_key\":\"[REDACTED]\"}\n"
    );
}

#[test]
fn invalid_or_non_json_bodies_are_left_alone_and_nothing_is_collected() {
    for (content_type, body) in [
        ("application/json", r#"{"api_key": "sk-left", }"#),
        ("application/json", r#"{"api_key": "sk-left""#),
        ("text/plain", "api_key: sk-left"),
        ("application/json", "\u{feff}"),
        ("application/json", ""),
        ("application/json", r#"{"api_key": "sk-left"} trailing"#),
    ] {
        let parts = redact("/", &[("content-type", content_type)], body);
        assert_eq!(body_text(&parts), body, "{content_type} {body}");
        assert!(!parts.body_changed);
        assert!(parts.secrets.is_empty(), "{body}");
    }
    // Not valid UTF-8, hence not JSON.
    let parts = redact_with(&Redactor::new(), "/", &[], b"{\"api_key\":\"\xff\"}");
    assert_eq!(parts.body.as_ref(), b"{\"api_key\":\"\xff\"}");
}

#[test]
fn json_is_recognised_by_content_type_or_by_its_first_byte() {
    let body = r#"  [{"password":"pw-12345"}]"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/vnd.api+json; charset=utf-8"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("content-type", ct))
            .into_iter()
            .collect();
        let parts = redact("/", &headers, body);
        assert_eq!(
            body_text(&parts),
            r#"  [{"password":"[REDACTED]"}]"#,
            "{content_type:?}"
        );
    }
    let bom = "\u{feff}{\"password\":\"pw-12345\"}";
    assert_eq!(
        body_text(&redact("/", &[], bom)),
        "\u{feff}{\"password\":\"[REDACTED]\"}"
    );
}

#[test]
fn a_json_body_over_the_size_bound_is_replaced_by_a_marker() {
    let redactor = Redactor::new().max_json_bytes(64);
    let body = format!(r#"{{"api_key":"sk-big","pad":"{}"}}"#, "x".repeat(100));
    let length = body.len().to_string();
    let parts = redact_with(
        &redactor,
        "/",
        &[
            ("content-type", "application/json"),
            ("content-length", &length),
        ],
        body.as_bytes(),
    );
    let text = body_text(&parts);
    assert!(
        text.starts_with(&format!("[REDACTED: JSON body not stored: {length} bytes")),
        "{text}"
    );
    assert!(text.contains("Redactor::max_json_bytes"), "{text}");
    assert_eq!(
        header(&parts, "content-length"),
        text.len().to_string().as_bytes()
    );
    // At the bound exactly it is still checked.
    let at_bound = Redactor::new().max_json_bytes(body.len());
    assert!(
        body_text(&redact_with(&at_bound, "/", &[], body.as_bytes())).contains("[REDACTED]\",")
    );
}

#[test]
fn a_json_body_nested_past_the_depth_bound_is_replaced_by_a_marker() {
    let redactor = Redactor::new().max_json_depth(4);
    let ok = r#"[[[{"token":"t-123456"}]]]"#;
    assert_eq!(
        body_text(&redact_with(&redactor, "/", &[], ok.as_bytes())),
        r#"[[[{"token":"[REDACTED]"}]]]"#
    );
    let deep = r#"[[[[{"token":"t-123456"}]]]]"#;
    let text = redact_with(&redactor, "/", &[], deep.as_bytes()).body;
    assert!(text.starts_with(b"[REDACTED: JSON body not stored: it nests deeper than 4 levels"));
    // Deep but malformed still counts as too deep: past the bound nothing is looked at.
    let hostile = "[".repeat(200_000);
    let parts = redact("/", &[], &hostile);
    assert!(body_text(&parts).contains("deeper than 128 levels"));
}

#[test]
fn with_no_json_keys_json_bodies_are_not_read() {
    let redactor = Redactor::empty().max_json_bytes(1);
    let body = r#"{"api_key":"sk-kept"}"#;
    assert_eq!(
        body_text(&redact_with(&redactor, "/", &[], body.as_bytes())),
        body
    );
}

// ---- form bodies and hooks ---------------------------------------------------------------

#[test]
fn form_bodies_follow_the_query_rules() {
    let body = "grant_type=authorization_code&Code=auth-code-1&client_secret=cs%2B123456&x=1";
    let parts = redact(
        "/oauth/token",
        &[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("content-length", "74"),
        ],
        body,
    );
    assert_eq!(
        body_text(&parts),
        "grant_type=authorization_code&Code=[REDACTED]&client_secret=[REDACTED]&x=1"
    );
    assert_eq!(
        header(&parts, "content-length"),
        parts.body.len().to_string().as_bytes()
    );
    assert_eq!(parts.secrets.scrub("cs+123456"), "[REDACTED]");
}

#[test]
fn the_body_hook_runs_first_and_its_output_is_still_checked() {
    let redactor = Redactor::new().body_hook(|body, secrets| {
        let text = String::from_utf8_lossy(body);
        if text.contains("<pin>4321-xyz</pin>") {
            secrets.add("4321-xyz");
        }
        Bytes::from(text.replace("<pin>4321-xyz</pin>", "<pin>[REDACTED]</pin>"))
    });
    let parts = redact_with(&redactor, "/", &[], b"<pin>4321-xyz</pin>");
    assert_eq!(body_text(&parts), "<pin>[REDACTED]</pin>");
    assert_eq!(parts.secrets.scrub("pin 4321-xyz"), "pin [REDACTED]");
    // A hook that produces JSON gets the JSON rules on top.
    let redactor = Redactor::new().body_hook(|_, _| Bytes::from(r#"{"secret":"from-hook"}"#));
    let parts = redact_with(&redactor, "/", &[], b"binary");
    assert_eq!(body_text(&parts), r#"{"secret":"[REDACTED]"}"#);
}

// ---- echoes in the head -----------------------------------------------------------------

#[test]
fn a_secret_echoed_elsewhere_in_the_head_is_scrubbed_but_host_and_length_are_kept() {
    let parts = redact(
        "https://api.example.com/v1/sk-echo-999/chat?api_key=sk-echo-999",
        &[
            ("authorization", "Bearer sk-echo-999"),
            ("x-forwarded-authorization", "Bearer sk-echo-999"),
            ("x-upstream-key", "key=sk-echo-999"),
            ("referer", "https://app.example.com/?token=tok-abcdef&x=1"),
            ("host", "api.example.com"),
        ],
        "",
    );
    assert_eq!(
        parts.uri,
        "https://api.example.com/v1/[REDACTED]/chat?api_key=[REDACTED]"
    );
    // The whole `Bearer ...` value was collected from `authorization`, so it goes whole.
    assert_eq!(header(&parts, "x-forwarded-authorization"), b"[REDACTED]");
    assert_eq!(header(&parts, "x-upstream-key"), b"key=[REDACTED]");
    assert_eq!(
        header(&parts, "referer"),
        b"https://app.example.com/?token=[REDACTED]&x=1"
    );
    assert_eq!(header(&parts, "host"), b"api.example.com");
}

// ---- scrubbing ---------------------------------------------------------------------------

#[test]
fn scrubbing_quotes_of_the_url_in_a_reqwest_style_error() {
    let parts = redact(
        "https://user:pa55word@api.example.com/v1beta/models?alt=sse&KEY=AIzaSyExample123",
        &[],
        "",
    );
    let chain = [
        "error sending request for url \
         (https://user:pa55word@api.example.com/v1beta/models?alt=sse&KEY=AIzaSyExample123)",
        "client error (Connect)",
    ];
    let scrubbed: Vec<String> = chain.iter().map(|line| parts.secrets.scrub(line)).collect();
    assert_eq!(
        scrubbed,
        [
            "error sending request for url \
             (https://[REDACTED]@api.example.com/v1beta/models?alt=sse&KEY=[REDACTED])",
            "client error (Connect)",
        ]
    );
}

#[test]
fn url_rules_catch_urls_the_request_never_held() {
    let secrets = Redactor::new().secrets();
    assert_eq!(
        secrets.scrub(
            "redirect to https://u:p@s3.example.com/o?X-Amz-Signature=abc123&X-Amz-Credential=A%2F1 failed; \
             see \"https://x/?a=1;sig=zz9\" and (http://h/?Password=hunter2)"
        ),
        "redirect to https://[REDACTED]@s3.example.com/o?X-Amz-Signature=[REDACTED]\
         &X-Amz-Credential=[REDACTED] failed; see \"https://x/?a=1;sig=[REDACTED]\" and \
         (http://h/?Password=[REDACTED])"
    );
    // Prose that merely mentions a name is left alone.
    assert_eq!(
        secrets.scrub("invalid token=abc; key: 1"),
        "invalid token=abc; key: 1"
    );
}

#[test]
fn values_under_the_minimum_are_not_scrubbed_globally() {
    let mut secrets = Redactor::new().min_scrub_len(6).secrets();
    secrets.add("abc12");
    secrets.add("abc123");
    assert_eq!(secrets.too_short(), 1);
    assert_eq!(
        secrets.scrub("abc12 abc123 ABC123"),
        "abc12 [REDACTED] [REDACTED]"
    );
    let mut secrets = Secrets::new();
    secrets.add("a");
    assert_eq!(secrets.scrub("a banana"), "a banana");
}

#[test]
fn a_value_inside_the_marker_is_not_scrubbed_so_markers_stay_readable() {
    let mut secrets = Secrets::new();
    secrets.add("acte");
    secrets.add("REDACTED");
    assert!(secrets.is_empty());
    assert_eq!(secrets.scrub("[REDACTED] acted"), "[REDACTED] acted");
}

#[test]
fn the_longest_secret_wins_so_no_tail_is_left() {
    let mut secrets = Secrets::new();
    secrets.add("sk-abcd");
    secrets.add("sk-abcdef-long");
    assert_eq!(secrets.scrub("x sk-abcdef-long y"), "x [REDACTED] y");
    // The slow path gives the same answer.
    let scrubbed = replace_values_one_by_one(b"x sk-abcdef-long y", &secrets.values, true);
    assert_eq!(scrubbed, b"x [REDACTED] y");
}

#[test]
fn scrubbing_text_never_splits_a_character() {
    let mut secrets = Secrets::new();
    // The tail of "é" (0xC3 0xA9) followed by ASCII: matches inside "éabcd" at a non-boundary.
    secrets.add(b"\xA9abcd".as_slice());
    secrets.add("日本語の鍵");
    let scrubbed = secrets.scrub("éabcd 日本語の鍵");
    assert_eq!(scrubbed, "éabcd [REDACTED]");
    assert_eq!(secrets.scrub_bytes("éabcd".as_bytes()), b"\xC3[REDACTED]");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let parts = redact(
        "https://u:pw-999999@h/?key=sk-debug",
        &[("authorization", "Bearer sk-debug")],
        "",
    );
    let debug = format!("{parts:?} {:?}", Redactor::new());
    assert!(
        !debug.contains("sk-debug") && !debug.contains("pw-999999"),
        "{debug}"
    );
    assert!(debug.contains("Secrets { values:"), "{debug}");
}

#[test]
fn collection_is_bounded_and_says_so() {
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("\"secret-value-{i:05}\""))
        .collect();
    let body = format!("{{\"secret\":[{}]}}", many.join(","));
    let parts = redact("/", &[], &body);
    assert_eq!(body_text(&parts), r#"{"secret":"[REDACTED]"}"#);
    assert!(!parts.secrets.is_complete());
    assert!(parts.secrets.len() <= MAX_SECRET_VALUES);
}

#[test]
fn the_types_can_cross_threads_and_be_cloned() {
    // The core dead-letter layer keeps them across `.await`s and in shared state.
    fn assert_traits<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
    assert_traits::<Redactor>();
    assert_traits::<Secrets>();
}

#[test]
fn clones_share_the_rules_and_builders_do_not_touch_other_clones() {
    let base = Redactor::new();
    let copy = base.clone();
    assert!(Arc::ptr_eq(&base.rules, &copy.rules));
    let more = copy.redact_header("x-more");
    assert!(more.is_sensitive_header("x-more"));
    assert!(!base.is_sensitive_header("x-more"));
}

// ---- the JSON scanner against serde_json --------------------------------------------------

fn default_keys() -> BTreeSet<Vec<u8>> {
    Redactor::new().rules.json_keys.clone()
}

/// What redaction should do to a parsed value.
fn expected(value: &serde_json::Value, keys: &BTreeSet<Vec<u8>>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let redacted = if keys.contains(&json_key(key.as_bytes())) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        expected(value, keys)
                    };
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| expected(item, keys)).collect())
        }
        other => other.clone(),
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let key = prop_oneof![
        Just("api_key".to_owned()),
        Just("ApiKey".to_owned()),
        Just("TOKEN".to_owned()),
        Just("password".to_owned()),
        Just("model".to_owned()),
        "[a-z_]{1,8}",
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Few digits: serde_json reads long floats back a last bit off, which is not ours.
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 100.0)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn redacted_json_parses_to_the_input_with_sensitive_values_replaced(
        value in json_value(),
        pretty in any::<bool>(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            serde_json::to_string(&value).unwrap()
        };
        let parts = redact("/", &[("content-type", "application/json")], &text);
        let back: serde_json::Value = serde_json::from_slice(&parts.body)
            .map_err(|error| TestCaseError::fail(format!("{error}: {}", body_text(&parts))))?;
        prop_assert_eq!(back, expected(&value, &default_keys()));
    }

    #[test]
    fn the_scanner_accepts_exactly_what_serde_json_accepts(
        text in prop_oneof![
            // Near-JSON: JSON-ish alphabet, so many inputs are valid or almost.
            "[\\[\\]{}\",:0-9.eE+\\- tfalsnru\\\\/bx]{0,40}",
            json_value().prop_map(|value| serde_json::to_string(&value).unwrap()),
        ],
        cut in any::<prop::sample::Index>(),
    ) {
        let mut cut = cut.index(text.len() + 1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        for input in [text.as_str(), &text[..cut]] {
            let ours = scan_json(input.as_bytes(), &default_keys(), 1_000).is_ok();
            // A sequence of values, as serde_json's stream reader reads them; blank is not JSON.
            let mut values = serde_json::Deserializer::from_str(input).into_iter::<serde_json::Value>();
            let theirs = !input.trim().is_empty() && values.all(|value| value.is_ok());
            prop_assert_eq!(ours, theirs, "{:?}", input);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_in_any_body_kind(
        body in prop::collection::vec(any::<u8>(), 0..512),
        kind in 0..3usize,
    ) {
        let content_type = ["application/json", "application/x-www-form-urlencoded", "text/plain"][kind];
        let parts = redact_with(&Redactor::new(), "/", &[("content-type", content_type)], &body);
        let _ = parts.secrets.scrub_bytes(&body);
    }

    #[test]
    fn scrubbing_any_text_with_any_secrets_is_total_and_keeps_utf8(
        text in "\\PC{0,80}",
        secrets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..6),
    ) {
        let mut collected = Redactor::new().secrets();
        for secret in &secrets {
            collected.add(secret);
        }
        let _ = collected.scrub(&text);
        let _ = collected.scrub_bytes(text.as_bytes());
    }

    #[test]
    fn decoding_any_json_string_content_never_panics(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_json_string(&raw);
    }
}
