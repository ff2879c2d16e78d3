//! A failed HTTP request dead-lettered into the real SQLite store keeps what a replay needs and
//! none of the secrets: no byte of the database, its WAL or any other file holds the API key.
#![cfg(feature = "dead-letter")]

use std::os::unix::fs::PermissionsExt;

use steadfast::BoxError;
use steadfast::dead_letter::{DeadLetterLayer, DeadLetterSink, DeadLettered};
use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};
use steadfast_sqlite::SqliteSink;
use tower::{Layer, ServiceExt, service_fn};

const API_KEY: &str = "sk-live-9f8e7d6c5b4a";

#[tokio::test]
async fn no_secret_reaches_any_stored_byte_and_the_request_replays() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSink::open(dir.path()).unwrap();
    let agent = service_fn(|_: http::Request<BufferedBody>| async {
        Err::<http::Response<String>, BoxError>("503 overloaded".into())
    });
    let gpt = steadfast::Agent::new("gpt").classifier(steadfast_http::HttpClassifier::new());
    let stack = DeadLetterLayer::new(&gpt, store.clone())
        .encoder(HttpRequestEncoder::new())
        .layer(agent);

    let request = http::Request::post(format!("http://127.0.0.1:9/v1/chat?api_key={API_KEY}"))
        .header("authorization", format!("Bearer {API_KEY}"))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(BufferedBody::from(r#"{"prompt":"summarise this"}"#))
        .unwrap();
    let err = stack.oneshot(request).await.unwrap_err();
    let id = err
        .downcast_ref::<DeadLettered>()
        .expect("dead-lettered")
        .id();

    let record = store.get(id).await.unwrap().expect("stored");
    let replay = decode_request(&record.request).unwrap();
    assert_eq!(replay.method(), http::Method::POST);
    assert_eq!(replay.uri().path(), "/v1/chat");
    assert_eq!(replay.headers()["content-type"], "application/json");
    assert_eq!(
        replay.body().bytes().as_ref(),
        br#"{"prompt":"summarise this"}"#
    );
    drop(store);

    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(API_KEY.len())
                .any(|window| window == API_KEY.as_bytes()),
            "{} holds the API key",
            path.display()
        );
        if path.extension().is_some_and(|ext| ext == "dlq") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is readable by others", path.display());
        }
    }
    assert!(files >= 1, "the store wrote no file");
}

/// Every position the review found leaking, through the real SQLite store: no file byte holds any of
/// the secrets, though the agent's error quotes the whole URL and a header as a client error
/// would (the dead-letter layer scrubs the stored error chain with what redaction collected).
#[tokio::test]
async fn no_stored_byte_holds_a_secret_from_any_reviewed_position() {
    const SECRETS: [&str; 7] = [
        "userinfo-pass-5e1f",
        "query-key-8c2d7a",
        "amz-session-token-4b9e",
        "auth-token-77aa01",
        "json-api-key-3f6c",
        "aws-signature-9d0b12",
        "basic-password-61c0",
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteSink::open(dir.path()).unwrap();
    let agent = service_fn(|request: http::Request<BufferedBody>| {
        let quoted = format!(
            "error sending request for url ({}) with x-auth-token {:?}",
            request.uri(),
            request.headers()["x-auth-token"]
        );
        async move { Err::<http::Response<String>, BoxError>(quoted.into()) }
    });
    let gpt = steadfast::Agent::new("gpt").classifier(steadfast_http::HttpClassifier::new());
    let stack = DeadLetterLayer::new(&gpt, store.clone())
        .encoder(HttpRequestEncoder::new())
        .layer(agent);
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("svc:{}", SECRETS[6]))
    };
    let request = http::Request::post(format!(
        "http://svc:{}@127.0.0.1:9/v1/chat?model=m;API%5Fkey={}&X-Amz-Signature={}",
        SECRETS[0], SECRETS[1], SECRETS[5]
    ))
    .header("x-amz-security-token", SECRETS[2])
    .header("x-auth-token", SECRETS[3])
    .header("proxy-authorization", format!("Basic {basic}"))
    .body(BufferedBody::from(format!(
        r#"{{"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"config":{{"ApiKey":"{}"}}}}]}}"#,
        SECRETS[4]
    )))
    .unwrap();
    let err = stack.oneshot(request).await.unwrap_err();
    let id = err
        .downcast_ref::<DeadLettered>()
        .expect("dead-lettered")
        .id();
    let record = store.get(id).await.unwrap().expect("stored");
    let replay = decode_request(&record.request).unwrap();
    assert_eq!(
        replay.uri(),
        "http://127.0.0.1:9/v1/chat?model=m;API%5Fkey=%5BREDACTED%5D&X-Amz-Signature=%5BREDACTED%5D"
    );
    let chain = record.error_chain.join("\n");
    assert!(chain.contains("error sending request for url"), "{chain}");
    for secret in &SECRETS[..4] {
        assert!(
            !chain.contains(secret),
            "{secret} in the stored error chain: {chain}"
        );
    }
    drop(store);

    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for secret in SECRETS.iter().copied().chain([basic.as_str()]) {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{} holds {secret}",
                path.display()
            );
        }
    }
    assert!(files >= 1, "the store wrote no file");
}
